/*
 * Pairing model. Each direction of a connection runs its own parser: requests
 * (client -> server) and responses (server -> client). A request gets a record as
 * soon as its head parses and joins the connection's pending list; responses are
 * matched to the oldest request that has none yet (HTTP/1.x answers in order, also
 * when pipelined). 1xx responses other than 101 are informational and skipped.
 * Records leave in request order, once both messages are whole, or when the
 * connection ends (flagged incomplete / no_response).
 *
 * Loss handling. A gap inside a Content-Length body only shortens the body (the
 * record is flagged); a gap anywhere else, or a malformed message, puts that
 * direction into resync: bytes are skipped until something that looks like the
 * start of a message (a known method, or "HTTP/1." for responses) at a line start;
 * the first byte after a gap counts as a line start (the gap may end on a boundary).
 *
 * Pairing never guesses. Reassembly declares a gap the peer has acknowledged before
 * the acknowledging segment's data, so when a request arrives the responses the
 * client had already received are accounted for; a gap the client acknowledged comes
 * after every request it had sent before (reassembly holds it while those requests
 * sit behind a hole), so the requests it may answer are all pending. A response-side
 * gap that may hold the answers of more than one unanswered request, a request-side
 * gap (it hides an unknown number of requests; their answers are recorded as
 * orphans) followed by another request before one of those answers came, or a
 * --max-pending eviction of a request whose answer's framing depends on it (HEAD,
 * CONNECT, Upgrade) makes the connection unpairable: its unanswered and later
 * requests are recorded without a response, flagged, and responses are no longer
 * read. Requests evicted by --max-pending otherwise keep their places: their answers
 * are read and dropped.
 *
 * Upgrade / CONNECT: the request direction holds its bytes until the response
 * decides (101 or 2xx to CONNECT: tunnel, parsing stops; anything else: the held
 * bytes are parsed as the next request).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "exchange.h"
#include "list.h"
#include "util.h"
#include "log.h"

enum xstate {
	X_HEAD = 0,      /* waiting for / accumulating a message head */
	X_BODY,          /* streaming a body */
	X_RESYNC,        /* skipping to the next message start */
	X_HOLD,          /* request side: waiting for the answer to an Upgrade/CONNECT */
	X_TUNNEL,        /* protocol switched: ignore everything */
};

struct xflow;

struct xdir {
	struct xflow *xf;            /* owner */
	enum xstate state;
	struct buf head;             /* partial head (or held bytes in X_HOLD) */
	uint64_t head_ts;            /* capture time of the head's first byte */
	struct http1_body body;
	struct st_record *cur;       /* record whose message is in progress */
	int at_line_start;           /* resync: previous byte was '\n' */
	int resync_glued;            /* resync skipped what may be a response start not at a
				      * line start (an answer glued to a body's end): how many
				      * answers the skipped bytes held is unknown */
};

struct xflow {
	struct xdir dir[2];
	struct st_record **pending;  /* requests in order, oldest first */
	size_t npending;
	size_t nanswered;            /* pending[0..nanswered) have a response (started) */
	uint64_t skip_resp;          /* answers still owed to requests evicted by --max-pending;
				      * they come before pending[nanswered]'s */
	int unpairable;              /* responses can no longer be paired (see top) */
	int lost_req;                /* a request-side gap hid requests after pending[]:
				      * 1 = their answers are due next, 2 = one has come */
	uint32_t next_index;
	int mid_stream;
	int evicted;                 /* its holdings were evicted: the rest is ignored */
	struct reasm_flow *f;
	size_t pending_cap;          /* slots allocated in pending (grows to max_pending) */
	uint64_t held;               /* this connection's share of held_bytes */
	uint64_t head_charged;       /* head buffer capacity included in held */
	struct list_node holder;     /* on exchange.holders while held > 0, oldest first */
};

struct exchange {
	struct exchange_cfg cfg;
	exchange_emit_cb emit;
	void *ctx;
	struct list_node holders;    /* connections holding bytes, by when they started */
	struct exchange_stats st;
};

/* A head buffer larger than this is freed once its head is parsed, so a connection
 * that once sent a large head does not keep its storage. */
#define X_HEAD_KEEP 4096
#define X_PENDING_MIN 4

static const char x_why_budget[] = "memory budget";
static const char x_why_conn[] = "connection memory cap";
static const char x_why_table[] = "flow table full";

static const char *const x_methods[] = {
	"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
	"PROPFIND ", "PROPPATCH ", "MKCOL ", "COPY ", "MOVE ", "LOCK ", "UNLOCK ", "SEARCH ", NULL,
};

void exchange_cfg_default(struct exchange_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->body_limit = 64 * 1024;
	cfg->max_head = 64 * 1024;
	cfg->max_headers = ST_MAX_HEADERS;
	cfg->max_pending = 64;
	cfg->replay_max = 16u << 20;
	cfg->max_held_bytes = 16u << 20;
	cfg->max_conn_bytes = 8u << 20;
}

struct exchange *exchange_new(const struct exchange_cfg *cfg, exchange_emit_cb emit, void *ctx)
{
	struct exchange *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->cfg = *cfg;
	if (!x->cfg.max_headers || x->cfg.max_headers > ST_MAX_HEADERS)
		x->cfg.max_headers = ST_MAX_HEADERS;
	if (!x->cfg.max_conn_bytes || x->cfg.max_conn_bytes > x->cfg.max_held_bytes)
		x->cfg.max_conn_bytes = x->cfg.max_held_bytes;
	x->emit = emit;
	x->ctx = ctx;
	list_init(&x->holders);
	return x;
}

void exchange_free(struct exchange *x)
{
	free(x);
}

void exchange_get_stats(const struct exchange *x, struct exchange_stats *st)
{
	*st = x->st;
}

/* Every byte held for a connection goes through here: records waiting in pending
 * (the struct itself, head copies, stored bodies, raw copies), the pending array and
 * the head buffers (partial heads, Upgrade/CONNECT hold). */
static void x_held(struct exchange *x, struct xflow *xf, int64_t delta)
{
	x->st.held_bytes += (uint64_t)delta;
	if (x->st.held_bytes > x->st.held_bytes_peak)
		x->st.held_bytes_peak = x->st.held_bytes;
	xf->held += (uint64_t)delta;
	if (xf->held && list_empty(&xf->holder))
		list_add_tail(&x->holders, &xf->holder);
	else if (!xf->held && !list_empty(&xf->holder))
		list_del(&xf->holder);
}

