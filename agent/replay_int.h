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

#define REPLAY_HEAD_MAX   (64 * 1024)   /* largest serverB response head */
#define REPLAY_READ_CHUNK (16 * 1024)
/* idle connections are closed before serverB's own keep-alive timeout would, so a
 * request rarely meets a connection the server is closing */
#define REPLAY_IDLE_MS    4000
#define REPLAY_BACKOFF_MIN_MS 100
#define REPLAY_BACKOFF_MAX_MS 1000   /* a recovered serverB is used again within 1 s */

enum { RC_CLOSED = 0, RC_CONNECTING, RC_IDLE, RC_BUSY };
enum { RP_HEAD = 0, RP_BODY };

struct replay_flow;
struct replay_target;

struct replay_item {
	struct st_record *rec;
	struct replay_flow *flow;
	struct replay_item *fnext;             /* flow FIFO */
	struct replay_item *aprev, *anext;     /* target's waiting list, by age */
	uint64_t t_enq;
	size_t bytes;                          /* charged to held_bytes */
	struct buf head;                       /* rewritten head; empty = send raw */
	const uint8_t *body;                   /* raw bytes sent after head */
	size_t body_len;
	char method[16];
	int retried;
};

struct replay_flow {
	uint64_t id;
	struct replay_flow *hnext;             /* hash chain */
	struct replay_flow *rnext;             /* target ready list */
	struct replay_item *head, *tail;
	struct replay_target *t;
	struct replay_conn *last;
	bool ready, busy;
};

struct replay_conn {
	struct replay_target *t;
	int fd;
	int state;
	bool used;                             /* the slot was connected before */
	unsigned nreq;                         /* requests on this socket */
	struct replay_item *it;
	struct replay_flow *flow;
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
};

struct replay_target {
	char *url;
	char prefix[256];
	size_t prefix_len;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct replay_conn *conns;
	int nconns;
	int nopen;
	struct replay_flow *rhead, *rtail;
	struct replay_item *ahead, *atail;
	uint64_t retry_at;
	int backoff_ms;
	const char *down_err;
};

struct replay_stats {
	uint64_t submitted, replayed, succeeded;
	uint64_t f_timeout, f_refused, f_reset, f_malformed, f_other;
	uint64_t d_queue, d_memory, d_shutdown;
	uint64_t filtered, sampled_out, unreplayable;
	uint64_t in_flight, queued, held_bytes;
	uint64_t opened, reconnects, connect_failures, retries, open_now, open_peak;
	uint64_t diff_match, diff_mismatch;
};

struct replay {
	struct replay_cfg cfg;
	replay_done_cb done;
	void *ctx;
	struct replay_target targets[REPLAY_MAX_TARGETS];
	int ntargets;
	struct replay_rules rules;
	const char *ignore[65];
	struct diff_cfg dcfg;

	struct bq q;
	int epfd;
	pthread_t thr;
	bool thr_started;
	int stopping;                          /* atomic */

	struct replay_flow **fht;
	size_t fht_mask;
	size_t nheld;                          /* items inside the thread */

	double tokens, burst;
	uint64_t t_tokens;
	uint64_t drain_deadline;

	struct replay_stats st;
};

#define ST_ADD(rp, f, n) __atomic_fetch_add(&(rp)->st.f, (n), __ATOMIC_RELAXED)
#define ST_SUB(rp, f, n) __atomic_fetch_sub(&(rp)->st.f, (n), __ATOMIC_RELAXED)
#define ST_GET(rp, f)    __atomic_load_n(&(rp)->st.f, __ATOMIC_RELAXED)

/* replay.c */
void replay_count_error(struct replay *rp, const char *why);
void replay_ready_push(struct replay_flow *f, bool front);
void replay_flow_maybe_free(struct replay *rp, struct replay_flow *f);
void replay_age_push_front(struct replay_target *t, struct replay_item *it);
void replay_item_done(struct replay *rp, struct replay_item *it);
void replay_item_fail(struct replay *rp, struct replay_item *it, const char *why);

/* replay_conn.c */
void replay_conn_close(struct replay *rp, struct replay_conn *c);
void replay_conn_fail(struct replay *rp, struct replay_conn *c, const char *why, uint64_t now);
void replay_backoff(struct replay_target *t, const char *why, uint64_t now);
void replay_connected(struct replay *rp, struct replay_conn *c, uint64_t now);
int replay_send(struct replay *rp, struct replay_conn *c, uint64_t now);
void replay_readable(struct replay *rp, struct replay_conn *c, uint64_t now);
/* Put it on c and start sending (or connecting). */
void replay_assign(struct replay *rp, struct replay_conn *c, struct replay_item *it, uint64_t now);

#endif
