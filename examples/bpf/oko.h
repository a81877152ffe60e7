/* oko.h: what an Oko filter program needs beyond <bpf/bpf_helpers.h>.
 *
 * Program convention (as in the original Oko): the entry function receives a pointer to the packet's
 * first byte (the Ethernet header) and the packet length, and returns 1 when the rule that names it
 * should match. Packets are read-only. Every read must be preceded by a length check the verifier can
 * see, e.g. `if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 0;`.
 *
 * Build: clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c prog.c -o prog.o
 */
#ifndef OKO_H
#define OKO_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define OKO_PROGRAM(name) SEC("oko/filter") __u64 name(void *pkt, __u64 len)

/* Oko's map type and helpers beyond Linux's (ids documented in README.md, "Maps and helpers"). */
#define OKO_MAP_TYPE_COUNT_MIN_SKETCH 0x4F4B0001

/* Adds one to every counter of `key` in a count-min sketch; returns 0. */
static long (*const oko_count_min_add)(void *map, const void *key) = (void *)0x1000;
/* The count-min estimate for `key` (never below the true count). */
static __u64 (*const oko_count_min_query)(void *map, const void *key) = (void *)0x1001;
/* A 64-bit hash of `size` bytes at `data` with `seed` (the hash Oko's maps use for keys). */
static __u64 (*const oko_hash)(const void *data, __u32 size, __u64 seed) = (void *)0x1002;

/* Packet headers, in network byte order, as they appear on the wire. */
#define OKO_ETH_HLEN 14
#define OKO_ETH_P_IP 0x0800
#define OKO_ETH_P_ARP 0x0806
#define OKO_ETH_P_IPV6 0x86DD
#define OKO_IPPROTO_ICMP 1
#define OKO_IPPROTO_TCP 6
#define OKO_IPPROTO_UDP 17

struct oko_ethernet {
    __u8 destination[6];
    __u8 source[6];
    __be16 type;
} __attribute__((packed));

struct oko_ipv4 {
    __u8 version_ihl;
    __u8 tos;
    __be16 total_length;
    __be16 id;
    __be16 fragment;
    __u8 ttl;
    __u8 protocol;
    __be16 checksum;
    __be32 source;
    __be32 destination;
} __attribute__((packed));

struct oko_tcp {
    __be16 source_port;
    __be16 destination_port;
    __be32 sequence;
    __be32 acknowledgement;
    __u8 data_offset;   /* high nibble: header length in 32-bit words */
    __u8 flags;
    __be16 window;
    __be16 checksum;
    __be16 urgent;
} __attribute__((packed));

struct oko_udp {
    __be16 source_port;
    __be16 destination_port;
    __be16 length;
    __be16 checksum;
} __attribute__((packed));

#define OKO_TCP_FIN 0x01
#define OKO_TCP_SYN 0x02
#define OKO_TCP_RST 0x04
#define OKO_TCP_PSH 0x08
#define OKO_TCP_ACK 0x10

/* The Ethernet type of an untagged frame, or 0 when the frame is too short. */
static __always_inline __u16 oko_ethertype(void *pkt, __u64 len) {
    if (len < OKO_ETH_HLEN) return 0;
    struct oko_ethernet *eth = pkt;
    return bpf_ntohs(eth->type);
}

#endif
