/* stateful-firewall: only TCP connections opened from the inside network pass.
 *
 * A SYN from an inside address creates the connection's entry; the handshake and teardown move it
 * through SYN_SENT, ESTABLISHED and CLOSING; packets of known connections return 1 (the rule matches:
 * forward) in both directions. Connections opened from outside, stray packets and anything after a RST
 * return 0. Non-TCP IPv4 returns 0; non-IPv4 returns 1.
 *
 * Maps:
 *   inside       array[1] of struct network {address, mask} (network byte order); 10.0.0.0/8 when unset
 *   connections  LRU hash: struct connection key (inside address/port first) -> struct connection_state
 */
#include "oko.h"

enum { SYN_SENT = 1, ESTABLISHED = 2, CLOSING = 3 };

struct network {
    __be32 address;
    __be32 mask;
};

struct connection {
    __be32 inside_address;
    __be32 outside_address;
    __be16 inside_port;
    __be16 outside_port;
};

struct connection_state {
    __u32 state;
    __u32 packets;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct network);
} inside SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct connection);
    __type(value, struct connection_state);
} connections SEC(".maps");

OKO_PROGRAM(stateful_firewall) {
    if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 1;
    if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 0;
    struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
    if (ip->protocol != OKO_IPPROTO_TCP) return 0;
    __u64 ihl = (ip->version_ihl & 0x0f) * 4;
    if (ihl < sizeof(struct oko_ipv4)) return 0;
    __u64 tcp_offset = OKO_ETH_HLEN + ihl;
    if (len < tcp_offset + sizeof(struct oko_tcp)) return 0;
    struct oko_tcp *tcp = pkt + tcp_offset;

    __u32 zero = 0;
    __be32 net = bpf_htonl(0x0a000000), mask = bpf_htonl(0xff000000);
    struct network *configured = bpf_map_lookup_elem(&inside, &zero);
    if (configured && configured->mask) {
        net = configured->address;
        mask = configured->mask;
    }
    int from_inside = (ip->source & mask) == (net & mask);
    struct connection key = {};
    if (from_inside) {
        key.inside_address = ip->source;
        key.outside_address = ip->destination;
        key.inside_port = tcp->source_port;
        key.outside_port = tcp->destination_port;
    } else {
        key.inside_address = ip->destination;
        key.outside_address = ip->source;
        key.inside_port = tcp->destination_port;
        key.outside_port = tcp->source_port;
    }
    __u8 flags = tcp->flags;
    struct connection_state *state = bpf_map_lookup_elem(&connections, &key);
    if (!state) {
        if (from_inside && (flags & (OKO_TCP_SYN | OKO_TCP_ACK)) == OKO_TCP_SYN) {
            struct connection_state fresh = { .state = SYN_SENT, .packets = 1 };
            bpf_map_update_elem(&connections, &key, &fresh, BPF_NOEXIST);
            return 1;
        }
        return 0;
    }
    if (flags & OKO_TCP_RST) {
        bpf_map_delete_elem(&connections, &key);
        return 1;   /* let the reset through so both ends learn of it */
    }
    __sync_fetch_and_add(&state->packets, 1);
    if (state->state == SYN_SENT && !from_inside && (flags & (OKO_TCP_SYN | OKO_TCP_ACK)) == (OKO_TCP_SYN | OKO_TCP_ACK)) {
        state->state = ESTABLISHED;
    } else if (flags & OKO_TCP_FIN) {
        state->state = CLOSING;
    }
    return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
