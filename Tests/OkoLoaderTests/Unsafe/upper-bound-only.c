/* An upper bound on the length proves nothing about reading at offset 3000. */
#include "../../../examples/bpf/oko.h"

OKO_PROGRAM(upper_bound_only) {
    if (len > 100000) return 0;
    return *(__u8 *)(pkt + 3000);
}
char LICENSE[] SEC("license") = "GPL";
