/* A CO-RE field access, relocated against kernel BTF by libbpf. */
#include "common.h"

struct packet_info {
    __u32 length;
    __u32 mark;
} __attribute__((preserve_access_index));

SEC("filter")
int reads_core_field(struct packet_info *info, unsigned long length)
{
    return info->mark == 7;
}
