/* Micro-benchmarks of the agent's hot paths, linked with the agent objects:
 * HTTP/1.x parsing (http1.h), TCP reassembly (tcp_reasm.h), exchange assembly
 * (exchange.h) and record encoding (record.h). Inputs are generated from a fixed seed
 * so every run (and every Callgrind count) sees the same bytes.
 *
 *   micro [RUNS]            time each benchmark RUNS times (default 7), print medians
 *   micro --once PHASE      one pass of PHASE (parse|reasm|exchange|encode|encode_get|
 *                           record_get|post_b64_43k|post_b64_256k|post_text), for
 *                           valgrind --tool=callgrind
 *                           --toggle-collect=micro_*_pass
 *
 * Output lines are "name key=value ...", parsed by micro.sh. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diff.h"
#include "exchange.h"
#include "http1.h"
#include "log.h"
#include "record.h"
#include "shadowtap.h"
#include "tcp_reasm.h"

#define MICRO_EXCHANGES 4000     /* request/response pairs in the corpus */
#define MICRO_FLOWS     200      /* connections they are spread over */
#define MICRO_MSS       1448
#define MICRO_REORDER   32       /* one segment pair in this many is swapped */

struct micro_msg {
	const char *p;
	size_t len;
	int is_req;
	const char *method;      /* of the request a response answers */
	size_t method_len;
};

struct micro_corpus {
	struct buf req;          /* every request, back to back */
	struct buf resp;
	size_t *req_off, *resp_off;   /* MICRO_EXCHANGES + 1 offsets */
	const char **method;
	struct micro_msg *msgs;  /* requests and responses interleaved */
	size_t nmsgs;
	uint64_t bytes;
	uint64_t head_bytes;     /* start lines and headers only */
};

static uint64_t micro_rng = 0x243f6a8885a308d3ull;

static uint32_t micro_rand(void)
{
	micro_rng ^= micro_rng << 13;
	micro_rng ^= micro_rng >> 7;
	micro_rng ^= micro_rng << 17;
	return (uint32_t)(micro_rng >> 11);
}

static double micro_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void micro_json_body(struct buf *b, size_t target)
{
	size_t start = b->len;
	unsigned i = 0;

	buf_append(b, "{\"items\":[", 10);
	while (b->len - start + 64 < target)
		buf_printf(b, "%s{\"id\":%u,\"name\":\"item-%u\",\"price\":%u.%02u,\"tags\":[\"a\",\"b\"]}",
			   i++ ? "," : "", micro_rand() % 100000, micro_rand() % 1000,
			   micro_rand() % 500, micro_rand() % 100);
	buf_append(b, "],\"total\":1}", 12);
}

static void micro_html_body(struct buf *b, size_t target)
{
	size_t start = b->len;

	buf_append(b, "<!doctype html><html><head><title>shop</title></head><body>\n", 60);
	while (b->len - start + 80 < target)
		buf_printf(b, "<div class=\"product\" data-id=\"%u\"><a href=\"/p/%u\">Product %u</a></div>\n",
			   micro_rand() % 100000, micro_rand() % 100000, micro_rand() % 1000);
	buf_append(b, "</body></html>\n", 15);
}

/* Chunked framing of body bytes, in chunks of up to csz. */
static void micro_chunked(struct buf *out, const struct buf *body, size_t csz)
{
	size_t off = 0, n;

	while (off < body->len) {
		n = body->len - off < csz ? body->len - off : csz;
		buf_printf(out, "%zx\r\n", n);
		buf_append(out, body->data + off, n);
		buf_append(out, "\r\n", 2);
		off += n;
	}
	buf_append(out, "0\r\n\r\n", 5);
}

static const char micro_ua[] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
			       "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/* One request of a realistic mix: browser page loads, API reads with a token, JSON
 * POSTs, and the occasional chunked upload. Returns its method. */
static const char *micro_request(struct buf *b, unsigned i)
{
	unsigned kind = micro_rand() % 100;
	struct buf body = { 0 };
	const char *m = "GET";

	if (kind < 45) {
		buf_printf(b, "GET /products/%u?ref=home&utm_source=newsletter&page=%u HTTP/1.1\r\n"
			   "Host: shop.example.com\r\nUser-Agent: %s\r\n"
			   "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
			   "Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n"
			   "Cookie: session=%08x%08x; prefs=dark; cart=%u\r\n"
			   "If-None-Match: \"%08x\"\r\nConnection: keep-alive\r\n\r\n",
			   micro_rand() % 100000, i % 20, micro_ua, micro_rand(), micro_rand(),
			   micro_rand() % 50, micro_rand());
	} else if (kind < 75) {
		buf_printf(b, "GET /api/v2/orders/%u/items?limit=50&offset=%u HTTP/1.1\r\n"
			   "Host: api.example.com\r\nAuthorization: Bearer %08x%08x%08x%08x\r\n"
			   "Accept: application/json\r\nX-Request-Id: %08x-%04x\r\n"
			   "User-Agent: okhttp/4.12.0\r\n\r\n",
			   micro_rand() % 1000000, (i % 7) * 50, micro_rand(), micro_rand(), micro_rand(),
			   micro_rand(), micro_rand(), micro_rand() & 0xffff);
	} else if (kind < 97) {
		m = "POST";
		micro_json_body(&body, 200 + micro_rand() % 3000);
		buf_printf(b, "POST /api/v2/cart/items HTTP/1.1\r\nHost: api.example.com\r\n"
			   "Authorization: Bearer %08x%08x\r\nContent-Type: application/json\r\n"
			   "Content-Length: %zu\r\nUser-Agent: okhttp/4.12.0\r\n\r\n",
			   micro_rand(), micro_rand(), body.len);
		buf_append(b, body.data, body.len);
	} else {
		m = "PUT";
		micro_html_body(&body, 8000 + micro_rand() % 24000);
		buf_printf(b, "PUT /upload/%u HTTP/1.1\r\nHost: api.example.com\r\n"
			   "Content-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n",
			   micro_rand() % 1000);
		micro_chunked(b, &body, 4096);
	}
	buf_free(&body);
	return m;
}

