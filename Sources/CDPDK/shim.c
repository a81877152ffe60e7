// CDPDK implementation: thin wrappers over DPDK 22.11 (see include/CDPDK.h for why).
#include "CDPDK.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_cycles.h>

// The inline accessors in CDPDK.h rely on these offsets.
_Static_assert(offsetof(struct rte_mbuf, buf_addr) == OKO_MBUF_OFFSET_BUF_ADDR, "rte_mbuf.buf_addr moved");
_Static_assert(offsetof(struct rte_mbuf, data_off) == OKO_MBUF_OFFSET_DATA_OFF, "rte_mbuf.data_off moved");
_Static_assert(offsetof(struct rte_mbuf, nb_segs) == OKO_MBUF_OFFSET_NB_SEGS, "rte_mbuf.nb_segs moved");
_Static_assert(offsetof(struct rte_mbuf, port) == OKO_MBUF_OFFSET_PORT, "rte_mbuf.port moved");
_Static_assert(offsetof(struct rte_mbuf, pkt_len) == OKO_MBUF_OFFSET_PKT_LEN, "rte_mbuf.pkt_len moved");
_Static_assert(offsetof(struct rte_mbuf, data_len) == OKO_MBUF_OFFSET_DATA_LEN, "rte_mbuf.data_len moved");
_Static_assert(offsetof(struct rte_mbuf, buf_len) == OKO_MBUF_OFFSET_BUF_LEN, "rte_mbuf.buf_len moved");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_off) == 2, "rte_mbuf.data_off size");
_Static_assert(sizeof(((struct rte_mbuf *)0)->pkt_len) == 4, "rte_mbuf.pkt_len size");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_len) == 2, "rte_mbuf.data_len size");
_Static_assert(sizeof(((struct rte_mbuf *)0)->port) == 2, "rte_mbuf.port size");

int oko_eal_init(int argc, char **argv) { return rte_eal_init(argc, argv); }
int oko_eal_cleanup(void) { return rte_eal_cleanup(); }
int oko_errno(void) { return rte_errno; }
const char *oko_strerror(int error) { return rte_strerror(error < 0 ? -error : error); }
uint64_t oko_tsc_hz(void) { return rte_get_tsc_hz(); }
unsigned oko_lcore_id(void) { return rte_lcore_id(); }
unsigned oko_main_lcore(void) { return rte_get_main_lcore(); }
unsigned oko_next_worker_lcore(unsigned previous) {
    unsigned next = rte_get_next_lcore(previous == UINT32_MAX ? (unsigned)-1 : previous, 1, 0);
    return next >= RTE_MAX_LCORE ? UINT32_MAX : next;
}
int oko_lcore_socket(unsigned lcore) { return (int)rte_lcore_to_socket_id(lcore); }
int oko_launch(unsigned lcore, int (*fn)(void *), void *arg) { return rte_eal_remote_launch(fn, arg, lcore); }
int oko_wait_lcore(unsigned lcore) { return rte_eal_wait_lcore(lcore); }
void oko_set_log_level(uint32_t level) { rte_log_set_global_level(level); }

struct rte_mempool *oko_pktmbuf_pool_create(const char *name, unsigned count, unsigned cache_size,
                                            uint16_t data_room, int socket) {
    return rte_pktmbuf_pool_create(name, count, cache_size, 0, data_room, socket < 0 ? SOCKET_ID_ANY : socket);
}
void oko_mempool_free(struct rte_mempool *pool) { rte_mempool_free(pool); }
unsigned oko_mempool_avail(struct rte_mempool *pool) { return rte_mempool_avail_count(pool); }
struct rte_mbuf *oko_pktmbuf_alloc(struct rte_mempool *pool) { return rte_pktmbuf_alloc(pool); }
void oko_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void oko_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count) { rte_pktmbuf_free_bulk(mbufs, count); }
uint8_t *oko_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return (uint8_t *)rte_pktmbuf_append(m, len); }
struct rte_mbuf *oko_pktmbuf_copy(struct rte_mbuf *m, struct rte_mempool *pool) {
    return rte_pktmbuf_copy(m, pool, 0, UINT32_MAX);
}
uint32_t oko_pktmbuf_read(struct rte_mbuf *m, uint8_t *out, uint32_t cap) {
    uint32_t len = rte_pktmbuf_pkt_len(m);
    if (len > cap) len = cap;
    const void *p = rte_pktmbuf_read(m, 0, len, out);
    if (p == NULL) return 0;
    if (p != out) memcpy(out, p, len);
    return len;
}

