/* bpf-to-bpf calls: a static and a global noinline function in .text, one calling the other. */
#include "common.h"

static __attribute__((noinline)) int is_tcp(unsigned char *data)
{
    return data[23] == 6;
}

__attribute__((noinline)) int port_of(unsigned char *data, unsigned long length)
{
    if (length < 38 || !is_tcp(data))
        return -1;
    return (data[36] << 8) | data[37];
}

SEC("filter")
int match_web(void *packet, unsigned long length)
{
    int port = port_of(packet, length);
    return port == 80 || port == 443;
}

SEC("filter_tcp")
int match_tcp(void *packet, unsigned long length)
{
    if (length < 38)
        return 0;
    return is_tcp(packet);
}
