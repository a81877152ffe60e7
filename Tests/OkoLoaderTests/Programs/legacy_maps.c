/* A stateless firewall with an old-style `maps` section definition. */
#include "common.h"

struct bpf_map_def {
    unsigned int type;
    unsigned int key_size;
    unsigned int value_size;
    unsigned int max_entries;
    unsigned int map_flags;
};

struct bpf_map_def SEC("maps") blocked = {
    .type = BPF_MAP_TYPE_HASH,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u8),
    .max_entries = 1024,
    .map_flags = 0,
};

struct bpf_map_def SEC("maps") hits = {
    .type = BPF_MAP_TYPE_ARRAY,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 1,
};

SEC("filter")
int firewall(void *packet, unsigned long length)
{
    unsigned char *data = packet;
    if (length < 34)
        return 0;
    __u32 destination = *(__u32 *)(data + 30);
    if (bpf_map_lookup_elem(&blocked, &destination)) {
        __u32 zero = 0;
        __u64 *count = bpf_map_lookup_elem(&hits, &zero);
        if (count)
            *count += 1;
        return 0;
    }
    return 1;
}
