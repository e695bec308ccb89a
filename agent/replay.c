/* Replay engine: one thread, one epoll loop, a keep-alive pool per serverB target.
 *
 * Semantics (copied to the README):
 * - Requests go out byte for byte as captured. The only changes are the rewrites
 *   asked for: --replay-host replaces the Host value, --replay-header 'Name: value'
 *   replaces the first header of that name (later duplicates are dropped) or adds it,
 *   and a target URL path (http://host:port/prefix) is put in front of an
 *   origin-form request-target. Rewrites rebuild only the head; body bytes and their
 *   framing are never touched.
 * - Ordering: the requests of one captured client connection are replayed in
 *   capture order, one at a time: the next is sent only after serverB has answered
 *   the previous one (or it failed). Captured pipelined requests are therefore NOT
 *   pipelined to serverB: a failure then belongs to exactly one request, and many
 *   servers handle pipelining poorly. Different client connections run in parallel
 *   across the pool, so at most one serverB connection serves a client connection
 *   at any time.
 * - Several targets: each client connection goes to one target, chosen by a hash of
 *   its flow id (a record has one replay result, and sessions stay whole).
 * - Filters: records refused by --allow-url/--deny-url/--allow-method are not
 *   replayed but still recorded, with replay.skipped = "filtered" and a counter;
 *   --replay-sample keeps or drops whole client connections (hash of the flow id),
 *   the rest are recorded with replay.skipped = "sampled out".
 * - Bounds: at most queue_cap records wait and max_inflight_bytes request bytes are
 *   held (waiting + in flight); past either, replay_submit marks the record
 *   "dropped: queue full" / "dropped: memory limit" and hands it on at once. Without
 *   --replay-rate, a record that waited longer than connect + response timeout for
 *   a connection fails with "timeout"; while a target is in reconnect back-off with
 *   no connection open, its waiting records fail at once with the last connect
 *   error. With --replay-rate, records wait for their token in the bounded queue.
 * - A request whose reused keep-alive connection closed before any response byte
 *   is retried once on a new connection (the server closed an idle connection as
 *   we sent). Idle connections are closed after REPLAY_IDLE_MS to make that rare.
 * - The host name is resolved once, at start. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"
#include "diff.h"
#include "http1.h"
#include "log.h"
#include "bq.h"
#include "replay.h"

#define REPLAY_HEAD_MAX   (64 * 1024)   /* largest serverB response head */
#define REPLAY_READ_CHUNK (16 * 1024)
#define REPLAY_IDLE_MS    4000
#define REPLAY_BACKOFF_MIN_MS 100
#define REPLAY_BACKOFF_MAX_MS 1000   /* a recovered serverB is used again within 1 s */
#define REPLAY_BATCH      256

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

struct replay_hdr {
	const char *line;     /* "Name: value" as configured */
	size_t name_len;
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
	struct replay_hdr hdrs[REPLAY_MAX_HEADERS];
	int nhdrs;
	regex_t allow[REPLAY_MAX_FILTERS], deny[REPLAY_MAX_FILTERS];
	int nallow, ndeny;
	const char *ignore[65];
	struct diff_cfg dcfg;
	bool rewrite;

