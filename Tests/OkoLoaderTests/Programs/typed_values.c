/* Types for the BTF renderer: nested struct, array, char array, enum, bitfields, signed fields. */
#include "common.h"

enum verdict { VERDICT_PASS = 1, VERDICT_DROP = 2 };

struct endpoint {
    __u32 address;
    __u16 port;
};

struct session_key {
    struct endpoint source;
    __u8 mac[6];
    char name[8];
    enum verdict verdict;
    __s16 delta;
    unsigned int version : 4;
    unsigned int header_length : 4;
    int offset : 5;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, struct session_key);
    __type(value, __s64);
    __uint(max_entries, 16);
} sessions SEC(".maps");

SEC("filter")
int lookup_session(void *packet, unsigned long length)
{
    struct session_key key = {};
    key.source.port = length;
    return bpf_map_lookup_elem(&sessions, &key) != 0;
}
