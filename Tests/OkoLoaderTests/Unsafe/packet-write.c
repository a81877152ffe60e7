/* Writes the packet, which filter programs may only read. */
#include "../../../examples/bpf/oko.h"

OKO_PROGRAM(packet_write) {
    if (len < OKO_ETH_HLEN) return 0;
    *(volatile __u8 *)pkt = 0xff;
    return 1;
}
char LICENSE[] SEC("license") = "GPL";
