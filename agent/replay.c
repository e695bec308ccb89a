/* Replay engine: one thread, one epoll loop, a keep-alive pool per serverB target.
 * What it guarantees (requests byte for byte, order per client connection, one target
 * per connection, filters, bounds, retry) is described in the README, "Replay to
 * serverB"; request preparation is in replay_req.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ownsock.h"
#include "replay_int.h"
#include "shadowtap.h"
#include "util.h"

#define REPLAY_BATCH      256   /* records taken from the queue per pop */

static const char *const replay_order_names[] = { "session", "session-parallel", "request" };

void replay_cfg_default(struct replay_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connections = 16;
	cfg->connections_max = 256;
	cfg->order = REPLAY_ORDER_SESSION;
	cfg->pipeline = 16;
	cfg->gather_us = 1000;
	cfg->connect_timeout_ms = 1000;
	cfg->response_timeout_ms = 5000;
	cfg->queue_cap = 65536;
	cfg->max_inflight_bytes = 80u << 20;
	cfg->sample_pct = 100;
	cfg->body_limit = 64 * 1024;
	cfg->diff_max_paths = 20;
}

/* ---- finishing records ---- */

void replay_count_error(struct replay *rp, const char *why)
{
	if (strcmp(why, "timeout") == 0)
		ST_ADD(rp, f_timeout, 1);
	else if (strcmp(why, "connection refused") == 0)
		ST_ADD(rp, f_refused, 1);
	else if (strcmp(why, "connection reset") == 0)
		ST_ADD(rp, f_reset, 1);
	else if (strcmp(why, "malformed response") == 0 || strcmp(why, REPLAY_E_HEAD_TOO_LARGE) == 0)
		ST_ADD(rp, f_malformed, 1);
	else if (strcmp(why, "dropped: queue full") == 0)
		ST_ADD(rp, d_queue, 1);
	else if (strcmp(why, "dropped: memory limit") == 0)
		ST_ADD(rp, d_memory, 1);
	else if (strcmp(why, "dropped: shutting down") == 0)
		ST_ADD(rp, d_shutdown, 1);
	else
		ST_ADD(rp, f_other, 1);
}

/* Give rec a replay result carrying only an error. why is a static string, so
 * when even that allocation fails the reason still reaches the record. */
static void replay_set_error(struct st_record *rec, const char *target, const char *why)
{
	struct st_replay *r = rec->replay;

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r) {
			rec->replay_skip = why;
			return;
		}
		rec->replay = r;
	}
	record_msg_free(&r->resp);
	r->status_code = 0;
	free(r->error);
	r->error = strdup(why);
	if (!r->target && target)
		r->target = strdup(target);
	if (!r->error) {
		record_replay_free(r);
		rec->replay = NULL;
		rec->replay_skip = why;
	}
}

static void replay_skip(struct replay *rp, struct st_record *rec, const char *why)
{
	rec->replay_skip = why;
	rp->done(rp->ctx, rec);
}

/* ---- submit (capture thread) ---- */

/* A record waiting for replay is charged to the in-flight budget by
 * record_held_bytes: the whole record, not only the raw copy, each part once (a
 * part in the record's room is in its block); stable from enqueue to prepare, so
 * what submit adds, prepare or a refusal takes back. */
void replay_submit(struct replay *rp, struct st_record *rec)
{
	const char *why = NULL;
	uint64_t q, b;

	ST_ADD(rp, submitted, 1);
	why = replay_rec_unreplayable(rec);
	if (why) {
		ST_ADD(rp, unreplayable, 1);
		replay_skip(rp, rec, why);
		return;
	}
	if (replay_rules_sampled_out(&rp->rules, rec->flow_id)) {
		ST_ADD(rp, sampled_out, 1);
		replay_skip(rp, rec, "sampled out");
		return;
	}
	if (__atomic_load_n(&rp->stopping, __ATOMIC_ACQUIRE)) {
		why = "dropped: shutting down";
		goto refuse;
	}
	q = ST_ADD(rp, queued, 1);
	if (q >= rp->cfg.queue_cap) {
		ST_SUB(rp, queued, 1);
		why = "dropped: queue full";
		goto refuse;
	}
	b = replay_held_add(rp, record_held_bytes(rec));
	if (b + record_held_bytes(rec) > rp->cfg.max_inflight_bytes) {
		replay_held_sub(rp, record_held_bytes(rec));
		ST_SUB(rp, queued, 1);
		why = "dropped: memory limit";
		goto refuse;
	}
	if (rp->batching) {
		rp->pend[rp->npend++] = rec;
		if (rp->npend == REPLAY_PEND)
			replay_flush(rp);
		return;
	}
	switch (bq_push(&rp->q, rec)) {
	case 0:
		break;
	case -EPIPE:
		why = "dropped: shutting down";
		break;
	default:
		why = "dropped: queue full";
		break;
	}
	if (why) {
		replay_held_sub(rp, record_held_bytes(rec));
		ST_SUB(rp, queued, 1);
		goto refuse;
	}
	return;
refuse:
	replay_count_error(rp, why);
	replay_set_error(rec, rp->ntargets ? rp->targets[0].url : NULL, why);
	rp->done(rp->ctx, rec);
}

uint64_t replay_held_own(struct replay *rp)
{
	return ST_GET(rp, held_bytes);
}

bool replay_backlogged(struct replay *rp)
{
	return ST_GET(rp, held_bytes) >= rp->cfg.max_inflight_bytes / 16 ||
	       ST_GET(rp, queued) >= rp->cfg.queue_cap / 16;
}

void replay_set_batching(struct replay *rp, bool on)
{
	if (!rp)
		return;
	replay_flush(rp);
	rp->batching = on;
}

/* One lock and at most one wake-up for the whole batch; what does not fit is refused
 * as a single submit would have been. */
