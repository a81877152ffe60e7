/* stateless-firewall: drops IPv4 packets to blocked destination addresses.
 *
 * Returns 1 (match: forward) for every packet except IPv4 packets whose destination is a key of
 * `blocked`; for those it counts the hit in the entry's value and returns 0, so a lower-priority
 * rule (e.g. `priority=0,actions=drop`) takes the packet.
 *
 * Maps:
 *   blocked  hash: __be32 destination address -> __u64 packets refused
 */
#include "oko.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __be32);
    __type(value, __u64);
} blocked SEC(".maps");

OKO_PROGRAM(stateless_firewall) {
    if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 1;
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 0;   /* truncated IPv4: refuse */
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    __be32 destination = ip->destination;
    __u64 *hits = bpf_map_lookup_elem(&blocked, &destination);
    if (hits) {
        __sync_fetch_and_add(hits, 1);
        return 0;
    }
    return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
