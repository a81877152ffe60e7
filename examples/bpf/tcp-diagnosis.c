/* tcp-diagnosis: per-connection TCP statistics, in the spirit of Oko's "dapper" example.
 *
 * For every IPv4 TCP packet it updates the connection's entry (keyed by the 4-tuple as seen, so each
 * direction has its own entry): packets, payload bytes, SYN/FIN/RST counts, retransmissions (payload
 * whose sequence number does not advance), zero-window advertisements and the largest window seen.
 * Operators read `connections` through the API. Always returns 1: it observes, it does not filter.
 *
 * Maps:
 *   connections  LRU hash: struct flow -> struct tcp_statistics
 */
#include "oko.h"

struct flow {
    __be32 source;
    __be32 destination;
    __be16 source_port;
    __be16 destination_port;
};

struct tcp_statistics {
    __u64 packets;
    __u64 payload_bytes;
    __u32 next_sequence;    /* host order: sequence + payload of the highest segment seen */
    __u32 retransmissions;
    __u32 syns;
    __u32 fins;
    __u32 resets;
    __u32 zero_windows;
    __u32 max_window;
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct flow);
    __type(value, struct tcp_statistics);
} connections SEC(".maps");

OKO_PROGRAM(tcp_diagnosis) {
    if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 1;
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 1;
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    if (ip->protocol != OKO_IPPROTO_TCP) return 1;
    __u64 ihl = (ip->version_ihl & 0x0f) * 4;
    if (ihl < sizeof(struct oko_ipv4)) return 1;
    __u64 tcp_offset = OKO_ETH_HLEN + ihl;
    if (len < tcp_offset + sizeof(struct oko_tcp)) return 1;
    struct oko_tcp *tcp = pkt + tcp_offset;

    struct flow key = {
        .source = ip->source, .destination = ip->destination,
        .source_port = tcp->source_port, .destination_port = tcp->destination_port,
    };
    __u32 ip_length = bpf_ntohs(ip->total_length);
    __u32 headers = ihl + (tcp->data_offset >> 4) * 4;
    __u32 payload = ip_length > headers ? ip_length - headers : 0;
    __u32 sequence = bpf_ntohl(tcp->sequence);
    __u32 window = bpf_ntohs(tcp->window);
    __u8 flags = tcp->flags;

    struct tcp_statistics *stats = bpf_map_lookup_elem(&connections, &key);
    if (!stats) {
        struct tcp_statistics fresh = {};
        bpf_map_update_elem(&connections, &key, &fresh, BPF_NOEXIST);
        stats = bpf_map_lookup_elem(&connections, &key);
        if (!stats) return 1;
        stats->next_sequence = sequence;
    }
    stats->packets += 1;
    stats->payload_bytes += payload;
    if (flags & OKO_TCP_SYN) stats->syns += 1;
    if (flags & OKO_TCP_FIN) stats->fins += 1;
    if (flags & OKO_TCP_RST) stats->resets += 1;
    if (window == 0 && !(flags & OKO_TCP_RST)) stats->zero_windows += 1;
    if (window > stats->max_window) stats->max_window = window;
    if (payload > 0) {
        /* serial-number arithmetic: a segment ending at or before what we saw is a retransmission */
        if ((__s32)(sequence + payload - stats->next_sequence) <= 0 && stats->packets > 1) {
            stats->retransmissions += 1;
        } else {
            stats->next_sequence = sequence + payload;
        }
    }
    return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