static void micro_response(struct buf *b, const char *method)
{
	unsigned kind = micro_rand() % 100;
	struct buf body = { 0 };

	if (!strcmp(method, "GET") && kind < 15) {
		buf_printf(b, "HTTP/1.1 304 Not Modified\r\nServer: nginx/1.22.1\r\n"
			   "Date: Fri, 27 Nov 2026 12:00:00 GMT\r\nETag: \"%08x\"\r\n"
			   "Cache-Control: max-age=60\r\n\r\n", micro_rand());
		return;
	}
	if (kind < 20) {
		micro_html_body(&body, 4000 + micro_rand() % 28000);
		buf_printf(b, "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 12:00:00 GMT\r\n"
			   "Content-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n"
			   "Set-Cookie: session=%08x; Path=/; HttpOnly\r\nCache-Control: no-cache\r\n"
			   "Connection: keep-alive\r\n\r\n", body.len, micro_rand());
		buf_append(b, body.data, body.len);
	} else if (kind < 35) {
		micro_json_body(&body, 2000 + micro_rand() % 12000);
		buf_printf(b, "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 12:00:00 GMT\r\n"
			   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
			   "Vary: Accept-Encoding\r\n\r\n");
		micro_chunked(b, &body, 1024 + micro_rand() % 3000);
	} else if (kind < 40) {
		buf_printf(b, "HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\n"
			   "Content-Type: application/json\r\nContent-Length: 27\r\n\r\n"
			   "{\"error\":\"item not found\"}\n");
	} else {
		micro_json_body(&body, 150 + micro_rand() % 2500);
		buf_printf(b, "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 12:00:00 GMT\r\n"
			   "Content-Type: application/json\r\nContent-Length: %zu\r\n"
			   "X-Request-Id: %08x\r\nCache-Control: private, max-age=0\r\n\r\n",
			   body.len, micro_rand());
		buf_append(b, body.data, body.len);
	}
	buf_free(&body);
}

static int micro_corpus_build(struct micro_corpus *c)
{
	size_t i;

	c->req_off = calloc(MICRO_EXCHANGES + 1, sizeof(size_t));
	c->resp_off = calloc(MICRO_EXCHANGES + 1, sizeof(size_t));
	c->method = calloc(MICRO_EXCHANGES, sizeof(char *));
	c->msgs = calloc(2 * MICRO_EXCHANGES, sizeof(*c->msgs));
	if (!c->req_off || !c->resp_off || !c->method || !c->msgs)
		return -ENOMEM;
	for (i = 0; i < MICRO_EXCHANGES; i++) {
		c->req_off[i] = c->req.len;
		c->resp_off[i] = c->resp.len;
		c->method[i] = micro_request(&c->req, (unsigned)i);
		micro_response(&c->resp, c->method[i]);
	}
	c->req_off[i] = c->req.len;
	c->resp_off[i] = c->resp.len;
	/* pointers only once both buffers stopped growing */
	for (i = 0; i < MICRO_EXCHANGES; i++) {
		c->msgs[c->nmsgs++] = (struct micro_msg){ c->req.data + c->req_off[i],
			c->req_off[i + 1] - c->req_off[i], 1, NULL, 0 };
		c->msgs[c->nmsgs++] = (struct micro_msg){ c->resp.data + c->resp_off[i],
			c->resp_off[i + 1] - c->resp_off[i], 0, c->method[i], strlen(c->method[i]) };
	}
	c->bytes = c->req.len + c->resp.len;
	for (i = 0; i < c->nmsgs; i++) {
		struct http1_header hdrs[ST_MAX_HEADERS];
		struct http1_request rq;
		struct http1_response rs;
		int head = c->msgs[i].is_req ?
			http1_parse_request(c->msgs[i].p, c->msgs[i].len, &rq, hdrs, ST_MAX_HEADERS) :
			http1_parse_response(c->msgs[i].p, c->msgs[i].len, &rs, hdrs, ST_MAX_HEADERS);

		if (head > 0)
			c->head_bytes += (uint64_t)head;
	}
	return 0;
}

/* ------------------------------------------------------------------ parser */

static uint64_t micro_sink;

static void micro_body_cb(void *ctx, const char *data, size_t len)
{
	micro_sink += len;
}

/* Parse every message of the corpus: head, framing, body decoding. Returns the
 * number of messages that parsed whole (all of them, or the corpus is wrong). */
