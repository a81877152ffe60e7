/* Reads a stack slot nothing wrote. */
#include "../../../examples/bpf/oko.h"

OKO_PROGRAM(uninitialised_stack) {
    __u64 value;
    asm volatile("%0 = *(u64 *)(r10 - 64)" : "=r"(value));
    return value;
}
char LICENSE[] SEC("license") = "GPL";
