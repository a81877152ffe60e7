/* A loop whose exit condition never holds. */
#include "../../../examples/bpf/oko.h"

OKO_PROGRAM(unbounded_loop) {
    volatile __u64 counter = 0;
    while (counter != 1) counter += 2;
    return counter;
}
char LICENSE[] SEC("license") = "GPL";