void replay_flush(struct replay *rp)
{
	size_t n, i;
	int k;

	if (!rp || !rp->npend)
		return;
	n = rp->npend;
	rp->npend = 0;
	k = bq_push_many(&rp->q, rp->pend, n);
	for (i = k < 0 ? 0 : (size_t)k; i < n; i++) {
		struct st_record *rec = rp->pend[i];
		const char *why = k < 0 ? "dropped: shutting down" : "dropped: queue full";

		replay_held_sub(rp, record_held_bytes(rec));   /* as replay_submit added */
		ST_SUB(rp, queued, 1);
		replay_count_error(rp, why);
		replay_set_error(rec, rp->ntargets ? rp->targets[0].url : NULL, why);
		rp->done(rp->ctx, rec);
	}
}

void replay_set_idle(struct replay *rp, void (*idle)(void *ctx))
{
	if (rp)
		__atomic_store_n(&rp->idle, idle, __ATOMIC_RELEASE);
}

/* ---- flows and items (replay thread) ---- */

/* Records the thread finished are handed on (the idle callback: the output thread's
 * batch) once REPLAY_IDLE_BATCH of them are done, REPLAY_IDLE_NS after the first, or
 * when nothing is left in flight: a wake-up of the output thread per pass, when each
 * pass finished one or two answers, cost more than the records themselves (issue 19). */
#define REPLAY_IDLE_BATCH 32
#define REPLAY_IDLE_NS    2000000ull

static void replay_done_here(struct replay *rp, struct st_record *rec)
{
	/* counted only for an idle call to come: with none set (the unit tests),
	 * nothing reset ndone and replay_next_timeout said 0 from REPLAY_IDLE_NS
	 * after the first record on (the loop polled without sleeping, and the
	 * --replay-gather pause, which wants a timeout, was never taken) */
	if (__atomic_load_n(&rp->idle, __ATOMIC_RELAXED) && !rp->ndone++)
		rp->t_done0 = st_mono_ns();
	rp->done(rp->ctx, rec);
}

#define REPLAY_POOL 4096

static struct replay_item *replay_item_new(struct replay *rp)
{
	struct replay_item *it = rp->item_pool;
	struct buf head;

	if (!it)
		return calloc(1, sizeof(*it));
	rp->item_pool = it->fnext;
	rp->nitem_pool--;
	/* the next intake's item (its first touch was a miss, ~1% of the thread) */
	if (rp->item_pool)
		__builtin_prefetch(rp->item_pool, 1);
	head = it->head;
	memset(it, 0, sizeof(*it));
	it->head = head;                       /* emptied, storage kept */
	return it;
}

static void replay_item_put(struct replay *rp, struct replay_item *it)
{
	if (rp->nitem_pool >= REPLAY_POOL || it->head.cap > 4096) {
		buf_free(&it->head);
		free(it);
		return;
	}
	buf_reset(&it->head);
	it->fnext = rp->item_pool;
	rp->item_pool = it;
	rp->nitem_pool++;
}

static struct replay_flow *replay_flow_new(struct replay *rp)
{
	struct replay_flow *f = rp->flow_pool;

	if (!f)
		return calloc(1, sizeof(*f));
	rp->flow_pool = f->hnext;
	rp->nflow_pool--;
	memset(f, 0, sizeof(*f));
	return f;
}

static void replay_pools_free(struct replay *rp)
{
	while (rp->item_pool) {
		struct replay_item *it = rp->item_pool;

		rp->item_pool = it->fnext;
		buf_free(&it->head);
		free(it);
	}
	while (rp->flow_pool) {
		struct replay_flow *f = rp->flow_pool;

		rp->flow_pool = f->hnext;
		free(f);
	}
	rp->nitem_pool = rp->nflow_pool = 0;
}

static struct replay_flow *replay_flow_get(struct replay *rp, uint64_t id, bool create)
{
	struct replay_flow **pp = &rp->fht[st_mix64(id) & rp->fht_mask], *f;

	for (f = *pp; f; f = f->hnext)
		if (f->id == id)
			return f;
	if (!create)
		return NULL;
	f = replay_flow_new(rp);
	if (!f)
		return NULL;
	f->id = id;
	f->t = &rp->targets[rp->ntargets > 1 ? st_mix64(id ^ 0x5bd1e995) % (uint64_t)rp->ntargets : 0];
	f->hnext = *pp;
	*pp = f;
	return f;
}

void replay_flow_maybe_free(struct replay *rp, struct replay_flow *f)
{
	struct replay_flow **pp;

	if (f->inflight || f->ready || f->head || f->pinned)
		return;
	for (pp = &rp->fht[st_mix64(f->id) & rp->fht_mask]; *pp; pp = &(*pp)->hnext)
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	if (rp->nflow_pool >= REPLAY_POOL) {
		free(f);
		return;
	}
	f->hnext = rp->flow_pool;
	rp->flow_pool = f;
	rp->nflow_pool++;
}

/* A flow is ready when it has a waiting request and may put one in flight now: on
 * its own connection (session order, something already in flight there) or on one
 * from the pool. Every event that lifts a limit (an answer, a failure, a retry)
 * pushes the flow again, so a flow off the lists is never forgotten. */
bool replay_flow_may_send(const struct replay *rp, const struct replay_flow *f)
{
	const struct replay_conn *c = f->last;

	if (!f->head || f->inflight >= rp->flow_limit || f->full)
		return false;
	/* session-parallel: the next request goes out only once the previous one is
	 * written whole, so serverB's connections carry them in capture order */
	if (rp->cfg.order == REPLAY_ORDER_SESSION_PARALLEL && f->inflight && c && c->qh &&
	    c->qh->flow == f && (c->state == RC_CONNECTING || c->snd))
		return false;
	return true;
}

