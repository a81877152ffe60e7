/* rate-limiter: a token bucket per IPv4 source address.
 *
 * Returns 1 (the rule matches: forward) while the source stays within `rate` packets per second with
 * bursts up to `burst` packets, 0 once its bucket is empty. Non-IPv4 packets always match.
 *
 * Maps:
 *   config   array[1] of struct rate_config: rate (packets/s) and burst; 0/0 means 1000 pps, burst 100
 *   buckets  LRU hash: __be32 source address -> struct bucket {tokens, last refill time}
 *   drops    array[1] of __u64: packets refused
 */
#include "oko.h"

struct rate_config {
    __u64 rate;
    __u64 burst;
};

struct bucket {
    __u64 tokens_milli;   /* tokens x 1000, so refills below one token per packet are not lost */
    __u64 last_ns;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct rate_config);
} config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __be32);
    __type(value, struct bucket);
} buckets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} drops SEC(".maps");

OKO_PROGRAM(rate_limiter) {
    if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 1;
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 1;
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    __be32 source = ip->source;

    __u32 zero = 0;
    __u64 rate = 1000, burst = 100;
    struct rate_config *cfg = bpf_map_lookup_elem(&config, &zero);
    if (cfg && cfg->rate) {
        rate = cfg->rate;
        burst = cfg->burst ? cfg->burst : 1;
    }

    __u64 now = bpf_ktime_get_ns();
    struct bucket *b = bpf_map_lookup_elem(&buckets, &source);
    if (!b) {
        struct bucket fresh = { .tokens_milli = (burst - 1) * 1000, .last_ns = now };
        bpf_map_update_elem(&buckets, &source, &fresh, BPF_ANY);
        return 1;
    }
    __u64 elapsed = now - b->last_ns;
    __u64 tokens = b->tokens_milli + elapsed * rate / 1000000;   /* ns * pkt/s / 1e9 * 1000 */
    if (tokens > burst * 1000) tokens = burst * 1000;
    b->last_ns = now;
    if (tokens < 1000) {
        b->tokens_milli = tokens;
        __u64 *dropped = bpf_map_lookup_elem(&drops, &zero);
        if (dropped) __sync_fetch_and_add(dropped, 1);
        return 0;
    }
    b->tokens_milli = tokens - 1000;
    return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
