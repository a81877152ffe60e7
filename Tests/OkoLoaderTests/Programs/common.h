/* Shared by the loader's test programs: libbpf's section and map macros, Linux map type numbers. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