void replay_ready_push(struct replay *rp, struct replay_flow *f, bool front)
{
	struct replay_target *t = f->t;
	struct replay_flow **h, **tl;

	if (f->ready || !replay_flow_may_send(rp, f))
		return;
	if (f->conn) {
		if (!replay_conn_can_take(rp, f->conn))
			return;
		h = &t->ohead;
		tl = &t->otail;
	} else {
		h = &t->rhead;
		tl = &t->rtail;
	}
	f->ready = true;
	if (front) {
		f->rnext = *h;
		*h = f;
		if (!*tl)
			*tl = f;
	} else {
		f->rnext = NULL;
		if (*tl)
			(*tl)->rnext = f;
		else
			*h = f;
		*tl = f;
	}
}

static struct replay_flow *replay_ready_pop(struct replay_flow **h, struct replay_flow **tl)
{
	struct replay_flow *f = *h;

	if (!f)
		return NULL;
	*h = f->rnext;
	if (!*h)
		*tl = NULL;
	f->rnext = NULL;
	f->ready = false;
	return f;
}

static void replay_age_unlink(struct replay_target *t, struct replay_item *it)
{
	if (it->aprev)
		it->aprev->anext = it->anext;
	else
		t->ahead = it->anext;
	if (it->anext)
		it->anext->aprev = it->aprev;
	else
		t->atail = it->aprev;
	it->aprev = it->anext = NULL;
}

/* Put a waiting item back in age order (used for a retry: it is the oldest). */
void replay_age_push_front(struct replay_target *t, struct replay_item *it)
{
	it->aprev = NULL;
	it->anext = t->ahead;
	if (t->ahead)
		t->ahead->aprev = it;
	else
		t->atail = it;
	t->ahead = it;
}

static void replay_age_push(struct replay_target *t, struct replay_item *it)
{
	it->anext = NULL;
	it->aprev = t->atail;
	if (t->atail)
		t->atail->anext = it;
	else
		t->ahead = it;
	t->atail = it;
}

/* Hand the record on and release everything the engine held for it. */
void replay_item_done(struct replay *rp, struct replay_item *it)
{
	struct st_record *rec = it->rec;

	replay_held_sub(rp, it->bytes);
	replay_item_put(rp, it);
	rp->nheld--;
	replay_done_here(rp, rec);
}

void replay_item_fail(struct replay *rp, struct replay_item *it, const char *why)
{
	if (it->flow && strcmp(why, "dropped: shutting down")) {
		it->flow->t->warn_failed++;
		it->flow->t->warn_why = why;
	}
	replay_count_error(rp, why);
	replay_set_error(it->rec, it->flow ? it->flow->t->url : NULL, why);
	replay_item_done(rp, it);
}

void replay_requeue(struct replay *rp, struct replay_item *it)
{
	struct replay_flow *f = it->flow;

	it->fnext = f->head;
	f->head = it;
	if (!f->tail)
		f->tail = it;
	replay_age_push_front(f->t, it);
	ST_ADD(rp, queued, 1);
}

/* Remove the head item of a flow that is waiting (not on a connection). */
static struct replay_item *replay_flow_take(struct replay_flow *f)
{
	struct replay_item *it = f->head;

	if (!it)
		return NULL;
	f->head = it->fnext;
	if (!f->head)
		f->tail = NULL;
	it->fnext = NULL;
	replay_age_unlink(f->t, it);
	return it;
}

/* ---- request preparation ---- */

/* Decide whether rec is replayed and build what to send. Returns NULL with the record
 * already handed on when it is not replayed. */
static struct replay_item *replay_prepare(struct replay *rp, struct st_record *rec)
{
	struct replay_item *it;
	struct replay_req q;
	struct replay_flow *f;
	const char *why;
	int v;

	v = replay_req_prepare_rec(&rp->rules, rec, &q, &why);
	if (v != REPLAY_SEND) {
		if (v == REPLAY_FILTERED)
			ST_ADD(rp, filtered, 1);
		else
			ST_ADD(rp, unreplayable, 1);
		replay_held_sub(rp, record_held_bytes(rec));
		rec->replay_skip = why;
		replay_done_here(rp, rec);
		return NULL;
	}
	it = replay_item_new(rp);
	if (!it) {
		replay_held_sub(rp, record_held_bytes(rec));
		replay_count_error(rp, "dropped: memory limit");
		replay_set_error(rec, NULL, "dropped: memory limit");
		replay_done_here(rp, rec);
		return NULL;
	}
	it->rec = rec;
	it->bytes = record_held_bytes(rec);
	rp->nheld++;
	memcpy(it->method, q.method, sizeof(it->method));
	it->method_len = (uint8_t)q.method_len;
	it->idempotent = replay_req_idempotent(it->method);
	it->closes = replay_req_closes(&q);
	f = replay_flow_get(rp, rec->flow_id, true);
	if (!f) {
		replay_item_fail(rp, it, "dropped: memory limit");
		return NULL;
	}
	it->flow = f;
	if (rp->rules.rewrite || f->t->prefix_len) {
		if (replay_req_rewrite(&rp->rules, f->t->prefix, f->t->prefix_len, &q, rec->raw,
				       &it->head)) {
			replay_item_fail(rp, it, "dropped: memory limit");
			replay_flow_maybe_free(rp, f);
			return NULL;
		}
		it->body = rec->raw + q.head_len;
		it->body_len = q.end - q.head_len;
	} else {
		it->body = rec->raw;
		it->body_len = q.end;
	}
	return it;
}

static void replay_intake(struct replay *rp, struct st_record *rec, uint64_t now)
{
	struct replay_item *it = replay_prepare(rp, rec);
	struct replay_flow *f;

	if (!it) {
		ST_SUB(rp, queued, 1);
		return;
	}
	f = it->flow;
	it->t_enq = now;
	if (f->tail)
		f->tail->fnext = it;
	else
		f->head = it;
	f->tail = it;
	replay_age_push(f->t, it);
	replay_ready_push(rp, f, false);
}

/* ---- scheduling ---- */

