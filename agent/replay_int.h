/* Internals of the replay engine shared by replay.c (queue, flows, scheduling, thread)
 * and replay_conn.c (serverB connections). Owned by the replay thread unless noted. */
#ifndef ST_REPLAY_INT_H
#define ST_REPLAY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bq.h"
#include "buf.h"
#include "diff.h"
#include "http1.h"
#include "replay.h"
#include "replay_req.h"
#include "replay_tls.h"

#define REPLAY_HEAD_MAX   (64 * 1024)   /* largest serverB response head */
/* replay.error of a head past REPLAY_HEAD_MAX (100,000 headers, a 10 MB line); counted
 * with the malformed responses */
#define REPLAY_E_HEAD_TOO_LARGE "response head too large"
#define REPLAY_READ_CHUNK (16 * 1024)
/* idle connections are closed before serverB's own keep-alive timeout would, so a
 * request rarely meets a connection the server is closing */
#define REPLAY_IDLE_MS    4000
#define REPLAY_BACKOFF_MIN_MS 100
#define REPLAY_BACKOFF_MAX_MS 1000   /* a recovered serverB is used again within 1 s */
/* connections above --replay-connections are closed after this long idle */
#define REPLAY_SHRINK_MS  1000
/* opening connections: at most this many at once, then this many per second, and
 * only one at a time while the target is failing, so a recovering serverB is probed
 * by one connection and then ramped up, not stampeded by the whole pool */
#define REPLAY_OPEN_BURST 16
#define REPLAY_OPEN_PER_S 200

enum { RC_CLOSED = 0, RC_CONNECTING, RC_IDLE, RC_BUSY };
enum { RP_HEAD = 0, RP_BODY };

struct replay_flow;
struct replay_target;

struct replay_item {
	struct st_record *rec;
	struct replay_flow *flow;
	struct replay_item *fnext;             /* flow FIFO */
	struct replay_item *aprev, *anext;     /* target's waiting list, by age */
	struct replay_item *cnext;             /* connection's in-flight FIFO */
	uint64_t t_enq;
	uint64_t t_sent;                       /* put on a connection */
	size_t bytes;                          /* charged to held_bytes */
	struct buf head;                       /* rewritten head; empty = send raw */
	const uint8_t *body;                   /* raw bytes sent after head */
	size_t body_len;
	char method[16];
	uint8_t method_len;                    /* strlen(method): no strlen per answer */
	int retried;
	bool idempotent;                       /* may be sent again when nothing came back */
	bool closes;                           /* serverB closes after answering it (HTTP/1.0, close) */
};

struct replay_flow {
	uint64_t id;
	struct replay_flow *hnext;             /* hash chain */
	struct replay_flow *rnext;             /* target ready list */
	struct replay_item *head, *tail;
	struct replay_target *t;
	struct replay_conn *last;
	struct replay_conn *conn;              /* session order: carries all its in-flight items */
	int inflight;
	int pinned;                            /* a caller still uses it: not freed */
	bool ready;
	bool full;                             /* session order: reached --replay-pipeline;
						* sends again once half of it is answered */
};

struct replay_conn {
	struct replay_target *t;
	int fd;
	uint32_t ev;                           /* epoll events registered for fd */
	int state;
	bool used;                             /* the slot was connected before */
	unsigned nreq;                         /* responses completed on this socket */
	/* in-flight FIFO: qh is the request the next response answers; snd is the first
	 * not completely written (NULL: all written), sent its bytes already written */
	struct replay_item *qh, *qt, *snd;
	int nq;
	bool no_more;                          /* take no more requests (serverB will close) */
	/* on rp->flush: requests were assigned this pass and go out at its end, all of
	 * them in one write (replay_send_pending) */
	bool flushq;
	struct replay_conn *flnext;
	size_t sent;
	uint64_t t_start, deadline, idle_since;
	char *rbuf;
	size_t rlen, rcap;
	int phase;
	int framing;
	size_t body_limit;
	bool close_after;
	struct http1_body body;
	struct st_replay *res;
	struct ssl_st *ssl;                    /* https:// target: the TLS session, else NULL */
	/* https://: OpenSSL's last read waits for the socket to be writable (it has a
	 * handshake record to send, e.g. a renegotiation's ClientHello), and its last
	 * write waits for it to be readable (the renegotiation's next flight) */
	bool tls_read_wants_out, tls_write_wants_in;
};

struct replay_target {
	char *url;
	char prefix[256];
	size_t prefix_len;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct replay_tls *tls;                /* https:// target, else NULL */
	struct replay_conn *conns;
	int nconns;                            /* --replay-connections-max slots */
	int hi;                                /* slots [0, hi) were ever used */
	int floor;                             /* --replay-connections */
	int nopen, nconnecting;
	double open_tokens;
	uint64_t t_open;
	/* flows ready to send: rhead needs a pool connection, ohead has its own (session) */
	struct replay_flow *rhead, *rtail;
	struct replay_flow *ohead, *otail;
	struct replay_item *ahead, *atail;
	uint64_t retry_at;
	int backoff_ms;
	const char *down_err;
	/* rate-limited warnings (replay_warn_tick): failures since the last one */
	uint64_t warn_failed;
	const char *warn_why;
	uint64_t warn_next;                    /* mono ns: no warning before */
	bool warned;                           /* a failure warning is standing */
};

#define REPLAY_PEND 128

