/* Stores the packet pointer into a map value, where the control plane could read it. */
#include "../../../examples/bpf/oko.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} values SEC(".maps");

OKO_PROGRAM(pointer_leak) {
    __u32 zero = 0;
    __u64 *slot = bpf_map_lookup_elem(&values, &zero);
    if (!slot) return 0;
    *slot = (__u64)pkt;
    return 1;
}
char LICENSE[] SEC("license") = "GPL";
