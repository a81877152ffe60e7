/* A bounded loop over the payload (not unrolled): sums the first 32 bytes. */
#include "common.h"

SEC("filter")
int checksum_is_even(void *packet, unsigned long length)
{
    unsigned char *data = packet;
    unsigned int sum = 0;
#pragma clang loop unroll(disable)
    for (unsigned int i = 0; i < 32; i++) {
        if (i >= length)
            break;
        sum += data[i];
    }
    return (sum & 1) == 0;
}