/* Bring the charge for both head buffers up to date (their storage changes inside
 * the parser, which only sees struct buf); drop storage a finished large head left. */
static void x_sync_heads(struct exchange *x, struct xflow *xf)
{
	uint64_t cap = 0;
	int i;

	for (i = 0; i < 2; i++) {
		struct buf *b = &xf->dir[i].head;

		if (!b->len && b->cap > X_HEAD_KEEP)
			buf_free(b);
		cap += b->cap;
	}
	if (cap != xf->head_charged) {
		x_held(x, xf, (int64_t)(cap - xf->head_charged));
		xf->head_charged = cap;
	}
}

static void x_evict(struct exchange *x, struct xflow *xf, const char *why);
static void x_enforce(struct exchange *x, struct xflow *xf);

/* Room for need more bytes on xf under max_held_bytes: evict the connections that
 * have held bytes longest (other than xf, which is being served) until it fits.
 * Returns 1 if it fits. */
static int x_make_room(struct exchange *x, struct xflow *xf, uint64_t need)
{
	while (x->st.held_bytes + need > x->cfg.max_held_bytes) {
		struct list_node *n = x->holders.next;
		struct xflow *v;

		if (n != &x->holders && list_entry(n, struct xflow, holder) == xf)
			n = n->next;
		if (n == &x->holders)
			return 0;
		v = list_entry(n, struct xflow, holder);
		x->st.evicted_budget++;
		x_evict(x, v, x_why_budget);
		/* an evicted connection holds nothing; never pick it again */
		if (!list_empty(&v->holder)) {
			pr_warn("exchange: an evicted connection still holds %llu bytes\n",
				(unsigned long long)v->held);
			list_del(&v->holder);
		}
	}
	return 1;
}

/* Room for need more bytes on xf under both limits, without evicting xf itself. */
static int x_room(struct exchange *x, struct xflow *xf, uint64_t need)
{
	if (xf->held + need > x->cfg.max_conn_bytes)
		return 0;
	return x_make_room(x, xf, need);
}

/* Append to a head buffer, evicting older holders first if its storage must grow. */
static void x_head_append(struct exchange *x, struct xdir *d, const void *p, size_t n)
{
	size_t need = d->head.len + n + 1, cap = d->head.cap ? d->head.cap : 256;

	if (need > d->head.cap) {
		while (cap < need)
			cap *= 2;
		x_make_room(x, d->xf, cap - d->head.cap);
	}
	buf_append(&d->head, p, n);
	x_sync_heads(x, d->xf);
}

static struct st_record *x_record_alloc(struct exchange *x, struct reasm_flow *f, struct xflow *xf,
					 int held)
{
	struct st_record *r = record_new();

	if (!r)
		return NULL;
	/* held from now until x_emit */
	if (held)
		x_held(x, xf, (int64_t)sizeof(*r));
	r->flow_id = f->flow_id;
	r->index = xf->next_index++;
	r->family = f->key.family;
	r->source = f->key.source;
	memcpy(r->caddr, f->key.caddr, sizeof(r->caddr));
	memcpy(r->saddr, f->key.saddr, sizeof(r->saddr));
	r->cport = f->key.cport;
	r->sport = f->key.sport;
	r->clock_offset_ns = x->cfg.clock_offset_ns;
	if (xf->mid_stream)
		r->cap_flags |= ST_CAP_MID_STREAM;
	record_event_id(f->flow_id, r->index, r->event_id);
	return r;
}

/* A record that joins pending: the array grows on demand (a SYN flood's connections
 * never need one), and room is made by evicting the oldest holders. */
static struct st_record *x_new_record(struct exchange *x, struct reasm_flow *f, struct xflow *xf)
{
	if (xf->npending == xf->pending_cap && xf->pending_cap < x->cfg.max_pending) {
		size_t cap = xf->pending_cap ? xf->pending_cap * 2 : X_PENDING_MIN;
		struct st_record **p;

		if (cap > x->cfg.max_pending)
			cap = x->cfg.max_pending;
		x_make_room(x, xf, (cap - xf->pending_cap) * sizeof(*p) + sizeof(struct st_record));
		p = realloc(xf->pending, cap * sizeof(*p));
		if (!p)
			return NULL;
		x_held(x, xf, (int64_t)((cap - xf->pending_cap) * sizeof(*p)));
		xf->pending = p;
		xf->pending_cap = cap;
	}
	x_make_room(x, xf, sizeof(struct st_record));
	return x_record_alloc(x, f, xf, 1);
}

/* held bytes moved by a change to r that began when r held before: each part
 * once, one in the record's room being inside sizeof(*r) (record_held_bytes) */
static void x_held_since(struct exchange *x, struct xflow *xf, const struct st_record *r,
			 size_t before)
{
	x_held(x, xf, (int64_t)record_held_bytes(r) - (int64_t)before);
}

static void x_emit_out(struct exchange *x, struct st_record *r);

static void x_emit(struct exchange *x, struct xflow *xf, struct st_record *r)
{
	x_held(x, xf, -(int64_t)record_held_bytes(r));
	x_emit_out(x, r);
}

static void x_emit_out(struct exchange *x, struct st_record *r)
{
	size_t lim = x->cfg.body_limit;

	/* a gap leaves the framing intact but the content is not whole */
	if (!(r->req.complete && r->resp.complete) || (r->cap_flags & ST_CAP_GAP))
		r->cap_flags |= ST_CAP_INCOMPLETE;
	else
		x->st.complete++;
	/* cut at the body limit (or the held-bytes limit), not shortened by a gap */
	if ((r->req.body_stored < r->req.body_bytes && (r->req.body_stored >= lim || r->req.body_capped)) ||
	    (r->resp.body_stored < r->resp.body_bytes && (r->resp.body_stored >= lim || r->resp.body_capped)))
		r->cap_flags |= ST_CAP_TRUNCATED;
	if (r->cap_flags & ST_CAP_GAP)
		x->st.gap_records++;
	x->st.records++;
	x->emit(x->ctx, r);
}

/* Emit finished records from the front of the pending list, keeping order. A
 * record is finished once it has been answered (or given up on) and neither
 * direction is still streaming one of its messages. */
static void x_drain(struct exchange *x, struct xflow *xf)
{
	while (xf->npending && xf->nanswered) {
		struct st_record *r = xf->pending[0];

		if (xf->dir[REASM_C2S].cur == r || xf->dir[REASM_S2C].cur == r)
			break;
		memmove(xf->pending, xf->pending + 1, (xf->npending - 1) * sizeof(*xf->pending));
		xf->npending--;
		xf->nanswered--;
		x_emit(x, xf, r);
	}
}