/* May the pool open one more connection now? Takes an open token when it may. */
static bool replay_may_open(struct replay_target *t, uint64_t now)
{
	if (now < t->retry_at || t->nopen >= t->nconns)
		return false;
	/* a failing target is probed by one connection at a time */
	if (t->down_err && t->nconnecting > 0)
		return false;
	t->open_tokens += (double)(now - t->t_open) * REPLAY_OPEN_PER_S / 1e9;
	t->t_open = now;
	if (t->open_tokens > REPLAY_OPEN_BURST)
		t->open_tokens = REPLAY_OPEN_BURST;
	/* the floor is always allowed: it is what a fixed pool would open */
	if (t->open_tokens < 1 && t->nopen >= t->floor)
		return false;
	if (t->open_tokens >= 1)
		t->open_tokens -= 1;
	return true;
}

/* An idle pooled connection (the flow's last one first, then the lowest slot, so
 * that the high slots go idle and are closed), else a new one if the pool may grow. */
static struct replay_conn *replay_pick_conn(struct replay *rp, struct replay_target *t,
					    struct replay_flow *f, uint64_t now)
{
	struct replay_conn *closed = NULL;
	int i;

	(void)rp;
	if (f && f->last && f->last->state == RC_IDLE && f->last->t == t)
		return f->last;
	for (i = 0; i < t->hi; i++) {
		if (t->conns[i].state == RC_IDLE)
			return &t->conns[i];
		if (t->conns[i].state == RC_CLOSED && !closed)
			closed = &t->conns[i];
	}
	if (!closed && t->hi < t->nconns)
		closed = &t->conns[t->hi];
	if (closed && replay_may_open(t, now))
		return closed;
	return NULL;
}

static bool replay_take_token(struct replay *rp, uint64_t now)
{
	if (rp->cfg.rate <= 0)
		return true;
	rp->tokens += (double)(now - rp->t_tokens) * rp->cfg.rate / 1e9;
	rp->t_tokens = now;
	if (rp->tokens > rp->burst)
		rp->tokens = rp->burst;
	if (rp->tokens < 1)
		return false;
	rp->tokens -= 1;
	return true;
}

static void replay_fail_waiting(struct replay *rp, struct replay_target *t, const char *why)
{
	struct replay_item *it;

	while ((it = t->ahead)) {
		struct replay_flow *f = it->flow;

		replay_flow_take(f);
		ST_SUB(rp, queued, 1);
		replay_item_fail(rp, it, why);
		replay_flow_maybe_free(rp, f);
	}
}

static void replay_expire(struct replay *rp, struct replay_target *t, uint64_t now)
{
	uint64_t wait = (uint64_t)(rp->cfg.connect_timeout_ms + rp->cfg.response_timeout_ms) * 1000000ull;
	struct replay_item *it;

	if (rp->drain_deadline && now >= rp->drain_deadline) {
		replay_fail_waiting(rp, t, "dropped: shutting down");
		return;
	}
	/* serverB is down and nothing is open to it: waiting cannot help */
	if (t->down_err && t->nopen == 0 && now < t->retry_at) {
		replay_fail_waiting(rp, t, t->down_err);
		return;
	}
	if (rp->cfg.rate > 0)
		return;
	while ((it = t->ahead) && now - it->t_enq > wait) {
		struct replay_flow *f = it->flow;

		/* the oldest waiting item is always its flow's head */
		replay_flow_take(f);
		ST_SUB(rp, queued, 1);
		replay_item_fail(rp, it, "timeout");
		replay_flow_maybe_free(rp, f);
	}
}

/* f leaves its ready list (h, tl) and its next request goes out on c; f goes back
 * on a ready list if it may send more. */
static void replay_send_head(struct replay *rp, struct replay_flow *f, struct replay_conn *c,
			     struct replay_flow **h, struct replay_flow **tl, uint64_t now)
{
	struct replay_item *it;

	replay_ready_pop(h, tl);
	it = replay_flow_take(f);
	/* assign may settle requests and free flows: keep f */
	f->pinned++;
	replay_assign(rp, c, it, now);
	f->pinned--;
	replay_ready_push(rp, f, false);
	replay_flow_maybe_free(rp, f);
}

static void replay_dispatch(struct replay *rp, uint64_t now)
{
	int i;

	for (i = 0; i < rp->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];
		struct replay_flow *f;
		struct replay_conn *c;

		replay_expire(rp, t, now);
		/* flows with a connection of their own first: the pool does not limit them */
		while ((f = t->ohead)) {
			c = f->conn;
			/* every connection is taken and flows wait for one: let this one's
			 * pipeline drain so its connection goes to the next flow in turn */
			if (t->rhead && t->nopen >= t->nconns && c && replay_flow_may_send(rp, f)) {
				replay_ready_pop(&t->ohead, &t->otail);
				continue;
			}
			if (!replay_flow_may_send(rp, f) || !c || !replay_conn_can_take(rp, c)) {
				replay_ready_pop(&t->ohead, &t->otail);
				/* pushed again by whatever lifts the limit; without a
				 * connection of its own it goes to the pool list now */
				replay_ready_push(rp, f, false);
				replay_flow_maybe_free(rp, f);
				continue;
			}
			if (!replay_take_token(rp, now))
				return;
			replay_send_head(rp, f, c, &t->ohead, &t->otail, now);
		}
		while ((f = t->rhead)) {
			if (!replay_flow_may_send(rp, f) || f->conn) {
				replay_ready_pop(&t->rhead, &t->rtail);
				replay_ready_push(rp, f, false);
				replay_flow_maybe_free(rp, f);
				continue;
			}
			c = replay_pick_conn(rp, t, f, now);
			if (!c)
				break;
			if (!replay_take_token(rp, now))
				return;
			replay_send_head(rp, f, c, &t->rhead, &t->rtail, now);
		}
	}
}

/* Idle connections above the floor go soon (the pool shrinks); the floor's go just
 * before serverB's own keep-alive timeout would close them. */
