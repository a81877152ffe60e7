/* p0f: passive TCP SYN fingerprinting, in the spirit of p0f.
 *
 * For an IPv4 TCP SYN (without ACK) it builds a signature from the initial TTL (rounded up to 32, 64,
 * 128 or 255), the window size, the MSS, the window scale and the order of TCP options, and looks the
 * signature up in `signatures`. A known signature counts a hit and returns 1 (the rule matches, e.g.
 * to steer that operating system's traffic); anything else returns 0.
 *
 * Maps:
 *   signatures  hash: struct syn_signature -> struct fingerprint {label id, hits}
 *   unknown     array[1] of __u64: SYNs whose signature is not in the map
 */
#include "oko.h"

#define MAX_OPTIONS 8

struct syn_signature {
    __u8 ttl;            /* initial TTL guess */
    __u8 window_scale;   /* 0xff when absent */
    __u16 mss;           /* 0 when absent */
    __u16 window;
    __u8 options[MAX_OPTIONS];   /* option kinds in order, 0-padded */
    __u8 option_count;
    __u8 pad;
};

struct fingerprint {
    __u32 label;
    __u32 pad;
    __u64 hits;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct syn_signature);
    __type(value, struct fingerprint);
} signatures SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} unknown SEC(".maps");

OKO_PROGRAM(p0f) {
    if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 0;
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 0;
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    if (ip->protocol != OKO_IPPROTO_TCP) return 0;
    __u64 ihl = (ip->version_ihl & 0x0f) * 4;
    if (ihl < sizeof(struct oko_ipv4)) return 0;
    __u64 tcp_offset = OKO_ETH_HLEN + ihl;
    if (len < tcp_offset + sizeof(struct oko_tcp)) return 0;
    struct oko_tcp *tcp = pkt + tcp_offset;
    if ((tcp->flags & (OKO_TCP_SYN | OKO_TCP_ACK)) != OKO_TCP_SYN) return 0;

    struct syn_signature signature = {};
    __u8 ttl = ip->ttl;
    signature.ttl = ttl <= 32 ? 32 : ttl <= 64 ? 64 : ttl <= 128 ? 128 : 255;
    signature.window = bpf_ntohs(tcp->window);
    signature.window_scale = 0xff;

    __u64 header_length = (tcp->data_offset >> 4) * 4;
    __u64 offset = tcp_offset + sizeof(struct oko_tcp);
    __u64 end = tcp_offset + header_length;
    if (end > len) end = len;
    for (int i = 0; i < 40 && signature.option_count < MAX_OPTIONS; i++) {
        if (offset + 1 > end) break;
        __u8 kind = *(__u8 *)(pkt + offset);
        if (kind == 0) break;                    /* end of options */
        signature.options[signature.option_count & (MAX_OPTIONS - 1)] = kind;
        signature.option_count++;
        if (kind == 1) { offset += 1; continue; }  /* no-op */
        if (offset + 2 > end) break;
        __u8 size = *(__u8 *)(pkt + offset + 1);
        if (size < 2) break;
        if (kind == 2 && size == 4 && offset + 4 <= end) {
            signature.mss = (__u16)(*(__u8 *)(pkt + offset + 2)) << 8 | *(__u8 *)(pkt + offset + 3);
        }
        if (kind == 3 && size == 3 && offset + 3 <= end) {
            signature.window_scale = *(__u8 *)(pkt + offset + 2);
        }
        offset += size;
    }

    struct fingerprint *known = bpf_map_lookup_elem(&signatures, &signature);
    if (known) {
        __sync_fetch_and_add(&known->hits, 1);
        return 1;
    }
    __u32 zero = 0;
    __u64 *misses = bpf_map_lookup_elem(&unknown, &zero);
    if (misses) __sync_fetch_and_add(misses, 1);
    return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
