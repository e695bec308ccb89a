/* The record JSON encoder: every field of DESIGN.md's schema, string escaping and
 * UTF-8 in heads, URLs and bodies, base64 for binary bodies, bodies cut at the
 * limit, redaction of sensitive headers, and the replay / diff / capture parts. */
#include <arpa/inet.h>
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>
#include <pthread.h>

#include "http1.h"
#include "record.h"
#include "shadowtap.h"
#include "util.h"

static const struct record_json_opts opts = { .redact = record_redact_default, .body_limit = 64 };

static void set_req(struct st_record *r, const char *head)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_request req;
	int hl = http1_parse_request(head, strlen(head), &req, hdrs, ST_MAX_HEADERS);

	assert_int_equal(hl, (int)strlen(head));
	assert_int_equal(record_msg_set_head(&r->req, head, (size_t)hl, hdrs, req.num_headers), 0);
	r->method = r->req.head + (req.method - head);
	r->method_len = req.method_len;
	r->target = r->req.head + (req.target - head);
	r->target_len = req.target_len;
	r->http_minor = req.minor_version;
	r->req.wire_bytes = (uint64_t)hl;
}

static void set_resp(struct st_msg *m, int *status, const char *head)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	int hl = http1_parse_response(head, strlen(head), &resp, hdrs, ST_MAX_HEADERS);

	assert_int_equal(hl, (int)strlen(head));
	assert_int_equal(record_msg_set_head(m, head, (size_t)hl, hdrs, resp.num_headers), 0);
	*status = resp.status;
	m->wire_bytes = (uint64_t)hl;
}

static void reset_msg(struct st_msg *m)
{
	record_msg_free(m);
	memset(m, 0, sizeof(*m));
}

static struct st_record *mk(void)
{
	struct st_record *r = record_new();

	assert_non_null(r);
	snprintf(r->event_id, sizeof(r->event_id), "0123456789abcdef0123456789abcdef");
	r->flow_id = 42;
	r->index = 3;
	r->family = 4;
	inet_pton(AF_INET, "192.0.2.1", r->caddr);
	inet_pton(AF_INET, "192.0.2.80", r->saddr);
	r->cport = 40001;
	r->sport = 80;
	/* capture clock 1 s, plus the offset: 2023-11-14T22:13:21.000250Z */
	r->clock_offset_ns = 1700000000000000000ll;
	r->req.ts_first_ns = 1000250000ull;
	r->req.ts_last_ns = 1000260000ull;
	r->resp.ts_first_ns = 1000300000ull;
	r->resp.ts_last_ns = 1001250000ull;
	r->req.complete = r->resp.complete = true;
	return r;
}

static char *json(const struct st_record *r)
{
	struct buf b = { 0 };
	char *s;

	assert_int_equal(record_to_json(r, &opts, &b), 0);
	s = strndup(b.data, b.len);
	assert_non_null(s);
	/* one object, no newline */
	assert_int_equal(s[0], '{');
	assert_int_equal(s[b.len - 1], '}');
	assert_null(strchr(s, '\n'));
	buf_free(&b);
	return s;
}

static void has(const char *j, const char *frag)
{
	if (!strstr(j, frag))
		fail_msg("missing %s in %s", frag, j);
}

static void hasnt(const char *j, const char *frag)
{
	if (strstr(j, frag))
		fail_msg("unexpected %s in %s", frag, j);
}

/* A complete exchange, byte for byte: the field names and their order are the
 * contract with the ES index template and the tests that read records. */