__attribute__((noinline)) size_t micro_parse_pass(const struct micro_corpus *c)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	size_t i, ok = 0;

	for (i = 0; i < c->nmsgs; i++) {
		const struct micro_msg *m = &c->msgs[i];
		struct http1_body body = { 0 };
		uint64_t clen = 0;
		int head, framing;
		ssize_t used;

		if (m->is_req) {
			struct http1_request req;

			head = http1_parse_request(m->p, m->len, &req, hdrs, ST_MAX_HEADERS);
			if (head < 0)
				continue;
			framing = http1_request_framing(&req, &clen);
		} else {
			struct http1_response resp;

			head = http1_parse_response(m->p, m->len, &resp, hdrs, ST_MAX_HEADERS);
			if (head < 0)
				continue;
			framing = http1_response_framing(&resp, m->method, m->method_len, &clen);
		}
		if (framing < 0)
			continue;
		http1_body_init(&body, framing, clen);
		if (framing != HTTP1_BODY_NONE) {
			used = http1_body_feed(&body, m->p + head, m->len - (size_t)head, micro_body_cb, NULL);
			if (used < 0 || !body.done)
				continue;
		}
		ok++;
	}
	return ok;
}

/* ------------------------------------------------------------ reassembly */

struct micro_segs {
	struct reasm_seg *seg;
	size_t n;
	uint64_t payload;
};

/* ack: the peer's next sequence number, as a real ACK carries it. Reassembly reads
 * it (bytes the peer acknowledged that the capture missed become a gap), so a zero
 * ack on random sequence numbers would cut the stream into gaps. */
static void micro_seg_add(struct micro_segs *s, const struct reasm_key *k, int dir, uint8_t flags,
			  uint32_t seq, uint32_t ack, const char *p, uint32_t len, uint64_t ts)
{
	s->seg[s->n++] = (struct reasm_seg){ .key = *k, .dir = (uint8_t)dir, .flags = flags,
		.seq = seq, .ack = ack, .ts_ns = ts, .data = (const uint8_t *)p, .len = len };
	s->payload += len;
}

/* Cut one direction's bytes into MSS segments, swapping a pair now and then so the
 * out-of-order path is exercised as on a real network. */
static void micro_seg_stream(struct micro_segs *s, const struct reasm_key *k, int dir, uint32_t *seq,
			     uint32_t ack, const char *p, size_t len, uint64_t *ts)
{
	size_t off = 0, first = s->n;

	while (off < len) {
		uint32_t n = (uint32_t)(len - off < MICRO_MSS ? len - off : MICRO_MSS);

		micro_seg_add(s, k, dir, ST_TCP_ACK | ST_TCP_PSH, *seq, ack, p + off, n, (*ts)++);
		*seq += n;
		off += n;
	}
	for (size_t i = first; i + 1 < s->n; i += 2) {
		if (micro_rand() % MICRO_REORDER == 0) {
			struct reasm_seg t = s->seg[i];

			s->seg[i] = s->seg[i + 1];
			s->seg[i + 1] = t;
		}
	}
}

/* Spread the exchanges over MICRO_FLOWS keep-alive connections: handshake, each
 * request then its response, FIN both ways. Connections are interleaved a burst
 * at a time, as many clients would be. */
static int micro_segs_build(const struct micro_corpus *c, struct micro_segs *s)
{
	size_t cap = 64 + 4 * MICRO_FLOWS + 2 * (c->bytes / MICRO_MSS + 2 * MICRO_EXCHANGES);
	struct micro_segs *per = calloc(MICRO_FLOWS, sizeof(*per));
	size_t *pos = calloc(MICRO_FLOWS, sizeof(size_t));
	uint64_t ts = 1000;
	size_t f, i, left;
	int err = 0;

	s->seg = calloc(cap, sizeof(*s->seg));
	if (!per || !pos || !s->seg) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (f = 0; f < MICRO_FLOWS; f++) {
		struct reasm_key k = { .family = 4, .cport = (uint16_t)(20000 + f), .sport = 80 };
		uint32_t cseq = micro_rand(), sseq = micro_rand();

		k.caddr[0] = htonl(0xc6120002u + (uint32_t)(f % 200));
		k.saddr[0] = htonl(0xc6120001u);
		per[f].seg = calloc(cap / MICRO_FLOWS * 2 + 64, sizeof(struct reasm_seg));
		if (!per[f].seg) {
			err = -ENOMEM;
			goto cleanup;
		}
		micro_seg_add(&per[f], &k, REASM_C2S, ST_TCP_SYN, cseq++, 0, NULL, 0, ts++);
		micro_seg_add(&per[f], &k, REASM_S2C, ST_TCP_SYN | ST_TCP_ACK, sseq++, cseq, NULL, 0, ts++);
		for (i = f; i < MICRO_EXCHANGES; i += MICRO_FLOWS) {
			micro_seg_stream(&per[f], &k, REASM_C2S, &cseq, sseq, c->req.data + c->req_off[i],
					 c->req_off[i + 1] - c->req_off[i], &ts);
			micro_seg_stream(&per[f], &k, REASM_S2C, &sseq, cseq, c->resp.data + c->resp_off[i],
					 c->resp_off[i + 1] - c->resp_off[i], &ts);
		}
		micro_seg_add(&per[f], &k, REASM_C2S, ST_TCP_FIN | ST_TCP_ACK, cseq, sseq, NULL, 0, ts++);
		micro_seg_add(&per[f], &k, REASM_S2C, ST_TCP_FIN | ST_TCP_ACK, sseq, cseq + 1, NULL, 0, ts++);
	}
	do {
		left = 0;
		for (f = 0; f < MICRO_FLOWS; f++) {
			for (i = 0; i < 4 && pos[f] < per[f].n; i++, pos[f]++) {
				if (s->n == cap) {
					err = -ENOSPC;
					goto cleanup;
				}
				s->seg[s->n++] = per[f].seg[pos[f]];
				s->payload += per[f].seg[pos[f]].len;
			}
			left += per[f].n - pos[f];
		}
	} while (left);
cleanup:
	if (per)
		for (f = 0; f < MICRO_FLOWS; f++)
			free(per[f].seg);
	free(per);
	free(pos);
	return err;
}

