/* Packet sources, live (capture.c) and pcap files (pcap_input.c), handing reasm_seg
 * slices to a callback on the calling thread. Owns: the BPF skeleton, ring, taps. */
#ifndef ST_CAPTURE_H
#define ST_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "shadowtap.h"
#include "tcp_reasm.h"

typedef void (*capture_seg_cb)(void *ctx, const struct reasm_seg *seg);

enum capture_mode {
	CAPTURE_SOCKET = 0,              /* socket filter on an AF_PACKET socket (default) */
	CAPTURE_TC,                      /* TC classifier on ingress + egress */
	CAPTURE_XDP,                     /* XDP on ingress + TC on egress */
};

struct capture_cfg {
	const char *iface;               /* NULL or "all": every interface; or a comma-separated list */
	int mode;                        /* enum capture_mode */
	int xdp_generic;                 /* --xdp-generic: allow generic (skb) XDP */
	uint16_t ports[ST_MAX_PORTS];
	int nports;
	size_t ring_bytes;               /* power of two, default 16 MiB */
	uint64_t wakeup_bytes;           /* default ring_bytes / 16 */
	const char *pin_dir;             /* default /sys/fs/bpf/shadowtap */
	struct counters *ctr;            /* registry for CTR_RING_*; NULL: the capture's own */
	int nrings;                      /* --workers: rings, 1..ST_MAX_WORKERS (0: 1); ring_bytes
					  * is split among them */
	void *const *ring_ctx;           /* ctx passed to cb for ring i; NULL: ctx for all */
	int no_own_conns;                /* 1: nothing in this agent connects anywhere (no replay,
					  * no Elasticsearch): the program skips the own-connection
					  * lookup per segment. Any new outgoing connection needs 0. */
};

struct capture;

/* Load, attach, pin. Returns 0 or a negative errno with a message printed. */
/* Each of nrings rings' share of a --ring-size total: the largest power of two within
 * total / nrings (total itself for one ring). The options refuse a total whose share
 * is below ST_RING_MIN; capture_open never makes a ring smaller than that. */
size_t capture_ring_share(size_t total, int nrings);
int capture_open(struct capture **out, const struct capture_cfg *cfg, capture_seg_cb cb, void *ctx);
/* With one ring: wait up to timeout_ms for a wake-up, then drain the ring (always, even without a
 * wake-up: records are submitted with BPF_RB_NO_WAKEUP). Returns events handled or
 * a negative errno. */
int capture_poll(struct capture *c, int timeout_ms);
/* With several rings, each worker thread drains its own (the same wait and drain as
 * capture_poll, for ring i only), and the loop thread runs the housekeeping
 * (interfaces followed, own-connection table) with capture_housekeeping. */
int capture_poll_ring(struct capture *c, int i, int timeout_ms);
void capture_housekeeping(struct capture *c);
int capture_ring_epoll_fd(struct capture *c, int i);
int capture_nrings(struct capture *c);
/* The ring array (bpf/capture.bpf.c "rings"), for the TLS source to share. */
int capture_rings_fd(struct capture *c);
/* Ring i's events submitted and lost to a full ring (BPF side, summed over CPUs) and
 * events read by the agent. */
int capture_read_ring_stats(struct capture *c, int i, struct st_ring_stats *sum);
uint64_t capture_ring_events_read(struct capture *c, int i);
/* The ring, for another source to share (bpf/tls.bpf.c): its events come out of
 * capture_poll() too. */
int capture_ring_fd(struct capture *c);
/* The ring buffer's epoll fd, for an outer event loop; readable when capture_poll
 * has events to drain. */
int capture_epoll_fd(struct capture *c);
/* Sum of the per-CPU statistics. */
int capture_read_stats(struct capture *c, struct st_stats *sum);
/* Userspace-side counters */
struct capture_ustats {
	uint64_t events;          /* ring events read */
	uint64_t bad_events;      /* too short / inconsistent, dropped */
};
void capture_get_ustats(struct capture *c, struct capture_ustats *st);
/* Detach, unpin, free. Accepts NULL. */
void capture_close(struct capture *c);

#endif
