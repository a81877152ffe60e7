/* Asks a Bloom filter about a value nothing initialised, then returns those stack bytes. */
#include "../../../examples/bpf/oko.h"
struct {
    __uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
    __uint(max_entries, 1024);
    __uint(map_extra, 3);
    __type(value, __u64);
} blocklist SEC(".maps");
OKO_PROGRAM(bloom_uninitialised_value) {
    __u64 value;
    asm volatile("" : "=m"(value));  /* keep the slot, without writing it */
    bpf_map_peek_elem(&blocklist, &value);
    return value;
}
char LICENSE[] SEC("license") = "GPL";
