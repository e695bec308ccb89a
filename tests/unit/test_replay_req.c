/* Replay request preparation without sockets: target URLs, option checks, which
 * captured requests are sent (and how much of them), the filters, sampling, and the
 * head rewrites, byte for byte. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "replay_req.h"

static void test_url_good(void **state)
{
	struct replay_url u;

	assert_int_equal(replay_url_parse("http://127.0.0.1:81", &u), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "81");
	assert_int_equal(u.prefix_len, 0);
	assert_string_equal(u.prefix, "");

	assert_int_equal(replay_url_parse("HTTP://backend", &u), 0);
	assert_string_equal(u.host, "backend");
	assert_string_equal(u.port, "80");

	assert_int_equal(replay_url_parse("http://[::1]:8080/api//", &u), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "8080");
	assert_int_equal(u.prefix_len, 4);
	assert_string_equal(u.prefix, "/api");

	assert_int_equal(replay_url_parse("http://h:65535/", &u), 0);
	assert_string_equal(u.port, "65535");
	assert_int_equal(u.prefix_len, 0);

	assert_int_equal(replay_url_parse("http://[fe80::1]/v1/x", &u), 0);
	assert_string_equal(u.host, "fe80::1");
	assert_string_equal(u.port, "80");
	assert_string_equal(u.prefix, "/v1/x");
	assert_false(u.tls);

	assert_int_equal(replay_url_parse("https://serverb.example/api", &u), 0);
	assert_true(u.tls);
	assert_string_equal(u.host, "serverb.example");
	assert_string_equal(u.port, "443");
	assert_string_equal(u.prefix, "/api");
	assert_int_equal(replay_url_parse("HTTPS://[::1]:8443", &u), 0);
	assert_true(u.tls);
	assert_string_equal(u.port, "8443");
}

static void test_url_bad(void **state)
{
	static const char *const bad[] = {
		"httpss://h:81", "https://", "ftp://h", "h:81", "http://", "http:///x", "http://:81",
		"http://h:", "http://h:0", "http://h:65536", "http://h:8x", "http://h:123456789",
		"http://[::1", "http://[::1]x", "http://[]:80",
	};
	char longhost[400];
	struct replay_url u;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("url %s\n", bad[i]);
		assert_int_equal(replay_url_parse(bad[i], &u), -EINVAL);
	}
	memcpy(longhost, "http://", 7);
	memset(longhost + 7, 'a', 300);
	longhost[307] = '\0';
	assert_int_equal(replay_url_parse(longhost, &u), -EINVAL);
	/* a path prefix longer than the prefix buffer */
	memcpy(longhost, "http://h/", 9);
	memset(longhost + 9, 'p', 300);
	longhost[309] = '\0';
	assert_int_equal(replay_url_parse(longhost, &u), -EINVAL);
}

static void cfg_init(struct replay_cfg *cfg)
{
	replay_cfg_default(cfg);
	cfg->targets[0] = "http://127.0.0.1:81";
	cfg->ntargets = 1;
}

static void test_rules_bad(void **state)
{
	struct replay_rules r;
	struct replay_cfg cfg;

	cfg_init(&cfg);
	cfg.headers[0] = "no colon";
	cfg.nheaders = 1;
	assert_int_equal(replay_rules_init(&r, &cfg), -EINVAL);
	cfg.headers[0] = ": empty name";
	assert_int_equal(replay_rules_init(&r, &cfg), -EINVAL);
	cfg.headers[0] = "Bad Name: v";
	assert_int_equal(replay_rules_init(&r, &cfg), -EINVAL);
	cfg.headers[0] = "X-A: 1\r\nX-B: 2";
	assert_int_equal(replay_rules_init(&r, &cfg), -EINVAL);
	cfg.nheaders = 0;
	cfg.host = "evil\r\nX: 1";
	assert_int_equal(replay_rules_init(&r, &cfg), -EINVAL);
	cfg.host = NULL;
	cfg.allow_url[0] = "^/ok";
	cfg.allow_url[1] = "(";
	cfg.nallow_url = 2;
	assert_int_equal(replay_rules_init(&r, &cfg), -EINVAL);
	assert_int_equal(r.nallow, 0);       /* what compiled was freed */
	cfg.nallow_url = 1;
	cfg.deny_url[0] = "[z-a]";
	cfg.ndeny_url = 1;
	assert_int_equal(replay_rules_init(&r, &cfg), -EINVAL);

	cfg.ndeny_url = 0;
	cfg.headers[0] = "X-Test: a b: c";
	cfg.nheaders = 1;
	assert_int_equal(replay_rules_init(&r, &cfg), 0);
	assert_int_equal(r.nhdrs, 1);
	assert_int_equal(r.hdrs[0].name_len, 6);
	assert_true(r.rewrite);
	assert_int_equal(r.nallow, 1);
	replay_rules_free(&r);
}

