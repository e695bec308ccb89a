/* libFuzzer target for agent/exchange.c behind the real reassembly (tcp_reasm.c), as
 * the agent runs them. Two connections each get a client and a server byte stream
 * built from a list of HTTP/1.x exchanges the input picks (GET, HEAD, Content-Length
 * and chunked bodies, 100-continue, 204, Upgrade answered by 101 or 200, a malformed
 * line, HTTP/1.0, a close-delimited answer). The rest of the input cuts those streams
 * into segments: in order, skipped (a capture gap, acknowledged by the peer), sent
 * again (retransmits, overlaps), FIN or RST, corrupted bytes, time passing (hole and
 * idle timeouts), a flush of everything. Tiny limits make eviction and overflow paths
 * run. Any broken invariant aborts; ASan's leak check covers what is left behind.
 *
 * Invariants:
 * - every record is whole to the eye of its reader (bodies within their limits, a
 *   borrowed body inside raw, raw within replay_max);
 * - per connection, records leave in index order, each index once;
 * - every parsed request head is in exactly one record (records with a method ==
 *   requests counted); one without an answer says why (no_response, malformed,
 *   incomplete or evicted);
 * - a request and an answer in one record, on a connection seen from its SYN, with
 *   no byte corrupted and no malformed flag, are the same exchange (the answer's X-Id
 *   is the request's id): pairing never guesses;
 * - the bytes held stay under max_held_bytes, and are all released at the end. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange.h"
#include "record.h"
#include "shadowtap.h"
#include "tcp_reasm.h"

#define FZ_CONNS	2
#define FZ_STREAM	8192
#define FZ_MAXMSG	24
#define FZ_MS		1000000ull

#define FZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

struct fz_stream {
	uint8_t b[FZ_STREAM];
	uint32_t len;
	uint32_t cur;           /* next byte to send (bytes before it were sent or skipped) */
	int fin;                /* FIN sent */
};

struct fz_conn {
	struct fz_stream s[2];  /* REASM_C2S, REASM_S2C */
	uint32_t isn[2];
	int opened;             /* handshake sent (or first segment, mid-stream) */
	int dead;               /* RST sent: nothing more on it */
	int corrupted;          /* a byte was changed: pairing is not checked */
	int prev_bad;           /* the last request written was the malformed one */
	/* causality: answer i starts at aoff[i] in the server's stream and may be sent
	 * only once request i has ended at qend[i] in the client's (sent or skipped) */
	uint32_t qend[FZ_MAXMSG], aoff[FZ_MAXMSG], aend[FZ_MAXMSG];
	int nmsg;
	int req_gap;            /* a gap in either direction (see fz_gap) */
	int unsure;             /* a head over max_head or a bad answer head was skipped */
	int ended;              /* its server stream ended (close-delimited answer, 101) */
	int64_t last_index;     /* of the records emitted for the current flow */
	uint64_t flow_id;
	int have_flow;
};

static struct fz_conn fz_c[FZ_CONNS];
static struct exchange_cfg fz_xcfg;
static int fz_pipelined;
static struct exchange *fz_x;
static uint64_t fz_with_method, fz_records;
static int fz_trace = -1;

static int fz_find_id(const char *p, size_t n, const char *tag, long *id)
{
	size_t tl = strlen(tag), i;

	for (i = 0; i + tl < n; i++) {
		if (memcmp(p + i, tag, tl) == 0) {
			*id = strtol(p + i + tl, NULL, 10);
			return 1;
		}
	}
	return 0;
}