static uint64_t replay_idle_ns(const struct replay_target *t)
{
	return (uint64_t)(t->nopen > t->floor ? REPLAY_SHRINK_MS : REPLAY_IDLE_MS) * 1000000ull;
}

static void replay_timeouts(struct replay *rp, uint64_t now)
{
	int i, j;

	for (i = 0; i < rp->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];

		for (j = 0; j < t->hi; j++) {
			struct replay_conn *c = &t->conns[j];

			if (c->state == RC_CONNECTING && now >= c->deadline) {
				ST_ADD(rp, connect_failures, 1);
				replay_backoff(t, "timeout", now);
				replay_conn_fail(rp, c, "timeout", now);
			} else if (c->state == RC_BUSY && now >= c->deadline) {
				replay_conn_broken(rp, c, "timeout", now);
			} else if (c->state == RC_IDLE &&
				   now - c->idle_since >= replay_idle_ns(t)) {
				replay_conn_close(rp, c);
			}
		}
	}
}

static int replay_next_timeout(struct replay *rp, uint64_t now)
{
	uint64_t next = UINT64_MAX, wait;
	int i, j;

	wait = (uint64_t)(rp->cfg.connect_timeout_ms + rp->cfg.response_timeout_ms) * 1000000ull;
	for (i = 0; i < rp->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];

		for (j = 0; j < t->hi; j++) {
			struct replay_conn *c = &t->conns[j];

			if ((c->state == RC_CONNECTING || c->state == RC_BUSY) && c->deadline < next)
				next = c->deadline;
			if (c->state == RC_IDLE && c->idle_since + replay_idle_ns(t) < next)
				next = c->idle_since + replay_idle_ns(t);
		}
		/* a flow moved to the own-connection list during dispatch sends at once */
		if (t->ohead && (rp->cfg.rate <= 0 || rp->tokens >= 1))
			next = now;
		if (t->rhead && t->retry_at > now && t->retry_at < next)
			next = t->retry_at;
		if (t->rhead && t->open_tokens < 1 && t->nopen < t->nconns) {
			uint64_t tok = now + (uint64_t)((1 - t->open_tokens) / REPLAY_OPEN_PER_S * 1e9) + 1;

			if (tok < next)
				next = tok;
		}
		if (t->ahead && rp->cfg.rate <= 0 && t->ahead->t_enq + wait < next)
			next = t->ahead->t_enq + wait;
		if ((t->rhead || t->ohead) && rp->cfg.rate > 0 && rp->tokens < 1) {
			uint64_t tok = now + (uint64_t)((1 - rp->tokens) / rp->cfg.rate * 1e9) + 1;

			if (tok < next)
				next = tok;
		}
	}
	if (rp->drain_deadline && rp->drain_deadline < next)
		next = rp->drain_deadline;
	if (rp->ndone && rp->t_done0 + REPLAY_IDLE_NS < next)
		next = rp->t_done0 + REPLAY_IDLE_NS;
	/* never sleep unboundedly: a missed wake-up costs at most this long */
	if (next == UINT64_MAX || next > now + 100000000ull)
		next = now + 100000000ull;
	if (next <= now)
		return 0;
	/* round up so we do not wake just before a deadline and spin */
	return (int)((next - now + 999999) / 1000000 > 1000 ? 1000 : (next - now + 999999) / 1000000);
}

/* A batch's records were built on the capture thread's core and are cold here: the
 * first reads of each in intake (its flow id, raw pointer and head, the capture's
 * header array, its flow's hash slot) were a cache miss each, one after the other
 * (replay_req_prepare_rec and replay_flow_get ~4% of this thread's samples at the
 * GET maximum). The struct of the record two ahead is fetched, and what it points to
 * once that has come in, one ahead, so the misses overlap the work on the record
 * before. */
static void replay_prefetch_struct(const struct st_record *rec)
{
	const char *p = (const char *)rec;
	size_t off;

	for (off = 0; off < offsetof(struct st_record, room); off += 64)
		__builtin_prefetch(p + off);
}

static void replay_prefetch_parts(const struct replay *rp, const struct st_record *rec)
{
	if (rec->raw) {
		__builtin_prefetch(rec->raw);
		__builtin_prefetch(rec->raw + 64);
	}
	if (rec->req.head) {
		__builtin_prefetch(rec->req.head);
		__builtin_prefetch(rec->req.head + 64);
	}
	if (rec->req.hdrs) {
		__builtin_prefetch(rec->req.hdrs);
		__builtin_prefetch((const char *)rec->req.hdrs + 64);
		__builtin_prefetch((const char *)rec->req.hdrs + 128);
	}
	__builtin_prefetch(&rp->fht[st_mix64(rec->flow_id) & rp->fht_mask]);
}

static void replay_drain_queue(struct replay *rp, uint64_t now, bool *closed)
{
	void *batch[REPLAY_BATCH];
	int n, i;

	/* the queue's eventfd woke us once for the whole batch; popping it empty makes
	 * the fd quiet again */
	for (;;) {
		n = bq_pop(&rp->q, batch, REPLAY_BATCH, 0);
		if (n == -EPIPE) {
			*closed = true;
			return;
		}
		if (n <= 0)
			return;
		for (i = 0; i < n && i < 2; i++)
			replay_prefetch_struct(batch[i]);
		for (i = 0; i < n; i++) {
			if (i + 2 < n)
				replay_prefetch_struct(batch[i + 2]);
			if (i + 1 < n)
				replay_prefetch_parts(rp, batch[i + 1]);
			replay_intake(rp, batch[i], now);
		}
	}
}

/* Failures are not silent while serverB is down or failing: one line per target at
 * the first failure and then at most every REPLAY_WARN_NS while they go on, and one
 * when it answers again (the counters have the totals). */
#define REPLAY_WARN_NS (10ull * 1000000000ull)