static void test_every_field(void **state)
{
	struct st_record *r = mk();
	char *j;

	set_req(r, "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
	set_resp(&r->resp, &r->status_code, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
	record_msg_body_append(&r->resp, "ok", 2, 64);
	r->resp.wire_bytes += 2;
	j = json(r);
	assert_string_equal(j,
		"{\"@timestamp\":\"2023-11-14T22:13:21.000250Z\","
		"\"event\":{\"id\":\"0123456789abcdef0123456789abcdef\",\"duration\":1000000,"
		"\"kind\":\"event\",\"dataset\":\"shadowtap.exchange\"},"
		"\"source\":{\"ip\":\"192.0.2.1\",\"port\":40001},"
		"\"destination\":{\"ip\":\"192.0.2.80\",\"port\":80},"
		"\"network\":{\"transport\":\"tcp\",\"type\":\"ipv4\",\"connection_id\":\"42\",\"request_index\":3},"
		"\"http\":{\"version\":\"1.1\",\"request\":{\"method\":\"GET\",\"headers\":{\"host\":\"h\"},"
		"\"body\":{\"bytes\":0},\"bytes\":34},"
		"\"response\":{\"status_code\":200,\"headers\":{\"content-length\":\"2\"},"
		"\"body\":{\"bytes\":2,\"content\":\"ok\"},\"bytes\":40}},"
		"\"url\":{\"original\":\"/a/b?x=1\",\"path\":\"/a/b\",\"query\":\"x=1\"},"
		"\"capture\":{\"source\":\"packet\",\"complete\":true,\"incomplete\":false,\"gap\":false,"
		"\"truncated\":false}}");
	free(j);
	record_free(r);
}

static void test_escaping_and_utf8(void **state)
{
	struct st_record *r = mk();
	char *j;

	set_req(r, "POST /p%20q?s=\"x\"&u=caf\xc3\xa9 HTTP/1.0\r\nX-Quote: a\"b\\c\tz\r\n"
		   "X-Bin: \xff\xfe\r\nX-Utf8: \xe2\x82\xac\r\n\r\n");
	record_msg_body_append(&r->req, "line1\nline2 \xe2\x82\xac \"q\"", 19, 64);
	j = json(r);
	has(j, "\"version\":\"1.0\"");
	has(j, "\"method\":\"POST\"");
	has(j, "\"original\":\"/p%20q?s=\\\"x\\\"&u=caf\xc3\xa9\"");
	has(j, "\"path\":\"/p%20q\"");
	has(j, "\"query\":\"s=\\\"x\\\"&u=caf\xc3\xa9\"");
	has(j, "\"x-quote\":\"a\\\"b\\\\c\\tz\"");
	/* bytes that are not UTF-8 become \u00XX, so the document stays valid */
	has(j, "\"x-bin\":\"\\u00ff\\u00fe\"");
	has(j, "\"x-utf8\":\"\xe2\x82\xac\"");
	has(j, "\"content\":\"line1\\nline2 \xe2\x82\xac \\\"q\\\"\"");
	hasnt(j, "\"encoding\"");
	free(j);
	record_free(r);
}

static void test_bodies(void **state)
{
	static const uint8_t bin[] = { 0x00, 0x01, 0xff, 0x10, 0x20 };
	struct st_record *r = mk();
	char *j;

	set_req(r, "PUT /u HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
	record_msg_body_append(&r->req, (const char *)bin, sizeof(bin), 64);
	set_resp(&r->resp, &r->status_code, "HTTP/1.1 200 OK\r\n\r\n");
	/* a UTF-8 sequence cut by the body limit: the partial character is dropped */
	record_msg_body_append(&r->resp, "caf\xc3\xa9", 5, 4);
	j = json(r);
	has(j, "\"request\":{\"method\":\"PUT\",\"headers\":{\"content-length\":\"5\"},"
	       "\"body\":{\"bytes\":5,\"content\":\"AAH/ECA=\",\"encoding\":\"base64\"}");
	has(j, "\"response\":{\"status_code\":200,\"headers\":{},"
	       "\"body\":{\"bytes\":5,\"content\":\"caf\",\"truncated\":true}");
	free(j);

	/* control characters make a body binary; tab, CR, LF do not */
	reset_msg(&r->resp);
	record_msg_body_append(&r->resp, "a\tb\r\n", 5, 64);
	j = json(r);
	has(j, "\"content\":\"a\\tb\\r\\n\"}");
	free(j);
	reset_msg(&r->resp);
	record_msg_body_append(&r->resp, "a\x01", 2, 64);
	j = json(r);
	has(j, "\"content\":\"YQE=\",\"encoding\":\"base64\"}");
	free(j);
	/* nothing stored of a longer body: only its size, marked truncated */
	reset_msg(&r->resp);
	r->resp.body_bytes = 1000;
	j = json(r);
	has(j, "\"body\":{\"bytes\":1000,\"truncated\":true}");
	free(j);
	record_free(r);
}

static void test_headers_redaction(void **state)
{
	struct st_record *r = mk();
	char *j;

	set_req(r, "GET / HTTP/1.1\r\nAuthorization: Bearer secret\r\nCOOKIE: a=1\r\n"
		   "Proxy-Authorization: Basic cHJveHk=\r\n"
		   "Accept: text/html\r\nX-Multi: 1\r\nx-multi: 2\r\nX-MULTI: 3\r\n\r\n");
	set_resp(&r->resp, &r->status_code, "HTTP/1.1 302 Found\r\nSet-Cookie: s=1\r\n"
		 "Set-Cookie: t=2\r\nLocation: /x\r\n\r\n");
	j = json(r);
	hasnt(j, "secret");
	hasnt(j, "a=1");
	hasnt(j, "s=1");
	has(j, "\"authorization\":\"[REDACTED]\"");
	has(j, "\"cookie\":\"[REDACTED]\"");
	has(j, "\"proxy-authorization\":\"[REDACTED]\"");
	hasnt(j, "cHJveHk=");
	/* repeated names: one lower-case key, values joined in order */
	has(j, "\"x-multi\":\"1, 2, 3\"");
	has(j, "\"accept\":\"text/html\"");
	has(j, "\"headers\":{\"set-cookie\":\"[REDACTED]\",\"location\":\"/x\"}");
	has(j, "\"status_code\":302");
	free(j);
	record_free(r);
}

static void test_replay_and_diff(void **state)
{
	struct st_record *r = mk();
	struct st_replay *rp;
	struct st_diff *d;
	char *j;

	set_req(r, "GET / HTTP/1.1\r\n\r\n");
	r->replay_skip = "sampled out";
	j = json(r);
	has(j, "\"replay\":{\"skipped\":\"sampled out\"}");
	hasnt(j, "\"diff\"");
	free(j);

	rp = calloc(1, sizeof(*rp));
	assert_non_null(rp);
	rp->target = strdup("http://127.0.0.1:81");
	rp->error = strdup("connection refused");
	r->replay = rp;
	r->replay_skip = NULL;
	j = json(r);
	has(j, "\"replay\":{\"target\":\"http://127.0.0.1:81\",\"error\":\"connection refused\"}");
	free(j);

	free(rp->error);
	rp->error = NULL;
	set_resp(&rp->resp, &rp->status_code, "HTTP/1.1 500 Oops\r\nSet-Cookie: z=9\r\n\r\n");
	record_msg_body_append(&rp->resp, "{}", 2, 64);
	rp->duration_ns = 12345;
	d = calloc(1, sizeof(*d));
	assert_non_null(d);
	d->status_same = false;
	d->body_same = false;
	d->match = false;
	d->body_json = true;
	d->headers = calloc(2, sizeof(char *));
	d->headers[0] = strdup("content-type");
	d->headers[1] = strdup("x-\"odd\"");
	d->nheaders = 2;
	d->body_paths = calloc(1, sizeof(char *));
	d->body_paths[0] = strdup("$.a[2]");
	d->nbody_paths = 1;
	d->reason = strdup("bodies cut at the limit");
	r->diff = d;
	j = json(r);
	has(j, "\"replay\":{\"target\":\"http://127.0.0.1:81\",\"status_code\":500,"
	       "\"headers\":{\"set-cookie\":\"[REDACTED]\"},\"body\":{\"bytes\":2,\"content\":\"{}\"},"
	       "\"duration\":12345}");
	has(j, "\"diff\":{\"match\":false,\"status\":false,\"headers\":[\"content-type\",\"x-\\\"odd\\\"\"],"
	       "\"body\":false,\"body_json\":true,\"body_paths\":[\"$.a[2]\"],"
	       "\"reason\":\"bodies cut at the limit\"}");
	free(j);
	/* a match lists no paths and no reason */
	free(d->reason);
	d->reason = NULL;
	free(d->body_paths[0]);
	d->nbody_paths = 0;
	d->match = d->status_same = d->body_same = true;
	d->body_json = false;
	j = json(r);
	has(j, "\"diff\":{\"match\":true,\"status\":true,\"headers\":[\"content-type\",\"x-\\\"odd\\\"\"],"
	       "\"body\":true}");
	free(j);
	record_free(r);
}

/* serverB's answer in one allocation (record_replay_new): the same JSON as the
 * separately allocated answer, a body kept in its room until it outgrows it, the
 * target borrowed (a static string here: freeing it would crash under ASan), and
 * replacing the head or freeing the message frees nothing inside the block. */
static void test_replay_one_block(void **state)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-B: 1\r\n\r\n";
	static const char target[] = "http://127.0.0.1:81";
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	struct st_record *r = mk(), *r2 = mk();
	struct st_replay *rp;
	int hl = http1_parse_response(head, strlen(head), &resp, hdrs, ST_MAX_HEADERS);
	char *j, *j2;

	assert_int_equal(hl, (int)strlen(head));
	set_req(r, "GET / HTTP/1.1\r\n\r\n");
	set_req(r2, "GET / HTTP/1.1\r\n\r\n");
	rp = record_replay_new(target, head, (size_t)hl, hdrs, resp.num_headers, 5);
	assert_non_null(rp);
	assert_ptr_equal(rp->target, target);
	assert_true(rp->resp.head_inline && rp->resp.body_inline);
	assert_int_equal(rp->resp.body_cap, 5);
	assert_int_equal(rp->resp.nhdrs, 2);
	rp->status_code = resp.status;
	assert_int_equal(record_msg_body_append(&rp->resp, "hello", 5, 64), 0);
	assert_true(rp->resp.body_inline);
	r->replay = rp;

	r2->replay = calloc(1, sizeof(*r2->replay));
	assert_non_null(r2->replay);
	r2->replay->target = strdup(target);
	r2->replay->status_code = 200;
	assert_int_equal(record_msg_set_head(&r2->replay->resp, head, (size_t)hl, hdrs,
					     resp.num_headers), 0);
	assert_int_equal(record_msg_body_append(&r2->replay->resp, "hello", 5, 64), 0);
	/* the same bytes charged but for the body: its room (5), not a 64-byte block */
	assert_int_equal(record_bytes(r), record_bytes(r2) - 64 + 5);
	j = json(r);
	j2 = json(r2);
	assert_string_equal(j, j2);
	has(j, "\"replay\":{\"target\":\"http://127.0.0.1:81\",\"status_code\":200,"
	       "\"headers\":{\"content-length\":\"5\",\"x-b\":\"1\"},\"body\":{\"bytes\":5,\"content\":\"hello\"}");
	free(j);
	free(j2);

	/* past its room the body moves to the heap, bytes kept */
	assert_int_equal(record_msg_body_append(&rp->resp, " world", 6, 64), 0);
	assert_false(rp->resp.body_inline);
	assert_int_equal(rp->resp.body_stored, 11);
	assert_memory_equal(rp->resp.body, "hello world", 11);
	/* a new head (an answer after an interim one) is a heap copy; the old stays */
	assert_int_equal(record_msg_set_head(&rp->resp, head, (size_t)hl, hdrs, resp.num_headers), 0);
	assert_false(rp->resp.head_inline);
	record_free(r);
	record_free(r2);
}

/* The header object against a plain reference (what the encoder did before issue 19's
 * signature sets: every name compared with every other, lower-cased with tolower,
 * redaction by strncasecmp) on random heads: names drawn from a small pool in random
 * case so they repeat and collide, values with quotes and backslashes. */
static void ref_headers(struct buf *b, const struct st_msg *m, const char *const *redact)
{
	size_t i, j, k;
	int first = 1;

	buf_append(b, "\"headers\":{", 11);
	for (i = 0; i < m->nhdrs; i++) {
		const struct http1_header *h = &m->hdrs[i];
		char name[128];
		int seen = 0, red = 0;

		for (j = 0; j < i; j++)
			if (m->hdrs[j].name_len == h->name_len &&
			    strncasecmp(m->hdrs[j].name, h->name, h->name_len) == 0)
				seen = 1;
		if (seen)
			continue;
		for (k = 0; k < h->name_len && k < 127; k++)
			name[k] = (char)tolower((unsigned char)h->name[k]);
		if (!first)
			buf_putc(b, ',');
		first = 0;
		buf_json_str(b, name, k);
		buf_putc(b, ':');
		for (j = 0; redact[j]; j++)
			if (strlen(redact[j]) == h->name_len && strncasecmp(redact[j], h->name, h->name_len) == 0)
				red = 1;
		if (red) {
			buf_json_str(b, "[REDACTED]", 10);
			continue;
		}
		{
			struct buf v = { 0 };

			buf_append(&v, h->value, h->value_len);
			for (j = i + 1; j < m->nhdrs; j++)
				if (m->hdrs[j].name_len == h->name_len &&
				    strncasecmp(m->hdrs[j].name, h->name, h->name_len) == 0) {
					buf_append(&v, ", ", 2);
					buf_append(&v, m->hdrs[j].value, m->hdrs[j].value_len);
				}
			buf_json_str(b, v.data ? v.data : "", v.len);
			buf_free(&v);
		}
	}
	buf_putc(b, '}');
}

static void test_headers_match_reference(void **state)
{
	static const char *const pool[] = { "a", "ab", "ba", "aa", "Cookie", "cookie-x", "x-cookie",
					    "Set-Cookie", "Authorization", "X-Forwarded-For", "x-a", "X-B",
					    "content-type", "ETag", "Accept-Encoding", "via", "Vary",
					    "A-very-long-header-name-that-goes-past-eight-bytes" };
	static const char vchars[] = "abcXYZ 019\"\\/,;=-";
	static const char *const redact[] = { "authorization", "cookie", "set-cookie", "x-b", "a", NULL };
	const struct record_json_opts o = { .redact = redact, .body_limit = 64 };
	struct buf head = { 0 }, out = { 0 }, want = { 0 };
	uint64_t seed = 4242;
	int round;

	for (round = 0; round < 3000; round++) {
		struct st_record *r = mk();
		int nh, i, k;
		const char *at;

		buf_reset(&head);
		buf_append(&head, "GET /x HTTP/1.1\r\n", 17);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		nh = (int)((seed >> 33) % 24);
		for (i = 0; i < nh; i++) {
			const char *nm;
			size_t nl, vl;

			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			nm = pool[(seed >> 33) % (sizeof(pool) / sizeof(pool[0]))];
			nl = strlen(nm);
			for (k = 0; k < (int)nl; k++)
				buf_putc(&head, (seed >> (20 + k % 40)) & 1 ? (char)toupper((unsigned char)nm[k])
									   : (char)tolower((unsigned char)nm[k]));
			buf_append(&head, ": ", 2);
			vl = (seed >> 8) % 20;
			for (k = 0; k < (int)vl; k++) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				buf_putc(&head, vchars[(seed >> 40) % (sizeof(vchars) - 1)]);
			}
			buf_append(&head, "\r\n", 2);
		}
		buf_append(&head, "\r\n", 2);
		set_req(r, head.data);
		buf_reset(&out);
		buf_reset(&want);
		assert_int_equal(record_to_json(r, &o, &out), 0);
		ref_headers(&want, &r->req, redact);
		at = strstr(out.data, "\"headers\":{");
		assert_non_null(at);
		if (strncmp(at, want.data, want.len) != 0)
			fail_msg("round %d: got %.*s want %s", round, (int)want.len, at, want.data);
		record_free(r);
	}
	buf_free(&head);
	buf_free(&out);
	buf_free(&want);
}

static void test_capture_flags_and_addresses(void **state)
{
	struct st_record *r = mk();
	char *j;

	r->family = 6;
	inet_pton(AF_INET6, "2001:db8::1", r->caddr);
	inet_pton(AF_INET6, "::ffff:192.0.2.1", r->saddr);
	set_req(r, "GET http://example.com:8080/abs/p?q=1 HTTP/1.1\r\n\r\n");
	r->cap_flags = ST_CAP_INCOMPLETE | ST_CAP_GAP | ST_CAP_TRUNCATED | ST_CAP_MALFORMED |
		       ST_CAP_NO_RESPONSE | ST_CAP_MID_STREAM | ST_CAP_UPGRADED |
		       ST_CAP_REPLAY_TRUNC;
	r->gap_bytes = 1460;
	r->malformed = "bad \"chunk\" size";
	r->resp.complete = false;           /* nothing of the response was seen */
	j = json(r);
	has(j, "\"source\":{\"ip\":\"2001:db8::1\",\"port\":40001}");
	has(j, "\"destination\":{\"ip\":\"::ffff:192.0.2.1\",\"port\":80}");
	has(j, "\"type\":\"ipv6\"");
	/* absolute-form: the path starts after the authority */
	has(j, "\"url\":{\"original\":\"http://example.com:8080/abs/p?q=1\",\"path\":\"/abs/p\",\"query\":\"q=1\"}");
	has(j, "\"capture\":{\"source\":\"packet\",\"complete\":false,\"incomplete\":true,\"gap\":true,\"gap_bytes\":1460,"
	       "\"truncated\":true,\"malformed\":\"bad \\\"chunk\\\" size\",\"no_response\":true,"
	       "\"mid_stream\":true,\"upgraded\":true,\"replay_truncated\":true}}");
	/* no response head, status, bytes or end: no http.response */
	hasnt(j, "\"response\"");
	free(j);

	/* TLS plaintext from the OpenSSL uprobes */
	r->source = ST_SRC_OPENSSL;
	j = json(r);
	has(j, "\"tls\":{\"established\":true},\"capture\":{\"source\":\"openssl\",");
	free(j);

	/* HTTP/0.9, and a response seen without a request: timestamp from the response */
	record_free(r);
	r = mk();
	set_req(r, "GET /old\r\n");
	r->req.ts_first_ns = 0;
	j = json(r);
	has(j, "\"version\":\"0.9\"");
	has(j, "\"@timestamp\":\"2023-11-14T22:13:21.000300Z\"");
	has(j, "\"url\":{\"original\":\"/old\",\"path\":\"/old\"}");
	free(j);
	record_free(r);
}

/* the queue's byte budget (--queue-bytes) sees what a diff holds: its strings and
 * lists outside a block, its block when diff_compare made one */
/* Heads kept in the record's own room are charged once (inside sizeof(*r)), a head
 * too large for it by its own bytes; serverA's head and its body room go behind the
 * request's, and a body that outgrows its room moves out and is charged. */
static void test_record_bytes_req_room(void **state)
{
	static const char small[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
	static const char resp_head[] = "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n";
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	struct http1_request req;
	struct st_record *r = record_new();
	char big[2048];
	int hl, n;

	(void)state;
	assert_non_null(r);
	hl = http1_parse_request(small, strlen(small), &req, hdrs, ST_MAX_HEADERS);
	assert_int_equal(hl, (int)strlen(small));
	assert_int_equal(record_req_set_head(r, small, (size_t)hl, hdrs, req.num_headers), 0);
	assert_true(r->req.head_inline);
	assert_int_equal(record_bytes(r), sizeof(*r));
	record_free(r);

	r = record_new();
	assert_non_null(r);
	n = snprintf(big, sizeof(big), "GET /b HTTP/1.1\r\nHost: h\r\nX-Pad: %01800d\r\n\r\n", 7);
	hl = http1_parse_request(big, (size_t)n, &req, hdrs, ST_MAX_HEADERS);
	assert_int_equal(hl, n);
	assert_int_equal(record_req_set_head(r, big, (size_t)hl, hdrs, req.num_headers), 0);
	assert_false(r->req.head_inline);
	assert_int_equal(record_bytes(r), sizeof(*r) + (size_t)hl + req.num_headers * sizeof(*r->req.hdrs));
	record_free(r);

	/* request and serverA's head with 64 bytes of body room, all in the room */
	r = record_new();
	assert_non_null(r);
	hl = http1_parse_request(small, strlen(small), &req, hdrs, ST_MAX_HEADERS);
	assert_int_equal(record_req_set_head(r, small, (size_t)hl, hdrs, req.num_headers), 0);
	hl = http1_parse_response(resp_head, strlen(resp_head), &resp, hdrs, ST_MAX_HEADERS);
	assert_int_equal(hl, (int)strlen(resp_head));
	assert_int_equal(record_resp_set_head(r, resp_head, (size_t)hl, hdrs, resp.num_headers, 64), 0);
	assert_true(r->resp.head_inline && r->resp.body_inline);
	assert_true((char *)r->resp.body >= r->room && (char *)r->resp.body + 64 <= r->room + sizeof(r->room));
	assert_true(r->resp.head >= r->req.head + r->req.head_len);
	assert_memory_equal(r->resp.head, resp_head, (size_t)hl);
	assert_int_equal(r->resp.nhdrs, 1);
	assert_memory_equal(r->resp.hdrs[0].value, "64", 2);
	assert_int_equal(record_msg_body_append(&r->resp, big, 64, 1000), 0);
	assert_int_equal(record_bytes(r), sizeof(*r));
	/* what the capture's held bytes and the replay queue charge: the same, once */
	assert_int_equal(record_held_bytes(r), sizeof(*r));
	assert_int_equal(record_msg_held_bytes(&r->req), 0);
	assert_int_equal(record_msg_held_bytes(&r->resp), 0);
	assert_true(r->resp.body_inline);
	/* past its room: a heap copy, charged by its capacity */
	assert_int_equal(record_msg_body_append(&r->resp, big, 100, 1000), 0);
	assert_false(r->resp.body_inline);
	assert_int_equal(r->resp.body_stored, 164);
	assert_memory_equal(r->resp.body, big, 64);
	assert_int_equal(record_bytes(r), sizeof(*r) + r->resp.body_cap);
	assert_int_equal(record_msg_held_bytes(&r->resp), r->resp.body_cap);
	assert_int_equal(record_held_bytes(r), sizeof(*r) + r->resp.body_cap);
	record_free(r);

	/* body room larger than the record's room: head and body in one allocation */
	r = record_new();
	assert_non_null(r);
	assert_int_equal(record_resp_set_head(r, resp_head, (size_t)hl, hdrs, resp.num_headers,
					      sizeof(r->room)), 0);
	assert_false(r->resp.head_inline);
	assert_true(r->resp.body_inline);
	assert_int_equal(record_bytes(r), sizeof(*r) + (size_t)hl + sizeof(*hdrs) + sizeof(r->room));
	assert_int_equal(record_msg_held_bytes(&r->resp), (size_t)hl + sizeof(*hdrs) + sizeof(r->room));
	record_free(r);
}

/* The raw request's first buffer is in the room; grown past it, it moves to the heap
 * with its bytes and is charged by its capacity */
static void test_record_raw_room(void **state)
{
	struct st_record *r = record_new();
	uint8_t *q;
	size_t used;

	(void)state;
	assert_non_null(r);
	q = record_raw_realloc(r, 512);
	assert_non_null(q);
	assert_true((char *)q >= r->room && (char *)q + 512 <= r->room + sizeof(r->room));
	r->raw = q;
	r->raw_cap = 512;
	memcpy(r->raw, "GET /x HTTP/1.1\r\n\r\n", 19);
	r->raw_len = 19;
	assert_int_equal(record_bytes(r), sizeof(*r));
	used = r->room_used;
	q = record_raw_realloc(r, 4096);
	assert_non_null(q);
	assert_false((char *)q >= r->room && (char *)q < r->room + sizeof(r->room));
	assert_memory_equal(q, "GET /x HTTP/1.1\r\n\r\n", 19);
	assert_int_equal(r->room_used, used);
	r->raw = q;
	r->raw_cap = 4096;
	assert_int_equal(record_bytes(r), sizeof(*r) + 4096);
	/* on the heap it is realloc'd as before */
	q = record_raw_realloc(r, 8192);
	assert_non_null(q);
	assert_memory_equal(q, "GET /x HTTP/1.1\r\n\r\n", 19);
	r->raw = q;
	r->raw_cap = 8192;
	record_free(r);    /* ASan: the heap copy freed, the room not */

	/* a first buffer larger than the room is a plain allocation */
	r = record_new();
	assert_non_null(r);
	r->raw = record_raw_realloc(r, sizeof(r->room) + 1);
	assert_non_null(r->raw);
	r->raw_cap = sizeof(r->room) + 1;
	assert_int_equal(r->room_used, 0);
	assert_int_equal(record_bytes(r), sizeof(*r) + sizeof(r->room) + 1);
	record_free(r);
}

static void *free_on_thread(void *arg)
{
	record_free(arg);
	return NULL;
}

static void *new_on_thread(void *arg)
{
	*(struct st_record **)arg = record_new();
	return NULL;
}

/* Record blocks go back to the pool of the thread that made them, whichever thread
 * frees them, and a pool outlives its thread for the next one. */
static void test_record_pool(void **state)
{
	struct st_record *a, *b, *c, *made[2];
	struct record_pool *mine;
	pthread_t t;
	int i;

	(void)state;
	/* empty this thread's pool first: what follows must come from the frees below */
	for (i = 0; i < 2 * RECORD_POOL_MAX + 1; i++) {
		a = record_new();
		assert_non_null(a);
		free(a);     /* a block of plain malloc memory, never back to the pool */
	}
	a = record_new();
	b = record_new();
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_equal(a->pool, b->pool);
	mine = a->pool;
	/* freed by another thread: taken back by this one, last freed first */
	assert_int_equal(pthread_create(&t, NULL, free_on_thread, a), 0);
	pthread_join(t, NULL);
	assert_int_equal(pthread_create(&t, NULL, free_on_thread, b), 0);
	pthread_join(t, NULL);
	c = record_new();
	assert_ptr_equal(c, b);
	assert_int_equal(c->room_used, 0);
	assert_null(c->req.head);
	assert_null(c->replay);
	record_free(c);
	c = record_new();
	assert_ptr_equal(c, b);       /* freed on this thread: first out again */
	b = record_new();
	assert_ptr_equal(b, a);
	record_free(b);
	record_free(c);

	/* a record made on a thread that has ended is freed here; the pool is adopted
	 * by the next thread that makes records, which gets that block back */
	assert_int_equal(pthread_create(&t, NULL, new_on_thread, &made[0]), 0);
	pthread_join(t, NULL);
	assert_non_null(made[0]);
	assert_ptr_not_equal(made[0]->pool, mine);
	record_free(made[0]);
	assert_int_equal(pthread_create(&t, NULL, new_on_thread, &made[1]), 0);
	pthread_join(t, NULL);
	assert_ptr_equal(made[1], made[0]);
	record_free(made[1]);
}

static void *free_many_on_thread(void *arg)
{
	struct st_record **v = arg;

	for (; *v; v++)
		record_free(*v);
	return NULL;
}

/* The free blocks a pool keeps are bounded by record_pool_set_limit, its own thread's
 * frees and others' together, and counted by record_pool_get_stats: freeing past the
 * cap trims. Blocks that all come back from another thread (a replaying agent's
 * records) may fill the whole cap, not half of it. */
static void test_record_pool_limit(void **state)
{
	struct st_record *v[201], *w[13];
	struct record_pool_stats s0, s1;
	pthread_t t;
	size_t i;

	(void)state;
	record_pool_set_limit(32 * RECORD_BLOCK);
	/* this thread's pool emptied: its own list and what other threads returned */
	for (i = 0; i < 2 * RECORD_POOL_MAX + 2; i++)
		free(record_new());
	record_pool_get_stats(&s0);
	assert_int_equal(s0.cap_blocks, 32);
	assert_true(s0.pools >= 1);
	assert_int_equal(s0.idle_bytes, s0.idle_blocks * RECORD_BLOCK);

	/* freed on this thread: the whole cap kept */
	for (i = 0; i < 200; i++) {
		v[i] = record_new();
		assert_non_null(v[i]);
	}
	for (i = 0; i < 200; i++)
		record_free(v[i]);
	record_pool_get_stats(&s1);
	assert_int_equal(s1.idle_blocks, s0.idle_blocks + 32);
	assert_int_equal(s1.trimmed, s0.trimmed + 200 - 32);

	/* all freed by another thread: the whole cap kept too (16 with a cap per list) */
	for (i = 0; i < 200; i++) {
		v[i] = record_new();
		assert_non_null(v[i]);
	}
	v[200] = NULL;
	record_pool_get_stats(&s0);
	assert_int_equal(pthread_create(&t, NULL, free_many_on_thread, v), 0);
	pthread_join(t, NULL);
	record_pool_get_stats(&s1);
	assert_int_equal(s1.idle_blocks, s0.idle_blocks + 32);
	assert_int_equal(s1.trimmed, s0.trimmed + 200 - 32);
	assert_int_equal(s1.idle_bytes, s1.idle_blocks * RECORD_BLOCK);

	/* both lists at once: the 32 taken back and 8 more made; 20 freed here, 12 by
	 * another thread, then 8 more here: 32 kept in all, the last 8 trimmed */
	for (i = 0; i < 40; i++) {
		v[i] = record_new();
		assert_non_null(v[i]);
	}
	record_pool_get_stats(&s0);
	assert_int_equal(s0.idle_blocks, s1.idle_blocks - 32);
	for (i = 0; i < 20; i++)
		record_free(v[i]);
	for (i = 0; i < 12; i++)
		w[i] = v[20 + i];
	w[12] = NULL;
	assert_int_equal(pthread_create(&t, NULL, free_many_on_thread, w), 0);
	pthread_join(t, NULL);
	for (i = 32; i < 40; i++)
		record_free(v[i]);
	record_pool_get_stats(&s1);
	assert_int_equal(s1.idle_blocks, s0.idle_blocks + 32);
	assert_int_equal(s1.trimmed, s0.trimmed + 8);

	/* a limit too small for one block keeps none */
	record_pool_set_limit(RECORD_BLOCK - 1);
	v[0] = record_new();
	record_pool_get_stats(&s0);
	record_free(v[0]);
	record_pool_get_stats(&s1);
	assert_int_equal(s1.idle_blocks, s0.idle_blocks);
	assert_int_equal(s1.trimmed, s0.trimmed + 1);
	record_pool_set_limit((size_t)4 * RECORD_POOL_MAX * RECORD_BLOCK);
	record_pool_get_stats(&s1);
	assert_int_equal(s1.cap_blocks, 2 * RECORD_POOL_MAX);
}

static void test_record_bytes_diff(void **state)
{
	struct st_record *r = mk();
	struct st_diff *d;
	size_t base;

	(void)state;
	set_req(r, "GET / HTTP/1.1\r\n\r\n");
	base = record_bytes(r);
	d = calloc(1, sizeof(*d));
	assert_non_null(d);
	r->diff = d;
	assert_int_equal(record_bytes(r), base + sizeof(*d));
	d->headers = calloc(2, sizeof(char *));
	assert_non_null(d->headers);
	d->headers[0] = strdup("etag");
	d->headers[1] = strdup("x-request-id");
	d->nheaders = 2;
	d->reason = strdup("status");
	assert_int_equal(record_bytes(r), base + sizeof(*d) + 2 * sizeof(char *) + 5 + 13 + 7);
	record_free(r);

	/* one block: charged once, strings inside it not again */
	r = mk();
	set_req(r, "GET / HTTP/1.1\r\n\r\n");
	d = calloc(1, sizeof(*d) + 64);
	assert_non_null(d);
	d->block = sizeof(*d) + 64;
	d->reason = (char *)(d + 1);
	strcpy(d->reason, "inside");
	r->diff = d;
	assert_int_equal(record_bytes(r), base + sizeof(*d) + 64);
	d->endpoint = strdup("GET /x");
	assert_int_equal(record_bytes(r), base + sizeof(*d) + 64 + 7);
	record_free(r);
}

/* record_event_id against the rule written out with printf: the two 64-bit hashes
 * as 16 lower-case hex digits each, the most significant first */
static void test_event_id_hex(void **state)
{
	static const uint64_t flows[] = { 0, 1, 42, 0x0123456789abcdefull, ~0ull,
					  0xa0a0a0a0a0a0a0a0ull, 0x9999999999999999ull };
	char got[33], want[33];
	size_t i;
	uint32_t k;

	(void)state;
	for (i = 0; i < sizeof(flows) / sizeof(flows[0]); i++)
		for (k = 0; k < 4096; k += (k < 64 ? 1 : 97)) {
			uint64_t a = st_mix64(flows[i] ^ st_mix64(k));
			uint64_t b = st_mix64(a ^ 0x5348414457544150ull);

			snprintf(want, sizeof(want), "%016llx%016llx", (unsigned long long)a,
				 (unsigned long long)b);
			memset(got, 'X', sizeof(got));
			record_event_id(flows[i], k, got);
			assert_string_equal(got, want);
		}
}

/* IPv4 addresses as dotted quads: every octet value at each of the four places,
 * against inet_ntop */
static void test_ipv4_every_octet(void **state)
{
	unsigned v, pos;

	(void)state;
	for (pos = 0; pos < 4; pos++)
		for (v = 0; v < 256; v++) {
			struct st_record *r = mk();
			uint8_t a[4] = { 10, 200, 7, 99 }, c[4] = { 255, 0, 100, 9 };
			char sa[INET_ADDRSTRLEN], sc[INET_ADDRSTRLEN], frag[64], *j;

			a[pos] = (uint8_t)v;
			c[3 - pos] = (uint8_t)v;
			memcpy(r->saddr, a, 4);
			memcpy(r->caddr, c, 4);
			inet_ntop(AF_INET, a, sa, sizeof(sa));
			inet_ntop(AF_INET, c, sc, sizeof(sc));
			j = json(r);
			snprintf(frag, sizeof(frag), "\"source\":{\"ip\":\"%s\",\"port\":40001}", sc);
			has(j, frag);
			snprintf(frag, sizeof(frag), "\"destination\":{\"ip\":\"%s\",\"port\":80}", sa);
			has(j, frag);
			free(j);
			record_free(r);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_field),
		cmocka_unit_test(test_escaping_and_utf8),
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_headers_redaction),
		cmocka_unit_test(test_replay_and_diff),
		cmocka_unit_test(test_replay_one_block),
		cmocka_unit_test(test_record_bytes_diff),
		cmocka_unit_test(test_record_bytes_req_room),
		cmocka_unit_test(test_record_pool),
		cmocka_unit_test(test_record_pool_limit),
		cmocka_unit_test(test_record_raw_room),
		cmocka_unit_test(test_headers_match_reference),
		cmocka_unit_test(test_capture_flags_and_addresses),
		cmocka_unit_test(test_event_id_hex),
		cmocka_unit_test(test_ipv4_every_octet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