/* A record holding raw as the capture makes it (exchange.c x_request_head): the head
 * parsed once, a copy of it with its headers in rec->req (in the record's own room
 * when it fits, record_req_set_head), method and target pointing into that copy, and
 * the raw bytes. NULL when raw's head does not parse (the capture then keeps no
 * parsed head either). */
static struct st_record *rec_of(const char *raw, size_t len)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_request req;
	struct st_record *rec;
	int hl = http1_parse_request(raw, len, &req, hdrs, ST_MAX_HEADERS);

	if (hl < 0)
		return NULL;
	rec = record_new();
	assert_non_null(rec);
	assert_int_equal(record_req_set_head(rec, raw, (size_t)hl, req.headers, req.num_headers), 0);
	if (req.num_over)
		rec->cap_flags |= ST_CAP_HEADERS_OVER;
	rec->method = rec->req.head + (req.method - raw);
	rec->method_len = req.method_len;
	rec->target = rec->req.head + (req.target - raw);
	rec->target_len = req.target_len;
	rec->http_minor = req.minor_version;
	rec->raw = malloc(len ? len : 1);
	assert_non_null(rec->raw);
	memcpy(rec->raw, raw, len);
	rec->raw_len = rec->raw_cap = len;
	return rec;
}

/* replay_req_prepare_rec on rec gave what replay_req_prepare on its raw gives: the same
 * verdict, reason, lengths, method, and headers at the same offsets of raw. */
static void expect_same(const struct replay_rules *r, const struct st_record *rec, int verdict,
			const char *why, const struct replay_req *want)
{
	struct replay_req q;
	const char *why2 = "unset";
	const uint8_t *raw = rec->raw;
	size_t i;

	assert_int_equal(replay_req_prepare_rec(r, rec, &q, &why2), verdict);
	if (why)
		assert_string_equal(why2, why);
	else
		assert_null(why2);
	if (verdict != REPLAY_SEND)
		return;
	assert_int_equal(q.head_len, want->head_len);
	assert_int_equal(q.end, want->end);
	assert_string_equal(q.method, want->method);
	assert_int_equal(q.method_len, want->method_len);
	assert_int_equal(q.req.minor_version, want->req.minor_version);
	assert_ptr_equal(q.req.method, want->req.method);
	assert_int_equal(q.req.method_len, want->req.method_len);
	assert_ptr_equal(q.req.target, want->req.target);
	assert_int_equal(q.req.target_len, want->req.target_len);
	assert_int_equal(q.req.num_headers, want->req.num_headers);
	for (i = 0; i < q.req.num_headers; i++) {
		assert_int_equal((const uint8_t *)q.req.headers[i].name - raw,
				 (const uint8_t *)want->req.headers[i].name - raw);
		assert_int_equal(q.req.headers[i].name_len, want->req.headers[i].name_len);
		assert_int_equal((const uint8_t *)q.req.headers[i].value - raw,
				 (const uint8_t *)want->req.headers[i].value - raw);
		assert_int_equal(q.req.headers[i].value_len, want->req.headers[i].value_len);
	}
}

/* Every prepare in these tests runs both ways: on raw, and on a record built from it
 * the way the capture builds one (the replay thread's path), which must agree. */
static int prepare(const struct replay_rules *r, const char *raw, struct replay_req *q,
		   const char **why)
{
	size_t len = strlen(raw);
	struct st_record *rec;
	int v = replay_req_prepare(r, (const uint8_t *)raw, len, q, why);

	rec = rec_of(raw, len);
	if (rec) {
		/* q's pointers are into raw; the record's copy is another buffer */
		struct replay_req want = *q;
		ptrdiff_t d = (const char *)rec->raw - raw;
		size_t i;

		want.req.method = q->req.method ? q->req.method + d : NULL;
		want.req.target = q->req.target ? q->req.target + d : NULL;
		for (i = 0; v == REPLAY_SEND && i < q->req.num_headers; i++) {
			want.hdrs[i].name = q->hdrs[i].name + d;
			want.hdrs[i].value = q->hdrs[i].value + d;
		}
		want.req.headers = want.hdrs;
		expect_same(r, rec, v, *why, &want);
		record_free(rec);
	}
	return v;
}

