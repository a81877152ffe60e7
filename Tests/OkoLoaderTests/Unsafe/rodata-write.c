/* Writes a read-only global (.rodata), which only the control plane may set. */
#include "../../../examples/bpf/oko.h"
const volatile __u32 limit = 5;
OKO_PROGRAM(rodata_write) {
    *(volatile __u32 *)&limit = (__u32)len;
    return limit;
}
char LICENSE[] SEC("license") = "GPL";