/* The request body viewed in raw (body_borrowed) becomes its own copy before raw goes:
 * the record keeps the body it would have had without the view. Charged by the
 * rule every part uses (x_held_since), not by the copy's size. */
static void x_raw_unborrow(struct exchange *x, struct xflow *xf, struct st_record *r)
{
	size_t held;

	if (!r->req.body_borrowed)
		return;
	held = record_held_bytes(r);
	record_msg_body_own(&r->req);
	x_held_since(x, xf, r, held);
}

/* Stored body of a request whose body is viewed in raw: what raw holds past the head,
 * up to the body limit. raw is sized once for head + Content-Length, so it never moves. */
static void x_raw_view(struct exchange *x, struct st_record *r)
{
	size_t n;

	if (!r->req.body_borrowed)
		return;
	n = r->raw_len - r->req.head_len;
	r->req.body = r->raw + r->req.head_len;
	r->req.body_stored = n < x->cfg.body_limit ? n : x->cfg.body_limit;
}

/* Raw bytes no longer match the wire: a replay would not be faithful
 * (or raw would pass --replay-max or the held-bytes limit: x_raw_append). */
static void x_raw_drop(struct exchange *x, struct xflow *xf, struct st_record *r)
{
	x_raw_unborrow(x, xf, r);
	if (r->raw) {
		size_t held = record_held_bytes(r);

		record_raw_free(r);
		r->raw = NULL;
		r->raw_len = 0;
		r->raw_cap = 0;
		x_held_since(x, xf, r, held);
	}
	r->cap_flags |= ST_CAP_REPLAY_TRUNC;
}

static void x_raw_append(struct exchange *x, struct xflow *xf, struct st_record *r,
			 const uint8_t *p, size_t n)
{
	size_t cap = r->raw_cap, held;
	uint8_t *q;

	if (!x->cfg.keep_raw || (r->cap_flags & ST_CAP_REPLAY_TRUNC) || !n)
		return;
	/* grown by doubling up to replay_max: an exact realloc per segment copied a
	 * large body over and over (P, issue 19: 15% of the agent on the POST mix);
	 * held counts the capacity */
	if (!r->raw || r->raw_len + n > r->raw_cap) {
		cap = r->raw ? r->raw_cap * 2 : 512;
		if (cap < r->raw_len + n)
			cap = r->raw_len + n;
		if (cap > x->cfg.replay_max)
			cap = x->cfg.replay_max;
	}
	if (r->raw_len + n > x->cfg.replay_max || !x_room(x, xf, cap - r->raw_cap)) {
		x_raw_drop(x, xf, r);
		x->st.raw_truncated++;
		return;
	}
	if (cap != r->raw_cap) {
		q = record_raw_realloc(r, cap);
		if (!q) {
			r->cap_flags |= ST_CAP_REPLAY_TRUNC;
			x->st.raw_truncated++;
			return;
		}
		held = record_held_bytes(r);
		r->raw = q;
		r->raw_cap = cap;
		x_held_since(x, xf, r, held);
	}
	memcpy(r->raw + r->raw_len, p, n);
	r->raw_len += n;
	x_raw_view(x, r);
}

struct x_body_ctx {
	struct exchange *x;
	struct xflow *xf;
	struct st_msg *m;
};

static void x_body_cb(void *ctx, const char *data, size_t len)
{
	struct x_body_ctx *c = ctx;
	struct exchange *x = c->x;
	size_t before, cap_before, held, limit = x->cfg.body_limit, want;
	uint64_t room;

	if (!c->m)
		return;
	if (c->m->body_borrowed) {
		/* the bytes are kept in raw (x_raw_view): count them only */
		c->m->body_bytes += len;
		return;
	}
	before = c->m->body_stored;
	cap_before = c->m->body_cap;
	held = record_msg_held_bytes(c->m);

	/* all unfinished records together stay under max_held_bytes, and one connection's
	 * under max_conn_bytes: older holders are evicted to make room for a body being
	 * read now; past that, bodies are counted but no longer stored (the record says
	 * truncated). Storage grows by doubling: room is counted on the capacity. */
	want = before + len < limit ? before + len : limit;
	if (want > cap_before) {
		/* the capacity record_msg_body_append will grow to */
		size_t cap = cap_before ? cap_before : 512;

		while (cap < want)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		if (!x_room(x, c->xf, cap - cap_before)) {
			room = x->cfg.max_held_bytes > x->st.held_bytes ? x->cfg.max_held_bytes - x->st.held_bytes : 0;
			if (x->cfg.max_conn_bytes < c->xf->held + room)
				room = x->cfg.max_conn_bytes > c->xf->held ? x->cfg.max_conn_bytes - c->xf->held : 0;
			if (cap_before + room < limit)
				limit = cap_before + (size_t)room;
			if (limit < before)
				limit = before;
		}
	}
	if (limit < x->cfg.body_limit && before + len > limit) {
		x->st.body_unstored++;
		c->m->body_capped = 1;
	}
	record_msg_body_append(c->m, data, len, limit);
	x_held(x, c->xf, (int64_t)record_msg_held_bytes(c->m) - (int64_t)held);
}

static int x_starts_message(const uint8_t *p, size_t n, int dir)
{
	size_t i, l;

	if (dir == REASM_S2C)
		return n >= 7 ? memcmp(p, "HTTP/1.", 7) == 0 : memcmp(p, "HTTP/1.", n) == 0;
	for (i = 0; x_methods[i]; i++) {
		l = strlen(x_methods[i]);
		if (memcmp(p, x_methods[i], n < l ? n : l) == 0)
			return 1;
	}
	return 0;
}

/* Resync: skip to the next plausible message start. Returns bytes skipped; the
 * state becomes X_HEAD if a start was found. A candidate cut by the end of data
 * is kept in the head buffer and re-checked with the next bytes. */
static size_t x_resync(struct exchange *x, struct xdir *d, int dir, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (d->at_line_start && x_starts_message(p + i, n - i, dir)) {
			d->state = X_HEAD;
			buf_reset(&d->head);
			x->st.resync_skipped_bytes += i;
			return i;
		}
		/* only line starts are taken (a body may quote "HTTP/1."), but one seen
		 * elsewhere may be an answer glued to the previous body's end */
		if (dir == REASM_S2C && p[i] == 'H' && !d->at_line_start &&
		    x_starts_message(p + i, n - i, dir))
			d->resync_glued = 1;
		d->at_line_start = p[i] == '\n';
	}
	x->st.resync_skipped_bytes += n;
	return n;
}

