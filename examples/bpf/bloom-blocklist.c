/* bloom-blocklist: refuses IPv4 packets whose source address is in a Bloom filter.
 *
 * A Bloom filter answers "maybe present" or "certainly absent" in constant memory, so a very large
 * blocklist costs a few bits per address; a false positive blocks an innocent address with the
 * probability the filter's size and hash count give. Operators add addresses through the API (a map
 * update with an empty key pushes the value). Returns 1 (forward) unless the source may be listed.
 *
 * Maps:
 *   blocklist  Bloom filter of __be32 source addresses (3 hash functions)
 *   refused    array[1] of __u64: packets refused
 */
#include "oko.h"

struct {
    __uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
    __uint(max_entries, 100000);
    __uint(map_extra, 3);
    __type(value, __be32);
} blocklist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} refused SEC(".maps");

OKO_PROGRAM(bloom_blocklist) {
    if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 1;
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 0;
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    __be32 source = ip->source;
    if (bpf_map_peek_elem(&blocklist, &source) == 0) {   /* 0: maybe present */
        __u32 zero = 0;
        __u64 *count = bpf_map_lookup_elem(&refused, &zero);
        if (count) __sync_fetch_and_add(count, 1);
        return 0;
    }
    return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