static void test_prepare_framing(void **state)
{
	static const struct {
		const char *raw;
		int verdict;
		const char *why;
		size_t end;         /* for REPLAY_SEND */
	} v[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", REPLAY_SEND, NULL, 27 },
		/* bytes after the request (a pipelined next one) are not sent with it */
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", REPLAY_SEND, NULL, 27 },
		{ "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcXYZ", REPLAY_SEND, NULL, 42 },
		{ "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nab", REPLAY_UNREPLAYABLE,
		  "incomplete request", 0 },
		{ "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nrest",
		  REPLAY_SEND, NULL, 61 },
		{ "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
		  REPLAY_UNREPLAYABLE, "incomplete request", 0 },
		{ "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", REPLAY_UNREPLAYABLE,
		  "malformed request", 0 },
		{ "POST /p HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		  REPLAY_UNREPLAYABLE, "malformed request", 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\n", REPLAY_UNREPLAYABLE, "incomplete request", 0 },
		{ "G\x01T / HTTP/1.1\r\n\r\n", REPLAY_UNREPLAYABLE, "malformed request", 0 },
		{ "GET /\r\n", REPLAY_UNREPLAYABLE, "http/0.9", 0 },
		{ "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", REPLAY_UNREPLAYABLE, "connect", 0 },
		{ "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n",
		  REPLAY_UNREPLAYABLE, "upgrade", 0 },
		/* Upgrade without Connection: upgrade is only a header */
		{ "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", REPLAY_SEND, NULL, 40 },
	};
	struct replay_rules r;
	struct replay_cfg cfg;
	struct replay_req q;
	const char *why;
	size_t i;

	cfg_init(&cfg);
	assert_int_equal(replay_rules_init(&r, &cfg), 0);
	assert_false(r.rewrite);
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		print_message("case %zu\n", i);
		why = "unset";
		assert_int_equal(prepare(&r, v[i].raw, &q, &why), v[i].verdict);
		if (v[i].why)
			assert_string_equal(why, v[i].why);
		else
			assert_null(why);
		if (v[i].verdict == REPLAY_SEND) {
			assert_int_equal(q.end, v[i].end);
			assert_true(q.head_len <= q.end);
		}
	}
	assert_int_equal(prepare(&r, "delete /x HTTP/1.0\r\n\r\n", &q, &why), REPLAY_SEND);
	assert_string_equal(q.method, "delete");
	replay_rules_free(&r);
}

