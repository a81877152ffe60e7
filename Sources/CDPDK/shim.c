#include "CDPDK.h"
