/* A noinline helper placed in the program's own section: the call has no relocation. */
#include "common.h"

__attribute__((noinline, section("filter"))) static int twice(int value)
{
    return value * 2;
}

SEC("filter")
int doubled_length_is_large(void *packet, unsigned long length)
{
    return twice(length) > 1000;
}