static void x_enter_resync(struct exchange *x, struct xdir *d, int at_line_start)
{
	d->state = X_RESYNC;
	d->at_line_start = at_line_start;
	d->resync_glued = 0;
	buf_reset(&d->head);
	x->st.resyncs++;
}

static const char x_lost_request[] = "request lost in a capture gap";
static const char x_unpaired[] = "response not paired: a capture gap hid how many messages were lost";

static void x_mark_unpaired(struct st_record *r)
{
	r->cap_flags |= ST_CAP_MALFORMED | ST_CAP_INCOMPLETE;
	if (!r->malformed)
		r->malformed = x_unpaired;
}

/* Give up pairing on this connection: every unanswered request is flagged and
 * counted as answered, responses are ignored from now on. */
static void x_unpairable(struct exchange *x, struct xflow *xf)
{
	struct xdir *d = &xf->dir[REASM_S2C];
	size_t i;

	if (xf->unpairable)
		return;
	xf->unpairable = 1;
	x->st.unpairable++;
	for (i = xf->nanswered; i < xf->npending; i++)
		x_mark_unpaired(xf->pending[i]);
	xf->nanswered = xf->npending;
	xf->skip_resp = 0;
	xf->lost_req = 0;
	if (d->cur)
		d->cur->cap_flags |= ST_CAP_INCOMPLETE;
	d->cur = NULL;
	d->state = X_TUNNEL;
	buf_reset(&d->head);
}

static int x_is_upgrade_request(const struct st_record *r);

/* is_request: r is a request (not an orphan response's record) */
static void x_pending_push(struct exchange *x, struct xflow *xf, struct st_record *r,
			   int is_request)
{
	size_t i;

	if (is_request) {
		/* requests hidden by a gap and none of their answers seen before the next
		 * request: there may be several, and their answers cannot be counted */
		if (xf->lost_req == 1)
			x_unpairable(x, xf);
		xf->lost_req = 0;
	}
	if (xf->npending == x->cfg.max_pending) {
		/* an unanswered pipeline this deep is not HTTP we can pair: give the oldest up,
		 * but keep its place so its answer is not taken for the next request's */
		struct st_record *old = xf->pending[0];

		x->st.pending_overflow++;
		if (xf->nanswered) {
			xf->nanswered--;
		} else {
			old->cap_flags |= ST_CAP_NO_RESPONSE;
			/* its answer's framing depends on the request: without it, unpairable */
			if (!old->method || (old->method_len == 4 && memcmp(old->method, "HEAD", 4) == 0) ||
			    x_is_upgrade_request(old))
				x_unpairable(x, xf);
			else
				xf->skip_resp++;
		}
		/* a message of it still streaming is read to its end and dropped */
		for (i = 0; i < 2; i++)
			if (xf->dir[i].cur == old)
				xf->dir[i].cur = NULL;
		memmove(xf->pending, xf->pending + 1, (xf->npending - 1) * sizeof(*xf->pending));
		xf->npending--;
		if (xf->nanswered > xf->npending)
			xf->nanswered = xf->npending;
		x_emit(x, xf, old);
	}
	xf->pending[xf->npending++] = r;
	if (xf->unpairable) {
		x_mark_unpaired(r);
		xf->nanswered = xf->npending;
	}
}

static int x_is_upgrade_request(const struct st_record *r)
{
	const struct http1_header *h;

	if (r->method_len == 7 && memcmp(r->method, "CONNECT", 7) == 0)
		return 1;
	h = http1_find_header(r->req.hdrs, r->req.nhdrs, "upgrade");
	return h != NULL;
}

static void x_request_done(struct exchange *x, struct xflow *xf, struct xdir *d, uint64_t ts)
{
	struct st_record *r = d->cur;

	if (r) {
		r->req.complete = 1;
		r->req.ts_last_ns = ts;
	}
	d->state = r && x_is_upgrade_request(r) ? X_HOLD : X_HEAD;
	d->cur = NULL;
	buf_reset(&d->head);
	x_drain(x, xf);
}

/* Where a head is parsed from: straight from p while nothing is buffered (zero
 * copy), else from the head buffer after appending what fits under max_head.
 * *len: bytes to parse; *avail: bytes of p that went into the buffer. */
static const char *x_head_view(struct exchange *x, struct xdir *d, const uint8_t *p, size_t n,
			       uint64_t ts, size_t *len, size_t *avail)
{
	size_t have = d->head.len;

	if (have == 0) {
		d->head_ts = ts;
		*avail = n;
		*len = n < x->cfg.max_head ? n : x->cfg.max_head;
		return (const char *)p;
	}
	*avail = n < x->cfg.max_head - have ? n : x->cfg.max_head - have;
	x_head_append(x, d, p, *avail);
	*len = d->head.len;
	return d->head.data;
}

/* An incomplete head: keep bytes parsed in place for the next call. Returns 1 if
 * the head has reached max_head instead (counted; the caller gives up on it). */
static int x_head_need_more(struct exchange *x, struct xdir *d, size_t have, const uint8_t *p,
			    size_t n)
{
	if ((have ? d->head.len : n) >= x->cfg.max_head) {
		x->st.head_too_large++;
		return 1;
	}
	if (!have)
		x_head_append(x, d, p, n);
	return 0;
}

static void x_feed(struct exchange *x, struct reasm_flow *f, int dir, const uint8_t *p, size_t n,
		   uint64_t ts);

/* A head that did not parse, begun in an earlier call: everything from its second
 * byte is in the head buffer (its start consumed before, the rest appended from the
 * current data), and resync goes on over those bytes, as it does from the second
 * byte of an unbuffered head. Skipping the whole buffer instead also skipped the
 * messages behind the bad one in it, and their answers were then paired with the
 * requests after them (found by fuzz_exchange). The caller consumes what was
 * appended. */
static void x_resync_buffered(struct exchange *x, struct reasm_flow *f, struct xdir *d, int dir)
{
	struct buf held = d->head;

	memset(&d->head, 0, sizeof(d->head));
	x_enter_resync(x, d, 0);
	if (held.len > 1)
		x_feed(x, f, dir, (const uint8_t *)held.data + 1, held.len - 1, d->head_ts);
	buf_free(&held);
}

/* Parse a request head from p[0..n). Returns bytes consumed from p, or 0 when
 * more bytes are needed (they were buffered). */