static void test_prepare_filters(void **state)
{
	struct replay_rules r;
	struct replay_cfg cfg;
	struct replay_req q;
	const char *why;
	char big[4096];

	cfg_init(&cfg);
	cfg.allow_method[0] = "GET";
	cfg.allow_method[1] = "head";
	cfg.nallow_method = 2;
	cfg.allow_url[0] = "^/api/";
	cfg.allow_url[1] = "^/static/";
	cfg.nallow_url = 2;
	cfg.deny_url[0] = "secret";
	cfg.ndeny_url = 1;
	assert_int_equal(replay_rules_init(&r, &cfg), 0);
	assert_int_equal(prepare(&r, "GET /api/x HTTP/1.1\r\n\r\n", &q, &why), REPLAY_SEND);
	assert_int_equal(prepare(&r, "HEAD /static/a.css HTTP/1.1\r\n\r\n", &q, &why), REPLAY_SEND);
	assert_int_equal(prepare(&r, "POST /api/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &q, &why),
			 REPLAY_FILTERED);
	assert_string_equal(why, "filtered");
	assert_int_equal(prepare(&r, "GET /other HTTP/1.1\r\n\r\n", &q, &why), REPLAY_FILTERED);
	assert_int_equal(prepare(&r, "GET /api/secret HTTP/1.1\r\n\r\n", &q, &why), REPLAY_FILTERED);
	/* a method that is a prefix of an allowed one is not allowed */
	assert_int_equal(prepare(&r, "GE /api/x HTTP/1.1\r\n\r\n", &q, &why), REPLAY_FILTERED);
	/* a request-target longer than the on-stack copy */
	snprintf(big, sizeof(big), "GET /api/%03000d HTTP/1.1\r\n\r\n", 7);
	assert_int_equal(prepare(&r, big, &q, &why), REPLAY_SEND);
	snprintf(big, sizeof(big), "GET /api/%03000dsecret HTTP/1.1\r\n\r\n", 7);
	assert_int_equal(prepare(&r, big, &q, &why), REPLAY_FILTERED);
	/* unreplayable wins over filtered: the reason is the more useful one */
	assert_int_equal(prepare(&r, "GET /other HTTP/1.1\r\n", &q, &why), REPLAY_UNREPLAYABLE);
	replay_rules_free(&r);
}

static void expect_rewrite(const struct replay_rules *r, const char *prefix, const char *raw,
			   const char *want_head)
{
	struct replay_req q;
	struct buf b = { 0 };
	const char *why;

	assert_int_equal(prepare(r, raw, &q, &why), REPLAY_SEND);
	assert_int_equal(replay_req_rewrite(r, prefix, strlen(prefix), &q, (const uint8_t *)raw, &b),
			 0);
	assert_int_equal(b.len, strlen(want_head));
	assert_memory_equal(b.data, want_head, b.len);
	buf_free(&b);
}

static void test_rewrite(void **state)
{
	struct replay_rules r;
	struct replay_cfg cfg;

	cfg_init(&cfg);
	/* no rules, only a prefix: the head is copied, the prefix goes in front */
	assert_int_equal(replay_rules_init(&r, &cfg), 0);
	expect_rewrite(&r, "/v2", "GET /a?b=1 HTTP/1.1\r\nhOsT:  x \r\nX: 1\r\n\r\nbody",
		       "GET /v2/a?b=1 HTTP/1.1\r\nhOsT:  x \r\nX: 1\r\n\r\n");
	/* absolute-form and asterisk-form targets get no prefix */
	expect_rewrite(&r, "/v2", "GET http://x/a HTTP/1.1\r\n\r\n", "GET http://x/a HTTP/1.1\r\n\r\n");
	expect_rewrite(&r, "/v2", "OPTIONS * HTTP/1.1\r\n\r\n", "OPTIONS * HTTP/1.1\r\n\r\n");
	/* bare LF line ends are kept as they are */
	expect_rewrite(&r, "", "GET / HTTP/1.1\nA: 1\n\n", "GET / HTTP/1.1\nA: 1\n\n");
	replay_rules_free(&r);

	cfg.host = "staging:81";
	cfg.headers[0] = "X-Shadow: 1";
	cfg.headers[1] = "x-dup: new";
	cfg.nheaders = 2;
	assert_int_equal(replay_rules_init(&r, &cfg), 0);
	/* Host keeps its name's case, the first x-dup is replaced and later ones dropped,
	 * X-Shadow (absent) is added at the end, other lines keep their bytes */
	expect_rewrite(&r, "", "GET / HTTP/1.1\r\nHOST: prod\r\nX-Dup: a\r\nAccept:  */*\r\n"
			   "x-dup: b\r\nhost: again\r\n\r\n",
		       "GET / HTTP/1.1\r\nHOST: staging:81\r\nx-dup: new\r\nAccept:  */*\r\n"
		       "X-Shadow: 1\r\n\r\n");
	/* no Host at all: one is added */
	expect_rewrite(&r, "/p", "GET /q HTTP/1.0\r\n\r\n",
		       "GET /p/q HTTP/1.0\r\nHost: staging:81\r\nX-Shadow: 1\r\nx-dup: new\r\n\r\n");
	replay_rules_free(&r);
}

/* A record whose parsed head is not exactly raw's (a copy that differs, pointers
 * outside it, headers past the limit, none at all) is parsed from raw instead: the
 * result is raw's, never the record's. */
static void test_prepare_rec_fallback(void **state)
{
	static const char raw[] = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
	struct replay_rules r;
	struct replay_cfg cfg;
	struct replay_req q;
	struct st_record *rec;
	const char *why;
	char *head;

	cfg_init(&cfg);
	assert_int_equal(replay_rules_init(&r, &cfg), 0);

	/* the copy says Content-Length: 9 (and GET), raw says 3: raw wins */
	rec = rec_of(raw, sizeof(raw) - 1);
	head = (char *)rec->req.head;
	head[0] = 'G';
	head[1] = 'E';
	head[2] = 'T';
	head[3] = ' ';
	head[strlen("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: ")] = '9';
	assert_int_equal(replay_req_prepare_rec(&r, rec, &q, &why), REPLAY_SEND);
	assert_string_equal(q.method, "POST");
	assert_int_equal(q.end, sizeof(raw) - 1);
	assert_ptr_equal(q.req.method, (const char *)rec->raw);
	record_free(rec);

	/* the copy holds another, shorter head than raw (one header, no Content-Length),
	 * inside raw's length: its offsets read against raw would give a request of 35
	 * bytes with one header; only the byte compare tells, and raw's parse wins */
	{
		static const char other[] = "POST /p HTTP/1.1\r\nHost: abcdefgh\r\n\r\n";

		rec = rec_of(other, sizeof(other) - 1);
		free(rec->raw);
		rec->raw = malloc(sizeof(raw) - 1);
		assert_non_null(rec->raw);
		memcpy(rec->raw, raw, sizeof(raw) - 1);
		rec->raw_len = rec->raw_cap = sizeof(raw) - 1;
		assert_int_equal(replay_req_prepare_rec(&r, rec, &q, &why), REPLAY_SEND);
		assert_int_equal(q.req.num_headers, 2);
		assert_int_equal(q.end, sizeof(raw) - 1);
		record_free(rec);
	}

	/* a header pointing outside the copy */
	rec = rec_of(raw, sizeof(raw) - 1);
	rec->req.hdrs[1].value = "3000";
	assert_int_equal(replay_req_prepare_rec(&r, rec, &q, &why), REPLAY_SEND);
	assert_int_equal(q.end, sizeof(raw) - 1);
	assert_ptr_equal(q.req.headers[1].value,
			 (const char *)rec->raw + strlen("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: "));
	record_free(rec);

	/* headers past the limit, and a record without a parsed head: parsed from raw */
	rec = rec_of(raw, sizeof(raw) - 1);
	rec->cap_flags |= ST_CAP_HEADERS_OVER;
	rec->req.nhdrs = 1;
	assert_int_equal(replay_req_prepare_rec(&r, rec, &q, &why), REPLAY_SEND);
	assert_int_equal(q.req.num_headers, 2);
	assert_int_equal(q.end, sizeof(raw) - 1);
	record_msg_free(&rec->req);
	assert_int_equal(replay_req_prepare_rec(&r, rec, &q, &why), REPLAY_SEND);
	assert_int_equal(q.end, sizeof(raw) - 1);
	record_free(rec);

	/* the record's head is longer than raw (raw cut short): raw is incomplete */
	rec = rec_of(raw, sizeof(raw) - 1);
	rec->raw_len = 10;
	assert_int_equal(replay_req_prepare_rec(&r, rec, &q, &why), REPLAY_UNREPLAYABLE);
	assert_string_equal(why, "incomplete request");
	record_free(rec);
	replay_rules_free(&r);
}

static void test_sampling(void **state)
{
	struct replay_rules r = { 0 };
	uint64_t id;
	int out = 0;

	r.sample_pct = 100;
	for (id = 0; id < 1000; id++)
		assert_false(replay_rules_sampled_out(&r, id));
	r.sample_pct = 0;
	for (id = 0; id < 1000; id++)
		assert_true(replay_rules_sampled_out(&r, id));
	r.sample_pct = 25;
	for (id = 0; id < 20000; id++)
		out += replay_rules_sampled_out(&r, id);
	/* a hash, so only roughly a quarter is kept; the same flow always gets the same answer */
	assert_in_range(out, 14000, 16000);
	for (id = 0; id < 100; id++)
		assert_int_equal(replay_rules_sampled_out(&r, id), replay_rules_sampled_out(&r, id));
}

static void test_rec_unreplayable(void **state)
{
	struct st_record rec;
	uint8_t raw[] = "GET / HTTP/1.1\r\n\r\n";

	memset(&rec, 0, sizeof(rec));
	assert_string_equal(replay_rec_unreplayable(&rec), "no raw request");
	rec.cap_flags = ST_CAP_REPLAY_TRUNC;
	assert_string_equal(replay_rec_unreplayable(&rec), "request not captured whole");
	rec.raw = raw;
	rec.raw_len = sizeof(raw) - 1;
	rec.cap_flags = 0;
	rec.http_minor = 1;
	assert_null(replay_rec_unreplayable(&rec));
	rec.http_minor = -1;
	assert_string_equal(replay_rec_unreplayable(&rec), "http/0.9");
	rec.http_minor = 1;
	rec.cap_flags = ST_CAP_UPGRADED;
	assert_string_equal(replay_rec_unreplayable(&rec), "upgrade");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_good),
		cmocka_unit_test(test_url_bad),
		cmocka_unit_test(test_rules_bad),
		cmocka_unit_test(test_prepare_framing),
		cmocka_unit_test(test_prepare_filters),
		cmocka_unit_test(test_rewrite),
		cmocka_unit_test(test_prepare_rec_fallback),
		cmocka_unit_test(test_sampling),
		cmocka_unit_test(test_rec_unreplayable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
