/* Checks the length only when a control-plane flag is set, then reads on both paths. */
#include "../../../examples/bpf/oko.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} values SEC(".maps");

OKO_PROGRAM(one_path_check) {
    __u32 zero = 0;
    __u64 *strict = bpf_map_lookup_elem(&values, &zero);
    if (strict && *strict) {
        if (len < 34) return 0;
    }
    return *(__u8 *)(pkt + 30);
}
char LICENSE[] SEC("license") = "GPL";