static size_t x_request_head(struct exchange *x, struct reasm_flow *f, struct xflow *xf,
			     struct xdir *d, const uint8_t *p, size_t n, uint64_t ts)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_request req;
	const char *base;
	size_t have = d->head.len, avail, len, held;
	struct st_record *r;
	uint64_t cl = 0;
	int hl, fr;

	base = x_head_view(x, d, p, n, ts, &len, &avail);
	hl = http1_parse_request(base, len, &req, hdrs, x->cfg.max_headers);
	if (hl == HTTP1_NEED_MORE && !x_head_need_more(x, d, have, p, n))
		return n;
	if (hl < 0) {
		/* a head over max_head is a request all the same: it gets a record, or its
		 * answer would be paired with the next request (found by fuzz_exchange) */
		x->st.malformed_requests++;
		r = x_new_record(x, f, xf);
		if (r) {
			r->cap_flags |= ST_CAP_MALFORMED;
			r->malformed = hl == HTTP1_NEED_MORE ? "request head too large" : "request head";
			r->req.ts_first_ns = r->req.ts_last_ns = d->head_ts;
			x_pending_push(x, xf, r, 1);
			/* the response to it, if any, will pair with it */
		}
		if (have) {
			x_resync_buffered(x, f, d, REASM_C2S);
			return avail;
		}
		x_enter_resync(x, d, 0);
		return 1;
	}

	x->st.requests++;
	r = x_new_record(x, f, xf);
	if (!r) {
		x_enter_resync(x, d, 0);
		return have ? avail : (size_t)hl;
	}
	held = record_held_bytes(r);
	record_req_set_head(r, base, (size_t)hl, req.headers, req.num_headers);
	x_held_since(x, xf, r, held);
	if (req.num_over) {
		r->cap_flags |= ST_CAP_HEADERS_OVER;
		x->st.headers_over_limit++;
	}
	r->method = r->req.head + (req.method - base);
	r->method_len = req.method_len;
	r->target = r->req.head + (req.target - base);
	r->target_len = req.target_len;
	r->http_minor = req.minor_version;
	r->req.ts_first_ns = d->head_ts;
	r->req.ts_last_ns = ts;
	r->req.wire_bytes = (uint64_t)hl;
	x_raw_append(x, xf, r, (const uint8_t *)base, (size_t)hl);

	fr = http1_request_framing(&req, &cl);
	if (fr == HTTP1_MALFORMED) {
		/* Where this body ends is unknowable (the shapes of request smuggling:
		 * CL+TE, bad or conflicting CL, TE without chunked last). A server must
		 * answer 400 and close; whatever follows is not a request we can trust,
		 * so the request side of this connection is not parsed any further. */
		x->st.malformed_requests++;
		x->st.framing_abandoned++;
		r->cap_flags |= ST_CAP_MALFORMED;
		r->malformed = "request framing (Content-Length/Transfer-Encoding)";
		x_raw_drop(x, xf, r);
		x_pending_push(x, xf, r, 1);
		d->state = X_TUNNEL;
	} else {
		r->req.chunked = fr == HTTP1_BODY_CHUNKED;
		/* a Content-Length body: the raw buffer sized once, head and body, without
		 * the doubling's slack (P, issue 19) */
		if (fr == HTTP1_BODY_LENGTH && r->raw && r->raw_len == (size_t)hl &&
		    cl <= x->cfg.replay_max - (size_t)hl && (size_t)hl + cl > r->raw_cap) {
			/* the length is the client's word: held from now, and only if it fits
			 * without evicting anyone (else the buffer grows as bytes arrive) */
			size_t grow = (size_t)hl + (size_t)cl - r->raw_cap;
			uint8_t *q = NULL;

			if (x->st.held_bytes + grow <= x->cfg.max_held_bytes &&
			    xf->held + grow <= x->cfg.max_conn_bytes)
				q = record_raw_realloc(r, (size_t)hl + (size_t)cl);
			if (q) {
				held = record_held_bytes(r);
				r->raw = q;
				r->raw_cap = (size_t)hl + (size_t)cl;
				x_held_since(x, xf, r, held);
			}
		}
		/* raw will hold the whole body and never move: the record's decoded body is
		 * a view into it, not a second copy (issue 19) */
		if (fr == HTTP1_BODY_LENGTH && cl && r->raw && r->raw_len == (size_t)hl &&
		    r->req.head_len == (size_t)hl && r->raw_cap - (size_t)hl >= cl &&
		    !r->req.body && !(r->cap_flags & ST_CAP_REPLAY_TRUNC)) {
			r->req.body_borrowed = true;
			x_raw_view(x, r);
		}
		x_pending_push(x, xf, r, 1);
		d->cur = r;
		memset(&d->body, 0, sizeof(d->body));
		http1_body_init(&d->body, fr, cl);
		if (fr == HTTP1_BODY_NONE) {
			/* read before x_request_done: its drain may emit r (already answered on
			 * an unpairable connection), and the emitted record is not ours */
			int http09 = r->http_minor < 0;

			x_request_done(x, xf, d, ts);
			/* HTTP/0.9 has no persistent connections: nothing after it is a request */
			if (http09)
				d->state = X_TUNNEL;
		} else {
			d->state = X_BODY;
		}
	}
	buf_reset(&d->head);
	return have ? (size_t)hl - have : (size_t)hl;
}

static struct st_record *x_orphan(struct exchange *x, struct reasm_flow *f, struct xflow *xf)
{
	struct st_record *r = x_new_record(x, f, xf);

	x->st.orphan_responses++;
	if (!r)
		return NULL;
	r->cap_flags |= ST_CAP_INCOMPLETE;
	if (xf->lost_req) {
		/* the answer to a request hidden by a capture gap */
		r->cap_flags |= ST_CAP_GAP | ST_CAP_MALFORMED;
		r->malformed = x_lost_request;
		xf->lost_req = 2;
	}
	x_pending_push(x, xf, r, 0);
	/* a request that never showed up: its slot is the one being answered */
	return r;
}

static void x_response_done(struct exchange *x, struct xflow *xf, struct xdir *d, uint64_t ts)
{
	struct st_record *r = d->cur;

	if (r) {
		r->resp.complete = 1;
		r->resp.ts_last_ns = ts;
	}
	d->cur = NULL;
	d->state = X_HEAD;
	buf_reset(&d->head);
	x_drain(x, xf);
}

/* The response head is in: its body (of framing fr, length cl) is read next, or
 * there is none and the response is done. */