static uint64_t micro_delivered;

static int micro_r_open(void *ctx, struct reasm_flow *f) { return 0; }
static void micro_r_data(void *ctx, struct reasm_flow *f, int dir, const uint8_t *d, size_t len,
			 uint64_t ts) { micro_delivered += len; }
static void micro_r_gap(void *ctx, struct reasm_flow *f, int dir, uint64_t bytes) { }
static void micro_r_eof(void *ctx, struct reasm_flow *f, int dir) { }
static void micro_r_close(void *ctx, struct reasm_flow *f, enum reasm_close_reason why) { }

static const struct reasm_ops micro_null_ops = {
	micro_r_open, micro_r_data, micro_r_gap, micro_r_eof, micro_r_close,
};

__attribute__((noinline)) void micro_reasm_pass(struct reasm *r, const struct micro_segs *s)
{
	for (size_t i = 0; i < s->n; i++)
		reasm_segment(r, &s->seg[i]);
	reasm_flush_all(r);
}

/* ---------------------------------------------------- exchange + encoding */

struct micro_recs {
	struct st_record **rec;
	size_t n, cap;
	int keep;
};

static void micro_emit(void *ctx, struct st_record *r)
{
	struct micro_recs *mr = ctx;

	if (mr->keep && mr->n < mr->cap) {
		mr->rec[mr->n++] = r;
		return;
	}
	mr->n++;
	record_free(r);
}

/* Feed every connection's in-order bytes straight into the exchange callbacks (no
 * reassembly), one request then its response, as tcp_reasm would deliver them. */
__attribute__((noinline)) void micro_exchange_pass(const struct micro_corpus *c, struct micro_recs *mr)
{
	struct exchange_cfg cfg;
	struct exchange *x;
	size_t f, i;

	exchange_cfg_default(&cfg);
	cfg.keep_raw = 1;
	x = exchange_new(&cfg, micro_emit, mr);
	if (!x)
		return;
	for (f = 0; f < MICRO_FLOWS; f++) {
		struct reasm_flow fl = { .key = { .family = 4, .cport = (uint16_t)(20000 + f), .sport = 80 },
					 .flow_id = 0x1000 + f, .first_ts_ns = 1000, .last_ts_ns = 1000 };
		uint64_t ts = 1000;

		fl.key.caddr[0] = htonl(0xc6120002u);
		fl.key.saddr[0] = htonl(0xc6120001u);
		if (exchange_reasm_ops.open(x, &fl) < 0)
			continue;
		for (i = f; i < MICRO_EXCHANGES; i += MICRO_FLOWS) {
			exchange_reasm_ops.data(x, &fl, REASM_C2S, (const uint8_t *)c->req.data + c->req_off[i],
						c->req_off[i + 1] - c->req_off[i], ts++);
			exchange_reasm_ops.data(x, &fl, REASM_S2C, (const uint8_t *)c->resp.data + c->resp_off[i],
						c->resp_off[i + 1] - c->resp_off[i], ts++);
			fl.last_ts_ns = ts;
		}
		exchange_reasm_ops.eof(x, &fl, REASM_C2S);
		exchange_reasm_ops.eof(x, &fl, REASM_S2C);
		exchange_reasm_ops.close(x, &fl, REASM_CLOSE_FIN);
	}
	exchange_free(x);
}

static const char *const micro_redact[] = {
	"authorization", "cookie", "set-cookie", "proxy-authorization", NULL,
};

__attribute__((noinline)) uint64_t micro_encode_pass(const struct micro_recs *mr, struct buf *out)
{
	struct record_json_opts o = { .redact = micro_redact, .body_limit = 64 * 1024 };
	uint64_t bytes = 0;

	for (size_t i = 0; i < mr->n; i++) {
		buf_reset(out);
		if (record_to_json(mr->rec[i], &o, out) == 0)
			bytes += out->len;
	}
	return bytes;
}

/* ------------------------------------- the benchmark's replayed GET (issue 19) */

/* The shapes deploy/bench/run.sh sends and serves: loadgen's GET, nginx's answer from
 * serverA and serverB (the same file but for its "server" member, so the diff finds one
 * field), one keep-alive connection. encode_get encodes finished records (request,
 * both answers, diff); record_get is a record's whole life on one thread: exchange
 * assembly, serverB's answer attached as replay_conn.c does, diff, encoding, free. */
#define MICRO_GETS 4000

struct micro_get {
	struct buf req, resp_a, resp_b;
	size_t *req_off, *resp_off;
	size_t resp_b_head;      /* serverB's head length */
	struct diff_cfg dcfg;
	struct buf out;
	uint64_t json_bytes;
	int encode;              /* record_get: encode (and free) each record as it comes */
	struct micro_recs keep;
};

