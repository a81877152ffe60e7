/* A global initialised with an address: needs an absolute relocation in .data. */
#include "common.h"

const char *greeting = "hello";

SEC("filter")
int reads_pointer(void *packet, unsigned long length)
{
    return greeting[0] == 'h';
}