static void x_response_body_begin(struct exchange *x, struct xflow *xf, struct xdir *d,
				  int fr, uint64_t cl, uint64_t ts)
{
	memset(&d->body, 0, sizeof(d->body));
	http1_body_init(&d->body, fr, cl);
	if (fr == HTTP1_BODY_NONE)
		x_response_done(x, xf, d, ts);
	else
		d->state = X_BODY;
}

/* The answer to an Upgrade/CONNECT request arrived: tunnel, or resume requests. */
static void x_release_hold(struct exchange *x, struct reasm_flow *f, struct xflow *xf, int tunnel);

static size_t x_response_head(struct exchange *x, struct reasm_flow *f, struct xflow *xf,
			      struct xdir *d, const uint8_t *p, size_t n, uint64_t ts)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	struct st_record *r;
	const char *base;
	size_t have = d->head.len, avail, used, len, room, held;
	uint64_t cl = 0;
	int hl, fr;

	/* HTTP/0.9: the answer is the raw body up to the close */
	if (!xf->skip_resp && xf->nanswered < xf->npending && xf->pending[xf->nanswered]->http_minor < 0 &&
	    xf->pending[xf->nanswered]->method && have == 0 &&
	    /* some servers answer a version-less request with a status line anyway */
	    memcmp(p, "HTTP/", n < 5 ? n : 5) != 0) {
		r = xf->pending[xf->nanswered++];
		d->cur = r;
		r->resp.ts_first_ns = ts;
		memset(&d->body, 0, sizeof(d->body));
		http1_body_init(&d->body, HTTP1_BODY_CLOSE, 0);
		d->state = X_BODY;
		return 0;
	}
	base = x_head_view(x, d, p, n, ts, &len, &avail);
	hl = http1_parse_response(base, len, &resp, hdrs, x->cfg.max_headers);
	if (hl == HTTP1_NEED_MORE) {
		if (x_head_need_more(x, d, have, p, n)) {
			x->st.malformed_responses++;
			goto malformed;
		}
		return n;
	}
	if (hl < 0) {
		x->st.malformed_responses++;
		goto malformed;
	}
	used = have ? (size_t)hl - have : (size_t)hl;
	buf_reset(&d->head);

	if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
		x->st.informational++;
		return used;
	}
	x->st.responses++;
	if (xf->skip_resp) {
		/* the answer to a request evicted by --max-pending: read it, drop it */
		xf->skip_resp--;
		fr = http1_response_framing(&resp, "GET", 3, &cl);
		d->cur = NULL;
		if (fr == HTTP1_MALFORMED) {
			x_enter_resync(x, d, 1);
		} else if (fr == HTTP1_BODY_TUNNEL) {
			x_unpairable(x, xf);
			return n;
		} else {
			x_response_body_begin(x, xf, d, fr, cl, ts);
		}
		return used;
	}
	if (xf->nanswered < xf->npending) {
		r = xf->pending[xf->nanswered++];
	} else {
		r = x_orphan(x, f, xf);
		if (!r)
			return used;
		xf->nanswered++;
	}
	fr = http1_response_framing(&resp, r->method ? r->method : "GET", r->method ? r->method_len : 3, &cl);
	/* a Content-Length body's stored part gets its room behind the head copy: one
	 * allocation instead of two (issue 19); held from now, if it fits the budget (else
	 * the body is stored as it comes, as before) */
	room = 0;
	if (fr == HTTP1_BODY_LENGTH && !r->resp.body && !r->resp.head) {
		room = cl < x->cfg.body_limit ? (size_t)cl : x->cfg.body_limit;
		if (room && !x_room(x, xf, room))
			room = 0;
	}
	held = record_held_bytes(r);
	if (!room || record_resp_set_head(r, base, (size_t)hl, resp.headers, resp.num_headers, room))
		record_resp_set_head(r, base, (size_t)hl, resp.headers, resp.num_headers, 0);
	x_held_since(x, xf, r, held);
	if (resp.num_over) {
		r->cap_flags |= ST_CAP_HEADERS_OVER;
		x->st.headers_over_limit++;
	}
	r->status_code = resp.status;
	r->resp.ts_first_ns = d->head_ts;
	r->resp.ts_last_ns = ts;
	r->resp.wire_bytes = (uint64_t)hl;
	d->cur = r;
	if (fr == HTTP1_MALFORMED) {
		x->st.malformed_responses++;
		r->cap_flags |= ST_CAP_MALFORMED;
		r->malformed = "response framing (Content-Length/Transfer-Encoding)";
		d->cur = NULL;
		x_enter_resync(x, d, 1);
		x_drain(x, xf);
		return used;
	}
	r->resp.chunked = fr == HTTP1_BODY_CHUNKED;
	if (fr == HTTP1_BODY_TUNNEL) {
		x->st.upgrades++;
		r->cap_flags |= ST_CAP_UPGRADED;
		d->state = X_TUNNEL;
		d->cur = NULL;
		r->resp.complete = 1;
		x_release_hold(x, f, xf, 1);
		x_drain(x, xf);
		return n;    /* the rest is another protocol */
	}
	/* the Upgrade/CONNECT request's own answer, not an orphan's: after its answer
	 * was lost in a gap, releasing the hold on the next (orphan) answer paired the
	 * held requests with the answers after theirs (found by fuzz_exchange) */
	if (xf->dir[REASM_C2S].state == X_HOLD && r == xf->pending[xf->npending - 1] && r->method)
		x_release_hold(x, f, xf, 0);
	x_response_body_begin(x, xf, d, fr, cl, ts);
	return used;

malformed:
	/* the oldest unanswered request (if any) gets the blame and leaves */
	if (xf->skip_resp) {
		xf->skip_resp--;
	} else if (xf->nanswered < xf->npending) {
		r = xf->pending[xf->nanswered++];
		r->cap_flags |= ST_CAP_MALFORMED;
		r->malformed = "response head";
	}
	d->cur = NULL;
	if (have) {
		x_resync_buffered(x, f, d, REASM_S2C);
		x_drain(x, xf);
		return avail;
	}
	x_enter_resync(x, d, 0);
	x_drain(x, xf);
	return 1;
}

static void x_release_hold(struct exchange *x, struct reasm_flow *f, struct xflow *xf, int tunnel)
{
	struct xdir *d = &xf->dir[REASM_C2S];
	struct buf held = d->head;

	if (d->state != X_HOLD)
		return;
	memset(&d->head, 0, sizeof(d->head));
	if (tunnel) {
		d->state = X_TUNNEL;
	} else {
		d->state = X_HEAD;
		if (held.len)
			x_feed(x, f, REASM_C2S, (const uint8_t *)held.data, held.len, d->head_ts);
	}
	buf_free(&held);
}

