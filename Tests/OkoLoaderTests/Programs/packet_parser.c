/* Matches TCP packets to port 80; the IPv4 header length comes from the packet (IHL). */
#include "common.h"

SEC("filter")
int match_http(void *packet, unsigned long length)
{
    unsigned char *data = packet;
    if (length < 14 + 20)
        return 0;
    if (data[12] != 0x08 || data[13] != 0x00)
        return 0;
    unsigned char *ip = data + 14;
    unsigned long header_length = (ip[0] & 0x0f) * 4;
    if (header_length < 20 || ip[9] != 6)
        return 0;
    if (14 + header_length + 4 > length)
        return 0;
    unsigned char *tcp = ip + header_length;
    unsigned int port = (tcp[2] << 8) | tcp[3];
    return port == 80;
}
char LICENSE[] SEC("license") = "GPL";
