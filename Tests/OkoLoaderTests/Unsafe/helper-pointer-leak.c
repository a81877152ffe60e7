/* Hands the packet pointer to a map update as the value, so it would land in the map. */
#include "../../../examples/bpf/oko.h"
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} values SEC(".maps");
OKO_PROGRAM(helper_pointer_leak) {
    __u32 zero = 0;
    __u64 leaked = (__u64)pkt;
    bpf_map_update_elem(&values, &zero, &leaked, BPF_ANY);
    return 1;
}
char LICENSE[] SEC("license") = "GPL";