static void x_feed(struct exchange *x, struct reasm_flow *f, int dir, const uint8_t *p, size_t n,
		   uint64_t ts)
{
	struct xflow *xf = f->user;
	struct xdir *d = &xf->dir[dir];
	struct x_body_ctx bc = { .x = x, .xf = xf };
	size_t used;
	ssize_t k;

	while (n) {
		switch (d->state) {
		case X_TUNNEL:
			return;
		case X_HOLD:
			if (d->head.len + n > x->cfg.max_head) {
				/* no answer to the upgrade yet (it may have been lost in a
				 * gap) and too much to hold: whether the connection became a
				 * tunnel is unknown, so nothing after it is parsed; counted,
				 * with the bytes held and dropped */
				x->st.upgrade_unanswered++;
				x->st.upgrade_unanswered_bytes += d->head.len + n;
				d->state = X_TUNNEL;
				buf_free(&d->head);
				return;
			}
			if (!d->head.len)
				d->head_ts = ts;
			x_head_append(x, d, p, n);
			return;
		case X_RESYNC:
			used = x_resync(x, d, dir, p, n);
			/* the answer found may not be the oldest unanswered request's: the
			 * skipped bytes may have held others (pairing never guesses) */
			if (d->state == X_HEAD && d->resync_glued && xf->nanswered < xf->npending)
				x_unpairable(x, xf);
			break;
		case X_HEAD:
			used = dir == REASM_C2S ? x_request_head(x, f, xf, d, p, n, ts)
						: x_response_head(x, f, xf, d, p, n, ts);
			break;
		case X_BODY:
		default:
			/* no record: the message of a request evicted by --max-pending */
			bc.m = !d->cur ? NULL : dir == REASM_C2S ? &d->cur->req : &d->cur->resp;
			k = http1_body_feed(&d->body, (const char *)p, n, x_body_cb, &bc);
			if (k < 0) {
				struct st_record *r = d->cur;

				if (r) {
					r->cap_flags |= ST_CAP_MALFORMED;
					r->malformed = dir == REASM_C2S ? "request body (chunked framing)"
									: "response body (chunked framing)";
				}
				if (dir == REASM_C2S) {
					x->st.malformed_requests++;
					if (r)
						x_raw_drop(x, xf, r);
				} else {
					x->st.malformed_responses++;
				}
				d->cur = NULL;
				x_enter_resync(x, d, 0);
				x_drain(x, xf);
				used = 0;
				break;
			}
			used = (size_t)k;
			if (bc.m) {
				bc.m->wire_bytes += used;
				bc.m->ts_last_ns = ts;
				if (dir == REASM_C2S)
					x_raw_append(x, xf, d->cur, p, used);
			}
			if (d->body.done) {
				if (dir == REASM_C2S)
					x_request_done(x, xf, d, ts);
				else
					x_response_done(x, xf, d, ts);
			}
			break;
		}
		if (used > n)
			used = n;
		p += used;
		n -= used;
	}
}

static int x_open(void *ctx, struct reasm_flow *f)
{
	struct exchange *x = ctx;
	struct xflow *xf = calloc(1, sizeof(*xf));

	if (!xf)
		return -ENOMEM;
	(void)x;
	xf->f = f;
	xf->dir[0].xf = xf;
	xf->dir[1].xf = xf;
	list_init(&xf->holder);
	xf->mid_stream = f->mid_stream;
	/* picked up mid-stream: the first bytes may be the middle of a message */
	if (f->mid_stream) {
		xf->dir[0].state = X_RESYNC;
		xf->dir[1].state = X_RESYNC;
		xf->dir[0].at_line_start = 1;
		xf->dir[1].at_line_start = 1;
	}
	f->user = xf;
	return 0;
}

static void x_data(void *ctx, struct reasm_flow *f, int dir, const uint8_t *data, size_t len,
		   uint64_t ts_ns)
{
	if (f->user && len) {
		x_feed(ctx, f, dir, data, len, ts_ns);
		x_enforce(ctx, f->user);
	}
}

static void x_gap_dir(struct exchange *x, struct reasm_flow *f, int dir, uint64_t bytes);

static void x_gap(void *ctx, struct reasm_flow *f, int dir, uint64_t bytes)
{
	if (f->user) {
		x_gap_dir(ctx, f, dir, bytes);
		x_enforce(ctx, f->user);
	}
}

static void x_gap_dir(struct exchange *x, struct reasm_flow *f, int dir, uint64_t bytes)
{
	struct xflow *xf = f->user;
	struct xdir *d;
	struct st_record *r;
	struct st_msg *m;
	uint64_t unanswered;
	int ambiguous = 0;

	if (!xf)
		return;
	d = &xf->dir[dir];
	r = d->cur;
	if (d->state == X_TUNNEL || d->state == X_HOLD)
		return;
	m = !r ? NULL : dir == REASM_C2S ? &r->req : &r->resp;
	if (r) {
		r->cap_flags |= ST_CAP_GAP;
		r->gap_bytes += bytes;
		if (dir == REASM_C2S)
			x_raw_drop(x, xf, r);
	}
	/* a hole inside a Content-Length body: the body is shorter, framing is intact */
	if (d->state == X_BODY && d->body.framing == HTTP1_BODY_LENGTH && bytes <= d->body.remaining) {
		d->body.remaining -= bytes;
		d->body.data_bytes += bytes;
		d->body.wire_bytes += bytes;
		if (m) {
			m->body_bytes += bytes;
			m->wire_bytes += bytes;
		}
		if (d->body.remaining == 0) {
			d->body.done = 1;
			if (dir == REASM_C2S)
				x_request_done(x, xf, d, f->last_ts_ns);
			else
				x_response_done(x, xf, d, f->last_ts_ns);
		}
		return;
	}
	if (d->state == X_BODY && d->body.framing == HTTP1_BODY_CLOSE) {
		if (m) {
			m->body_bytes += bytes;
			m->wire_bytes += bytes;
		}
		return;
	}
	/* anything else: this message is lost from here, and whole messages may be lost
	 * with it; find the next one, which may start on the very next byte */
	unanswered = xf->skip_resp + (xf->npending - xf->nanswered) + (xf->lost_req == 1);
	if (dir == REASM_C2S) {
		/* the lost bytes hold at least the rest of this request, or the start of
		 * one (a head was in progress, or a message boundary): whatever requests
		 * they held are answered after the pending ones */
		d->cur = NULL;
		x_enter_resync(x, d, 1);
		if (!xf->unpairable)
			xf->lost_req = 1;
	} else if (r || d->state == X_RESYNC || d->state == X_BODY) {
		/* inside a response (or skipping one): any unanswered request may have
		 * had its answer in the lost bytes */
		d->cur = NULL;
		if (r && r == xf->pending[xf->nanswered ? xf->nanswered - 1 : 0])
			r->cap_flags |= ST_CAP_INCOMPLETE;
		ambiguous = unanswered > 0;
	} else if (unanswered == 1) {
		/* between responses, one request waiting: the lost bytes start its answer */
		if (xf->skip_resp) {
			xf->skip_resp--;
		} else if (xf->nanswered == xf->npending) {
			xf->lost_req = 2;     /* the answer to a request lost in a gap */
		} else {
			r = xf->pending[xf->nanswered++];
			r->cap_flags |= ST_CAP_GAP | ST_CAP_INCOMPLETE;
			r->gap_bytes += bytes;
			r->resp.complete = 0;
			r->cap_flags |= ST_CAP_MALFORMED;
			if (!r->malformed)
				r->malformed = "response lost in a capture gap";
		}
	} else if (unanswered > 1) {
		ambiguous = 1;
	}
	if (dir == REASM_S2C) {
		x_enter_resync(x, d, 1);
		if (ambiguous)
			x_unpairable(x, xf);
	}
	x_drain(x, xf);
}