	struct bq q;
	int efd, epfd;
	pthread_t thr;
	bool thr_started;
	int stopping;                          /* atomic */
	int wake_pending;                      /* atomic: eventfd written, not yet drained */

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

void replay_cfg_default(struct replay_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connections = 16;
	cfg->connect_timeout_ms = 1000;
	cfg->response_timeout_ms = 5000;
	cfg->queue_cap = 65536;
	cfg->max_inflight_bytes = 256u << 20;
	cfg->sample_pct = 100;
	cfg->body_limit = 64 * 1024;
	cfg->diff_max_paths = 20;
}

/* ---- finishing records ---- */

static void replay_count_error(struct replay *rp, const char *why)
{
	if (strcmp(why, "timeout") == 0)
		ST_ADD(rp, f_timeout, 1);
	else if (strcmp(why, "connection refused") == 0)
		ST_ADD(rp, f_refused, 1);
	else if (strcmp(why, "connection reset") == 0)
		ST_ADD(rp, f_reset, 1);
	else if (strcmp(why, "malformed response") == 0)
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

void replay_submit(struct replay *rp, struct st_record *rec)
{
	const char *why = NULL;
	uint64_t q, b;

	ST_ADD(rp, submitted, 1);
	if (!rec->raw || !rec->raw_len) {
		ST_ADD(rp, unreplayable, 1);
		replay_skip(rp, rec, (rec->cap_flags & ST_CAP_REPLAY_TRUNC) ?
			    "request not captured whole" : "no raw request");
		return;
	}
	if (rec->http_minor < 0 || (rec->cap_flags & ST_CAP_UPGRADED)) {
		ST_ADD(rp, unreplayable, 1);
		replay_skip(rp, rec, rec->http_minor < 0 ? "http/0.9" : "upgrade");
		return;
	}
	if (rp->cfg.sample_pct < 100 &&
	    (double)(st_mix64(rec->flow_id) % 10000) >= rp->cfg.sample_pct * 100) {
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
	b = ST_ADD(rp, held_bytes, rec->raw_len);
	if (b + rec->raw_len > rp->cfg.max_inflight_bytes) {
		ST_SUB(rp, held_bytes, rec->raw_len);
		ST_SUB(rp, queued, 1);
		why = "dropped: memory limit";
		goto refuse;
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
		ST_SUB(rp, held_bytes, rec->raw_len);
		ST_SUB(rp, queued, 1);
		goto refuse;
	}
	/* one wake-up per batch, not per record: the thread clears the flag before it
	 * drains, so a record pushed after that always finds it clear */
	if (!__atomic_exchange_n(&rp->wake_pending, 1, __ATOMIC_ACQ_REL) &&
	    eventfd_write(rp->efd, 1) < 0)
		pr_debug("replay: eventfd write: %s\n", strerror(errno));
	return;
refuse:
	replay_count_error(rp, why);
	replay_set_error(rec, rp->ntargets ? rp->targets[0].url : NULL, why);
	rp->done(rp->ctx, rec);
}

/* ---- flows and items (replay thread) ---- */

static struct replay_flow *replay_flow_get(struct replay *rp, uint64_t id, bool create)
{
	struct replay_flow **pp = &rp->fht[st_mix64(id) & rp->fht_mask], *f;

	for (f = *pp; f; f = f->hnext)
		if (f->id == id)
			return f;
	if (!create)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->id = id;
	f->t = &rp->targets[rp->ntargets > 1 ? st_mix64(id ^ 0x5bd1e995) % (uint64_t)rp->ntargets : 0];
	f->hnext = *pp;
	*pp = f;
	return f;
}

static void replay_flow_maybe_free(struct replay *rp, struct replay_flow *f)
{
	struct replay_flow **pp;

	if (f->busy || f->ready || f->head)
		return;
	for (pp = &rp->fht[st_mix64(f->id) & rp->fht_mask]; *pp; pp = &(*pp)->hnext)
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	free(f);
}

static void replay_ready_push(struct replay_flow *f, bool front)
{
	struct replay_target *t = f->t;

	if (f->ready || f->busy || !f->head)
		return;
	f->ready = true;
	if (front) {
		f->rnext = t->rhead;
		t->rhead = f;
		if (!t->rtail)
			t->rtail = f;
	} else {
		f->rnext = NULL;
		if (t->rtail)
			t->rtail->rnext = f;
		else
			t->rhead = f;
		t->rtail = f;
	}
}

static struct replay_flow *replay_ready_pop(struct replay_target *t)
{
	struct replay_flow *f = t->rhead;

	if (!f)
		return NULL;
	t->rhead = f->rnext;
	if (!t->rhead)
		t->rtail = NULL;
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
static void replay_age_push_front(struct replay_target *t, struct replay_item *it)
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
static void replay_item_done(struct replay *rp, struct replay_item *it)
{
	struct st_record *rec = it->rec;

	ST_SUB(rp, held_bytes, it->bytes);
	buf_free(&it->head);
	free(it);
	rp->nheld--;
	rp->done(rp->ctx, rec);
}

static void replay_item_fail(struct replay *rp, struct replay_item *it, const char *why)
{
	replay_count_error(rp, why);
	replay_set_error(it->rec, it->flow ? it->flow->t->url : NULL, why);
	replay_item_done(rp, it);
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

static void replay_nop_cb(void *ctx, const char *data, size_t len)
{
}

static bool replay_allowed(struct replay *rp, const struct http1_request *req)
{
	char stack[2048], *s = stack;
	bool ok = true;
	int i;

	if (rp->cfg.nallow_method) {
		ok = false;
		for (i = 0; i < rp->cfg.nallow_method; i++)
			if (strlen(rp->cfg.allow_method[i]) == req->method_len &&
			    strncasecmp(rp->cfg.allow_method[i], req->method, req->method_len) == 0)
				ok = true;
		if (!ok)
			return false;
	}
	if (!rp->nallow && !rp->ndeny)
		return true;
	if (req->target_len >= sizeof(stack)) {
		s = malloc(req->target_len + 1);
		if (!s)
			return false;
	}
	memcpy(s, req->target, req->target_len);
	s[req->target_len] = '\0';
	if (rp->nallow) {
		ok = false;
		for (i = 0; i < rp->nallow && !ok; i++)
			ok = regexec(&rp->allow[i], s, 0, NULL, 0) == 0;
	}
	for (i = 0; ok && i < rp->ndeny; i++)
		if (regexec(&rp->deny[i], s, 0, NULL, 0) == 0)
			ok = false;
	if (s != stack)
		free(s);
	return ok;
}

static bool replay_name_is(const struct http1_header *h, const char *name, size_t len)
{
	return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

/* Rebuild the head with the rewrites; header lines are copied with their original
 * bytes (case, spacing, line ends) unless rewritten. */
static int replay_rewrite(struct replay *rp, struct replay_item *it, const struct replay_target *t,
			  const char *raw, size_t head_len, const struct http1_request *req)
{
	const char *end = raw + head_len, *blank, *line_end;
	bool done_hdr[REPLAY_MAX_HEADERS] = { 0 }, host_done = false;
	struct buf *b = &it->head;
	size_t i, blank_len;
	int k, err = 0;

	blank_len = head_len >= 2 && end[-2] == '\r' ? 2 : 1;
	blank = end - blank_len;
	line_end = req->num_headers ? req->headers[0].name : blank;
	if (t->prefix_len && req->target_len && req->target[0] == '/') {
		err |= buf_append(b, req->method, (size_t)(req->target - req->method));
		err |= buf_append(b, t->prefix, t->prefix_len);
		err |= buf_append(b, req->target, (size_t)(line_end - req->target));
	} else {
		err |= buf_append(b, req->method, (size_t)(line_end - req->method));
	}
	for (i = 0; i < req->num_headers; i++) {
		const struct http1_header *h = &req->headers[i];
		const char *next = i + 1 < req->num_headers ? req->headers[i + 1].name : blank;
		bool replaced = false;

		if (rp->cfg.host && replay_name_is(h, "host", 4)) {
			if (!host_done) {
				err |= buf_append(b, h->name, h->name_len);
				err |= buf_printf(b, ": %s\r\n", rp->cfg.host);
			}
			host_done = true;
			continue;
		}
		for (k = 0; k < rp->nhdrs && !replaced; k++) {
			if (!replay_name_is(h, rp->hdrs[k].line, rp->hdrs[k].name_len))
				continue;
			if (!done_hdr[k]) {
				err |= buf_printf(b, "%s\r\n", rp->hdrs[k].line);
				done_hdr[k] = true;
			}
			replaced = true;
		}
		if (!replaced)
			err |= buf_append(b, h->name, (size_t)(next - h->name));
	}
	if (rp->cfg.host && !host_done)
		err |= buf_printf(b, "Host: %s\r\n", rp->cfg.host);
	for (k = 0; k < rp->nhdrs; k++)
		if (!done_hdr[k])
			err |= buf_printf(b, "%s\r\n", rp->hdrs[k].line);
	err |= buf_append(b, blank, blank_len);
	return err ? -ENOMEM : 0;
}

/* Parse the captured request, decide whether it can be replayed, and build what to
 * send. Returns NULL with the record already handed on when it is not replayed. */
static struct replay_item *replay_prepare(struct replay *rp, struct st_record *rec)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	const struct http1_header *up, *conn;
	struct http1_request req;
	struct replay_item *it = NULL;
	struct replay_flow *f;
	struct http1_body body;
	uint64_t cl = 0;
	const char *skip = NULL;
	int hl, framing;
	ssize_t n;
	size_t end;

	it = calloc(1, sizeof(*it));
	if (!it) {
		ST_SUB(rp, held_bytes, rec->raw_len);
		replay_count_error(rp, "dropped: memory limit");
		replay_set_error(rec, NULL, "dropped: memory limit");
		rp->done(rp->ctx, rec);
		return NULL;
	}
	it->rec = rec;
	it->bytes = rec->raw_len;
	rp->nheld++;

	hl = http1_parse_request((const char *)rec->raw, rec->raw_len, &req, hdrs, ST_MAX_HEADERS);
	if (hl == HTTP1_NEED_MORE) {
		skip = "incomplete request";
		goto skip;
	}
	if (hl < 0) {
		skip = "malformed request";
		goto skip;
	}
	if (req.minor_version < 0) {
		skip = "http/0.9";
		goto skip;
	}
	if (req.method_len == 7 && strncasecmp(req.method, "CONNECT", 7) == 0) {
		skip = "connect";
		goto skip;
	}
	up = http1_find_header(hdrs, req.num_headers, "upgrade");
	conn = http1_find_header(hdrs, req.num_headers, "connection");
	if (up && conn && http1_has_token(conn->value, conn->value_len, "upgrade")) {
		skip = "upgrade";
		goto skip;
	}
	framing = http1_request_framing(&req, &cl);
	end = (size_t)hl;
	if (framing == HTTP1_BODY_LENGTH) {
		if (rec->raw_len - (size_t)hl < cl) {
			skip = "incomplete request";
			goto skip;
		}
		end += cl;
	} else if (framing == HTTP1_BODY_CHUNKED) {
		memset(&body, 0, sizeof(body));
		http1_body_init(&body, framing, 0);
		n = http1_body_feed(&body, (const char *)rec->raw + hl, rec->raw_len - (size_t)hl,
				    replay_nop_cb, NULL);
		if (n < 0) {
			skip = "malformed request";
			goto skip;
		}
		if (!body.done) {
			skip = "incomplete request";
			goto skip;
		}
		end += (size_t)n;
	} else if (framing != HTTP1_BODY_NONE) {
		skip = "malformed request";
		goto skip;
	}
	if (!replay_allowed(rp, &req)) {
		ST_ADD(rp, filtered, 1);
		skip = "filtered";
		goto out_skip;
	}
	snprintf(it->method, sizeof(it->method), "%.*s", (int)req.method_len, req.method);
	f = replay_flow_get(rp, rec->flow_id, true);
	if (!f) {
		replay_item_fail(rp, it, "dropped: memory limit");
		return NULL;
	}
	it->flow = f;
	if (rp->rewrite || f->t->prefix_len) {
		if (replay_rewrite(rp, it, f->t, (const char *)rec->raw, (size_t)hl, &req)) {
			replay_item_fail(rp, it, "dropped: memory limit");
			replay_flow_maybe_free(rp, f);
			return NULL;
		}
		it->body = rec->raw + hl;
		it->body_len = end - (size_t)hl;
	} else {
		it->body = rec->raw;
		it->body_len = end;
	}
	return it;
skip:
	ST_ADD(rp, unreplayable, 1);
out_skip:
	rec->replay_skip = skip;
	replay_item_done(rp, it);
	return NULL;
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
	replay_ready_push(f, false);
}

/* ---- connections ---- */

static const char *replay_errno_str(int err)
{
	switch (err) {
	case ETIMEDOUT:
		return "timeout";
	case ECONNREFUSED:
		return "connection refused";
	case ECONNRESET:
	case EPIPE:
	case ECONNABORTED:
		return "connection reset";
	case EHOSTUNREACH:
	case ENETUNREACH:
		return "host unreachable";
	default:
		return "connection error";
	}
}

static void replay_conn_close(struct replay *rp, struct replay_conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(rp->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		ST_SUB(rp, open_now, 1);
		c->t->nopen--;
	}
	c->fd = -1;
	c->state = RC_CLOSED;
	c->rlen = 0;
	c->nreq = 0;
	c->close_after = false;
}

static int replay_conn_events(struct replay *rp, struct replay_conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	return epoll_ctl(rp->epfd, EPOLL_CTL_MOD, c->fd, &e) ? -errno : 0;
}

/* The flow's request on c is finished (answered or failed): free the connection
 * for the next request and let the flow send its next one. */
static void replay_conn_release(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_flow *f = c->flow;

	c->it = NULL;
	c->flow = NULL;
	record_replay_free(c->res);
	c->res = NULL;
	ST_SUB(rp, in_flight, 1);
	if (c->fd >= 0 && !c->close_after && c->state == RC_BUSY) {
		c->state = RC_IDLE;
		c->idle_since = now;
		c->rlen = 0;
		replay_conn_events(rp, c, EPOLLIN);
	} else {
		replay_conn_close(rp, c);
	}
	if (f) {
		f->busy = false;
		replay_ready_push(f, false);
		replay_flow_maybe_free(rp, f);
	}
}

static void replay_conn_fail(struct replay *rp, struct replay_conn *c, const char *why, uint64_t now)
{
	struct replay_item *it = c->it;

	c->close_after = true;
	if (it)
		replay_item_fail(rp, it, why);
	replay_conn_release(rp, c, now);
}

static void replay_backoff(struct replay_target *t, const char *why, uint64_t now)
{
	t->down_err = why;
	/* one step per attempt round: the pool's parallel connects fail together */
	if (now < t->retry_at)
		return;
	t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : REPLAY_BACKOFF_MIN_MS;
	if (t->backoff_ms > REPLAY_BACKOFF_MAX_MS)
		t->backoff_ms = REPLAY_BACKOFF_MAX_MS;
	t->retry_at = now + (uint64_t)t->backoff_ms * 1000000ull;
}

static int replay_send(struct replay *rp, struct replay_conn *c, uint64_t now);

static int replay_connect(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_target *t = c->t;
	struct epoll_event e = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
	int fd, one = 1, err;

	fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&t->addr, t->alen) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	if (epoll_ctl(rp->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	c->fd = fd;
	c->state = RC_CONNECTING;
	c->deadline = now + (uint64_t)rp->cfg.connect_timeout_ms * 1000000ull;
	c->rlen = 0;
	c->nreq = 0;
	c->close_after = false;
	if (c->used)
		ST_ADD(rp, reconnects, 1);
	c->used = true;
	t->nopen++;
	/* only this thread changes open_now, so the peak needs no compare-exchange */
	if (ST_ADD(rp, open_now, 1) + 1 > ST_GET(rp, open_peak))
		__atomic_store_n(&rp->st.open_peak, ST_GET(rp, open_now), __ATOMIC_RELAXED);
	return 0;
}

static void replay_connected(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr) {
		const char *why = replay_errno_str(soerr);

		ST_ADD(rp, connect_failures, 1);
		replay_backoff(c->t, why, now);
		replay_conn_fail(rp, c, why, now);
		return;
	}
	ST_ADD(rp, opened, 1);
	c->t->backoff_ms = 0;
	c->t->down_err = NULL;
	c->state = RC_BUSY;
	/* the response clock starts when the request can be sent */
	c->t_start = now;
	c->deadline = now + (uint64_t)rp->cfg.response_timeout_ms * 1000000ull;
	replay_send(rp, c, now);
}

static void replay_body_cb(void *ctx, const char *data, size_t len)
{
	struct replay_conn *c = ctx;

	/* a refused allocation still counts the bytes in body_bytes: the diff then sees
	 * a cut body, which is what it is */
	if (c->res)
		(void)record_msg_body_append(&c->res->resp, data, len, c->body_limit);
}

static void replay_complete(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_item *it = c->it;
	struct st_record *rec = it->rec;
	struct st_diff *d;

	/* answered before the whole request went out (e.g. 413): the stream is out of step */
	if (c->sent < it->head.len + it->body_len)
		c->close_after = true;
	c->res->duration_ns = now - c->t_start;
	c->res->resp.complete = true;
	c->res->resp.ts_last_ns = now;
	record_replay_free(rec->replay);
	rec->replay = c->res;
	c->res = NULL;
	ST_ADD(rp, succeeded, 1);
	d = diff_compare(rec, &rp->dcfg);
	if (d) {
		record_diff_free(rec->diff);
		rec->diff = d;
		if (d->match)
			ST_ADD(rp, diff_match, 1);
		else
			ST_ADD(rp, diff_mismatch, 1);
	}
	c->it = NULL;
	replay_item_done(rp, it);
	c->nreq++;
	replay_conn_release(rp, c, now);
}

/* Parse what is in the read buffer. Returns 1 when the response completed, 0 when
 * more bytes are needed, or a negative value after failing the request. */
static int replay_parse(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	const struct http1_header *h;
	uint64_t cl = 0;
	size_t used = 0;
	ssize_t n;
	int r;

	for (;;) {
		if (c->phase == RP_HEAD) {
			r = http1_parse_response(c->rbuf + used, c->rlen - used, &resp, hdrs, ST_MAX_HEADERS);
			if (r == HTTP1_NEED_MORE) {
				if (c->rlen - used >= REPLAY_HEAD_MAX) {
					replay_conn_fail(rp, c, "malformed response", now);
					return -1;
				}
				break;
			}
			if (r < 0) {
				replay_conn_fail(rp, c, "malformed response", now);
				return -1;
			}
			if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
				used += (size_t)r;   /* interim response (100 Continue, 103) */
				continue;
			}
			if (record_msg_set_head(&c->res->resp, c->rbuf + used, (size_t)r, hdrs,
						resp.num_headers)) {
				replay_conn_fail(rp, c, "dropped: memory limit", now);
				return -1;
			}
			c->res->status_code = resp.status;
			c->res->resp.ts_first_ns = now;
			c->framing = http1_response_framing(&resp, c->it->method, strlen(c->it->method), &cl);
			if (c->framing == HTTP1_BODY_TUNNEL) {
				replay_conn_fail(rp, c, "unexpected protocol switch", now);
				return -1;
			}
			if (c->framing < 0) {
				replay_conn_fail(rp, c, "malformed response", now);
				return -1;
			}
			h = http1_find_header(hdrs, resp.num_headers, "connection");
			if (h && http1_has_token(h->value, h->value_len, "close"))
				c->close_after = true;
			if (resp.minor_version == 0 &&
			    !(h && http1_has_token(h->value, h->value_len, "keep-alive")))
				c->close_after = true;
			if (c->framing == HTTP1_BODY_CLOSE)
				c->close_after = true;
			c->res->resp.chunked = c->framing == HTTP1_BODY_CHUNKED;
			c->res->resp.wire_bytes = (uint64_t)r;
			memset(&c->body, 0, sizeof(c->body));
			http1_body_init(&c->body, c->framing, cl);
			used += (size_t)r;
			c->phase = RP_BODY;
		}
		if (c->framing == HTTP1_BODY_NONE ||
		    (c->framing == HTTP1_BODY_LENGTH && cl == 0 && c->body.data_bytes == 0 &&
		     c->body.remaining == 0))
			c->body.done = 1;
		if (!c->body.done && used < c->rlen) {
			n = http1_body_feed(&c->body, c->rbuf + used, c->rlen - used, replay_body_cb, c);
			if (n < 0) {
				replay_conn_fail(rp, c, "malformed response", now);
				return -1;
			}
			used += (size_t)n;
			c->res->resp.wire_bytes += (uint64_t)n;
		}
		if (!c->body.done)
			break;
		if (used < c->rlen)
			c->close_after = true;   /* bytes nobody asked for: the stream is out of step */
		c->rlen = 0;
		replay_complete(rp, c, now);
		return 1;
	}
	if (used) {
		memmove(c->rbuf, c->rbuf + used, c->rlen - used);
		c->rlen -= used;
	}
	return 0;
}

static void replay_eof(struct replay *rp, struct replay_conn *c, int err, uint64_t now)
{
	struct replay_item *it = c->it;
	bool nothing = c->phase == RP_HEAD && c->rlen == 0 && c->res &&
		       c->res->resp.wire_bytes == 0;
	struct replay_flow *f;

	if (!it) {
		replay_conn_close(rp, c);
		return;
	}
	if (c->phase == RP_BODY && !err && http1_body_eof(&c->body) == 0) {
		c->close_after = true;
		replay_complete(rp, c, now);
		return;
	}
	if (nothing && c->nreq > 0 && !it->retried) {
		/* the server closed an idle keep-alive connection as we sent: retry once */
		ST_ADD(rp, retries, 1);
		it->retried = 1;
		f = c->flow;
		c->it = NULL;
		c->close_after = true;
		it->fnext = f->head;
		f->head = it;
		if (!f->tail)
			f->tail = it;
		replay_age_push_front(f->t, it);
		ST_ADD(rp, queued, 1);
		c->flow = NULL;
		replay_conn_release(rp, c, now);
		f->busy = false;
		replay_ready_push(f, true);
		return;
	}
	if (c->phase == RP_HEAD && c->rlen > 0)
		replay_conn_fail(rp, c, "malformed response", now);
	else
		replay_conn_fail(rp, c, err ? replay_errno_str(err) : "connection reset", now);
}

static void replay_readable(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	ssize_t n;
	char *p;

	for (;;) {
		if (c->rcap - c->rlen < REPLAY_READ_CHUNK / 2) {
			size_t cap = c->rcap ? c->rcap * 2 : REPLAY_READ_CHUNK;

			if (cap > REPLAY_HEAD_MAX + REPLAY_READ_CHUNK)
				cap = REPLAY_HEAD_MAX + REPLAY_READ_CHUNK;
			if (cap <= c->rcap) {
				/* replay_parse ran after every read and consumes body bytes, so
				 * a full buffer is a head past REPLAY_HEAD_MAX */
				replay_conn_fail(rp, c, "malformed response", now);
				return;
			}
			p = realloc(c->rbuf, cap);
			if (!p) {
				replay_conn_fail(rp, c, "dropped: memory limit", now);
				return;
			}
			c->rbuf = p;
			c->rcap = cap;
		}
		n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (c->state == RC_IDLE) {
			/* an idle connection is closed or sent bytes nobody asked for */
			replay_conn_close(rp, c);
			return;
		}
		if (n <= 0) {
			replay_eof(rp, c, n < 0 ? errno : 0, now);
			return;
		}
		c->rlen += (size_t)n;
		if (replay_parse(rp, c, now) != 0)
			return;
	}
}

static int replay_send(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_item *it = c->it;
	size_t hl = it->head.len, total = hl + it->body_len;
	struct msghdr msg = { 0 };
	struct iovec iov[2];
	int niov;
	ssize_t n;

	while (c->sent < total) {
		niov = 0;
		if (c->sent < hl) {
			iov[niov].iov_base = it->head.data + c->sent;
			iov[niov++].iov_len = hl - c->sent;
			iov[niov].iov_base = (void *)it->body;
			iov[niov++].iov_len = it->body_len;
		} else {
			iov[niov].iov_base = (void *)(it->body + (c->sent - hl));
			iov[niov++].iov_len = total - c->sent;
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)niov;
		/* MSG_NOSIGNAL: a serverB that went away must not SIGPIPE the agent */
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return replay_conn_events(rp, c, EPOLLIN | EPOLLOUT);
		if (n < 0) {
			int err = errno;

			/* a reused connection the server already closed: same as EOF */
			replay_eof(rp, c, c->nreq > 0 && c->sent == 0 ? 0 : err, now);
			return -err;
		}
		c->sent += (size_t)n;
	}
	return replay_conn_events(rp, c, EPOLLIN);
}

/* Put it on c and start sending (or connecting). */
static void replay_assign(struct replay *rp, struct replay_conn *c, struct replay_item *it,
			  uint64_t now)
{
	struct replay_flow *f = it->flow;
	int err;

	ST_SUB(rp, queued, 1);
	ST_ADD(rp, in_flight, 1);
	if (!it->retried)
		ST_ADD(rp, replayed, 1);
	f->busy = true;
	f->last = c;
	c->it = it;
	c->flow = f;
	c->sent = 0;
	c->phase = RP_HEAD;
	c->rlen = 0;
	c->t_start = now;
	c->deadline = now + (uint64_t)rp->cfg.response_timeout_ms * 1000000ull;
	c->res = calloc(1, sizeof(*c->res));
	if (c->res)
		c->res->target = strdup(c->t->url);
	if (!c->res || !c->res->target) {
		replay_conn_fail(rp, c, "dropped: memory limit", now);
		return;
	}
	c->body_limit = rp->cfg.body_limit;
	if (c->state == RC_CLOSED) {
		err = replay_connect(rp, c, now);
		if (err) {
			const char *why = replay_errno_str(-err);

			ST_ADD(rp, connect_failures, 1);
			replay_backoff(c->t, why, now);
			replay_conn_fail(rp, c, why, now);
		}
		return;
	}
	c->state = RC_BUSY;
	replay_send(rp, c, now);
}

/* ---- scheduling ---- */

static struct replay_conn *replay_pick_conn(struct replay *rp, struct replay_target *t,
					    struct replay_flow *f, uint64_t now)
{
	struct replay_conn *closed = NULL;
	int i;

	if (f && f->last && f->last->state == RC_IDLE && f->last->t == t)
		return f->last;
	for (i = 0; i < t->nconns; i++) {
		if (t->conns[i].state == RC_IDLE)
			return &t->conns[i];
		if (t->conns[i].state == RC_CLOSED && !closed)
			closed = &t->conns[i];
	}
	if (closed && now >= t->retry_at)
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

static void replay_dispatch(struct replay *rp, uint64_t now)
{
	int i;

	for (i = 0; i < rp->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];
		struct replay_flow *f;
		struct replay_conn *c;
		struct replay_item *it;

		replay_expire(rp, t, now);
		while (t->rhead) {
			f = t->rhead;
			if (!f->head) {
				replay_ready_pop(t);
				replay_flow_maybe_free(rp, f);
				continue;
			}
			c = replay_pick_conn(rp, t, f, now);
			if (!c)
				break;
			if (!replay_take_token(rp, now))
				return;
			replay_ready_pop(t);
			it = replay_flow_take(f);
			replay_assign(rp, c, it, now);
		}
	}
}

static void replay_timeouts(struct replay *rp, uint64_t now)
{
	int i, j;

	for (i = 0; i < rp->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];

		for (j = 0; j < t->nconns; j++) {
			struct replay_conn *c = &t->conns[j];

			if (c->state == RC_CONNECTING && now >= c->deadline) {
				ST_ADD(rp, connect_failures, 1);
				replay_backoff(t, "timeout", now);
				replay_conn_fail(rp, c, "timeout", now);
			} else if (c->state == RC_BUSY && now >= c->deadline) {
				replay_conn_fail(rp, c, "timeout", now);
			} else if (c->state == RC_IDLE &&
				   now - c->idle_since >= (uint64_t)REPLAY_IDLE_MS * 1000000ull) {
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

		for (j = 0; j < t->nconns; j++) {
			struct replay_conn *c = &t->conns[j];

			if ((c->state == RC_CONNECTING || c->state == RC_BUSY) && c->deadline < next)
				next = c->deadline;
			if (c->state == RC_IDLE &&
			    c->idle_since + (uint64_t)REPLAY_IDLE_MS * 1000000ull < next)
				next = c->idle_since + (uint64_t)REPLAY_IDLE_MS * 1000000ull;
		}
		if (t->rhead && t->retry_at > now && t->retry_at < next)
			next = t->retry_at;
		if (t->ahead && rp->cfg.rate <= 0 && t->ahead->t_enq + wait < next)
			next = t->ahead->t_enq + wait;
		if (t->rhead && rp->cfg.rate > 0 && rp->tokens < 1) {
			uint64_t tok = now + (uint64_t)((1 - rp->tokens) / rp->cfg.rate * 1e9) + 1;

			if (tok < next)
				next = tok;
		}
	}
	if (rp->drain_deadline && rp->drain_deadline < next)
		next = rp->drain_deadline;
	/* never sleep unboundedly: a missed wake-up costs at most this long */
	if (next == UINT64_MAX || next > now + 100000000ull)
		next = now + 100000000ull;
	if (next <= now)
		return 0;
	/* round up so we do not wake just before a deadline and spin */
	return (int)((next - now + 999999) / 1000000 > 1000 ? 1000 : (next - now + 999999) / 1000000);
}

static void replay_drain_queue(struct replay *rp, uint64_t now, bool *closed)
{
	void *batch[REPLAY_BATCH];
	eventfd_t v;
	int n, i;

	/* Consume the wake-up first, then clear the flag, then pop. Clearing first
	 * let a producer set the flag and write the eventfd in between; reading the
	 * eventfd then swallowed that write, and a record pushed after the last pop
	 * found the flag set and never woke the thread again (a stalled queue under
	 * sustained load). */
	eventfd_read(rp->efd, &v);
	__atomic_store_n(&rp->wake_pending, 0, __ATOMIC_SEQ_CST);
	for (;;) {
		n = bq_pop(&rp->q, batch, REPLAY_BATCH, 0);
		if (n == -EPIPE) {
			*closed = true;
			return;
		}
		if (n <= 0)
			return;
		for (i = 0; i < n; i++)
			replay_intake(rp, batch[i], now);
	}
}

static void *replay_thread(void *arg)
{
	struct replay *rp = arg;
	struct epoll_event evs[64];
	bool closed = false;
	uint64_t now;
	int n, i;

	for (;;) {
		now = st_mono_ns();
		n = epoll_wait(rp->epfd, evs, 64, replay_next_timeout(rp, now));
		now = st_mono_ns();
		for (i = 0; i < n; i++) {
			struct replay_conn *c = evs[i].data.ptr;

			if (!c) {
				replay_drain_queue(rp, now, &closed);
				continue;
			}
			if (c->fd < 0)
				continue;
			if (c->state == RC_CONNECTING) {
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					replay_connected(rp, c, now);
				continue;
			}
			if (c->state == RC_BUSY && c->it && (evs[i].events & EPOLLOUT) &&
			    replay_send(rp, c, now) < 0)
				continue;
			if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
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
		}
		replay_timeouts(rp, now);
		replay_dispatch(rp, now);
		if (closed && rp->nheld == 0)
			break;
	}
	return NULL;
}

/* ---- start / stop ---- */

static int replay_parse_url(struct replay_target *t, const char *url)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char host[256], port[8] = "80";
	const char *p, *hend, *slash;
	size_t hl;
	int err;

	if (strncasecmp(url, "http://", 7) != 0) {
		pr_warn("replay: target %s: only http:// is supported\n", url);
		return -EINVAL;
	}
	p = url + 7;
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(slash - p));
		if (!hend) {
			pr_warn("replay: target %s: bad ipv6 address\n", url);
			return -EINVAL;
		}
		hl = (size_t)(hend - p - 1);
		p++;
		hend++;
	} else {
		hend = memchr(p, ':', (size_t)(slash - p));
		if (!hend)
			hend = slash;
		hl = (size_t)(hend - p);
	}
	if (!hl || hl >= sizeof(host)) {
		pr_warn("replay: target %s: bad host\n", url);
		return -EINVAL;
	}
	memcpy(host, p, hl);
	host[hl] = '\0';
	if (*hend == ':') {
		size_t pl = (size_t)(slash - hend - 1);
		char *e;
		long v;

		if (!pl || pl >= sizeof(port)) {
			pr_warn("replay: target %s: bad port\n", url);
			return -EINVAL;
		}
		memcpy(port, hend + 1, pl);
		port[pl] = '\0';
		v = strtol(port, &e, 10);
		if (*e || v < 1 || v > 65535) {
			pr_warn("replay: target %s: bad port\n", url);
			return -EINVAL;
		}
	} else if (hend != slash) {
		pr_warn("replay: target %s: bad address\n", url);
		return -EINVAL;
	}
	t->prefix_len = strlen(slash);
	while (t->prefix_len && slash[t->prefix_len - 1] == '/')
		t->prefix_len--;
	if (t->prefix_len >= sizeof(t->prefix)) {
		pr_warn("replay: target %s: path too long\n", url);
		return -EINVAL;
	}
	memcpy(t->prefix, slash, t->prefix_len);
	err = getaddrinfo(host, port, &hints, &res);
	if (err || !res) {
		pr_warn("replay: target %s: cannot resolve %s: %s\n", url, host, gai_strerror(err));
		return -EINVAL;
	}
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->alen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
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

		for (j = 0; t->conns && j < t->nconns; j++) {
			if (t->conns[j].fd >= 0)
				close(t->conns[j].fd);
			free(t->conns[j].rbuf);
			record_replay_free(t->conns[j].res);
		}
		free(t->conns);
	}
	for (i = 0; i < rp->nallow; i++)
		regfree(&rp->allow[i]);
	for (i = 0; i < rp->ndeny; i++)
		regfree(&rp->deny[i]);
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
	if (rp->efd >= 0)
		close(rp->efd);
	if (rp->epfd >= 0)
		close(rp->epfd);
	bq_destroy(&rp->q);
	free(rp);
}

static int replay_compile(regex_t *re, const char *pat, const char *opt)
{
	char msg[128];
	int err = regcomp(re, pat, REG_EXTENDED | REG_NOSUB);

	if (err) {
		regerror(err, re, msg, sizeof(msg));
		pr_warn("replay: %s '%s': %s\n", opt, pat, msg);
		return -EINVAL;
	}
	return 0;
}

int replay_start(struct replay **out, const struct replay_cfg *cfg, replay_done_cb done, void *ctx)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };
	struct replay *rp;
	size_t buckets;
	int i, j, err;

	*out = NULL;
	if (cfg->ntargets < 1 || cfg->ntargets > REPLAY_MAX_TARGETS) {
		pr_warn("replay: need 1..%d targets\n", REPLAY_MAX_TARGETS);
		return -EINVAL;
	}
	if (cfg->connections < 1 || cfg->connect_timeout_ms < 1 || cfg->response_timeout_ms < 1 ||
	    cfg->queue_cap < 1 || cfg->rate < 0 || cfg->sample_pct < 0 || cfg->sample_pct > 100) {
		pr_warn("replay: bad connections, timeout, queue, rate or sample value\n");
		return -EINVAL;
	}
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return -ENOMEM;
	rp->efd = rp->epfd = -1;
	rp->cfg = *cfg;
	if (!rp->cfg.max_inflight_bytes)
		rp->cfg.max_inflight_bytes = SIZE_MAX;
	rp->done = done;
	rp->ctx = ctx;
	for (i = 0; i < cfg->ntargets; i++) {
		struct replay_target *t = &rp->targets[i];

		rp->ntargets++;
		t->url = (char *)cfg->targets[i];
		err = replay_parse_url(t, cfg->targets[i]);
		if (err)
			goto fail;
		t->nconns = cfg->connections;
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
	for (i = 0; i < cfg->nheaders && i < REPLAY_MAX_HEADERS; i++) {
		const char *l = cfg->headers[i], *colon = strchr(l, ':');

		if (!colon || colon == l || strpbrk(l, "\r\n") || memchr(l, ' ', (size_t)(colon - l))) {
			pr_warn("replay: --replay-header '%s': want 'Name: value'\n", l);
			err = -EINVAL;
			goto fail;
		}
		rp->hdrs[i].line = l;
		rp->hdrs[i].name_len = (size_t)(colon - l);
		rp->nhdrs++;
	}
	if (cfg->host && strpbrk(cfg->host, "\r\n")) {
		pr_warn("replay: --replay-host: bad value\n");
		err = -EINVAL;
		goto fail;
	}
	rp->rewrite = cfg->host || rp->nhdrs;
	for (i = 0; i < cfg->nallow_url && i < REPLAY_MAX_FILTERS; i++, rp->nallow++) {
		err = replay_compile(&rp->allow[i], cfg->allow_url[i], "--allow-url");
		if (err)
			goto fail;
	}
	for (i = 0; i < cfg->ndeny_url && i < REPLAY_MAX_FILTERS; i++, rp->ndeny++) {
		err = replay_compile(&rp->deny[i], cfg->deny_url[i], "--deny-url");
		if (err)
			goto fail;
	}
	if (cfg->ndiff_ignore > 0) {
		for (i = 0; i < cfg->ndiff_ignore && i < 64; i++)
			rp->ignore[i] = cfg->diff_ignore[i];
		rp->ignore[i] = NULL;
		rp->dcfg.ignore = rp->ignore;
	}
	rp->dcfg.max_paths = cfg->diff_max_paths;
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
	rp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (rp->efd < 0 || rp->epfd < 0 || epoll_ctl(rp->epfd, EPOLL_CTL_ADD, rp->efd, &e) < 0) {
		err = -errno;
		pr_warn("replay: epoll setup: %s\n", strerror(-err));
		goto fail;
	}
	err = -pthread_create(&rp->thr, NULL, replay_thread, rp);
	if (err) {
		pr_warn("replay: cannot start thread: %s\n", strerror(-err));
		goto fail;
	}
	rp->thr_started = true;
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
	__atomic_store_n(&rp->stopping, 1, __ATOMIC_RELEASE);
	bq_close(&rp->q);
	if (eventfd_write(rp->efd, 1) < 0)
		pr_debug("replay: eventfd write: %s\n", strerror(errno));
	if (rp->thr_started)
		pthread_join(rp->thr, NULL);
	rp->thr_started = false;
}

