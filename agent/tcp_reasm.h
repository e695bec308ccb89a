/* TCP reassembly: a flow table keyed by the (client, server) 4-tuple that delivers
 * each direction's payload in sequence order, with gaps reported. Owns: flows and
 * their out-of-order segment buffers, bounded by reasm_cfg. Single-threaded. */
#ifndef ST_TCP_REASM_H
#define ST_TCP_REASM_H

#include <stddef.h>
#include <stdint.h>

/* Client/server orientation is decided by the caller (capture knows the server
 * ports). Addresses in network byte order; IPv4 in word 0, rest zero. */
struct reasm_key {
	uint8_t family;          /* 4 or 6 */
	uint8_t source;          /* enum st_source (packet hooks or TLS plaintext) */
	uint8_t pad[2];
	uint32_t caddr[4];
	uint32_t saddr[4];
	uint16_t cport;
	uint16_t sport;
};

enum { REASM_C2S = 0, REASM_S2C = 1 };   /* == enum st_dir */

struct reasm_seg {
	struct reasm_key key;
	uint8_t dir;             /* REASM_C2S / REASM_S2C */
	uint8_t flags;           /* ST_TCP_* bits */
	uint32_t seq;            /* sequence number of data[0] (SYN: the ISN) */
	uint32_t ack;            /* acknowledgment number; used only with ST_TCP_ACK in flags */
	uint64_t ts_ns;          /* capture time, monotonic ns */
	const uint8_t *data;     /* payload; may be NULL when len == 0 */
	uint32_t len;
};

enum reasm_close_reason {
	REASM_CLOSE_FIN = 0,     /* both directions ended with FIN (or one FIN + the other idle) */
	REASM_CLOSE_RST,
	REASM_CLOSE_IDLE,        /* idle timeout */
	REASM_CLOSE_EVICT,       /* flow table full: least recently used evicted */
	REASM_CLOSE_SHUTDOWN,    /* reasm_flush_all at exit */
};

struct reasm_flow {
	struct reasm_key key;
	uint64_t flow_id;        /* deterministic: hash of key + direction and seq of the
				  * flow's first segment (the ISN for a SYN) */
	uint64_t first_ts_ns;
	uint64_t last_ts_ns;
	int mid_stream;          /* picked up without seeing a SYN */
	void *user;              /* owned by the callbacks */
};

struct reasm_ops {
	/* A new flow. Return 0, or negative to refuse it (its segments are dropped and
	 * counted). */
	int (*open)(void *ctx, struct reasm_flow *f);
	/* In-order bytes of one direction. data is valid only during the call. */
	void (*data)(void *ctx, struct reasm_flow *f, int dir, const uint8_t *data, size_t len,
		     uint64_t ts_ns);
	/* bytes of one direction will never be delivered (lost, evicted, buffer full);
	 * the next data call continues after them. */
	void (*gap)(void *ctx, struct reasm_flow *f, int dir, uint64_t bytes);
	/* FIN reached in sequence order for one direction: no more data from it. */
	void (*eof)(void *ctx, struct reasm_flow *f, int dir);
	/* The flow is about to be freed; f->user must be released here. */
	void (*close)(void *ctx, struct reasm_flow *f, enum reasm_close_reason why);
};

/* The byte limits count payload plus a small per-segment overhead (struct size), so
 * a stream of tiny segments cannot hold more memory than configured. */
struct reasm_cfg {
	size_t max_flows;            /* default 8192 (0 = default); closed flows lingering
				      * as tombstones share these slots but are reused first */
	size_t max_flow_bytes;       /* out-of-order bytes buffered per flow (both directions); default 4 MiB */
	size_t max_total_bytes;      /* out-of-order bytes buffered across all flows; default 256 MiB */
	uint64_t idle_timeout_ns;    /* default 120 s */
	uint64_t hole_timeout_ns;    /* a hole older than this becomes a gap; default 500 ms */
	uint64_t linger_ns;          /* default 10 s (0 = default): a flow with one direction
				      * at FIN closes (REASM_CLOSE_FIN) after this long without
				      * any segment (longer than a slow server's think time after
				      * a client half-close); a FIN/RST-closed flow stays a
				      * tombstone this long so late segments count as after_close */
};