struct replay {
	struct replay_cfg cfg;
	replay_done_cb done;
	void *ctx;
	struct replay_target targets[REPLAY_MAX_TARGETS];
	int ntargets;
	struct replay_rules rules;
	int flow_limit;                        /* a flow's requests in flight at once */
	int conn_depth;                        /* requests in flight on one connection */
	const char *ignore[65];
	struct diff_cfg dcfg;

	struct bq q;
	/* replay_set_batching: records accepted by replay_submit, pushed by replay_flush
	 * (touched by the submitting thread only) */
	bool batching;
	void *pend[REPLAY_PEND];
	size_t npend;
	void (*idle)(void *ctx);               /* atomic: set after the thread started */
	int epfd;
	pthread_t thr;
	bool thr_started;
	int stopping;                          /* atomic */

	/* connections with requests assigned during this pass of the thread, written
	 * once each at the end of the pass (linked by flnext) */
	struct replay_conn *flush, *flush_tail;

	struct replay_flow **fht;
	size_t fht_mask;
	size_t nheld;                          /* items inside the thread */
	/* items and flows finished with, kept for reuse (linked by fnext / hnext, at most
	 * REPLAY_POOL each): no malloc/free per request or per client connection, and a
	 * rewritten head's buffer is reused (issue 19) */
	struct replay_item *item_pool;
	struct replay_flow *flow_pool;
	size_t nitem_pool, nflow_pool;
	size_t ndone;                          /* handed on since the last idle call */
	uint64_t t_done0;                      /* when the first of them was */
	int pass_sent;                         /* connections the last pass's flush wrote
						* bytes to (not those still connecting) */
	int ndeep;                             /* connections with two or more requests on them */

	double tokens, burst;
	uint64_t t_tokens;
	uint64_t drain_deadline;
	uint64_t stop_by;          /* atomic: replay_stop_by's bound on the drain (mono ns) */

	struct replay_stats st;
};

#define ST_ADD(rp, f, n) __atomic_fetch_add(&(rp)->st.f, (n), __ATOMIC_RELAXED)
#define ST_SUB(rp, f, n) __atomic_fetch_sub(&(rp)->st.f, (n), __ATOMIC_RELAXED)
#define ST_GET(rp, f)    __atomic_load_n(&(rp)->st.f, __ATOMIC_RELAXED)

/* Bytes charged to the replay budget: this instance's count (its stats) and, with
 * --workers > 1, the count all workers share (cfg.shared_held), which the budget is
 * checked against. Returns the shared count before the add. */
static inline uint64_t replay_held_add(struct replay *rp, uint64_t n)
{
	uint64_t b = ST_ADD(rp, held_bytes, n);

	return rp->cfg.shared_held ? __atomic_fetch_add(rp->cfg.shared_held, n, __ATOMIC_RELAXED) : b;
}

static inline void replay_held_sub(struct replay *rp, uint64_t n)
{
	ST_SUB(rp, held_bytes, n);
	if (rp->cfg.shared_held)
		__atomic_fetch_sub(rp->cfg.shared_held, n, __ATOMIC_RELAXED);
}

/* replay.c */
void replay_count_error(struct replay *rp, const char *why);
bool replay_flow_may_send(const struct replay *rp, const struct replay_flow *f);
void replay_ready_push(struct replay *rp, struct replay_flow *f, bool front);
/* Put an item taken off a connection back at the head of its flow, to be sent again. */
void replay_requeue(struct replay *rp, struct replay_item *it);
void replay_flow_maybe_free(struct replay *rp, struct replay_flow *f);
void replay_age_push_front(struct replay_target *t, struct replay_item *it);
void replay_item_done(struct replay *rp, struct replay_item *it);
void replay_item_fail(struct replay *rp, struct replay_item *it, const char *why);

/* replay_conn.c */
void replay_conn_close(struct replay *rp, struct replay_conn *c);
/* Close c and settle every request on it: answered ones are done; the one whose
 * answer had started fails with why; one not written at all is sent again; one
 * written with nothing back is sent again once if idempotent, else fails with why. */
void replay_conn_abort(struct replay *rp, struct replay_conn *c, const char *why, uint64_t now);
/* Fail every request on c with why (connect failures) and close it. */
void replay_conn_fail(struct replay *rp, struct replay_conn *c, const char *why, uint64_t now);
/* The head request fails with why (its answer is cut or late), the rest are settled
 * as replay_conn_abort says, and c closes. */
void replay_conn_broken(struct replay *rp, struct replay_conn *c, const char *why, uint64_t now);
bool replay_conn_can_take(const struct replay *rp, const struct replay_conn *c);
void replay_backoff(struct replay_target *t, const char *why, uint64_t now);
void replay_connected(struct replay *rp, struct replay_conn *c, uint64_t now);
int replay_send(struct replay *rp, struct replay_conn *c, uint64_t now);
void replay_readable(struct replay *rp, struct replay_conn *c, uint64_t now);
/* Put it on c (behind what is in flight there) and start connecting, or mark c to be
 * written by replay_send_pending (session-parallel order: written at once). */
void replay_assign(struct replay *rp, struct replay_conn *c, struct replay_item *it, uint64_t now);
/* Write every connection replay_assign marked during this pass: one sendmsg (or TLS
 * write) per connection carries all the requests queued on it. */
void replay_send_pending(struct replay *rp, uint64_t now);

#endif
