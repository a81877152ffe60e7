/* Reads the IPv4 protocol without checking the packet length. */
#include "../../../examples/bpf/oko.h"

OKO_PROGRAM(no_length_check) {
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    return ip->protocol == OKO_IPPROTO_TCP;
}
char LICENSE[] SEC("license") = "GPL";
