/* dns-filter: refuses DNS queries for blocked names.
 *
 * For IPv4/UDP packets to port 53 it walks the query name's labels with a bounded loop (at most
 * 128 bytes), lower-cases them, hashes the name in wire form (FNV-1a, 64 bit, over "example.com" as
 * 7example3com) and looks the hash up in `blocked_names`. Returns 0 for a blocked name (a lower-priority
 * rule drops it) and 1 for everything else.
 *
 * Maps:
 *   blocked_names  hash: __u64 FNV-1a hash of the lower-cased wire-format name -> __u64 queries refused
 */
#include "oko.h"

#define DNS_HEADER_LEN 12
#define MAX_NAME_BYTES 128

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u64);
    __type(value, __u64);
} blocked_names SEC(".maps");

OKO_PROGRAM(dns_filter) {
    if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 1;
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 1;
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    if (ip->protocol != OKO_IPPROTO_UDP) return 1;
    __u64 ihl = (ip->version_ihl & 0x0f) * 4;
    if (ihl < sizeof(struct oko_ipv4)) return 1;
    __u64 udp_offset = OKO_ETH_HLEN + ihl;
    if (len < udp_offset + sizeof(struct oko_udp)) return 1;
    struct oko_udp *udp = pkt + udp_offset;
    if (udp->destination_port != bpf_htons(53)) return 1;

    __u64 offset = udp_offset + sizeof(struct oko_udp) + DNS_HEADER_LEN;
    __u64 hash = 0xcbf29ce484222325ULL;
    for (int i = 0; i < MAX_NAME_BYTES; i++) {
        if (offset + i + 1 > len) return 1;          /* truncated name: let it through */
        __u8 c = *(__u8 *)(pkt + offset + i);
        if (c == 0) break;                            /* end of the name */
        if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
        hash = (hash ^ c) * 0x100000001b3ULL;
    }
    __u64 *refused = bpf_map_lookup_elem(&blocked_names, &hash);
    if (refused) {
        __sync_fetch_and_add(refused, 1);
        return 0;
    }
    return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