static void micro_nginx_resp(struct buf *b, const char *server)
{
	char body[160];
	int n = snprintf(body, sizeof(body), "{\"server\":\"%s\",\"items\":[1,2,3,4,5,6,7,8],\"note\":"
			 "\"benchmark response body of a typical small JSON API\"}\n", server);

	buf_printf(b, "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 05:00:00 GMT\r\n"
		   "Content-Type: application/json\r\nContent-Length: %d\r\n"
		   "Last-Modified: Mon, 07 Dec 2026 04:00:00 GMT\r\nConnection: keep-alive\r\n"
		   "ETag: \"6975%s-%x\"\r\nAccept-Ranges: bytes\r\n\r\n%s", n, server, n, body);
}

static int micro_get_build(struct micro_get *g)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response rs;
	int i, hl;

	g->req_off = calloc(MICRO_GETS + 1, sizeof(size_t));
	g->resp_off = calloc(MICRO_GETS + 1, sizeof(size_t));
	if (!g->req_off || !g->resp_off)
		return -ENOMEM;
	for (i = 0; i < MICRO_GETS; i++) {
		g->req_off[i] = g->req.len;
		g->resp_off[i] = g->resp_a.len;
		buf_printf(&g->req, "GET /api/items/%u?w=%d&q=bench HTTP/1.1\r\nHost: 10.201.0.2\r\n"
			   "User-Agent: st-loadgen\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n\r\n",
			   micro_rand() % 100000, i % 32);
		micro_nginx_resp(&g->resp_a, "a");
	}
	g->req_off[i] = g->req.len;
	g->resp_off[i] = g->resp_a.len;
	micro_nginx_resp(&g->resp_b, "b");
	hl = http1_parse_response(g->resp_b.data, g->resp_b.len, &rs, hdrs, ST_MAX_HEADERS);
	if (hl <= 0)
		return -EINVAL;
	g->resp_b_head = (size_t)hl;
	g->dcfg.max_paths = 20;
	return 0;
}

/* serverB's answer as replay_conn.c builds it: st_replay, head, body, then the diff */
static void micro_get_replay(struct micro_get *g, struct st_record *r)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response rs;
	struct st_replay *rp;

	http1_parse_response(g->resp_b.data, g->resp_b.len, &rs, hdrs, ST_MAX_HEADERS);
	rp = record_replay_new("http://10.202.0.2:81", g->resp_b.data, g->resp_b_head, hdrs,
			       rs.num_headers, g->resp_b.len - g->resp_b_head);
	if (!rp)
		return;
	rp->status_code = rs.status;
	record_msg_body_append(&rp->resp, g->resp_b.data + g->resp_b_head,
			       g->resp_b.len - g->resp_b_head, 64 * 1024);
	rp->resp.body_bytes = g->resp_b.len - g->resp_b_head;
	rp->resp.wire_bytes = g->resp_b.len;
	rp->resp.complete = true;
	rp->duration_ns = 250000;
	r->replay = rp;
	r->diff = diff_compare(r, &g->dcfg);
}

static void micro_get_emit(void *ctx, struct st_record *r)
{
	struct micro_get *g = ctx;
	struct record_json_opts o = { .redact = micro_redact, .body_limit = 64 * 1024 };

	micro_get_replay(g, r);
	if (g->encode) {
		buf_reset(&g->out);
		if (record_to_json(r, &o, &g->out) == 0)
			g->json_bytes += g->out.len;
		g->keep.n++;
		record_free(r);
		return;
	}
	micro_emit(&g->keep, r);
}

static void micro_get_feed(struct micro_get *g)
{
	struct exchange_cfg cfg;
	struct exchange *x;
	struct reasm_flow fl = { .key = { .family = 4, .cport = 40000, .sport = 80 },
				 .flow_id = 0x2000, .first_ts_ns = 1000, .last_ts_ns = 1000 };
	uint64_t ts = 1765083600000000000ull;
	size_t i;

	exchange_cfg_default(&cfg);
	cfg.keep_raw = 1;
	x = exchange_new(&cfg, micro_get_emit, g);
	if (!x)
		return;
	fl.key.caddr[0] = htonl(0x0ac90001u);
	fl.key.saddr[0] = htonl(0x0ac90002u);
	if (exchange_reasm_ops.open(x, &fl) == 0) {
		for (i = 0; i < MICRO_GETS; i++) {
			exchange_reasm_ops.data(x, &fl, REASM_C2S, (const uint8_t *)g->req.data + g->req_off[i],
						g->req_off[i + 1] - g->req_off[i], ts += 1000);
			exchange_reasm_ops.data(x, &fl, REASM_S2C, (const uint8_t *)g->resp_a.data + g->resp_off[i],
						g->resp_off[i + 1] - g->resp_off[i], ts += 150000);
			fl.last_ts_ns = ts;
		}
		exchange_reasm_ops.eof(x, &fl, REASM_C2S);
		exchange_reasm_ops.eof(x, &fl, REASM_S2C);
		exchange_reasm_ops.close(x, &fl, REASM_CLOSE_FIN);
	}
	exchange_free(x);
}

__attribute__((noinline)) uint64_t micro_encode_get_pass(struct micro_get *g)
{
	return micro_encode_pass(&g->keep, &g->out);
}

__attribute__((noinline)) uint64_t micro_record_get_pass(struct micro_get *g)
{
	g->encode = 1;
	g->keep.n = 0;
	g->json_bytes = 0;
	micro_get_feed(g);
	g->encode = 0;
	return g->json_bytes;
}

