/* Endpoint templating, user patterns and --diff-ignore rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "endpoint.h"

static const char *ep(const char *m, const char *t, const char *const *pat, int n)
{
	static char out[ENDPOINT_MAX];

	endpoint_name(m, strlen(m), t, strlen(t), pat, n, out, sizeof(out));
	return out;
}

static void test_templates(void **state)
{
	assert_string_equal(ep("GET", "/api/user/42", NULL, 0), "GET /api/user/{int}");
	assert_string_equal(ep("GET", "/api/user/42/posts/7?x=1#f", NULL, 0),
			    "GET /api/user/{int}/posts/{int}");
	assert_string_equal(ep("DELETE", "/o/123e4567-e89b-12d3-a456-426614174000", NULL, 0),
			    "DELETE /o/{uuid}");
	assert_string_equal(ep("GET", "/c/5f3a9b2c4d1e6f708192a3b4", NULL, 0), "GET /c/{hex}");
	assert_string_equal(ep("GET", "/r/2024-01-31/x", NULL, 0), "GET /r/{date}/x");
	assert_string_equal(ep("GET", "/r/2024-01-31T10:00:00Z", NULL, 0), "GET /r/{date}");
	assert_string_equal(ep("GET", "/", NULL, 0), "GET /");
	assert_string_equal(ep("GET", "", NULL, 0), "GET /");
	assert_string_equal(ep("GET", "http://h:80/a/9?q", NULL, 0), "GET /a/{int}");
	assert_string_equal(ep("POST", "/api/orders", NULL, 0), "POST /api/orders");
	/* shapes that are no ids stay */
	assert_string_equal(ep("GET", "/facadefacade/v2/abc", NULL, 0), "GET /facadefacade/v2/abc");
	assert_string_equal(ep("GET", "/a//b/", NULL, 0), "GET /a//b/");
}

static void test_segment_kinds(void **state)
{
	assert_string_equal(endpoint_segment_kind("0", 1), "{int}");
	assert_null(endpoint_segment_kind("", 0));
	assert_null(endpoint_segment_kind("12a", 3));
	assert_string_equal(endpoint_segment_kind("0123456789abcdef", 16), "{hex}");
	assert_string_equal(endpoint_segment_kind("abc123abc123", 12), "{hex}");
	assert_null(endpoint_segment_kind("abcdefabcdef", 12));
	assert_null(endpoint_segment_kind("2024-1-1", 8));
}

static void test_patterns(void **state)
{
	const char *pat[] = { "GET /api/user/*", "* /static/*" };

	assert_string_equal(ep("GET", "/api/user/alice", pat, 2), "GET /api/user/*");
	assert_string_equal(ep("POST", "/api/user/alice", pat, 2), "POST /api/user/alice");
	assert_string_equal(ep("HEAD", "/static/app.js?v=3", pat, 2), "* /static/*");
	assert_true(endpoint_pattern_valid("GET /a/*"));
	assert_true(endpoint_pattern_valid("* *"));
	assert_false(endpoint_pattern_valid("/a/*"));
	assert_false(endpoint_pattern_valid("GET a"));
}

static void test_ignore(void **state)
{
	assert_true(endpoint_ignore_match("GET /api/user/{int} $.meta.generated_at", "GET /api/user/{int}",
					  "$.meta.generated_at"));
	assert_false(endpoint_ignore_match("GET /api/user/{int} $.meta.generated_at", "GET /api/x",
					   "$.meta.generated_at"));
	assert_true(endpoint_ignore_match("* header:x-trace-id", "POST /a", "header:x-trace-id"));
	assert_false(endpoint_ignore_match("* header:x-trace-id", "POST /a", "header:x-trace"));
	assert_true(endpoint_ignore_match("* $.meta*", "GET /", "$.meta.x"));
	assert_true(endpoint_ignore_match("GET * $.a", "GET /x", "$.a"));
	assert_false(endpoint_ignore_match("GET * $.a", "POST /x", "$.a"));
	assert_true(endpoint_ignore_valid("* $.a"));
	assert_false(endpoint_ignore_valid("$.a"));
	assert_false(endpoint_ignore_valid("* "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_templates),
		cmocka_unit_test(test_segment_kinds),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_ignore),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