static void replay_warn_tick(struct replay *rp, uint64_t now)
{
	int i;

	for (i = 0; i < rp->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];

		if (now < t->warn_next)
			continue;
		if (t->warn_failed) {
			if (t->down_err)
				pr_warn("replay: serverB %s unreachable (%s), %llu requests failed in the last %llu s\n",
					t->url, t->down_err, (unsigned long long)t->warn_failed,
					REPLAY_WARN_NS / 1000000000ull);
			else
				pr_warn("replay: serverB %s: %llu requests failed in the last %llu s (last: %s)\n",
					t->url, (unsigned long long)t->warn_failed,
					REPLAY_WARN_NS / 1000000000ull, t->warn_why);
			t->warn_failed = 0;
			t->warned = true;
			t->warn_next = now + REPLAY_WARN_NS;
		} else if (t->warned && !t->down_err) {
			pr_warn("replay: serverB %s reachable again, no failure in the last %llu s\n", t->url,
				REPLAY_WARN_NS / 1000000000ull);
			t->warned = false;
		}
	}
}

/* --shutdown-timeout or a second signal (pipeline.c): in-flight requests fail too,
 * instead of waiting for their response timeout. */
static void replay_stop_bound(struct replay *rp, uint64_t now)
{
	uint64_t by = __atomic_load_n(&rp->stop_by, __ATOMIC_ACQUIRE);
	int i, j;

	if (!by)
		return;
	if (by < rp->drain_deadline)
		rp->drain_deadline = by;
	if (now < by)
		return;
	for (i = 0; i < rp->ntargets; i++)
		for (j = 0; rp->targets[i].conns && j < rp->targets[i].hi; j++)
			if (rp->targets[i].conns[j].qh)
				replay_conn_fail(rp, &rp->targets[i].conns[j], "dropped: shutting down", now);
}

void replay_stop_by(struct replay *rp, uint64_t mono_ns)
{
	uint64_t cur;

	if (!rp)
		return;
	cur = __atomic_load_n(&rp->stop_by, __ATOMIC_ACQUIRE);
	while ((!cur || mono_ns < cur) &&
	       !__atomic_compare_exchange_n(&rp->stop_by, &cur, mono_ns ? mono_ns : 1, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

/* A connection's fields the loop, replay_readable and replay_parse read (state, qh,
 * snd, rbuf, rlen, rcap, phase, body: 224 bytes) */
static void replay_prefetch_conn(const struct replay_conn *c)
{
	const char *p = (const char *)c;
	size_t off;

	for (off = 0; off < sizeof(*c); off += 64)
		__builtin_prefetch(p + off);
	__builtin_prefetch(p + sizeof(*c) - 1);
}

static void *replay_thread(void *arg)
{
	struct replay *rp = arg;
	struct epoll_event evs[64];
	void (*idle)(void *ctx);
	bool closed = false;
	uint64_t now;
	int n = 0, i, tmo;

	for (;;) {
		now = st_mono_ns();
		tmo = replay_next_timeout(rp, now);
		/* answers are coming in (the last wait returned events, fewer than it
		 * could take) or this thread just wrote requests, and some connection
		 * carries a pipeline (two or more requests): let the answers gather
		 * for --replay-gather, so that one wake-up and one read per connection
		 * take many (a wake-up is a context switch, and serverB answers each
		 * pipelined request on its own, in a burst of answers that outlasts
		 * the pass that wrote them). Bounded: an answer waits at most
		 * --replay-gather longer; nothing waits while the queue has records or
		 * the engine stops, nor with one request per connection (POSTs with
		 * Connection: close), where a pause would only slow each connection's
		 * turn-around. */
		if ((n > 0 || rp->pass_sent) && n < 64 && tmo > 0 && rp->cfg.gather_us && rp->ndeep &&
		    !bq_len(&rp->q) && !__atomic_load_n(&rp->stopping, __ATOMIC_ACQUIRE)) {
			struct timespec ts = { rp->cfg.gather_us / 1000000,
					       (long)(rp->cfg.gather_us % 1000000) * 1000 };

			nanosleep(&ts, NULL);
			now = st_mono_ns();
			tmo = replay_next_timeout(rp, now);
		}
		/* the loop's push writes the queue's eventfd only while this thread
		 * blocks (bq_wait_begin .. bq_wait_end): records pushed while it was
		 * awake are found here, and the connections are then only polled */
		if (tmo > 0 && bq_wait_begin(&rp->q))
			tmo = 0;
		n = epoll_wait(rp->epfd, evs, 64, tmo);
		bq_wait_end(&rp->q);
		now = st_mono_ns();
		/* the connections a wake-up reports, and one ahead the request each
		 * answers next: their first reads (c->qh, then the item's record) were
		 * a cache miss each, ~1% of this thread's samples at the GET maximum */
		for (i = 0; i < n; i++)
			if (evs[i].data.ptr)
				replay_prefetch_conn(evs[i].data.ptr);
		for (i = 0; i < n; i++) {
			struct replay_conn *c = evs[i].data.ptr;
			struct replay_conn *c1 = i + 1 < n ? evs[i + 1].data.ptr : NULL;

			if (c1 && c1->qh)
				__builtin_prefetch(c1->qh);
			if (!c) {
				replay_drain_queue(rp, now, &closed);
				continue;
			}
			if (c->fd < 0)
				continue;
			if (c->state == RC_CONNECTING) {
				/* EPOLLIN: a TLS handshake waiting for serverB's next flight */
				if (evs[i].events & (EPOLLOUT | EPOLLIN | EPOLLERR | EPOLLHUP))
					replay_connected(rp, c, now);
				continue;
			}
			/* https://: a write may wait for EPOLLIN, a read for EPOLLOUT
			 * (replay_tls_wants) */
			if (c->state == RC_BUSY && c->snd &&
			    ((evs[i].events & EPOLLOUT) ||
			     (c->tls_write_wants_in && (evs[i].events & EPOLLIN))) &&
			    replay_send(rp, c, now) < 0)
				continue;
			if (c->fd >= 0 && ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ||
					   (c->tls_read_wants_out && (evs[i].events & EPOLLOUT))))
				replay_readable(rp, c, now);
		}
		if (!closed && bq_len(&rp->q))
			replay_drain_queue(rp, now, &closed);
		if (__atomic_load_n(&rp->stopping, __ATOMIC_ACQUIRE)) {
			if (!closed)
				replay_drain_queue(rp, now, &closed);
			if (!rp->drain_deadline)
				rp->drain_deadline = now + (uint64_t)(rp->cfg.connect_timeout_ms +
						     rp->cfg.response_timeout_ms) * 1000000ull;
			replay_stop_bound(rp, now);
		}
		replay_timeouts(rp, now);
		replay_warn_tick(rp, now);
		replay_dispatch(rp, now);
		replay_send_pending(rp, now);
		idle = __atomic_load_n(&rp->idle, __ATOMIC_ACQUIRE);
		if (idle && rp->ndone && (rp->ndone >= REPLAY_IDLE_BATCH || rp->nheld == 0 || closed ||
				  now >= rp->t_done0 + REPLAY_IDLE_NS ||
				  __atomic_load_n(&rp->stopping, __ATOMIC_ACQUIRE))) {
			rp->ndone = 0;
			idle(rp->ctx);
		}
		if (closed && rp->nheld == 0)
			break;
	}
	return NULL;
}

/* ---- start / stop ---- */

/* The host name is resolved once, here: serverB's address is not looked up again. */
static int replay_resolve(struct replay_target *t, const char *url, const struct replay_cfg *cfg)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	struct replay_url u;
	int err;

	err = replay_url_parse(url, &u);
	if (err)
		return err;
	memcpy(t->prefix, u.prefix, sizeof(t->prefix));
	t->prefix_len = u.prefix_len;
	err = getaddrinfo(u.host, u.port, &hints, &res);
	if (err || !res) {
		pr_warn("replay: target %s: cannot resolve %s: %s\n", url, u.host, gai_strerror(err));
		return -EINVAL;
	}
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->alen = res->ai_addrlen;
	freeaddrinfo(res);
	return u.tls ? replay_tls_init(&t->tls, url, u.host, cfg->tls_ca, cfg->tls_insecure) : 0;
}

void replay_free(struct replay *rp)
{
	int i;

	if (!rp)
		return;
	if (rp->thr_started)
		replay_stop(rp);
	for (i = 0; i < rp->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];
		int j;

		for (j = 0; t->conns && j < t->hi; j++) {
			replay_tls_free(&t->conns[j].ssl, false);
			if (t->conns[j].fd >= 0) {
				ownsock_release(t->conns[j].fd);
				close(t->conns[j].fd);
			}
			free(t->conns[j].rbuf);
			record_replay_free(t->conns[j].res);
		}
		free(t->conns);
		replay_tls_destroy(t->tls);
	}
	replay_rules_free(&rp->rules);
	if (rp->fht) {
		size_t k;

		for (k = 0; k <= rp->fht_mask; k++)
			while (rp->fht[k]) {
				struct replay_flow *f = rp->fht[k];

				rp->fht[k] = f->hnext;
				free(f);
			}
	}
	free(rp->fht);
	replay_pools_free(rp);
	if (rp->epfd >= 0)
		close(rp->epfd);
	bq_destroy(&rp->q);
	free(rp);
}