static void micro_get_free(struct micro_get *g)
{
	for (size_t i = 0; i < g->keep.n && i < g->keep.cap; i++)
		record_free(g->keep.rec[i]);
	free(g->keep.rec);
	buf_free(&g->req);
	buf_free(&g->resp_a);
	buf_free(&g->resp_b);
	buf_free(&g->out);
	free(g->req_off);
	free(g->resp_off);
}

/* ----------------------------------------- POST bodies (issue 19, per byte) */

/* One POST record per case, assembled by the exchange code as the agent does (the
 * body a view into the raw request), with nginx's answer; the pass encodes it
 * MICRO_POST_REPS times. Cases: the benchmark's binary POST (43,000 random bytes,
 * the mean of loadgen's 1-256 KiB log-uniform sizes, under the default 64 KiB
 * --body-limit), a 256 KiB binary one with --body-limit 256K (every byte encoded),
 * and a 43 KB JSON text body (escaped, not base64). */
#define MICRO_POST_REPS 200

enum { MICRO_POST_B64_43K, MICRO_POST_B64_256K, MICRO_POST_TEXT, MICRO_POST_CASES };
static const char *const micro_post_name[MICRO_POST_CASES] = { "post_b64_43k", "post_b64_256k",
								"post_text" };

struct micro_post {
	struct buf wire[MICRO_POST_CASES];
	size_t body_len[MICRO_POST_CASES];
	struct micro_recs keep[MICRO_POST_CASES];
	struct st_record *rec[MICRO_POST_CASES];
	struct buf out;
};

static int micro_post_build(struct micro_post *mp)
{
	static const size_t limit[MICRO_POST_CASES] = { 64 * 1024, 256 * 1024, 64 * 1024 };
	struct buf body = { 0 }, resp = { 0 };
	int k;

	micro_nginx_resp(&resp, "a");
	for (k = 0; k < MICRO_POST_CASES; k++) {
		struct exchange_cfg cfg;
		struct exchange *x;
		struct reasm_flow fl = { .key = { .family = 4, .cport = 41000, .sport = 80 },
					 .flow_id = 0x3000 + (uint64_t)k, .first_ts_ns = 1000, .last_ts_ns = 1000 };
		uint64_t ts = 1765083600000000000ull;
		size_t i;

		buf_reset(&body);
		if (k == MICRO_POST_TEXT) {
			micro_json_body(&body, 43000);
		} else {
			size_t n = k == MICRO_POST_B64_43K ? 43000 : 256 * 1024;

			for (i = 0; i < n; i++)
				buf_putc(&body, (char)(micro_rand() >> 7));
		}
		mp->body_len[k] = body.len;
		buf_printf(&mp->wire[k], "POST /upload HTTP/1.1\r\nHost: 10.201.0.2\r\nUser-Agent: st-loadgen\r\n"
			   "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			   k == MICRO_POST_TEXT ? "application/json" : "application/octet-stream", body.len);
		buf_append(&mp->wire[k], body.data, body.len);
		mp->keep[k].cap = 1;
		mp->keep[k].keep = 1;
		mp->keep[k].rec = calloc(1, sizeof(*mp->keep[k].rec));
		if (!mp->keep[k].rec)
			goto fail;
		exchange_cfg_default(&cfg);
		cfg.keep_raw = 1;
		cfg.body_limit = limit[k];
		x = exchange_new(&cfg, micro_emit, &mp->keep[k]);
		if (!x)
			goto fail;
		fl.key.caddr[0] = htonl(0x0ac90001u);
		fl.key.saddr[0] = htonl(0x0ac90002u);
		if (exchange_reasm_ops.open(x, &fl) == 0) {
			exchange_reasm_ops.data(x, &fl, REASM_C2S, (const uint8_t *)mp->wire[k].data,
						mp->wire[k].len, ts += 1000);
			exchange_reasm_ops.data(x, &fl, REASM_S2C, (const uint8_t *)resp.data, resp.len,
						ts += 150000);
			fl.last_ts_ns = ts;
			exchange_reasm_ops.eof(x, &fl, REASM_C2S);
			exchange_reasm_ops.eof(x, &fl, REASM_S2C);
			exchange_reasm_ops.close(x, &fl, REASM_CLOSE_FIN);
		}
		exchange_free(x);
		if (mp->keep[k].n != 1 || mp->keep[k].rec[0]->req.body_stored != body.len) {
			fprintf(stderr, "micro: the %s case did not build one record with its whole body\n",
				micro_post_name[k]);
			goto fail;
		}
		mp->rec[k] = mp->keep[k].rec[0];
	}
	buf_free(&body);
	buf_free(&resp);
	return 0;
fail:
	buf_free(&body);
	buf_free(&resp);
	return -ENOMEM;
}

__attribute__((noinline)) uint64_t micro_post_pass(struct micro_post *mp, int k)
{
	struct micro_recs one = { .rec = &mp->rec[k], .n = 1 };
	uint64_t bytes = 0;

	for (int i = 0; i < MICRO_POST_REPS; i++)
		bytes += micro_encode_pass(&one, &mp->out);
	return bytes;
}

/* one function per case: Callgrind collects micro_PHASE_pass */
__attribute__((noinline)) uint64_t micro_post_b64_43k_pass(struct micro_post *mp)
{
	return micro_post_pass(mp, MICRO_POST_B64_43K);
}

__attribute__((noinline)) uint64_t micro_post_b64_256k_pass(struct micro_post *mp)
{
	return micro_post_pass(mp, MICRO_POST_B64_256K);
}

__attribute__((noinline)) uint64_t micro_post_text_pass(struct micro_post *mp)
{
	return micro_post_pass(mp, MICRO_POST_TEXT);
}

static void micro_post_free(struct micro_post *mp)
{
	for (int k = 0; k < MICRO_POST_CASES; k++) {
		for (size_t i = 0; i < mp->keep[k].n && i < mp->keep[k].cap; i++)
			record_free(mp->keep[k].rec[i]);
		free(mp->keep[k].rec);
		buf_free(&mp->wire[k]);
	}
	buf_free(&mp->out);
}

/* ------------------------------------------------------------------ driver */

static int micro_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double micro_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), micro_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Repeat a pass until at least min_s has gone by; returns seconds per pass. */
#define MICRO_TIME(min_s, stmt)                                           \
	({                                                                \
		double t0_ = micro_now(), t_;                             \
		int n_ = 0;                                               \
		do {                                                      \
			stmt;                                             \
			n_++;                                             \
			t_ = micro_now() - t0_;                           \
		} while (t_ < (min_s));                                   \
		t_ / n_;                                                  \
	})