struct reasm_stats {
	uint64_t segments;           /* segments given to reasm_segment */
	uint64_t flows_created;
	uint64_t flows_active;
	uint64_t flows_closed_fin, flows_closed_rst, flows_expired, flows_evicted;
	uint64_t flows_refused;      /* open() refused */
	uint64_t mid_stream_pickups;
	uint64_t bytes_delivered;
	uint64_t retrans_bytes;      /* already-delivered bytes seen again */
	uint64_t overlap_bytes;      /* buffered bytes seen again */
	uint64_t ooo_segments;       /* segments that arrived ahead of a hole */
	uint64_t gaps, gap_bytes;
	uint64_t ack_gaps;           /* gaps declared because the peer acknowledged bytes
				      * never captured (no wait for hole_timeout) */
	uint64_t buffer_overflows;   /* holes forced into gaps by a memory limit */
	uint64_t buffer_overflows_total; /* of them, by max_total_bytes (the rest: max_flow_bytes) */
	uint64_t buffered_bytes;     /* current out-of-order bytes held */
	uint64_t buffered_bytes_peak;
	uint64_t after_close;        /* segments for a direction already at FIN/RST */
	uint64_t flows_reused;       /* a SYN with a new ISN replaced a flow on the same 4-tuple */
	uint64_t no_flow;            /* payload-less non-SYN segments of unknown flows, ignored */
	uint64_t refused_segments;   /* segments dropped because open() refused their flow */
	uint64_t bad_segments;       /* malformed reasm_seg (bad dir/family, len without data,
				      * len > 1 GiB) */
	uint64_t nomem;              /* out-of-order copies lost to malloc failure */
};

struct reasm;

struct reasm *reasm_new(const struct reasm_cfg *cfg, const struct reasm_ops *ops, void *ctx);
void reasm_free(struct reasm *r);    /* closes remaining flows (REASM_CLOSE_SHUTDOWN) */
void reasm_cfg_default(struct reasm_cfg *cfg);

/* Process one segment (or one slice of a split segment: seq already advanced by the
 * slice offset). Calls ops synchronously; callbacks must not call back into reasm.
 * A direction starts at ISN+1 after a SYN, else at the first segment seen (earlier
 * bytes arriving later count as retransmissions). Overlapping copies: the first copy
 * of a byte to arrive wins, later ones are trimmed (retrans_bytes if delivered,
 * overlap_bytes if buffered). A SYN with a new ISN on a known direction replaces the
 * flow (the old one closes with REASM_CLOSE_FIN if it had a FIN, else IDLE). Payload-
 * less non-SYN segments never create a flow. An ACK (ST_TCP_ACK, not with RST) that
 * acknowledges bytes of the other direction not yet delivered makes them a gap at once,
 * before this segment's own data is delivered: the peer has them, so they will never be
 * retransmitted (up to the FIN; at most one window past the delivered bytes). */
void reasm_segment(struct reasm *r, const struct reasm_seg *seg);
/* Timers: turn holes older than hole_timeout into gaps, expire idle flows. Call it
 * every ~100 ms with the current capture clock. */
void reasm_tick(struct reasm *r, uint64_t now_ns);
/* Deliver everything buffered (holes become gaps) and close all flows. */
void reasm_flush_all(struct reasm *r);
void reasm_get_stats(const struct reasm *r, struct reasm_stats *st);
/* Sequence number of the next byte of dir to be delivered: inside a data callback
 * that of data[0], inside a gap callback that of the first missing byte. 0 if the
 * direction has seen no segment yet. */
uint32_t reasm_next_seq(const struct reasm_flow *f, int dir);
/* Checks internal invariants (lists sorted and disjoint, memory accounting, limits);
 * 0 or -EUCLEAN. For tests and fuzzing: walks every flow. */
int reasm_check(const struct reasm *r);

#endif
