/* A call to a kernel function (kfunc) resolved by name at load time. */
#include "common.h"

extern int bpf_oko_missing(unsigned long value) __ksym;

SEC("filter")
int calls_kfunc(void *packet, unsigned long length)
{
    return bpf_oko_missing(length);
}
