/* heavy-hitters: flags IPv4 sources that sent more than a threshold of packets, with a count-min sketch.
 *
 * Every IPv4 packet adds one to its source's counters in the sketch; the program returns 1 (the rule
 * matches, e.g. to send the packet to a slow path or drop it) once the source's estimate exceeds
 * `threshold`. A count-min sketch never underestimates, so no heavy hitter is missed; light sources may
 * be overestimated by collisions, bounded by the sketch's width.
 *
 * Maps:
 *   sketch     count-min sketch keyed by __be32 source address (width 4096, 4 rows)
 *   threshold  array[1] of __u64: packets before a source counts as heavy (0 means 1000)
 *   flagged    array[1] of __u64: packets that matched
 */
#include "oko.h"

struct {
    __uint(type, OKO_MAP_TYPE_COUNT_MIN_SKETCH);
    __uint(max_entries, 4096);
    __uint(map_extra, 4);
    __type(key, __be32);
    __type(value, __u64);
} sketch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} threshold SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} flagged SEC(".maps");

OKO_PROGRAM(heavy_hitters) {
    if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 0;
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 0;
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    __be32 source = ip->source;
    oko_count_min_add(&sketch, &source);
    __u64 estimate = oko_count_min_query(&sketch, &source);
    __u32 zero = 0;
    __u64 limit = 1000;
    __u64 *configured = bpf_map_lookup_elem(&threshold, &zero);
    if (configured && *configured) limit = *configured;
    if (estimate <= limit) return 0;
    __u64 *count = bpf_map_lookup_elem(&flagged, &zero);
    if (count) __sync_fetch_and_add(count, 1);
    return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
