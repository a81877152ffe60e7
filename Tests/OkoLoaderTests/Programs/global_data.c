/* Global data in .data, .rodata and .bss, and string literals. */
#include "common.h"

int threshold = 100;
long packets_seen = 0x1122334455667788;
const volatile unsigned int wanted_port = 443;
unsigned long bytes_seen;
char last_tag[8];

static long (*trace)(const char *fmt, __u32 size, ...) = (void *)7;

SEC("filter")
int with_globals(void *packet, unsigned long length)
{
    packets_seen++;
    bytes_seen += length;
    last_tag[0] = 'x';
    if (length > threshold) {
        trace("long packet %lu\n", sizeof("long packet %lu\n"), length);
        return length > wanted_port;
    }
    trace("short\n", sizeof("short\n"));
    return 0;
}
