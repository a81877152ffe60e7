/* Reads 8 bytes past an 8-byte map value. */
#include "../../../examples/bpf/oko.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} values SEC(".maps");

OKO_PROGRAM(map_value_out_of_bounds) {
    __u32 zero = 0;
    __u64 *value = bpf_map_lookup_elem(&values, &zero);
    if (!value) return 0;
    return value[1];
}
char LICENSE[] SEC("license") = "GPL";
