/* Dereferences a map lookup result without a NULL check. */
#include "../../../examples/bpf/oko.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} values SEC(".maps");

OKO_PROGRAM(unchecked_lookup) {
    __u32 zero = 0;
    __u64 *value = bpf_map_lookup_elem(&values, &zero);
    return *value;
}
char LICENSE[] SEC("license") = "GPL";
