/* HTTP/1.x parser and body decoder. Every input is copied so that its last byte is
 * the last byte before a PROT_NONE page: any read past the end crashes the test. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "http1.h"

#define T_MAX_HDRS 32
#define T_AREA_PAGES 8

static char *t_area;       /* T_AREA_PAGES readable pages, then a guard page */
static size_t t_area_len;
static size_t t_page;

static int t_setup(void **state)
{
	char *m;

	t_page = (size_t)sysconf(_SC_PAGESIZE);
	t_area_len = T_AREA_PAGES * t_page;
	m = mmap(NULL, t_area_len + t_page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	if (mprotect(m + t_area_len, t_page, PROT_NONE) != 0)
		return -1;
	t_area = m;
	return 0;
}

static int t_teardown(void **state)
{
	if (t_area)
		munmap(t_area, t_area_len + t_page);
	return 0;
}

/* Copy len bytes so they end right at the guard page. */
static const char *t_guard(const void *data, size_t len)
{
	char *dst;

	assert_true(len <= t_area_len);
	dst = t_area + t_area_len - len;
	memmove(dst, data, len);
	return dst;
}

static int t_req(const char *s, size_t len, struct http1_request *req,
		 struct http1_header *hdrs, size_t max)
{
	return http1_parse_request(t_guard(s, len), len, req, hdrs, max);
}

static int t_resp(const char *s, size_t len, struct http1_response *resp,
		  struct http1_header *hdrs, size_t max)
{
	return http1_parse_response(t_guard(s, len), len, resp, hdrs, max);
}

static void t_expect_str(const char *p, size_t len, const char *want)
{
	if (len != strlen(want) || memcmp(p, want, len) != 0)
		print_error("got \"%.*s\", want \"%s\"\n", (int)len, p ? p : "", want);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(p, want, len);
}

static void t_expect_rc(const char *name, int got, int want)
{
	if (got != want)
		print_error("case %s: got %d, want %d\n", name, got, want);
	assert_int_equal(got, want);
}

/* ---- request heads ---- */

static void test_simple_get(void **state)
{
	static const char in[] = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n"
				 "User-Agent: t/1\r\nAccept: */*\r\n\r\nBODY";
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	int rc;

	rc = t_req(in, sizeof(in) - 1, &req, hdrs, T_MAX_HDRS);
	assert_int_equal(rc, (int)(sizeof(in) - 1 - 4));
	t_expect_str(req.method, req.method_len, "GET");
	t_expect_str(req.target, req.target_len, "/index.html?q=1");
	assert_int_equal(req.minor_version, 1);
	assert_ptr_equal(req.headers, hdrs);
	assert_int_equal(req.num_headers, 3);
	t_expect_str(hdrs[0].name, hdrs[0].name_len, "Host");
	t_expect_str(hdrs[0].value, hdrs[0].value_len, "example.com");
	t_expect_str(hdrs[1].name, hdrs[1].name_len, "User-Agent");
	t_expect_str(hdrs[1].value, hdrs[1].value_len, "t/1");
	t_expect_str(hdrs[2].name, hdrs[2].name_len, "Accept");
	t_expect_str(hdrs[2].value, hdrs[2].value_len, "*/*");
}

static void test_ows_and_empty_values(void **state)
{
	static const char in[] = "POST / HTTP/1.1\r\nHost:example.com\r\nX-A:  \t a b \t \r\n"
				 "X-Empty:\r\nX-Blank:   \r\nX-Obs: caf\xc3\xa9\r\n\r\n";
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;

	assert_int_equal(t_req(in, sizeof(in) - 1, &req, hdrs, T_MAX_HDRS), (int)sizeof(in) - 1);
	assert_int_equal(req.num_headers, 5);
	t_expect_str(hdrs[0].value, hdrs[0].value_len, "example.com");
	t_expect_str(hdrs[1].value, hdrs[1].value_len, "a b");
	assert_int_equal(hdrs[2].value_len, 0);
	assert_int_equal(hdrs[3].value_len, 0);
	t_expect_str(hdrs[4].value, hdrs[4].value_len, "caf\xc3\xa9");
}

static void test_bare_lf_and_versions(void **state)
{
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	static const char lf[] = "GET / HTTP/1.1\nHost: a\nX: y\r\n\n";
	static const char v10[] = "HEAD /x HTTP/1.0\r\n\r\n";
	static const char v12[] = "GET /x HTTP/1.2\r\n\r\n";
	static const char blank[] = "\r\n\n\r\nGET / HTTP/1.1\r\n\r\n";

	assert_int_equal(t_req(lf, sizeof(lf) - 1, &req, hdrs, T_MAX_HDRS), (int)sizeof(lf) - 1);
	assert_int_equal(req.num_headers, 2);
	t_expect_str(hdrs[0].value, hdrs[0].value_len, "a");
	t_expect_str(hdrs[1].value, hdrs[1].value_len, "y");

	assert_int_equal(t_req(v10, sizeof(v10) - 1, &req, hdrs, T_MAX_HDRS), (int)sizeof(v10) - 1);
	t_expect_str(req.method, req.method_len, "HEAD");
	assert_int_equal(req.minor_version, 0);
	assert_int_equal(req.num_headers, 0);

	assert_int_equal(t_req(v12, sizeof(v12) - 1, &req, hdrs, T_MAX_HDRS), (int)sizeof(v12) - 1);
	assert_int_equal(req.minor_version, 1);

	assert_int_equal(t_req(blank, sizeof(blank) - 1, &req, hdrs, T_MAX_HDRS),
			 (int)sizeof(blank) - 1);
	t_expect_str(req.method, req.method_len, "GET");
	assert_ptr_equal(req.method, t_area + t_area_len - (sizeof(blank) - 1) + 5);
}

static void test_http09(void **state)
{
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	static const char crlf[] = "GET /path\r\nHost: ignored\r\n\r\n";
	static const char lf[] = "GET /p\n";
	static const char post[] = "POST /path\r\n";

	assert_int_equal(t_req(crlf, sizeof(crlf) - 1, &req, hdrs, T_MAX_HDRS), 11);
	assert_int_equal(req.minor_version, -1);
	assert_int_equal(req.num_headers, 0);
	t_expect_str(req.target, req.target_len, "/path");
	assert_int_equal(t_req(lf, sizeof(lf) - 1, &req, hdrs, T_MAX_HDRS), 7);
	assert_int_equal(req.minor_version, -1);
	assert_int_equal(t_req(post, sizeof(post) - 1, &req, hdrs, T_MAX_HDRS), HTTP1_MALFORMED);
}

static const char *const t_valid_requests[] = {
	"GET / HTTP/1.1\r\n\r\n",
	"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-E:\r\n\r\n",
	"POST /submit HTTP/1.0\nContent-Length: 3\nX:  spaced  \n\n",
	"\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /nine\r\n",
	"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
	"GET  /two-spaces  HTTP/1.1\r\n\r\n",
};

static const char *const t_valid_responses[] = {
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: t\r\n\r\n",
	"HTTP/1.0 404 Not Found\n\n",
	"HTTP/1.1 204\r\n\r\n",
	"HTTP/1.1 500 \r\nX: y\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
};

static void test_every_prefix_needs_more(void **state)
{
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	struct http1_response resp;
	size_t i, n, k;
	int rc;

	for (i = 0; i < sizeof(t_valid_requests) / sizeof(t_valid_requests[0]); i++) {
		const char *s = t_valid_requests[i];

		n = strlen(s);
		assert_int_equal(t_req(s, n, &req, hdrs, T_MAX_HDRS), (int)n);
		for (k = 0; k < n; k++) {
			rc = t_req(s, k, &req, hdrs, T_MAX_HDRS);
			if (rc != HTTP1_NEED_MORE)
				print_error("request %zu prefix %zu: %d\n", i, k, rc);
			assert_int_equal(rc, HTTP1_NEED_MORE);
			assert_int_equal(req.num_headers, 0);
		}
	}
	for (i = 0; i < sizeof(t_valid_responses) / sizeof(t_valid_responses[0]); i++) {
		const char *s = t_valid_responses[i];

		n = strlen(s);
		assert_int_equal(t_resp(s, n, &resp, hdrs, T_MAX_HDRS), (int)n);
		for (k = 0; k < n; k++) {
			rc = t_resp(s, k, &resp, hdrs, T_MAX_HDRS);
			if (rc != HTTP1_NEED_MORE)
				print_error("response %zu prefix %zu: %d\n", i, k, rc);
			assert_int_equal(rc, HTTP1_NEED_MORE);
		}
	}
}

struct t_case {
	const char *name;
	const char *in;
	size_t len;     /* 0: strlen(in) */
	int want;
};

#define T_ALL(s) s, sizeof(s) - 1

static const struct t_case t_request_cases[] = {
	{ "method with (", T_ALL("GE(T / HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "method with ( early", "GE(", 3, HTTP1_MALFORMED },
	{ "method with @", T_ALL("G@T / HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "empty method", T_ALL(" / HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "tab after method", T_ALL("GET\t/ HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "missing target", T_ALL("GET \r\n\r\n"), HTTP1_MALFORMED },
	{ "control in target", T_ALL("GET /a\x01 HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "DEL in target", T_ALL("GET /a\x7f HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "NUL in target", T_ALL("GET /a\0b HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "NUL in method", T_ALL("G\0T / HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "HTTP/2.0", T_ALL("GET / HTTP/2.0\r\n\r\n"), HTTP1_MALFORMED },
	{ "HTTP/2 early", T_ALL("GET / HTTP/2"), HTTP1_MALFORMED },
	{ "HTTP/0.9 spelled", T_ALL("GET / HTTP/0.9\r\n\r\n"), HTTP1_MALFORMED },
	{ "lowercase http", T_ALL("GET / http/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "HTTP/1.x", T_ALL("GET / HTTP/1.x\r\n\r\n"), HTTP1_MALFORMED },
	{ "HTTP/1.11", T_ALL("GET / HTTP/1.11\r\n\r\n"), HTTP1_MALFORMED },
	{ "space after version", T_ALL("GET / HTTP/1.1 \r\n\r\n"), HTTP1_MALFORMED },
	{ "junk after target", T_ALL("GET / XTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "CR without LF", T_ALL("GET / HTTP/1.1\rX\r\n\r\n"), HTTP1_MALFORMED },
	{ "missing colon", T_ALL("GET / HTTP/1.1\r\nHost example.com\r\n\r\n"), HTTP1_MALFORMED },
	{ "missing colon early", T_ALL("GET / HTTP/1.1\r\nHost\r"), HTTP1_MALFORMED },
	{ "space before colon", T_ALL("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HTTP1_MALFORMED },
	{ "tab before colon", T_ALL("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), HTTP1_MALFORMED },
	{ "empty name", T_ALL("GET / HTTP/1.1\r\n: a\r\n\r\n"), HTTP1_MALFORMED },
	{ "obs-fold", T_ALL("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), HTTP1_MALFORMED },
	{ "leading space header", T_ALL("GET / HTTP/1.1\r\n X: a\r\n\r\n"), HTTP1_MALFORMED },
	{ "NUL in value", T_ALL("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), HTTP1_MALFORMED },
	{ "NUL in name", T_ALL("GET / HTTP/1.1\r\nX\0: a\r\n\r\n"), HTTP1_MALFORMED },
	{ "CTL in value", T_ALL("GET / HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n"), HTTP1_MALFORMED },
	{ "DEL in value", T_ALL("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), HTTP1_MALFORMED },
	{ "bare CR in value", T_ALL("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), HTTP1_MALFORMED },
	{ "CTL in long value", T_ALL("GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x02\r\n\r\n"),
	  HTTP1_MALFORMED },
	{ "bad blank line", T_ALL("\r\rGET / HTTP/1.1\r\n\r\n"), HTTP1_MALFORMED },
	{ "tab in long value ok", T_ALL("GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaa\taaaaaaaaaaaaaaaaaaaaa\r\n\r\n"),
	  (int)sizeof("GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaa\taaaaaaaaaaaaaaaaaaaaa\r\n\r\n") - 1 },
	{ "incomplete header", T_ALL("GET / HTTP/1.1\r\nHost: a\r\n"), HTTP1_NEED_MORE },
	{ "incomplete after CR", T_ALL("GET / HTTP/1.1\r\nHost: a\r\n\r"), HTTP1_NEED_MORE },
	{ "empty", "", 0, HTTP1_NEED_MORE },
	{ "blank lines only", T_ALL("\r\n\r\n"), HTTP1_NEED_MORE },
};

/* Every byte value at every position of a 40-byte field name (so at each lane of the
 * 16-byte fast scan and in the byte-wise tail): a token byte stays in the name, ':'
 * ends it, anything else makes the head malformed, exactly as RFC 9110 5.6.2 says. */
static void test_name_every_byte(void **state)
{
	static const char tspecial[] = "!#$%&'*+-.^_`|~";
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	char buf[128];
	size_t pos, len;
	int b, rc;

	for (pos = 0; pos < 40; pos++) {
		for (b = 0; b < 256; b++) {
			int tchar = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') ||
				    (b >= 'A' && b <= 'Z') || (b && strchr(tspecial, b));

			memcpy(buf, "GET / HTTP/1.1\r\n", 16);
			memcpy(buf + 16, "Abcdefghij-KLMNOPQRST-uvwxyz0123-456789X", 40);
			buf[16 + pos] = (char)b;
			memcpy(buf + 56, ": v\r\n\r\n", 7);
			len = 63;
			rc = t_req(buf, len, &req, hdrs, T_MAX_HDRS);
			if (tchar) {
				t_expect_rc("token byte", rc, (int)len);
				assert_int_equal(req.num_headers, 1);
				assert_int_equal(hdrs[0].name_len, 40);
			} else if (b == '\n' && pos == 0) {
				/* a bare LF first is the empty line: the head ends there */
				t_expect_rc("empty line", rc, 17);
			} else if (b == ':' && pos > 0) {
				/* the name ends early; the rest is the value */
				t_expect_rc("colon", rc, (int)len);
				assert_int_equal(hdrs[0].name_len, pos);
			} else {
				t_expect_rc("non-token byte", rc, HTTP1_MALFORMED);
			}
		}
	}
}

/* The SSSE3 name scan against the byte-at-a-time one (http1_set_simd): every byte
 * value at each of 40 positions of a 40-byte name, in a head cut at every length
 * from the name's start to its end (so each 16-byte step and each tail is the
 * last before the guard page). Both must give the same return, the same fields and
 * the same name lengths. Where the CPU has no SSSE3 both runs are the plain scan. */
static void test_name_simd_vs_plain(void **state)
{
	struct http1_header h1[T_MAX_HDRS], h2[T_MAX_HDRS];
	struct http1_request r1, r2;
	char buf[128];
	size_t pos, len;
	int b, rc1, rc2;
	unsigned long runs = 0, good = 0;

	(void)state;
	for (pos = 0; pos < 40; pos++) {
		for (b = 0; b < 256; b++) {
			memcpy(buf, "GET / HTTP/1.1\r\nX: 1\r\n", 22);
			memcpy(buf + 22, "Abcdefghij-KLMNOPQRST-uvwxyz0123-456789X", 40);
			buf[22 + pos] = (char)b;
			memcpy(buf + 62, ": v\r\n\r\n", 7);
			for (len = 22; len <= 69; len++) {
				http1_set_simd(1);
				rc1 = t_req(buf, len, &r1, h1, T_MAX_HDRS);
				http1_set_simd(0);
				rc2 = t_req(buf, len, &r2, h2, T_MAX_HDRS);
				http1_set_simd(1);
				assert_int_equal(rc1, rc2);
				assert_int_equal(r1.num_headers, r2.num_headers);
				for (size_t i = 0; i < r1.num_headers; i++) {
					assert_int_equal(h1[i].name_len, h2[i].name_len);
					assert_int_equal(h1[i].value_len, h2[i].value_len);
				}
				runs++;
				good += rc1 == 69;
			}
		}
	}
	assert_int_equal(runs, 40ul * 256 * 48);
	/* whole heads parsed: the 77 token bytes at 40 places, ':' at 39 */
	assert_int_equal(good, 77ul * 40 + 39);
}

/* The version, read in one 8-byte compare when the buffer has 8 bytes (P, session 7):
 * every byte value at each of its 8 places, in a request and in a response, against
 * the rule written out: the 7 bytes of "HTTP/1." exactly, then a digit (above 1 is
 * 1); anything else malformed. */
static void test_version_every_byte(void **state)
{
	static const char v[] = "HTTP/1.1";
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	struct http1_response resp;
	char buf[64];
	size_t pos, n;
	int b, rc, ok, minor;

	(void)state;
	for (pos = 0; pos < 8; pos++) {
		for (b = 0; b < 256; b++) {
			ok = pos < 7 ? b == v[pos] : (b >= '0' && b <= '9');
			minor = pos < 7 ? 1 : (b > '1' ? 1 : b - '0');
			n = (size_t)snprintf(buf, sizeof(buf), "GET / %s\r\n\r\n", v);
			buf[6 + pos] = (char)b;
			rc = t_req(buf, n, &req, hdrs, T_MAX_HDRS);
			assert_int_equal(rc, ok ? (int)n : HTTP1_MALFORMED);
			if (ok)
				assert_int_equal(req.minor_version, minor);
			n = (size_t)snprintf(buf, sizeof(buf), "%s 200 OK\r\n\r\n", v);
			buf[pos] = (char)b;
			rc = t_resp(buf, n, &resp, hdrs, T_MAX_HDRS);
			assert_int_equal(rc, ok ? (int)n : HTTP1_MALFORMED);
			if (ok)
				assert_int_equal(resp.minor_version, minor);
		}
	}
}

static void test_request_cases(void **state)
{
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	size_t i;

	for (i = 0; i < sizeof(t_request_cases) / sizeof(t_request_cases[0]); i++) {
		const struct t_case *c = &t_request_cases[i];
		int rc = t_req(c->in, c->len, &req, hdrs, T_MAX_HDRS);

		t_expect_rc(c->name, rc, c->want);
		if (rc < 0)
			assert_int_equal(req.num_headers, 0);
	}
}

static void test_too_many_headers(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	struct http1_header hdrs[3];
	struct http1_request req;
	struct http1_response resp;
	static const char rin[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";

	assert_int_equal(t_req(in, sizeof(in) - 1, &req, hdrs, 3), (int)sizeof(in) - 1);
	assert_int_equal(req.num_headers, 3);
	/* more fields than the array: parsed, the first kept, the rest counted (issue 16
	 * item 9; tests/unit/test_http1_limit.c has the framing cases) */
	assert_int_equal(t_req(in, sizeof(in) - 1, &req, hdrs, 2), (int)sizeof(in) - 1);
	assert_int_equal(req.num_headers, 2);
	assert_int_equal(req.num_over, 1);
	assert_int_equal(t_req(in, 29, &req, hdrs, 2), HTTP1_NEED_MORE);
	assert_int_equal(t_req(in, sizeof(in) - 1, &req, NULL, 0), (int)sizeof(in) - 1);
	assert_int_equal(req.num_over, 3);
	assert_int_equal(t_resp(rin, sizeof(rin) - 1, &resp, hdrs, 1), (int)sizeof(rin) - 1);
	assert_int_equal(resp.num_over, 1);
	assert_int_equal(t_resp(rin, sizeof(rin) - 1, &resp, hdrs, 2), (int)sizeof(rin) - 1);
	assert_int_equal(resp.num_over, 0);
}

/* ---- response heads ---- */

struct t_resp_case {
	const char *in;
	int want;        /* 0: whole input */
	int status;
	int minor;
	const char *reason;
};

static const struct t_resp_case t_resp_cases[] = {
	{ "HTTP/1.1 100 Continue\r\n\r\n", 0, 100, 1, "Continue" },
	{ "HTTP/1.1 101 Switching Protocols\r\n\r\n", 0, 101, 1, "Switching Protocols" },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 200, 1, "OK" },
	{ "HTTP/1.0 204 No Content\r\n\r\n", 0, 204, 0, "No Content" },
	{ "HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n\r\n", 0, 301, 1, "Moved Permanently" },
	{ "HTTP/1.1 404 Not  Found \r\n\r\n", 0, 404, 1, "Not  Found" },
	{ "HTTP/1.1 503\r\n\r\n", 0, 503, 1, "" },
	{ "HTTP/1.1 999 Odd\n\n", 0, 999, 1, "Odd" },
	{ "HTTP/1.1 200 caf\xc3\xa9\r\n\r\n", 0, 200, 1, "caf\xc3\xa9" },
	{ "HTTP/1.1 20 OK\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1 2000 OK\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1 099 Low\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1 abc OK\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1 -20 OK\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1200 OK\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/2.0 200 OK\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1 200 O\x01K\r\n\r\n", HTTP1_MALFORMED },
	{ "ICY 200 OK\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1 200 OK\r\nX : y\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1 200 OK\r\nX: y\r\n\tz\r\n\r\n", HTTP1_MALFORMED },
	{ "\r\nHTTP/1.1 200 OK\r\n\r\n", HTTP1_MALFORMED },
	{ "HTTP/1.1 200 OK\r\nX: y\r\n", HTTP1_NEED_MORE },
};

static void test_response_cases(void **state)
{
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_response resp;
	size_t i, n;

	for (i = 0; i < sizeof(t_resp_cases) / sizeof(t_resp_cases[0]); i++) {
		const struct t_resp_case *c = &t_resp_cases[i];
		int rc;

		n = strlen(c->in);
		rc = t_resp(c->in, n, &resp, hdrs, T_MAX_HDRS);
		t_expect_rc(c->in, rc, c->want ? c->want : (int)n);
		if (rc < 0)
			continue;
		assert_int_equal(resp.status, c->status);
		assert_int_equal(resp.minor_version, c->minor);
		t_expect_str(resp.reason ? resp.reason : "", resp.reason_len, c->reason);
	}
}

/* ---- header helpers ---- */

static void test_find_header_and_tokens(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\ncontent-TYPE: text/plain\r\n"
				 "Connection: keep-alive ,\tUpgrade , \r\nUpgrade: websocket\r\n\r\n";
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	const struct http1_header *h;

	assert_true(t_req(in, sizeof(in) - 1, &req, hdrs, T_MAX_HDRS) > 0);
	h = http1_find_header(req.headers, req.num_headers, "Content-Type");
	assert_non_null(h);
	t_expect_str(h->value, h->value_len, "text/plain");
	assert_null(http1_find_header(req.headers, req.num_headers, "content-typ"));
	assert_null(http1_find_header(req.headers, req.num_headers, "content-types"));
	h = http1_find_header(req.headers, req.num_headers, "CONNECTION");
	assert_non_null(h);
	assert_true(http1_has_token(h->value, h->value_len, "upgrade"));
	assert_true(http1_has_token(h->value, h->value_len, "Keep-Alive"));
	assert_false(http1_has_token(h->value, h->value_len, "keep"));
	assert_false(http1_has_token(h->value, h->value_len, "close"));
	assert_false(http1_has_token(h->value, h->value_len, ""));
	assert_false(http1_has_token("", 0, "close"));
	assert_true(http1_has_token("close", 5, "close"));
	assert_false(http1_has_token("closed", 6, "close"));
	assert_false(http1_has_token("xclose", 6, "close"));
	assert_true(http1_has_token(",,close,", 8, "close"));
	/* the length bounds the scan: "close" past len is not seen */
	assert_false(http1_has_token("a, close", 3, "close"));
}

/* ---- framing ---- */

struct t_frame_case {
	const char *name;
	const char *head;
	const char *method;   /* responses: the request method */
	int want;
	uint64_t cl;
};

static const struct t_frame_case t_req_frames[] = {
	{ "no body", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL, HTTP1_BODY_NONE, 0 },
	{ "http/0.9", "GET /\r\n", NULL, HTTP1_BODY_NONE, 0 },
	{ "length", "POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n", NULL, HTTP1_BODY_LENGTH, 42 },
	{ "length 0", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", NULL, HTTP1_BODY_NONE, 0 },
	{ "length max", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", NULL,
	  HTTP1_BODY_LENGTH, 9223372036854775807ULL },
	{ "length overflow", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "length huge", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "length plus", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", NULL, HTTP1_MALFORMED, 0 },
	{ "length minus", "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", NULL, HTTP1_MALFORMED, 0 },
	{ "length inner space", "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "length hex", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", NULL, HTTP1_MALFORMED, 0 },
	{ "length empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", NULL, HTTP1_MALFORMED, 0 },
	{ "length outer OWS ok", "POST / HTTP/1.1\r\nContent-Length:   7  \r\n\r\n", NULL,
	  HTTP1_BODY_LENGTH, 7 },
	{ "length list agrees", "POST / HTTP/1.1\r\nContent-Length: 7, 7 ,7\r\n\r\n", NULL,
	  HTTP1_BODY_LENGTH, 7 },
	{ "length list disagrees", "POST / HTTP/1.1\r\nContent-Length: 7, 8\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "length list empty item", "POST / HTTP/1.1\r\nContent-Length: 7,,7\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "double length agrees", "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
	  NULL, HTTP1_BODY_LENGTH, 5 },
	{ "double length disagrees", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	  NULL, HTTP1_MALFORMED, 0 },
	/* the digits-only shortcut (up to 18) and the list walk beside it */
	{ "length 18 digits", "POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n", NULL,
	  HTTP1_BODY_LENGTH, 999999999999999999ULL },
	{ "length 19 digits", "POST / HTTP/1.1\r\nContent-Length: 1000000000000000000\r\n\r\n", NULL,
	  HTTP1_BODY_LENGTH, 1000000000000000000ULL },
	{ "length leading zeros", "POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n", NULL, HTTP1_BODY_LENGTH, 7 },
	{ "length then list disagrees", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 6\r\n\r\n",
	  NULL, HTTP1_MALFORMED, 0 },
	{ "list then length disagrees", "POST / HTTP/1.1\r\nContent-Length: 5,5\r\nContent-Length: 6\r\n\r\n",
	  NULL, HTTP1_MALFORMED, 0 },
	{ "list then length agrees", "POST / HTTP/1.1\r\nContent-Length: 5,5\r\nContent-Length: 5\r\n\r\n",
	  NULL, HTTP1_BODY_LENGTH, 5 },
	{ "length then 19 digits", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 0000000000000000005\r\n\r\n",
	  NULL, HTTP1_BODY_LENGTH, 5 },
	{ "length digit then NUL-free junk", "POST / HTTP/1.1\r\nContent-Length: 5:\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", NULL,
	  HTTP1_BODY_CHUNKED, 0 },
	{ "Chunked case", "POST / HTTP/1.1\r\ntransfer-encoding: ChUnKeD\r\n\r\n", NULL,
	  HTTP1_BODY_CHUNKED, 0 },
	{ "gzip, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", NULL,
	  HTTP1_BODY_CHUNKED, 0 },
	{ "gzip then chunked headers", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n", NULL, HTTP1_BODY_CHUNKED, 0 },
	{ "chunked, gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "chunked, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "gzip only", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", NULL, HTTP1_MALFORMED, 0 },
	{ "empty te", "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", NULL, HTTP1_MALFORMED, 0 },
	{ "chunkedx", "POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "te + cl", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "cl + te", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
	{ "te in http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", NULL,
	  HTTP1_MALFORMED, 0 },
};

static const struct t_frame_case t_resp_frames[] = {
	{ "100", "HTTP/1.1 100 Continue\r\n\r\n", "GET", HTTP1_BODY_NONE, 0 },
	{ "103 with length", "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n", "GET",
	  HTTP1_BODY_NONE, 0 },
	{ "101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "GET",
	  HTTP1_BODY_TUNNEL, 0 },
	{ "204 with length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "GET",
	  HTTP1_BODY_NONE, 0 },
	{ "304 chunked", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "GET",
	  HTTP1_BODY_NONE, 0 },
	{ "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "HEAD", HTTP1_BODY_NONE, 0 },
	{ "CONNECT 200", "HTTP/1.1 200 Connection Established\r\n\r\n", "CONNECT",
	  HTTP1_BODY_TUNNEL, 0 },
	{ "CONNECT 407", "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n", "CONNECT",
	  HTTP1_BODY_LENGTH, 3 },
	{ "200 length", "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "GET", HTTP1_BODY_LENGTH, 12 },
	{ "200 length 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", HTTP1_BODY_NONE, 0 },
	{ "200 bad length", "HTTP/1.1 200 OK\r\nContent-Length: 1a\r\n\r\n", "GET", HTTP1_MALFORMED, 0 },
	{ "200 lengths disagree", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	  "GET", HTTP1_MALFORMED, 0 },
	{ "404 chunked", "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", "POST",
	  HTTP1_BODY_CHUNKED, 0 },
	{ "te + cl: chunked wins", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n", "GET", HTTP1_BODY_CHUNKED, 0 },
	{ "gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET",
	  HTTP1_BODY_CHUNKED, 0 },
	{ "chunked, gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "GET",
	  HTTP1_BODY_CLOSE, 0 },
	{ "te in http/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET",
	  HTTP1_BODY_CLOSE, 0 },
	{ "close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", "GET", HTTP1_BODY_CLOSE, 0 },
	{ "1.0 close", "HTTP/1.0 200 OK\r\n\r\n", "GET", HTTP1_BODY_CLOSE, 0 },
	{ "no method", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", NULL, HTTP1_BODY_LENGTH, 4 },
};

static void test_request_framing(void **state)
{
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	uint64_t cl;
	size_t i;

	for (i = 0; i < sizeof(t_req_frames) / sizeof(t_req_frames[0]); i++) {
		const struct t_frame_case *c = &t_req_frames[i];
		int rc = t_req(c->head, strlen(c->head), &req, hdrs, T_MAX_HDRS);

		t_expect_rc(c->name, rc, (int)strlen(c->head));
		cl = 12345;
		t_expect_rc(c->name, http1_request_framing(&req, &cl), c->want);
		if (c->want == HTTP1_BODY_LENGTH)
			assert_int_equal(cl, c->cl);
		else
			assert_int_equal(cl, 0);
		http1_request_framing(&req, NULL);
	}
}

/* The framing names are matched 8 bytes at a time (http1_lit_eq): every byte value
 * at every place of "Content-Length" and "Transfer-Encoding" must frame the body only
 * if it is that letter in either case (or the same '-'), whatever the other bytes. */
static void test_framing_name_every_byte(void **state)
{
	static const char *const names[] = { "Content-Length: 5", "Transfer-Encoding: chunked" };
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	char buf[128];
	uint64_t cl;
	size_t k, pos, nlen, len;
	int b, rc, fr, framed = 0;

	(void)state;
	for (k = 0; k < 2; k++) {
		nlen = strchr(names[k], ':') - names[k];
		for (pos = 0; pos < nlen; pos++) {
			for (b = 0; b < 256; b++) {
				int o = (unsigned char)names[k][pos];
				int same = b == o || (isalpha(o) && (b | 0x20) == (o | 0x20));

				len = (size_t)snprintf(buf, sizeof(buf), "POST / HTTP/1.1\r\n%s\r\n\r\n", names[k]);
				buf[strlen("POST / HTTP/1.1\r\n") + pos] = (char)b;
				rc = t_req(buf, len, &req, hdrs, T_MAX_HDRS);
				if (rc != (int)len)
					continue;   /* not a token byte: not a field line at all */
				fr = http1_request_framing(&req, &cl);
				if (same) {
					assert_int_equal(fr, k ? HTTP1_BODY_CHUNKED : HTTP1_BODY_LENGTH);
					framed++;
				} else {
					assert_int_equal(fr, HTTP1_BODY_NONE);
				}
			}
		}
	}
	/* each letter in two cases, each '-' once */
	assert_int_equal(framed, (13 * 2 + 1) + (16 * 2 + 1));
}

static void test_response_framing(void **state)
{
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_response resp;
	uint64_t cl;
	size_t i;

	for (i = 0; i < sizeof(t_resp_frames) / sizeof(t_resp_frames[0]); i++) {
		const struct t_frame_case *c = &t_resp_frames[i];
		int rc = t_resp(c->head, strlen(c->head), &resp, hdrs, T_MAX_HDRS);

		t_expect_rc(c->name, rc, (int)strlen(c->head));
		cl = 12345;
		rc = http1_response_framing(&resp, c->method, c->method ? strlen(c->method) : 0, &cl);
		t_expect_rc(c->name, rc, c->want);
		if (c->want == HTTP1_BODY_LENGTH)
			assert_int_equal(cl, c->cl);
		else
			assert_int_equal(cl, 0);
	}
}

/* ---- body decoder ---- */

struct t_sink {
	const char *lo, *hi;   /* the buffer being fed: spans must stay inside */
	char data[8192];
	size_t len;
	size_t calls;
};

static void t_sink_cb(void *ctx, const char *data, size_t len)
{
	struct t_sink *s = ctx;

	assert_true(len > 0);
	assert_true(data >= s->lo && data + len <= s->hi);
	assert_true(s->len + len <= sizeof(s->data));
	memcpy(s->data + s->len, data, len);
	s->len += len;
	s->calls++;
}

/* Feed in pieces of `step` bytes (0: all at once), each piece before the guard page.
 * Returns total consumed, or HTTP1_MALFORMED. */
static ssize_t t_feed(struct http1_body *b, const char *in, size_t len, size_t step,
		      struct t_sink *s)
{
	size_t off = 0, n;
	ssize_t k;

	do {
		const char *p;

		n = step && len - off > step ? step : len - off;
		p = t_guard(in + off, n);
		s->lo = p;
		s->hi = p + n;
		k = http1_body_feed(b, p, n, t_sink_cb, s);
		if (k < 0)
			return k;
		assert_true((size_t)k <= n);
		off += (size_t)k;
		if ((size_t)k < n)
			break;
	} while (off < len && !b->done);
	return (ssize_t)off;
}

static void test_chunked_split_equivalence(void **state)
{
	static const char body[] =
		"5;name=value;q=\"x y\"\r\nhello\r\n"
		"1A\nabcdefghijklmnopqrstuvwxyz\n"
		"0000b \t;ext\r\n world\r\n\r\n!\r\n"
		"0;last\r\nTrailer-One: 1\r\nX-Sum:  abc\r\n\r\n";
	static const char want[] = "hello" "abcdefghijklmnopqrstuvwxyz" " world\r\n\r\n!";
	static const char next[] = "GET /next HTTP/1.1\r\n\r\n";
	char in[sizeof(body) + sizeof(next)];
	size_t blen = sizeof(body) - 1, steps[] = { 0, 1, 2, 3, 7, 64 }, i;
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	struct http1_body b;
	struct t_sink *s = calloc(1, sizeof(*s));
	ssize_t k;

	assert_non_null(s);
	memcpy(in, body, blen);
	memcpy(in + blen, next, sizeof(next));
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		memset(s, 0, sizeof(*s));
		http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
		k = t_feed(&b, in, blen + sizeof(next) - 1, steps[i], s);
		if (k != (ssize_t)blen)
			print_error("step %zu: consumed %zd, want %zu\n", steps[i], k, blen);
		assert_int_equal(k, blen);
		assert_true(b.done);
		assert_int_equal(s->len, sizeof(want) - 1);
		assert_memory_equal(s->data, want, sizeof(want) - 1);
		assert_int_equal(b.data_bytes, sizeof(want) - 1);
		assert_int_equal(b.wire_bytes, blen);
		/* the next message starts exactly where the body ended */
		assert_int_equal(t_req(in + k, sizeof(next) - 1, &req, hdrs, T_MAX_HDRS),
				 (int)sizeof(next) - 1);
		t_expect_str(req.target, req.target_len, "/next");
		assert_int_equal(http1_body_feed(&b, "x", 1, t_sink_cb, s), 0);
		assert_int_equal(http1_body_eof(&b), 0);
	}
	free(s);
}

static void test_length_pipelined(void **state)
{
	static const char in[] = "POST /a HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello worldGET /b HTTP/1.1\r\n\r\n";
	struct http1_header hdrs[T_MAX_HDRS];
	struct http1_request req;
	struct http1_body b;
	struct t_sink s = { 0 };
	size_t steps[] = { 0, 1, 4 }, i;
	uint64_t cl;
	int hl;
	ssize_t k;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		memset(&s, 0, sizeof(s));
		hl = t_req(in, sizeof(in) - 1, &req, hdrs, T_MAX_HDRS);
		assert_int_equal(hl, 40);
		assert_int_equal(http1_request_framing(&req, &cl), HTTP1_BODY_LENGTH);
		assert_int_equal(cl, 11);
		http1_body_init(&b, HTTP1_BODY_LENGTH, cl);
		assert_false(b.done);
		assert_int_equal(http1_body_eof(&b), -1);
		k = t_feed(&b, in + hl, sizeof(in) - 1 - (size_t)hl, steps[i], &s);
		assert_int_equal(k, 11);
		assert_true(b.done);
		assert_int_equal(b.remaining, 0);
		assert_int_equal(b.data_bytes, 11);
		assert_int_equal(b.wire_bytes, 11);
		assert_int_equal(s.len, 11);
		assert_memory_equal(s.data, "hello world", 11);
		assert_int_equal(t_req(in + hl + k, sizeof(in) - 1 - (size_t)hl - (size_t)k, &req, hdrs,
				       T_MAX_HDRS), 19);
		t_expect_str(req.target, req.target_len, "/b");
		assert_int_equal(http1_body_eof(&b), 0);
	}
}

static const struct t_case t_chunk_cases[] = {
	{ "no digits", T_ALL("\r\n"), HTTP1_MALFORMED },
	{ "leading space", T_ALL(" 5\r\nhello\r\n0\r\n\r\n"), HTTP1_MALFORMED },
	{ "sign", T_ALL("-5\r\nhello\r\n"), HTTP1_MALFORMED },
	{ "plus", T_ALL("+5\r\nhello\r\n"), HTTP1_MALFORMED },
	{ "0x prefix", T_ALL("0x5\r\nhello\r\n"), HTTP1_MALFORMED },
	{ "not hex", T_ALL("5g\r\nhello\r\n"), HTTP1_MALFORMED },
	{ "space inside size", T_ALL("1 2\r\nx\r\n"), HTTP1_MALFORMED },
	{ "overflow", T_ALL("10000000000000000\r\n"), HTTP1_MALFORMED },
	{ "CR without LF", T_ALL("5\rhello\r\n"), HTTP1_MALFORMED },
	{ "CTL in ext", T_ALL("5;a\x01\r\nhello\r\n"), HTTP1_MALFORMED },
	{ "data too long", T_ALL("3\r\nabcd\r\n0\r\n\r\n"), HTTP1_MALFORMED },
	{ "data CR then junk", T_ALL("3\r\nabc\rX0\r\n\r\n"), HTTP1_MALFORMED },
	{ "trailer obs-fold", T_ALL("0\r\nA: b\r\n c\r\n\r\n"), HTTP1_MALFORMED },
	{ "trailer NUL", T_ALL("0\r\nA: \0\r\n\r\n"), HTTP1_MALFORMED },
	{ "final CR junk", T_ALL("0\r\n\rX"), HTTP1_MALFORMED },
	{ "16 hex digits ok, incomplete", T_ALL("ffffffffffffffff\r\nabc"), 21 },
	{ "leading zeros", T_ALL("0000000000000000000000005\r\nhello\r\n0\r\n\r\n"), 39 },
	{ "bare LF everywhere", T_ALL("2\nab\n0\n\n"), 8 },
	{ "incomplete", T_ALL("5\r\nhel"), 6 },
};

static void test_chunked_malformed(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(t_chunk_cases) / sizeof(t_chunk_cases[0]); i++) {
		const struct t_case *c = &t_chunk_cases[i];
		struct t_sink *s = calloc(1, sizeof(*s));
		size_t steps[] = { 0, 1 }, j;

		assert_non_null(s);
		for (j = 0; j < 2; j++) {
			struct http1_body b;
			ssize_t k;

			memset(s, 0, sizeof(*s));
			http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
			k = t_feed(&b, c->in, c->len, steps[j], s);
			t_expect_rc(c->name, (int)k, c->want);
			if (k < 0) {
				/* the error sticks */
				assert_int_equal(http1_body_feed(&b, "0\r\n\r\n", 5, NULL, NULL),
						 HTTP1_MALFORMED);
				assert_int_equal(http1_body_eof(&b), -1);
			}
		}
		free(s);
	}
}

static void test_chunked_bounds(void **state)
{
	static char in[HTTP1_TRAILER_MAX + 64];
	static struct t_sink sink;
	struct t_sink *s = &sink;
	struct http1_body b;
	size_t n;

	/* an extension just under the limit passes, one byte more fails */
	for (n = HTTP1_CHUNK_LINE_MAX - 1; n <= HTTP1_CHUNK_LINE_MAX; n++) {
		memset(in, 'e', n);
		in[0] = '0';
		in[1] = ';';
		memcpy(in + n, "\r\n\r\n", 4);
		http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
		memset(s, 0, sizeof(*s));
		/* the line is n bytes plus CR */
		if (n + 1 <= HTTP1_CHUNK_LINE_MAX) {
			assert_int_equal(t_feed(&b, in, n + 4, 0, s), n + 4);
			assert_true(b.done);
		} else {
			assert_int_equal(t_feed(&b, in, n + 4, 0, s), HTTP1_MALFORMED);
		}
	}
	/* trailers are bounded as a whole */
	memcpy(in, "0\r\n", 3);
	for (n = 3; n + 8 < HTTP1_TRAILER_MAX + 16; n += 8)
		memcpy(in + n, "A: bbb\r\n", 8);
	memcpy(in + n, "\r\n", 2);
	http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
	assert_int_equal(http1_body_feed(&b, in, n + 2, NULL, NULL), HTTP1_MALFORMED);
	/* and just below the bound they pass */
	n = 3 + 8 * ((HTTP1_TRAILER_MAX - 2) / 8);
	memcpy(in + n, "\r\n", 2);
	http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
	assert_int_equal(http1_body_feed(&b, in, n + 2, NULL, NULL), n + 2);
	assert_true(b.done);
}

static void test_eof_and_close(void **state)
{
	struct http1_body b;
	struct t_sink s = { 0 };
	static const char data[] = "everything until close";

	http1_body_init(&b, HTTP1_BODY_CLOSE, 0);
	assert_int_equal(t_feed(&b, data, sizeof(data) - 1, 5, &s), sizeof(data) - 1);
	assert_false(b.done);
	assert_int_equal(b.data_bytes, sizeof(data) - 1);
	assert_int_equal(s.len, sizeof(data) - 1);
	assert_int_equal(http1_body_eof(&b), 0);
	assert_true(b.done);

	http1_body_init(&b, HTTP1_BODY_NONE, 0);
	assert_true(b.done);
	assert_int_equal(http1_body_feed(&b, "abc", 3, NULL, NULL), 0);
	assert_int_equal(http1_body_eof(&b), 0);

	http1_body_init(&b, HTTP1_BODY_LENGTH, 0);
	assert_true(b.done);
	assert_int_equal(http1_body_feed(&b, "abc", 3, NULL, NULL), 0);

	http1_body_init(&b, HTTP1_BODY_LENGTH, 10);
	assert_int_equal(http1_body_feed(&b, "abc", 3, NULL, NULL), 3);
	assert_int_equal(b.remaining, 7);
	assert_int_equal(http1_body_eof(&b), -1);

	http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
	assert_int_equal(http1_body_feed(&b, "3\r\nabc\r\n", 8, NULL, NULL), 8);
	assert_int_equal(http1_body_eof(&b), -1);
	assert_int_equal(http1_body_feed(&b, "0\r\n", 3, NULL, NULL), 3);
	assert_false(b.done);
	assert_int_equal(http1_body_eof(&b), -1);
	assert_int_equal(http1_body_feed(&b, "\r\n", 2, NULL, NULL), 2);
	assert_true(b.done);
	assert_int_equal(http1_body_eof(&b), 0);
	assert_int_equal(b.data_bytes, 3);
	assert_int_equal(b.wire_bytes, 13);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_get),
		cmocka_unit_test(test_ows_and_empty_values),
		cmocka_unit_test(test_bare_lf_and_versions),
		cmocka_unit_test(test_http09),
		cmocka_unit_test(test_every_prefix_needs_more),
		cmocka_unit_test(test_name_every_byte),
		cmocka_unit_test(test_name_simd_vs_plain),
		cmocka_unit_test(test_version_every_byte),
		cmocka_unit_test(test_request_cases),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_response_cases),
		cmocka_unit_test(test_find_header_and_tokens),
		cmocka_unit_test(test_request_framing),
		cmocka_unit_test(test_response_framing),
		cmocka_unit_test(test_framing_name_every_byte),
		cmocka_unit_test(test_chunked_split_equivalence),
		cmocka_unit_test(test_length_pipelined),
		cmocka_unit_test(test_chunked_malformed),
		cmocka_unit_test(test_chunked_bounds),
		cmocka_unit_test(test_eof_and_close),
	};

	return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