int main(int argc, char **argv)
{
	struct micro_corpus c = { 0 };
	struct micro_segs s = { 0 };
	struct micro_recs mr = { 0 };
	struct buf out = { 0 };
	const char *once = NULL;
	int runs = 7, err = 1, k;
	double tp[64], tr[64], tx[64], te[64], tg[64], tl[64];
	uint64_t enc_bytes = 0, get_bytes = 0;
	struct micro_get g = { 0 };
	struct micro_post mp = { 0 };
	double tpost[MICRO_POST_CASES][64];
	uint64_t post_bytes[MICRO_POST_CASES] = { 0 };
	size_t ok;

	st_log_level = ST_LOG_WARN;
	if (argc == 3 && !strcmp(argv[1], "--once"))
		once = argv[2];
	else if (argc == 2)
		runs = atoi(argv[1]);
	if (runs < 1 || runs > 64) {
		fprintf(stderr, "micro: runs must be 1..64\n");
		return 2;
	}
	if (micro_corpus_build(&c) || micro_segs_build(&c, &s)) {
		fprintf(stderr, "micro: out of memory building the corpus\n");
		goto cleanup;
	}
	ok = micro_parse_pass(&c);
	if (ok != c.nmsgs) {
		fprintf(stderr, "micro: only %zu of %zu corpus messages parse\n", ok, c.nmsgs);
		goto cleanup;
	}
	mr.cap = MICRO_EXCHANGES;
	mr.rec = calloc(mr.cap, sizeof(*mr.rec));
	g.keep.cap = MICRO_GETS;
	g.keep.rec = calloc(g.keep.cap, sizeof(*g.keep.rec));
	if (!mr.rec || !g.keep.rec || micro_get_build(&g) || micro_post_build(&mp))
		goto cleanup;

	if (once) {
		struct micro_recs tmp = { 0 };
		struct reasm_cfg rc;
		struct reasm *r;

		if (!strcmp(once, "parse")) {
			micro_parse_pass(&c);
			printf("units=%zu\n", c.nmsgs);
		} else if (!strcmp(once, "reasm")) {
			reasm_cfg_default(&rc);
			r = reasm_new(&rc, &micro_null_ops, NULL);
			if (!r)
				goto cleanup;
			micro_reasm_pass(r, &s);
			reasm_free(r);
			printf("units=%zu\n", s.n);
		} else if (!strcmp(once, "exchange")) {
			micro_exchange_pass(&c, &tmp);
			printf("units=%zu\n", tmp.n);
		} else if (!strcmp(once, "encode")) {
			mr.keep = 1;
			micro_exchange_pass(&c, &mr);
			micro_encode_pass(&mr, &out);
			printf("units=%zu\n", mr.n);
		} else if (!strcmp(once, "encode_get")) {
			g.keep.keep = 1;
			micro_get_feed(&g);
			micro_encode_get_pass(&g);
			printf("units=%zu\n", g.keep.n);
		} else if (!strcmp(once, "record_get")) {
			micro_record_get_pass(&g);
			printf("units=%zu\n", g.keep.n);
		} else if (!strcmp(once, "post_b64_43k")) {
			micro_post_b64_43k_pass(&mp);
			printf("units=%d\n", MICRO_POST_REPS);
		} else if (!strcmp(once, "post_b64_256k")) {
			micro_post_b64_256k_pass(&mp);
			printf("units=%d\n", MICRO_POST_REPS);
		} else if (!strcmp(once, "post_text")) {
			micro_post_text_pass(&mp);
			printf("units=%d\n", MICRO_POST_REPS);
		} else {
			fprintf(stderr, "micro: unknown phase %s\n", once);
			goto cleanup;
		}
		err = 0;
		goto cleanup;
	}

	mr.keep = 1;
	micro_exchange_pass(&c, &mr);
	if (mr.n != MICRO_EXCHANGES) {
		fprintf(stderr, "micro: exchange emitted %zu records, expected %d\n", mr.n, MICRO_EXCHANGES);
		goto cleanup;
	}
	g.keep.keep = 1;
	micro_get_feed(&g);
	if (g.keep.n != MICRO_GETS || !g.keep.rec[0]->diff) {
		fprintf(stderr, "micro: the GET case built %zu records, expected %d with a diff\n",
			g.keep.n, MICRO_GETS);
		goto cleanup;
	}
	for (k = 0; k < runs; k++) {
		struct reasm_cfg rc;
		struct micro_recs tmp = { 0 };

		tp[k] = MICRO_TIME(0.2, micro_parse_pass(&c));
		reasm_cfg_default(&rc);
		micro_delivered = 0;
		tr[k] = MICRO_TIME(0.2, ({
			struct reasm *r = reasm_new(&rc, &micro_null_ops, NULL);
			if (r) {
				micro_reasm_pass(r, &s);
				reasm_free(r);
			}
		}));
		tx[k] = MICRO_TIME(0.2, micro_exchange_pass(&c, &tmp));
		te[k] = MICRO_TIME(0.2, enc_bytes = micro_encode_pass(&mr, &out));
		tg[k] = MICRO_TIME(0.2, get_bytes = micro_encode_get_pass(&g));
		tl[k] = MICRO_TIME(0.2, micro_record_get_pass(&g));
		g.keep.n = MICRO_GETS;
		tpost[MICRO_POST_B64_43K][k] = MICRO_TIME(0.2, post_bytes[0] = micro_post_b64_43k_pass(&mp));
		tpost[MICRO_POST_B64_256K][k] = MICRO_TIME(0.2, post_bytes[1] = micro_post_b64_256k_pass(&mp));
		tpost[MICRO_POST_TEXT][k] = MICRO_TIME(0.2, post_bytes[2] = micro_post_text_pass(&mp));
	}
	if (micro_delivered % s.payload) {
		fprintf(stderr, "micro: reassembly delivered %llu bytes, not a multiple of %llu\n",
			(unsigned long long)micro_delivered, (unsigned long long)s.payload);
		goto cleanup;
	}
	double p = micro_median(tp, runs), r = micro_median(tr, runs);
	double x = micro_median(tx, runs), e = micro_median(te, runs);
	double eg = micro_median(tg, runs), lg = micro_median(tl, runs);

	printf("corpus exchanges=%d flows=%d messages=%zu bytes=%llu head_bytes=%llu segments=%zu "
	       "payload=%llu runs=%d\n", MICRO_EXCHANGES, MICRO_FLOWS, c.nmsgs, (unsigned long long)c.bytes,
	       (unsigned long long)c.head_bytes, s.n, (unsigned long long)s.payload, runs);
	printf("parse gbps=%.3f head_gbps=%.3f units_per_s=%.0f ns_per_unit=%.1f unit=message\n",
	       (double)c.bytes / p / 1e9, (double)c.head_bytes / p / 1e9, (double)c.nmsgs / p,
	       p * 1e9 / (double)c.nmsgs);
	printf("reasm gbps=%.3f units_per_s=%.0f ns_per_unit=%.1f unit=segment\n",
	       (double)s.payload / r / 1e9, (double)s.n / r, r * 1e9 / (double)s.n);
	printf("exchange gbps=%.3f units_per_s=%.0f ns_per_unit=%.1f unit=record\n",
	       (double)c.bytes / x / 1e9, MICRO_EXCHANGES / x, x * 1e9 / MICRO_EXCHANGES);
	printf("encode gbps=%.3f units_per_s=%.0f ns_per_unit=%.1f unit=record json_bytes=%llu\n",
	       (double)enc_bytes / e / 1e9, (double)mr.n / e, e * 1e9 / (double)mr.n,
	       (unsigned long long)enc_bytes);
	printf("encode_get gbps=%.3f units_per_s=%.0f ns_per_unit=%.1f unit=record json_bytes=%llu\n",
	       (double)get_bytes / eg / 1e9, MICRO_GETS / eg, eg * 1e9 / MICRO_GETS,
	       (unsigned long long)get_bytes);
	printf("record_get gbps=%.3f units_per_s=%.0f ns_per_unit=%.1f unit=record\n",
	       (double)get_bytes / lg / 1e9, MICRO_GETS / lg, lg * 1e9 / MICRO_GETS);
	for (int q = 0; q < MICRO_POST_CASES; q++) {
		double t = micro_median(tpost[q], runs);

		printf("%s gbps=%.3f units_per_s=%.0f ns_per_unit=%.1f unit=record body_bytes=%zu "
		       "ns_per_body_byte=%.3f json_bytes=%llu\n", micro_post_name[q],
		       (double)post_bytes[q] / t / 1e9, MICRO_POST_REPS / t, t * 1e9 / MICRO_POST_REPS,
		       mp.body_len[q], t * 1e9 / MICRO_POST_REPS / (double)mp.body_len[q],
		       (unsigned long long)(post_bytes[q] / MICRO_POST_REPS));
	}
	err = 0;
cleanup:
	micro_post_free(&mp);
	for (size_t i = 0; i < mr.n && i < mr.cap; i++)
		record_free(mr.rec[i]);
	free(mr.rec);
	buf_free(&out);
	buf_free(&c.req);
	buf_free(&c.resp);
	free(c.req_off);
	free(c.resp_off);
	free(c.method);
	free(c.msgs);
	free(s.seg);
	micro_get_free(&g);
	return err;
}
