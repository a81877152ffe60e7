/* Several program sections, one with two programs. */
#include "common.h"

SEC("classifier/ipv4")
int is_ipv4(void *packet, unsigned long length)
{
    unsigned char *data = packet;
    return length >= 14 && data[12] == 0x08 && data[13] == 0x00;
}

SEC("classifier/ipv6")
int is_ipv6(void *packet, unsigned long length)
{
    unsigned char *data = packet;
    return length >= 14 && data[12] == 0x86 && data[13] == 0xdd;
}

SEC("classifier/arp")
int is_arp(void *packet, unsigned long length)
{
    unsigned char *data = packet;
    return length >= 14 && data[12] == 0x08 && data[13] == 0x06;
}

SEC("classifier/arp")
int is_small(void *packet, unsigned long length)
{
    return length < 64;
}
