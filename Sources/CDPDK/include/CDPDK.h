// placeholder
#include <stdint.h>