static void fz_emit(void *ctx, struct st_record *r)
{
	int c = r->cport - 1000;
	struct fz_conn *k;
	long qid, aid;

	struct exchange_stats xs;

	(void)ctx;
	FZ_CHECK(c >= 0 && c < FZ_CONNS);
	k = &fz_c[c];
	fz_records++;

	/* order: each flow's records by index, each once (fz_open starts a flow's count) */
	if (!k->have_flow) {
		k->have_flow = 1;
		k->flow_id = r->flow_id;
	}
	FZ_CHECK(r->flow_id == k->flow_id);
	FZ_CHECK((int64_t)r->index > k->last_index);
	k->last_index = r->index;

	/* the record's own shape */
	FZ_CHECK(r->req.body_stored <= fz_xcfg.body_limit);
	FZ_CHECK(r->resp.body_stored <= fz_xcfg.body_limit);
	FZ_CHECK(r->req.body_stored <= r->req.body_bytes);
	FZ_CHECK(r->resp.body_stored <= r->resp.body_bytes);
	FZ_CHECK(!r->req.body_stored || r->req.body);
	FZ_CHECK(!r->resp.body_stored || r->resp.body);
	FZ_CHECK(r->raw_len <= r->raw_cap && r->raw_len <= fz_xcfg.replay_max);
	FZ_CHECK(!r->raw || fz_xcfg.keep_raw);
	if (r->req.body_borrowed)
		FZ_CHECK(r->raw && r->req.body >= r->raw &&
			 r->req.body + r->req.body_stored <= r->raw + r->raw_len);
	FZ_CHECK(!(r->cap_flags & ST_CAP_MALFORMED) || r->malformed);
	if (r->method) {
		FZ_CHECK(r->req.head && r->method >= r->req.head &&
			 r->method + r->method_len <= r->req.head + r->req.head_len);
		FZ_CHECK(r->target >= r->req.head && r->target + r->target_len <= r->req.head + r->req.head_len);
		/* the raw copy starts with the head as parsed */
		if (r->raw)
			FZ_CHECK(r->raw_len >= r->req.head_len &&
				 memcmp(r->raw, r->req.head, r->req.head_len) == 0);
		fz_with_method++;
		/* unanswered: the record says why */
		if (!r->resp.head)
			FZ_CHECK((r->cap_flags & (ST_CAP_NO_RESPONSE | ST_CAP_MALFORMED | ST_CAP_INCOMPLETE)) ||
				 r->evicted);
	}
	if (r->resp.head)
		FZ_CHECK(r->status_code >= 100 && r->status_code <= 999);

	if (fz_trace)
		fprintf(stderr, "record conn %d index %u %.*s flags 0x%x status %d malformed %s evicted %s\n",
			c, r->index, (int)r->target_len, r->target ? r->target : "", r->cap_flags,
			r->status_code, r->malformed ? r->malformed : "-", r->evicted ? r->evicted : "-");
	/* Resync after a head over max_head (or a bad answer head) skips to the next
	 * line that starts a message: a message right behind a body, on the same line,
	 * is skipped with it, unseen, and its answer paired with the next one (a known
	 * limit, docs/cost.md "Capture path"). */
	exchange_get_stats(fz_x, &xs);
	if (xs.head_too_large || xs.malformed_responses) {
		fz_c[0].unsure = 1;
		fz_c[1].unsure = 1;
	}
	/* pairing never guesses */
	if (r->method && r->resp.head && !k->corrupted && !k->req_gap && !k->unsure &&
	    !(r->cap_flags & (ST_CAP_MALFORMED | ST_CAP_MID_STREAM)) &&
	    fz_find_id(r->target, r->target_len, "/r", &qid) &&
	    fz_find_id(r->resp.head, r->resp.head_len, "X-Id: ", &aid)) {
		if (qid != aid)
			fprintf(stderr, "request /r%ld paired with answer %ld (flags 0x%x)\n", qid, aid,
				r->cap_flags);
		FZ_CHECK(qid == aid);
	}
	record_free(r);
}