static void x_eof(void *ctx, struct reasm_flow *f, int dir)
{
	struct exchange *x = ctx;
	struct xflow *xf = f->user;
	struct xdir *d;

	if (!xf)
		return;
	d = &xf->dir[dir];
	if (d->state == X_BODY && d->cur) {
		if (http1_body_eof(&d->body) == 0) {
			if (dir == REASM_C2S)
				x_request_done(x, xf, d, f->last_ts_ns);
			else
				x_response_done(x, xf, d, f->last_ts_ns);
		}
	}
}

/* The connection ends for exchange (closed, or evicted with why set): every record
 * is written now, including one for a request head that never finished and a mark on
 * the request whose response head never finished. Nothing is held afterwards. */
static void x_end(struct exchange *x, struct xflow *xf, const char *why)
{
	struct reasm_flow *f = xf->f;
	struct xdir *d = &xf->dir[REASM_S2C];
	struct st_record *r;
	size_t i, unfinished;

	if (d->state == X_HEAD && d->head.len) {
		x->st.unfinished_heads++;
		if (!xf->skip_resp && xf->nanswered < xf->npending) {
			r = xf->pending[xf->nanswered++];
			r->cap_flags |= ST_CAP_MALFORMED | ST_CAP_INCOMPLETE;
			r->malformed = "response head not finished";
			r->resp.wire_bytes = d->head.len;
			r->resp.ts_first_ns = d->head_ts;
		}
	}
	for (i = 0; i < xf->npending; i++) {
		r = xf->pending[i];
		if (why) {
			r->evicted = why;
			r->cap_flags |= ST_CAP_INCOMPLETE;
			x->st.evicted_records++;
		} else if (i >= xf->nanswered && !r->resp.head) {
			r->cap_flags |= ST_CAP_NO_RESPONSE;
			x->st.no_response++;
		}
		x_emit(x, xf, r);
	}
	xf->npending = xf->nanswered = 0;
	xf->skip_resp = 0;
	xf->dir[0].cur = xf->dir[1].cur = NULL;
	d = &xf->dir[REASM_C2S];
	unfinished = d->state == X_HEAD ? d->head.len : 0;
	for (i = 0; i < 2; i++) {
		buf_free(&xf->dir[i].head);
		xf->dir[i].state = X_TUNNEL;
	}
	x_sync_heads(x, xf);
	if (unfinished) {
		/* its bytes are gone already: the record says how many there were */
		x->st.unfinished_heads++;
		/* emitted at once, never held: not charged (an eviction frees memory) */
		r = x_record_alloc(x, f, xf, 0);
		if (r) {
			r->cap_flags |= ST_CAP_MALFORMED | ST_CAP_INCOMPLETE;
			r->malformed = "request head not finished";
			r->req.wire_bytes = unfinished;
			r->req.ts_first_ns = d->head_ts;
			r->req.ts_last_ns = f->last_ts_ns;
			if (why) {
				r->evicted = why;
				x->st.evicted_records++;
			}
			x_emit_out(x, r);
		}
	}
	x_held(x, xf, -(int64_t)(xf->pending_cap * sizeof(*xf->pending)));
	free(xf->pending);
	xf->pending = NULL;
	xf->pending_cap = 0;
}

/* Give up on a connection to free what it holds: its records are written now, marked
 * incomplete with why, and the rest of the connection is ignored. */
static void x_evict(struct exchange *x, struct xflow *xf, const char *why)
{
	uint64_t held = xf->held;

	if (xf->evicted)
		return;
	xf->evicted = 1;
	x_end(x, xf, why);
	x->st.evicted_bytes += held - xf->held;
}

/* After each callback: the head buffers are charged, and a connection over its cap,
 * or the oldest holders while all of them are over the budget, are evicted. */
static void x_enforce(struct exchange *x, struct xflow *xf)
{
	x_sync_heads(x, xf);
	if (xf->held > x->cfg.max_conn_bytes) {
		x->st.evicted_conn_cap++;
		x_evict(x, xf, x_why_conn);
	}
	if (!x_make_room(x, xf, 0)) {
		x->st.evicted_budget++;
		x_evict(x, xf, x_why_budget);
	}
}

static void x_close(void *ctx, struct reasm_flow *f, enum reasm_close_reason why)
{
	struct exchange *x = ctx;
	struct xflow *xf = f->user;

	if (!xf)
		return;
	/* a close-delimited body ends with the connection, whatever closed it */
	x_eof(ctx, f, REASM_S2C);
	if (why == REASM_CLOSE_EVICT && !xf->evicted) {
		uint64_t held = xf->held;

		x_end(x, xf, x_why_table);
		x->st.evicted_flow_table++;
		x->st.evicted_bytes += held - xf->held;
	} else {
		x_end(x, xf, NULL);
	}
	list_del(&xf->holder);
	free(xf);
	f->user = NULL;
}

const struct reasm_ops exchange_reasm_ops = {
	.open = x_open,
	.data = x_data,
	.gap = x_gap,
	.eof = x_eof,
	.close = x_close,
};
