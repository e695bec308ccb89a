/* Replay engine: its own thread sends each record's request to serverB and fills
 * record->replay and ->diff. Owns: its queue, connection pools, in-flight requests. */
#ifndef ST_REPLAY_H
#define ST_REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "record.h"
#include "shadowtap.h"

#define REPLAY_MAX_TARGETS 8
#define REPLAY_MAX_HEADERS 16
#define REPLAY_MAX_FILTERS 16
/* engines one agent may run: each worker's and its second (pipeline.c replay2) */
#define REPLAY_MAX_ENGINES (2 * ST_MAX_WORKERS)

/* --replay-order: how a client connection's requests may overlap at serverB */
enum replay_order {
	REPLAY_ORDER_SESSION = 0,        /* in capture order, pipelined on one connection */
	REPLAY_ORDER_SESSION_PARALLEL,   /* sent in capture order over several connections */
	REPLAY_ORDER_REQUEST,            /* independent requests */
};

struct replay_cfg {
	const char *targets[REPLAY_MAX_TARGETS];   /* "http[s]://host:port[/prefix]" */
	int ntargets;
	int connections;                 /* per target, the pool's floor, default 16 */
	int connections_max;             /* per target, the pool's ceiling, default 256 */
	int order;                       /* enum replay_order, default session */
	int pipeline;                    /* a client connection's requests in flight, default 16 */
	int gather_us;                   /* --replay-gather: pause before reading answers (µs), 0 = off */
	int connect_timeout_ms;          /* default 1000 */
	int response_timeout_ms;         /* default 5000 */
	size_t queue_cap;                /* records waiting, default 8192 */
	size_t max_inflight_bytes;       /* request bytes queued + in flight, default 256 MiB */
	uint64_t *shared_held;           /* atomic, or NULL: bytes held by every instance
					  * sharing max_inflight_bytes (--workers) */
	double rate;                     /* requests/s, 0 = unlimited */
	double sample_pct;               /* 0..100, default 100; per client connection */
	const char *tls_ca;              /* --replay-ca: PEM trusted for https:// targets */
	int tls_insecure;                /* --replay-insecure: no certificate verification */
	const char *host;                /* --replay-host: rewrite Host */
	const char *headers[REPLAY_MAX_HEADERS];   /* "Name: value" set or replace */
	int nheaders;
	const char *allow_url[REPLAY_MAX_FILTERS]; /* POSIX extended regexes on the request-target */
	int nallow_url;
	const char *deny_url[REPLAY_MAX_FILTERS];
	int ndeny_url;
	const char *allow_method[REPLAY_MAX_FILTERS];
	int nallow_method;
	size_t body_limit;               /* stored body bytes of serverB's response */
	/* diff */
	const char *diff_ignore[64];     /* header names never compared; NULL = built-in default list */
	int ndiff_ignore;
	int diff_max_paths;              /* default 20 */
};

struct replay;

/* done(ctx, rec) is called from the replay thread (or from replay_submit's caller
 * when the record is refused) exactly once per submitted record. */
typedef void (*replay_done_cb)(void *ctx, struct st_record *rec);

void replay_cfg_default(struct replay_cfg *cfg);
/* Validate cfg (URLs, regexes) and start the thread. 0 or negative errno, message printed. */
int replay_start(struct replay **out, const struct replay_cfg *cfg, replay_done_cb done, void *ctx);
/* Takes ownership. Never blocks: a full queue marks replay.error "dropped: queue full"
 * and calls done at once. */
void replay_submit(struct replay *rp, struct st_record *rec);
/* Hand-offs in batches (the pipeline's live and offline inputs): replay_submit then
 * holds accepted records until replay_flush, called by the same thread once per
 * drain of its input, so the replay thread is woken once per batch instead of once
 * per record. Off by default (every submit is pushed at once). */
void replay_set_batching(struct replay *rp, bool on);
void replay_flush(struct replay *rp);
/* idle(ctx) runs on the replay thread after every pass of its loop and once before
 * it exits: where a done callback that batches its own hand-off flushes it. */
void replay_set_idle(struct replay *rp, void (*idle)(void *ctx));
/* Stop accepting, finish or time out what is queued and in flight, join. Does not
 * free (counters stay readable for the exit summary). Accepts NULL. */
void replay_stop(struct replay *rp);
/* Bounds replay_stop's drain: at mono_ns (st_mono_ns) every request still waiting or
 * in flight fails with "dropped: shutting down" and the thread ends. Any thread, any
 * time; the earliest bound wins. */
void replay_stop_by(struct replay *rp, uint64_t mono_ns);
void replay_free(struct replay *rp);   /* after replay_stop; accepts NULL */
/* An engine's counters and levels, all uint64_t so that several workers' add up
 * field by field (peaks then give an upper bound). Settings are not in it. */
struct replay_stats {
	uint64_t submitted, replayed, succeeded;
	uint64_t f_timeout, f_refused, f_reset, f_malformed, f_other;
	uint64_t d_queue, d_memory, d_shutdown;
	uint64_t filtered, sampled_out, unreplayable;
	uint64_t in_flight, queued, held_bytes;
	uint64_t opened, reconnects, connect_failures, retries, open_now, open_peak;
	uint64_t diff_match, diff_mismatch;
};

/* A snapshot of rp's counters (any thread: each field one relaxed load). */
void replay_get_stats(struct replay *rp, struct replay_stats *out);
/* One line per counter group, for the exit summary and --stats. */
void replay_print_stats(struct replay *rp, FILE *f);
/* The same lines for n engines (--workers): counters added, max= the sum of the
 * workers' shares of --replay-connections-max, the settings every worker has alike
 * (floor, order, pipeline) printed once, from the first. */
void replay_print_stats_n(struct replay *const *rps, int n, FILE *f);
/* Bytes rp itself holds for replay (queued and in flight; not the count it shares
 * with other engines). Any thread, one relaxed load. */
uint64_t replay_held_own(struct replay *rp);
/* rp holds a backlog: its own bytes at 1/16 of --replay-max-bytes or more, or its
 * queued records at 1/16 of its --replay-queue. Any thread. */
bool replay_backlogged(struct replay *rp);

#endif