void replay_print_stats(struct replay *rp, FILE *f)
{
	if (!rp)
		return;
	fprintf(f, "replay: submitted=%llu replayed=%llu succeeded=%llu in_flight=%llu queued=%llu "
		"held_bytes=%llu retries=%llu\n",
		(unsigned long long)ST_GET(rp, submitted), (unsigned long long)ST_GET(rp, replayed),
		(unsigned long long)ST_GET(rp, succeeded), (unsigned long long)ST_GET(rp, in_flight),
		(unsigned long long)ST_GET(rp, queued), (unsigned long long)ST_GET(rp, held_bytes),
		(unsigned long long)ST_GET(rp, retries));
	fprintf(f, "replay: failed timeout=%llu connection_refused=%llu connection_reset=%llu "
		"malformed_response=%llu other=%llu\n",
		(unsigned long long)ST_GET(rp, f_timeout), (unsigned long long)ST_GET(rp, f_refused),
		(unsigned long long)ST_GET(rp, f_reset), (unsigned long long)ST_GET(rp, f_malformed),
		(unsigned long long)ST_GET(rp, f_other));
	fprintf(f, "replay: dropped queue_full=%llu memory_limit=%llu shutting_down=%llu\n",
		(unsigned long long)ST_GET(rp, d_queue), (unsigned long long)ST_GET(rp, d_memory),
		(unsigned long long)ST_GET(rp, d_shutdown));
	fprintf(f, "replay: skipped filtered=%llu sampled_out=%llu unreplayable=%llu\n",
		(unsigned long long)ST_GET(rp, filtered), (unsigned long long)ST_GET(rp, sampled_out),
		(unsigned long long)ST_GET(rp, unreplayable));
	fprintf(f, "replay: connections opened=%llu reconnects=%llu connect_failures=%llu open=%llu "
		"peak_open=%llu\n",
		(unsigned long long)ST_GET(rp, opened), (unsigned long long)ST_GET(rp, reconnects),
		(unsigned long long)ST_GET(rp, connect_failures), (unsigned long long)ST_GET(rp, open_now),
		(unsigned long long)ST_GET(rp, open_peak));
	fprintf(f, "replay: diff match=%llu mismatch=%llu\n",
		(unsigned long long)ST_GET(rp, diff_match), (unsigned long long)ST_GET(rp, diff_mismatch));
}
