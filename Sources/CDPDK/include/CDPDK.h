// CDPDK: the slice of DPDK that Oko uses, behind prefixed C functions.
//
// Why a shim: DPDK's API is mostly macros and `static inline` functions in headers that need
// `-include rte_config.h` and machine flags, and Debian's libdpdk.pc can't be read by SwiftPM. This
// header therefore includes no DPDK header at all: Swift sees only `oko_*` functions and an opaque
// `struct rte_mbuf`. The per-packet accessors below are `static inline` and read mbuf fields at fixed
// offsets, which shim.c checks against DPDK's own struct with `_Static_assert`, so a DPDK upgrade that
// moves a field fails the build instead of corrupting packets.
//
// Threads: everything here is thread-safe as DPDK documents it; rx/tx bursts on one queue must come from
// one thread at a time.
#ifndef OKO_CDPDK_H
#define OKO_CDPDK_H

#include <stddef.h>
#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

// mbuf field offsets (DPDK 22.11, x86-64); verified in shim.c.
#define OKO_MBUF_OFFSET_BUF_ADDR 0
#define OKO_MBUF_OFFSET_DATA_OFF 16
#define OKO_MBUF_OFFSET_NB_SEGS 20
#define OKO_MBUF_OFFSET_PORT 22
#define OKO_MBUF_OFFSET_PKT_LEN 36
#define OKO_MBUF_OFFSET_DATA_LEN 40
#define OKO_MBUF_OFFSET_BUF_LEN 54

#define OKO_FIELD(m, offset, type) (*(type *)((char *)(m) + (offset)))

/// First byte of the packet's first segment.
static inline uint8_t *oko_mbuf_data(struct rte_mbuf *m) {
    return OKO_FIELD(m, OKO_MBUF_OFFSET_BUF_ADDR, uint8_t *) + OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_OFF, uint16_t);
}
/// Bytes in the first segment.
static inline uint16_t oko_mbuf_data_len(struct rte_mbuf *m) { return OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_LEN, uint16_t); }
/// Bytes in the whole packet (all segments).
static inline uint32_t oko_mbuf_pkt_len(struct rte_mbuf *m) { return OKO_FIELD(m, OKO_MBUF_OFFSET_PKT_LEN, uint32_t); }
static inline uint16_t oko_mbuf_nb_segs(struct rte_mbuf *m) { return OKO_FIELD(m, OKO_MBUF_OFFSET_NB_SEGS, uint16_t); }
/// The DPDK port the packet arrived on.
static inline uint16_t oko_mbuf_port(struct rte_mbuf *m) { return OKO_FIELD(m, OKO_MBUF_OFFSET_PORT, uint16_t); }
/// Free bytes in front of the data (room for pushed headers).
static inline uint16_t oko_mbuf_headroom(struct rte_mbuf *m) { return OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_OFF, uint16_t); }

/// Moves the data start `len` bytes earlier (single-segment packets); NULL when there is no headroom.
static inline uint8_t *oko_mbuf_prepend(struct rte_mbuf *m, uint16_t len) {
    uint16_t off = OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_OFF, uint16_t);
    if (len > off) return NULL;
    OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_OFF, uint16_t) = (uint16_t)(off - len);
    OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_LEN, uint16_t) += len;
    OKO_FIELD(m, OKO_MBUF_OFFSET_PKT_LEN, uint32_t) += len;
    return oko_mbuf_data(m);
}
/// Drops `len` bytes from the data start; NULL when the first segment is shorter.
static inline uint8_t *oko_mbuf_adj(struct rte_mbuf *m, uint16_t len) {
    uint16_t dlen = OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_LEN, uint16_t);
    if (len > dlen) return NULL;
    OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_OFF, uint16_t) += len;
    OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_LEN, uint16_t) = (uint16_t)(dlen - len);
    OKO_FIELD(m, OKO_MBUF_OFFSET_PKT_LEN, uint32_t) -= len;
    return oko_mbuf_data(m);
}

/// Free bytes after the first segment's data.
static inline uint16_t oko_mbuf_tailroom(struct rte_mbuf *m) {
    return (uint16_t)(OKO_FIELD(m, OKO_MBUF_OFFSET_BUF_LEN, uint16_t) - OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_OFF, uint16_t)
                      - OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_LEN, uint16_t));
}

