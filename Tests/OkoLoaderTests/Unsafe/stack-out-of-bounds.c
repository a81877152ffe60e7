/* Indexes a stack array with a packet byte it never bounds: up to 255 * 8 bytes past the array. */
#include "../../../examples/bpf/oko.h"

OKO_PROGRAM(stack_out_of_bounds) {
    if (len < 1) return 0;
    volatile __u64 slots[4] = {1, 2, 3, 4};
    __u8 index = *(__u8 *)pkt;
    return slots[index];
}
char LICENSE[] SEC("license") = "GPL";
