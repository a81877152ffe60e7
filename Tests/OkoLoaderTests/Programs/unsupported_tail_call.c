/* Tail calls need a program array map, which the loader refuses. */
#include "common.h"

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(key_size, 4);
    __uint(value_size, 4);
    __uint(max_entries, 4);
} jump_table SEC(".maps");

SEC("filter")
int dispatch(void *packet, unsigned long length)
{
    bpf_tail_call(packet, &jump_table, 0);
    return 0;
}