/// Makes the first segment hold `len` bytes starting at `data` (which must lie inside its buffer), keeping
/// the other segments: used when a packet edited as a plain (pointer, length) view goes back to DPDK.
static inline void oko_mbuf_set_data(struct rte_mbuf *m, uint8_t *data, uint16_t len) {
    uint8_t *buffer = OKO_FIELD(m, OKO_MBUF_OFFSET_BUF_ADDR, uint8_t *);
    uint16_t old_len = OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_LEN, uint16_t);
    OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_OFF, uint16_t) = (uint16_t)(data - buffer);
    OKO_FIELD(m, OKO_MBUF_OFFSET_DATA_LEN, uint16_t) = len;
    OKO_FIELD(m, OKO_MBUF_OFFSET_PKT_LEN, uint32_t) = OKO_FIELD(m, OKO_MBUF_OFFSET_PKT_LEN, uint32_t) - old_len + len;
}

/// Prefetches the cache line at `p` into all cache levels (a hint; never faults).
static inline void oko_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/// Time-stamp counter.
static inline uint64_t oko_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

// --- EAL -------------------------------------------------------------------------------------------
/// rte_eal_init; returns the number of parsed arguments or a negative value (see oko_errno()).
int oko_eal_init(int argc, char **argv);
int oko_eal_cleanup(void);
/// rte_errno of the calling thread.
int oko_errno(void);
const char *oko_strerror(int error);
uint64_t oko_tsc_hz(void);
unsigned oko_lcore_id(void);
unsigned oko_main_lcore(void);
/// Next enabled worker lcore after `previous` (pass UINT32_MAX to start); UINT32_MAX when none.
unsigned oko_next_worker_lcore(unsigned previous);
int oko_lcore_socket(unsigned lcore);
/// Runs fn(arg) on a worker lcore; 0 on success.
int oko_launch(unsigned lcore, int (*fn)(void *), void *arg);
/// Waits for the lcore's function to return; its return value.
int oko_wait_lcore(unsigned lcore);
/// Sets the EAL log level (RTE_LOG_ERR = 4 ... RTE_LOG_DEBUG = 8).
void oko_set_log_level(uint32_t level);

// --- mempools and mbufs ----------------------------------------------------------------------------
struct rte_mempool *oko_pktmbuf_pool_create(const char *name, unsigned count, unsigned cache_size,
                                            uint16_t data_room, int socket);
void oko_mempool_free(struct rte_mempool *pool);
unsigned oko_mempool_avail(struct rte_mempool *pool);
struct rte_mbuf *oko_pktmbuf_alloc(struct rte_mempool *pool);
void oko_pktmbuf_free(struct rte_mbuf *m);
void oko_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
/// Appends `len` bytes at the tail of the last segment; NULL when there is no tailroom.
uint8_t *oko_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
/// A copy of `m` (all segments) from `pool`; NULL when the pool is empty.
struct rte_mbuf *oko_pktmbuf_copy(struct rte_mbuf *m, struct rte_mempool *pool);
/// Copies up to `cap` bytes of the packet (all segments) into `out`; the number of bytes copied.
uint32_t oko_pktmbuf_read(struct rte_mbuf *m, uint8_t *out, uint32_t cap);

// --- ports -----------------------------------------------------------------------------------------
/// Probes a device by devargs ("net_pcap0,rx_pcap=a.pcap", "0000:01:00.0") and returns its port id.
/// Returns 0 or a negative errno.
int oko_port_attach(const char *devargs, uint16_t *port_id);
/// Stops, closes and removes the device behind `port_id`.
int oko_port_detach(uint16_t port_id);
/// Configures `rx_queues`/`tx_queues` queues with `descriptors` descriptors each, then starts the port
/// in promiscuous mode. Returns 0 or a negative errno.
int oko_port_start(uint16_t port_id, struct rte_mempool *pool, uint16_t rx_queues, uint16_t tx_queues,
                   uint16_t descriptors);
int oko_port_stop(uint16_t port_id);
int oko_port_name(uint16_t port_id, char *name, size_t size);
int oko_port_mac(uint16_t port_id, uint8_t mac[6]);
int oko_port_socket(uint16_t port_id);
/// Link status: 1 up, 0 down, negative on error; speed in Mbit/s.
int oko_port_link(uint16_t port_id, uint32_t *speed_mbps);
int oko_port_count(void);

struct oko_port_stats {
    uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};
int oko_port_stats(uint16_t port_id, struct oko_port_stats *stats);

uint16_t oko_rx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count);
uint16_t oko_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count);

#endif