int replay_start(struct replay **out, const struct replay_cfg *cfg, replay_done_cb done, void *ctx)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };
	struct replay *rp;
	size_t buckets;
	int qfd;
	int i, j, err;

	*out = NULL;
	if (cfg->ntargets < 1 || cfg->ntargets > REPLAY_MAX_TARGETS) {
		pr_warn("replay: need 1..%d targets\n", REPLAY_MAX_TARGETS);
		return -EINVAL;
	}
	if (cfg->connections < 1 || cfg->pipeline < 1 || cfg->order < REPLAY_ORDER_SESSION ||
	    cfg->order > REPLAY_ORDER_REQUEST || cfg->connect_timeout_ms < 1 || cfg->response_timeout_ms < 1 ||
	    cfg->queue_cap < 1 || cfg->rate < 0 || cfg->sample_pct < 0 || cfg->sample_pct > 100) {
		pr_warn("replay: bad connections, timeout, queue, rate or sample value\n");
		return -EINVAL;
	}
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->epfd = -1;
	rp->cfg = *cfg;
	if (!rp->cfg.max_inflight_bytes)
		rp->cfg.max_inflight_bytes = SIZE_MAX;
	rp->done = done;
	rp->ctx = ctx;
	for (i = 0; i < cfg->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];

		rp->ntargets++;
		t->url = (char *)cfg->targets[i];
		err = replay_resolve(t, cfg->targets[i], cfg);
		if (err)
			goto fail;
		/* a ceiling below the floor is the floor: a fixed pool */
		t->floor = cfg->connections;
		t->nconns = cfg->connections_max > cfg->connections ? cfg->connections_max
								    : cfg->connections;
		t->open_tokens = REPLAY_OPEN_BURST;
		t->t_open = st_mono_ns();
		t->conns = calloc((size_t)t->nconns, sizeof(*t->conns));
		if (!t->conns) {
			err = -ENOMEM;
			goto fail;
		}
		for (j = 0; j < t->nconns; j++) {
			t->conns[j].fd = -1;
			t->conns[j].t = t;
		}
	}
	err = replay_rules_init(&rp->rules, cfg);
	if (err)
		goto fail;
	if (cfg->ndiff_ignore > 0) {
		for (i = 0; i < cfg->ndiff_ignore && i < 64; i++)
			rp->ignore[i] = cfg->diff_ignore[i];
		rp->ignore[i] = NULL;
		rp->dcfg.ignore = rp->ignore;
	}
	rp->dcfg.max_paths = cfg->diff_max_paths;
	/* session: a flow pipelines on one connection; session-parallel: one request per
	 * connection, several connections; request: no per-flow limit at all */
	rp->conn_depth = cfg->order == REPLAY_ORDER_SESSION ? cfg->pipeline : 1;
	rp->flow_limit = cfg->order == REPLAY_ORDER_REQUEST ? INT_MAX : cfg->pipeline;
	rp->burst = cfg->rate / 10 > 1 ? cfg->rate / 10 : 1;
	rp->tokens = rp->burst;
	rp->t_tokens = st_mono_ns();

	for (buckets = 256; buckets < cfg->queue_cap / 4 && buckets < (1u << 16); buckets *= 2)
		;
	rp->fht = calloc(buckets, sizeof(*rp->fht));
	if (!rp->fht) {
		err = -ENOMEM;
		goto fail;
	}
	rp->fht_mask = buckets - 1;
	err = bq_init(&rp->q, cfg->queue_cap);
	if (err)
		goto fail;
	qfd = bq_event_fd(&rp->q);
	rp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (qfd < 0 || rp->epfd < 0 || epoll_ctl(rp->epfd, EPOLL_CTL_ADD, qfd, &e) < 0) {
		err = qfd < 0 ? qfd : -errno;
		pr_warn("replay: epoll setup: %s\n", strerror(-err));
		goto fail;
	}
	err = -pthread_create(&rp->thr, NULL, replay_thread, rp);
	if (err) {
		pr_warn("replay: cannot start thread: %s\n", strerror(-err));
		goto fail;
	}
	rp->thr_started = true;
	/* its own name, so top -H and the far benchmark's schedstat tell its CPU apart */
	pthread_setname_np(rp->thr, "st-replay");
	*out = rp;
	return 0;
