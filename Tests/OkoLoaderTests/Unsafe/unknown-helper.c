/* Calls a helper id nobody implements. */
#include "../../../examples/bpf/oko.h"

static __u64 (*const mystery_helper)(__u64 value) = (void *)999;
OKO_PROGRAM(unknown_helper) {
    return mystery_helper(len);
}
char LICENSE[] SEC("license") = "GPL";