static void fz_put(struct fz_stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fz_put(struct fz_stream *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf((char *)s->b + s->len, FZ_STREAM - s->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		s->len = s->len + (uint32_t)n < FZ_STREAM ? s->len + (uint32_t)n : FZ_STREAM - 1;
}

static void fz_body(struct fz_stream *s, unsigned n, unsigned seed)
{
	unsigned i;

	for (i = 0; i < n && s->len < FZ_STREAM - 1; i++)
		s->b[s->len++] = (uint8_t)('a' + (seed + i) % 26);
}

/* One exchange, id, of kind k, appended to both streams. Returns 0 when the server
 * side ended (close-delimited answer or 101: nothing after it is HTTP). */
static int fz_exchange(struct fz_conn *c, unsigned k, long id, int last)
{
	struct fz_stream *q = &c->s[REASM_C2S], *a = &c->s[REASM_S2C];
	unsigned blen = (k >> 3 & 7) * 23, rk = k >> 6 & 3, i;
	int head = 0, more = 1;

	if (q->len > FZ_STREAM - 1024 || a->len > FZ_STREAM - 1024)
		return 0;
	if (c->prev_bad)
		c->prev_bad--;
	c->aoff[c->nmsg] = a->len;
	switch (k & 7) {
	case 0:
		fz_put(q, "GET /r%ld HTTP/1.1\r\nHost: h\r\n\r\n", id);
		break;
	case 1:
		fz_put(q, "POST /r%ld HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n", id, blen);
		fz_body(q, blen, (unsigned)id);
		break;
	case 2:
		fz_put(q, "PUT /r%ld HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", id);
		for (i = 1; i <= 2; i++) {
			fz_put(q, "%x\r\n", blen + i);
			fz_body(q, blen + i, i);
			fz_put(q, "\r\n");
		}
		fz_put(q, "0\r\n\r\n");
		break;
	case 3:
		fz_put(q, "HEAD /r%ld HTTP/1.1\r\nHost: h\r\n\r\n", id);
		head = 1;
		break;
	case 4:
		fz_put(q, "POST /r%ld HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %u\r\n\r\n", id, blen);
		fz_put(a, "HTTP/1.1 100 Continue\r\n\r\n");
		fz_body(q, blen, 3);
		break;
	case 5:
		/* not HTTP: a malformed record, answered all the same. Two in a row are one
		 * to the parser (it skips to the next method), so the second is a GET. */
		if (c->prev_bad) {
			fz_put(q, "GET /r%ld HTTP/1.1\r\n\r\n", id);
			c->prev_bad = 0;
			break;
		}
		fz_put(q, "BLAH%ld\r\n\r\n", id);
		c->prev_bad = 2;
		break;
	case 6:
		fz_put(q, "GET /r%ld HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", id);
		if (rk & 1) {
			c->qend[c->nmsg++] = q->len;
			fz_put(a, "HTTP/1.1 101 Switching Protocols\r\nX-Id: %ld\r\nUpgrade: websocket\r\n\r\n", id);
			fz_body(a, blen, 7);
			fz_body(q, blen, 8);
			return 0;
		}
		break;
	default:
		fz_put(q, "GET /r%ld HTTP/1.0\r\n\r\n", id);
		break;
	}
	c->qend[c->nmsg++] = q->len;
	switch (rk) {
	case 0:
	case 3:
		if (last && rk == 3 && !head) {
			/* close-delimited: ends with the connection */
			fz_put(a, "HTTP/1.1 200 OK\r\nX-Id: %ld\r\n\r\n", id);
			fz_body(a, blen, 9);
			more = 0;
			break;
		}
		fz_put(a, "HTTP/1.1 200 OK\r\nX-Id: %ld\r\nContent-Length: %u\r\n\r\n", id, blen + 1);
		if (!head)
			fz_body(a, blen + 1, 5);
		break;
	case 1:
		fz_put(a, "HTTP/1.1 200 OK\r\nX-Id: %ld\r\nTransfer-Encoding: chunked\r\n\r\n", id);
		if (!head) {
			fz_put(a, "%x\r\n", blen + 2);
			fz_body(a, blen + 2, 6);
			fz_put(a, "\r\n0\r\n\r\n");
		}
		break;
	default:
		fz_put(a, "HTTP/1.1 204 No Content\r\nX-Id: %ld\r\n\r\n", id);
		break;
	}
	return more;
}

/* How far the server may have sent: up to the answer of the first request the client
 * has not finished sending. */
/* Without pipelining, the client sends request i + 1 only once answer i has been
 * sent (or skipped) whole. */
static uint32_t fz_client_limit(const struct fz_conn *c)
{
	int i;

	if (fz_pipelined)
		return c->s[REASM_C2S].len;
	for (i = 0; i < c->nmsg; i++)
		if (c->s[REASM_S2C].cur < c->aend[i])
			return c->qend[i];
	return c->s[REASM_C2S].len;
}

static uint32_t fz_server_limit(const struct fz_conn *c)
{
	int i;

	for (i = 0; i < c->nmsg; i++)
		if (c->s[REASM_C2S].cur < c->qend[i])
			return c->aoff[i];
	return c->s[REASM_S2C].len;
}

static void fz_send(struct reasm *r, int conn, int dir, uint32_t off, uint32_t len, uint8_t flags,
		    uint64_t ts)
{
	struct fz_conn *c = &fz_c[conn];
	struct fz_stream *s = &c->s[dir], *o = &c->s[!dir];
	struct reasm_seg g;

	memset(&g, 0, sizeof(g));
	g.key.family = 4;
	g.key.caddr[0] = 0x0100000a;
	g.key.saddr[0] = 0x0200000a;
	g.key.cport = (uint16_t)(1000 + conn);
	g.key.sport = 80;
	g.dir = (uint8_t)dir;
	g.flags = flags;
	g.ts_ns = ts;
	if (flags & ST_TCP_SYN) {
		g.seq = c->isn[dir];
	} else {
		if (off > s->len)
			off = s->len;
		if (len > s->len - off)
			len = s->len - off;
		g.seq = c->isn[dir] + 1 + off;
		g.data = len ? s->b + off : NULL;
		g.len = len;
	}
	if (!(flags & ST_TCP_RST) && (dir == REASM_S2C || (flags & ST_TCP_SYN) == 0)) {
		/* the peer's bytes up to where it has sent or skipped are acknowledged: a
		 * skipped range becomes a capture gap, as on the wire */
		g.flags |= ST_TCP_ACK;
		g.ack = c->isn[!dir] + 1 + o->cur + (o->fin && o->cur == o->len);
	}
	if (fz_trace)
		fprintf(stderr, "conn %d %s seq +%u len %u flags 0x%x ack +%u: %.*s\n", conn,
			dir ? "s2c" : "c2s", g.seq - c->isn[dir], g.len, g.flags,
			g.ack - c->isn[!dir], (int)g.len, g.data ? (const char *)g.data : "");
	reasm_segment(r, &g);
}

/* exchange's own callbacks, with a flow's record count restarted when it opens */
static int fz_open(void *ctx, struct reasm_flow *f)
{
	struct fz_conn *k = &fz_c[f->key.cport - 1000];

	k->have_flow = 0;
	k->last_index = -1;
	return exchange_reasm_ops.open(ctx, f);
}

static void fz_data(void *ctx, struct reasm_flow *f, int dir, const uint8_t *p, size_t n,
		    uint64_t ts)
{
	if (fz_trace)
		fprintf(stderr, "  data conn %d %s %zu bytes at +%u\n", f->key.cport - 1000,
			dir ? "s2c" : "c2s", n, reasm_next_seq(f, dir) - fz_c[f->key.cport - 1000].isn[dir]);
	exchange_reasm_ops.data(ctx, f, dir, p, n, ts);
}

static void fz_gap(void *ctx, struct reasm_flow *f, int dir, uint64_t n)
{
	/* After a gap, pairing is the parser's best effort (known limits, docs/cost.md
	 * "Capture path"): pipelined requests hidden by a request-side gap are counted
	 * as one once one of their answers came; and resync after a gap finds the next
	 * message only at a line start, so one right behind a Content-Length body is
	 * missed and its answer goes to the next request. Pairing is checked on
	 * connections without gaps. */
	fz_c[f->key.cport - 1000].req_gap = 1;
	if (fz_trace)
		fprintf(stderr, "  gap conn %d %s %llu bytes at +%u\n", f->key.cport - 1000,
			dir ? "s2c" : "c2s", (unsigned long long)n,
			reasm_next_seq(f, dir) - fz_c[f->key.cport - 1000].isn[dir]);
	exchange_reasm_ops.gap(ctx, f, dir, n);
}

static void fz_eof(void *ctx, struct reasm_flow *f, int dir)
{
	exchange_reasm_ops.eof(ctx, f, dir);
}

static void fz_close(void *ctx, struct reasm_flow *f, enum reasm_close_reason why)
{
	exchange_reasm_ops.close(ctx, f, why);
}

static const struct reasm_ops fz_ops = {
	.open = fz_open, .data = fz_data, .gap = fz_gap, .eof = fz_eof, .close = fz_close,
};

static void fz_held_ok(struct exchange *x)
{
	struct exchange_stats st;

	exchange_get_stats(x, &st);
	FZ_CHECK(st.held_bytes <= fz_xcfg.max_held_bytes);
	FZ_CHECK(st.held_bytes <= st.held_bytes_peak);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exchange_stats xs;
	struct reasm_cfg rcfg;
	struct exchange *x;
	struct reasm *r;
	uint64_t now = 1000 * FZ_MS;
	size_t i, nmsg, pos;
	int c;

	if (fz_trace < 0)
		fz_trace = getenv("FZ_TRACE") != NULL;
	if (size < 4)
		return 0;
	memset(fz_c, 0, sizeof(fz_c));
	fz_with_method = fz_records = 0;

	exchange_cfg_default(&fz_xcfg);
	fz_xcfg.body_limit = 8u << (data[0] & 3);
	fz_xcfg.max_pending = 1 + (data[0] >> 2 & 7);
	fz_xcfg.keep_raw = data[0] >> 5 & 1;
	fz_xcfg.replay_max = 64 + (size_t)(data[1] & 15) * 64;
	fz_xcfg.max_head = 48 + (size_t)(data[1] >> 4) * 16;
	fz_xcfg.max_held_bytes = 4096 + (size_t)data[2] * 128;
	fz_xcfg.max_conn_bytes = 2048 + (size_t)(data[2] & 0xf0) * 64;
	fz_pipelined = data[2] & 1;
	fz_xcfg.max_headers = 2 + (data[0] >> 6) * 4;
	x = exchange_new(&fz_xcfg, fz_emit, NULL);
	FZ_CHECK(x);
	fz_x = x;

	reasm_cfg_default(&rcfg);
	rcfg.max_flows = 1 + (data[3] & 1);
	rcfg.max_flow_bytes = 256 + (size_t)(data[3] >> 1 & 7) * 256;
	rcfg.max_total_bytes = 1024 + (size_t)(data[3] >> 4) * 512;
	rcfg.hole_timeout_ns = 50 * FZ_MS;
	rcfg.idle_timeout_ns = 2000 * FZ_MS;
	rcfg.linger_ns = 300 * FZ_MS;
	r = reasm_new(&rcfg, &fz_ops, x);
	FZ_CHECK(r);

	/* the exchanges: one byte each, up to a 0xff byte or FZ_MAXMSG */
	pos = 4;
	for (c = 0; c < FZ_CONNS; c++) {
		fz_c[c].isn[0] = 0xfffff000u + (uint32_t)c * 0x10000u;
		fz_c[c].isn[1] = 0x7fff0000u - (uint32_t)c * 77u;
	}
	for (nmsg = 0; pos < size && data[pos] != 0xff && nmsg < FZ_MAXMSG; pos++, nmsg++)
		for (c = 0; c < FZ_CONNS; c++)
			if (!fz_c[c].ended &&
			    !fz_exchange(&fz_c[c], data[pos] ^ (unsigned)c * 0x41, (long)(c * 1000 + nmsg),
					 pos + 1 >= size || data[pos + 1] == 0xff))
				fz_c[c].ended = 1;
	pos++;
	for (c = 0; c < FZ_CONNS; c++) {
		int m;

		for (m = 0; m < fz_c[c].nmsg; m++)
		{
			fz_c[c].aend[m] = m + 1 < fz_c[c].nmsg ? fz_c[c].aoff[m + 1] : fz_c[c].s[REASM_S2C].len;
			if (fz_trace)
				fprintf(stderr, "conn %d message %d: request ends at %u, answer at %u..%u\n",
					c, m, fz_c[c].qend[m], fz_c[c].aoff[m], fz_c[c].aend[m]);
		}
	}

	/* the segments: four bytes each */
	for (i = pos; i + 4 <= size; i += 4) {
		const uint8_t *b = data + i;
		int conn = b[0] & 1, dir = b[0] >> 1 & 1, op = b[0] >> 2 & 7;
		struct fz_conn *k = &fz_c[conn];
		struct fz_stream *s = &k->s[dir];
		uint32_t len = 1 + ((uint32_t)b[1] | (uint32_t)(b[2] & 3) << 8);
		uint32_t lim = dir == REASM_S2C ? fz_server_limit(k) : fz_client_limit(k);

		now += (uint64_t)(b[3] & 15) * FZ_MS;
		if (k->dead && op != 7)
			continue;
		if (!k->opened && op != 7) {
			k->opened = 1;
			if (!(b[0] & 0x80)) {
				fz_send(r, conn, REASM_C2S, 0, 0, ST_TCP_SYN, now);
				fz_send(r, conn, REASM_S2C, 0, 0, ST_TCP_SYN, now);
			} else {
				/* seen mid-stream: pairing is the parser's best effort */
				k->corrupted = 1;
			}
		}
		switch (op) {
		case 0: case 1: case 2: case 3:
			/* the next bytes, in order */
			if (s->cur >= lim)
				break;
			len = len < lim - s->cur ? len : lim - s->cur;
			fz_send(r, conn, dir, s->cur, len, 0, now);
			s->cur += len;
			break;
		case 4:
			/* a capture gap: skipped, acknowledged by the peer's next segment */
			s->cur = s->cur + len < lim ? s->cur + len : lim > s->cur ? lim : s->cur;
			break;
		case 5: {
			/* sent again: a retransmit, or part of a skipped range after all */
			uint32_t back = (uint32_t)b[2] >> 2 << 3;

			back = back < s->cur ? back : s->cur;
			/* it may run past cur (sent ahead), not past what the server may send */
			if (s->cur - back >= lim)
				break;
			len = len < lim - (s->cur - back) ? len : lim - (s->cur - back);
			fz_send(r, conn, dir, s->cur - back, len, 0, now);
			break;
		}
		case 6:
			if (b[2] & 0x80) {
				fz_send(r, conn, dir, s->cur, 0, ST_TCP_RST, now);
				k->dead = 1;
			} else if (!s->fin) {
				/* FIN after what was sent: the rest of the stream is never sent */
				s->len = s->cur;
				s->fin = 1;
				fz_send(r, conn, dir, s->cur, 0, ST_TCP_FIN, now);
			}
			break;
		default:
			if (b[2] & 0x40 && s->cur < s->len && !(b[2] & 0x20)) {
				/* a changed byte, not yet sent */
				s->b[s->cur] ^= b[1] | 1;
				k->corrupted = 1;
			}
			now += (uint64_t)b[1] * FZ_MS;
			reasm_tick(r, now);
			if ((b[2] & 0x30) == 0x30)
				reasm_flush_all(r);
			break;
		}
		FZ_CHECK(reasm_check(r) == 0);
		fz_held_ok(x);
	}
	reasm_flush_all(r);
	exchange_get_stats(x, &xs);
	/* every parsed request in exactly one record, and nothing left held */
	FZ_CHECK(xs.records == fz_records);
	FZ_CHECK(xs.requests == fz_with_method);
	FZ_CHECK(xs.held_bytes == 0);
	reasm_free(r);
	exchange_free(x);
	return 0;
}