int oko_port_attach(const char *devargs, uint16_t *port_id) {
    // The device name is the devargs up to the first comma; hotplug probes it on the right bus.
    char name[RTE_DEV_NAME_MAX_LEN];
    size_t n = strcspn(devargs, ",");
    if (n == 0 || n >= sizeof(name)) return -EINVAL;
    memcpy(name, devargs, n);
    name[n] = 0;
    uint16_t existing;
    if (rte_eth_dev_get_port_by_name(name, &existing) == 0) return -EEXIST;
    int rc = rte_dev_probe(devargs);
    if (rc < 0) return rc;
    rc = rte_eth_dev_get_port_by_name(name, port_id);
    if (rc == 0) return 0;
    // PCI devices may be named differently from the address given; take the last port that appeared.
    uint16_t pid, last = RTE_MAX_ETHPORTS;
    RTE_ETH_FOREACH_DEV(pid) { last = pid; }
    if (last == RTE_MAX_ETHPORTS) return -ENODEV;
    *port_id = last;
    return 0;
}

int oko_port_detach(uint16_t port_id) {
    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(port_id, &info);
    if (rc < 0) return rc;
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
    if (info.device != NULL) rc = rte_dev_remove(info.device);
    return rc;
}

int oko_port_start(uint16_t port_id, struct rte_mempool *pool, uint16_t rx_queues, uint16_t tx_queues,
                   uint16_t descriptors) {
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(port_id, &info);
    if (rc < 0) return rc;
    if (rx_queues > info.max_rx_queues) rx_queues = info.max_rx_queues;
    if (tx_queues > info.max_tx_queues) tx_queues = info.max_tx_queues;
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
    rc = rte_eth_dev_configure(port_id, rx_queues, tx_queues, &conf);
    if (rc < 0) return rc;
    uint16_t rxd = descriptors, txd = descriptors;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rxd, &txd);
    if (rc < 0) return rc;
    int socket = rte_eth_dev_socket_id(port_id);
    for (uint16_t q = 0; q < rx_queues; q++) {
        rc = rte_eth_rx_queue_setup(port_id, q, rxd, socket < 0 ? SOCKET_ID_ANY : (unsigned)socket, NULL, pool);
        if (rc < 0) return rc;
    }
    for (uint16_t q = 0; q < tx_queues; q++) {
        rc = rte_eth_tx_queue_setup(port_id, q, txd, socket < 0 ? SOCKET_ID_ANY : (unsigned)socket, NULL);
        if (rc < 0) return rc;
    }
    rc = rte_eth_dev_start(port_id);
    if (rc < 0) return rc;
    // Not every PMD supports promiscuous mode (net_null, net_ring); that is not an error for us.
    (void)rte_eth_promiscuous_enable(port_id);
    return 0;
}

int oko_port_stop(uint16_t port_id) { return rte_eth_dev_stop(port_id); }
int oko_port_name(uint16_t port_id, char *name, size_t size) {
    char buf[RTE_ETH_NAME_MAX_LEN];
    int rc = rte_eth_dev_get_name_by_port(port_id, buf);
    if (rc < 0) return rc;
    snprintf(name, size, "%s", buf);
    return 0;
}
int oko_port_mac(uint16_t port_id, uint8_t mac[6]) {
    struct rte_ether_addr addr;
    int rc = rte_eth_macaddr_get(port_id, &addr);
    if (rc == 0) memcpy(mac, addr.addr_bytes, 6);
    return rc;
}
int oko_port_socket(uint16_t port_id) { return rte_eth_dev_socket_id(port_id); }
int oko_port_link(uint16_t port_id, uint32_t *speed_mbps) {
    struct rte_eth_link link;
    int rc = rte_eth_link_get_nowait(port_id, &link);
    if (rc < 0) return rc;
    *speed_mbps = link.link_speed;
    return link.link_status;
}
int oko_port_count(void) { return rte_eth_dev_count_avail(); }

int oko_port_stats(uint16_t port_id, struct oko_port_stats *out) {
    struct rte_eth_stats s;
    int rc = rte_eth_stats_get(port_id, &s);
    if (rc < 0) return rc;
    out->ipackets = s.ipackets;
    out->opackets = s.opackets;
    out->ibytes = s.ibytes;
    out->obytes = s.obytes;
    out->imissed = s.imissed;
    out->ierrors = s.ierrors;
    out->oerrors = s.oerrors;
    out->rx_nombuf = s.rx_nombuf;
    return 0;
}

uint16_t oko_rx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count) {
    return rte_eth_rx_burst(port_id, queue, mbufs, count);
}
uint16_t oko_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count) {
    return rte_eth_tx_burst(port_id, queue, mbufs, count);
}