fail:
	replay_free(rp);
	return err;
}

void replay_stop(struct replay *rp)
{
	if (!rp)
		return;
	replay_flush(rp);          /* the caller is the submitting thread */
	__atomic_store_n(&rp->stopping, 1, __ATOMIC_RELEASE);
	bq_close(&rp->q);          /* wakes the thread through the queue's eventfd */
	if (rp->thr_started)
		pthread_join(rp->thr, NULL);
	rp->thr_started = false;
}

void replay_get_stats(struct replay *rp, struct replay_stats *out)
{
	const uint64_t *s = (const uint64_t *)&rp->st;
	uint64_t *d = (uint64_t *)out;
	size_t i;

	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

void replay_print_stats_n(struct replay *const *rps, int n, FILE *f)
{
	struct replay_tls *tts[REPLAY_MAX_ENGINES * REPLAY_MAX_TARGETS];
	struct replay_stats st = { 0 }, one;
	const struct replay *rp;
	uint64_t *d = (uint64_t *)&st;
	const uint64_t *s = (const uint64_t *)&one;
	int i, j, ntts = 0, maxc = 0;
	size_t k;

	if (n <= 0 || !rps[0])
		return;
	if (n > REPLAY_MAX_ENGINES)
		n = REPLAY_MAX_ENGINES;
	for (i = 0; i < n; i++) {
		replay_get_stats(rps[i], &one);
		for (k = 0; k < sizeof(st) / sizeof(uint64_t); k++)
			d[k] += s[k];
		for (j = 0; j < rps[i]->ntargets; j++)
			tts[ntts++] = rps[i]->targets[j].tls;
		/* --replay-connections-max is split among the workers: max= is the
		 * agent's ceiling, beside open= and peak_open= which are totals too */
		maxc += rps[i]->ntargets ? rps[i]->targets[0].nconns : 0;
	}
	rp = rps[0];
	fprintf(f, "replay: submitted=%llu replayed=%llu succeeded=%llu in_flight=%llu queued=%llu "
		"held_bytes=%llu retries=%llu\n",
		(unsigned long long)st.submitted, (unsigned long long)st.replayed,
		(unsigned long long)st.succeeded, (unsigned long long)st.in_flight,
		(unsigned long long)st.queued, (unsigned long long)st.held_bytes,
		(unsigned long long)st.retries);
	fprintf(f, "replay: failed timeout=%llu connection_refused=%llu connection_reset=%llu "
		"malformed_response=%llu other=%llu\n",
		(unsigned long long)st.f_timeout, (unsigned long long)st.f_refused,
		(unsigned long long)st.f_reset, (unsigned long long)st.f_malformed,
		(unsigned long long)st.f_other);
	fprintf(f, "replay: dropped queue_full=%llu memory_limit=%llu shutting_down=%llu\n",
		(unsigned long long)st.d_queue, (unsigned long long)st.d_memory,
		(unsigned long long)st.d_shutdown);
	fprintf(f, "replay: skipped filtered=%llu sampled_out=%llu unreplayable=%llu\n",
		(unsigned long long)st.filtered, (unsigned long long)st.sampled_out,
		(unsigned long long)st.unreplayable);
	fprintf(f, "replay: connections opened=%llu reconnects=%llu connect_failures=%llu open=%llu "
		"peak_open=%llu max=%d floor=%d order=%s pipeline=%d\n",
		(unsigned long long)st.opened, (unsigned long long)st.reconnects,
		(unsigned long long)st.connect_failures, (unsigned long long)st.open_now,
		(unsigned long long)st.open_peak, maxc, rp->cfg.connections, replay_order_names[rp->cfg.order], rp->cfg.pipeline);
	fprintf(f, "replay: diff match=%llu mismatch=%llu\n",
		(unsigned long long)st.diff_match, (unsigned long long)st.diff_mismatch);
	replay_tls_print_stats(tts, ntts, f);
}

void replay_print_stats(struct replay *rp, FILE *f)
{
	if (rp)
		replay_print_stats_n(&rp, 1, f);
}
