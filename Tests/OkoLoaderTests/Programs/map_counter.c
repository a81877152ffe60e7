/* Counts packets per (source address, destination port) in a libbpf BTF-defined hash map. */
#include "common.h"

struct flow_key {
    __u32 saddr;
    __u16 dport;
    __u8 protocol;
    __u8 flags;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, struct flow_key);
    __type(value, __u64);
    __uint(max_entries, 4096);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} flow_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(key_size, 4);
    __uint(value_size, 8);
    __uint(max_entries, 2);
} totals SEC(".maps");

SEC("filter")
int count_flows(void *packet, unsigned long length)
{
    unsigned char *data = packet;
    if (length < 38)
        return 0;
    struct flow_key key = {};
    key.saddr = *(__u32 *)(data + 26);
    key.dport = *(__u16 *)(data + 36);
    key.protocol = data[23];
    __u64 *count = bpf_map_lookup_elem(&flow_counts, &key);
    if (count) {
        __sync_fetch_and_add(count, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&flow_counts, &key, &one, BPF_ANY);
    }
    __u32 slot = 0;
    __u64 *total = bpf_map_lookup_elem(&totals, &slot);
    if (total)
        __sync_fetch_and_add(total, 1);
    return 1;
}
