/* http1.c past the caller's header array (issue 16 item 9): a head with more field
 * lines than max_hdrs is parsed, not malformed; the first lines are kept, the rest
 * counted, and the fields framing depends on are kept wherever they come. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http1.h"

#define MAXH 100

/* "METHOD / HTTP/1.1" + n "X-H-i: v" lines, with extra (already CRLF-ended lines)
 * after field number at (0: none), then the blank line */
static char *head(const char *start, int n, int at, const char *extra)
{
	size_t cap = 64 + (size_t)n * 32 + strlen(extra), len;
	char *b = malloc(cap);
	int i;

	assert_non_null(b);
	len = (size_t)snprintf(b, cap, "%s\r\n", start);
	for (i = 1; i <= n; i++) {
		len += (size_t)snprintf(b + len, cap - len, "X-H-%d: v%d\r\n", i, i);
		if (i == at)
			len += (size_t)snprintf(b + len, cap - len, "%s", extra);
	}
	snprintf(b + len, cap - len, "\r\n");
	return b;
}

static void test_request_over_limit_parses(void **state)
{
	struct http1_header h[MAXH];
	struct http1_request req;
	char *b = head("GET /many HTTP/1.1", 1000, 0, "");
	int r = http1_parse_request(b, strlen(b), &req, h, MAXH);

	assert_int_equal(r, (int)strlen(b));
	assert_int_equal(req.num_headers, MAXH);
	assert_int_equal(req.num_over, 900);
	assert_int_equal(req.target_len, 5);
	assert_memory_equal(req.headers[99].name, "X-H-100", 7);
	free(b);

	b = head("GET /few HTTP/1.1", 100, 0, "");
	r = http1_parse_request(b, strlen(b), &req, h, MAXH);
	assert_int_equal(r, (int)strlen(b));
	assert_int_equal(req.num_headers, 100);
	assert_int_equal(req.num_over, 0);
	free(b);
}

/* Content-Length as field 150 of 200: kept (in place of the last ordinary field),
 * so the body is framed as the server frames it; order of the kept fields holds. */
static void test_framing_field_past_limit(void **state)
{
	struct http1_header h[MAXH];
	struct http1_request req;
	uint64_t cl = 0;
	char *b = head("POST /p HTTP/1.1", 200, 150, "Content-Length: 42\r\n");
	int r = http1_parse_request(b, strlen(b), &req, h, MAXH);

	assert_int_equal(r, (int)strlen(b));
	assert_int_equal(req.num_headers, MAXH);
	assert_int_equal(req.num_over, 101);
	assert_int_equal(http1_request_framing(&req, &cl), HTTP1_BODY_LENGTH);
	assert_int_equal(cl, 42);
	assert_memory_equal(req.headers[98].name, "X-H-99", 6);
	assert_memory_equal(req.headers[99].name, "Content-Length", 14);
	free(b);

	/* Transfer-Encoding and Content-Length both past the limit: still the smuggling
	 * shape, malformed framing as with few fields */
	b = head("POST /p HTTP/1.1", 200, 150, "Content-Length: 42\r\nTransfer-Encoding: chunked\r\n");
	r = http1_parse_request(b, strlen(b), &req, h, MAXH);
	assert_int_equal(r, (int)strlen(b));
	assert_int_equal(http1_request_framing(&req, &cl), HTTP1_MALFORMED);
	free(b);
}

/* Lines past the limit are still checked: a bad one makes the head malformed. */
static void test_bad_line_past_limit(void **state)
{
	struct http1_header h[MAXH];
	struct http1_request req;
	struct http1_response resp;
	char *b = head("GET / HTTP/1.1", 150, 120, " folded\r\n");

	assert_int_equal(http1_parse_request(b, strlen(b), &req, h, MAXH), HTTP1_MALFORMED);
	assert_int_equal(req.num_over, 0);
	free(b);
	b = head("HTTP/1.1 200 OK", 150, 140, "Transfer-Encoding: chunked\r\n");
	assert_int_equal(http1_parse_response(b, strlen(b), &resp, h, MAXH), (int)strlen(b));
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.num_over, 51);
	assert_int_equal(http1_response_framing(&resp, "GET", 3, NULL), HTTP1_BODY_CHUNKED);
	/* cut short anywhere past the limit: need more, not malformed */
	assert_int_equal(http1_parse_response(b, strlen(b) - 5, &resp, h, MAXH), HTTP1_NEED_MORE);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_over_limit_parses),
		cmocka_unit_test(test_framing_field_past_limit),
		cmocka_unit_test(test_bad_line_past_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
