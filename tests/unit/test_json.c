/* json.c: the shared scanner. Inputs are placed right before a guard page, so a
 * read past the end of any input crashes the test instead of passing unnoticed. */
#include <errno.h>
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

#include "json.h"

static char *guard_base;
static size_t guard_page;

/* A copy of s (without NUL) ending exactly at the guard page. */
static const char *guarded(const char *s, size_t n)
{
	char *end = guard_base + guard_page * 16;

	assert_true(n <= guard_page * 16);
	memcpy(end - n, s, n);
	return end - n;
}

static int setup(void **state)
{
	guard_page = (size_t)sysconf(_SC_PAGESIZE);
	guard_base = mmap(NULL, guard_page * 17, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_base == MAP_FAILED)
		return -1;
	return mprotect(guard_base + guard_page * 16, guard_page, PROT_NONE);
}

static int teardown(void **state)
{
	return munmap(guard_base, guard_page * 17);
}

/* the length json_skip consumes, or -1 */
static long skip_len(const char *s)
{
	size_t n = strlen(s);
	const char *p = guarded(s, n), *q = json_skip(p, p + n, 0);

	return q ? (long)(q - p) : -1;
}

static void test_skip_table(void **state)
{
	static const struct { const char *in; long want; } t[] = {
		{ "0", 1 }, { "-12.5e+3", 8 }, { "1E9 ", 3 }, { "007", 3 },
		{ "-", -1 }, { "1.", -1 }, { ".5", -1 }, { "1e", -1 }, { "+1", -1 },
		{ "true", 4 }, { "false", 5 }, { "null", 4 }, { "tru", -1 }, { "nul", -1 },
		{ "\"\"", 2 }, { "\"a\\\"b\"", 6 }, { "\"\\u00e9\"", 8 }, { "\"\\x\"", -1 },
		{ "\"\\u12\"", -1 }, { "\"abc", -1 }, { "\"a\nb\"", -1 }, { "\"\\", -1 },
		{ "[]", 2 }, { "{}", 2 }, { " [1, {\"a\": [true, null]}] x", 25 },
		{ "[1,]", -1 }, { "[1 2]", -1 }, { "{\"a\" 1}", -1 }, { "{\"a\":}", -1 },
		{ "{1:2}", -1 }, { "[", -1 }, { "{\"a\":1", -1 }, { "", -1 }, { "   ", -1 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		long got = skip_len(t[i].in);

		if (got != t[i].want)
			fail_msg("json_skip(%s) = %ld, want %ld", t[i].in, got, t[i].want);
	}
}

static void test_depth_bound(void **state)
{
	char deep[2 * (JSON_MAX_DEPTH + 2) + 1];
	int d;

	/* JSON_MAX_DEPTH + 1 nested arrays (depths 0..64) are fine, one more is not */
	for (d = JSON_MAX_DEPTH + 1; d <= JSON_MAX_DEPTH + 2; d++) {
		memset(deep, '[', (size_t)d);
		memset(deep + d, ']', (size_t)d);
		deep[2 * d] = '\0';
		assert_int_equal(skip_len(deep), d == JSON_MAX_DEPTH + 1 ? 2 * d : -1);
	}
}

static void test_string_decode(void **state)
{
	static const struct { const char *in; const char *want; size_t wn; } t[] = {
		{ "\"plain\"", "plain", 5 },
		{ "\"a\\nb\\t\\\"\\\\\\/\"", "a\nb\t\"\\/", 7 },
		{ "\"\\u00e9\\u20ac\"", "\xc3\xa9\xe2\x82\xac", 5 },
		{ "\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4 },        /* surrogate pair */
		{ "\"\\ud83d\"", "\xed\xa0\xbd", 3 },                   /* lone high half kept */
		{ "\"\\u0000\"", "\0", 1 },
	};
	char out[64];
	size_t i, n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len = strlen(t[i].in);
		const char *p = guarded(t[i].in, len);
		const char *q = json_string_decode(p, p + len, out, &n);

		assert_ptr_equal(q, p + len);
		assert_int_equal(n, t[i].wn);
		assert_memory_equal(out, t[i].want, n);
		assert_true(n <= len - 2);   /* never longer than the raw contents */
	}
	n = 99;
	assert_null(json_string_decode(guarded("\"ab", 3), guarded("\"ab", 3) + 3, out, &n));
}

static void test_member_and_path(void **state)
{
	static const char doc[] = "{\"name\":\"n\",\"version\":{\"number\":\"2.11.0\",\"x\":[1,2]},\"a\\\"b\":1}";
	const char *p = guarded(doc, sizeof(doc) - 1), *v, *ve;

	assert_int_equal(json_path(p, sizeof(doc) - 1, "version.number", &v, &ve), 0);
	assert_int_equal(ve - v, 8);
	assert_memory_equal(v, "\"2.11.0\"", 8);
	assert_int_equal(json_path(p, sizeof(doc) - 1, "version.x", &v, &ve), 0);
	assert_memory_equal(v, "[1,2]", 5);
	assert_int_equal(json_path(p, sizeof(doc) - 1, "version.none", &v, &ve), -ENOENT);
	assert_int_equal(json_path(p, sizeof(doc) - 1, "name.x", &v, &ve), -EBADMSG);
	assert_int_equal(json_member(p, p + sizeof(doc) - 1, "a\\\"b", 4, &v, &ve), 0);
	assert_memory_equal(v, "1", 1);
	p = guarded("[1]", 3);
	assert_int_equal(json_member(p, p + 3, "a", 1, &v, &ve), -EBADMSG);
	p = guarded("{\"a\":1,", 7);
	assert_int_equal(json_member(p, p + 7, "b", 1, &v, &ve), -EBADMSG);
}

static void test_iter(void **state)
{
	static const char doc[] = " {\"a\": [1, \"x\"], \"b\": {}} tail";
	const char *p = guarded(doc, sizeof(doc) - 1), *e = p + sizeof(doc) - 1;
	const char *k, *v, *ve;
	struct json_iter it, in;
	size_t kn;

	assert_int_equal(json_iter_init(&it, p, e, '[', 0), -EBADMSG);   /* an object */
	assert_int_equal(json_iter_init(&it, p, e, '{', 0), 0);
	assert_int_equal(json_iter_next(&it, &k, &kn, &v, &ve), 1);
	assert_int_equal(kn, 1);
	assert_memory_equal(k, "a", 1);
	assert_int_equal(json_iter_init(&in, v, ve, 0, 1), 0);
	assert_int_equal(json_iter_next(&in, NULL, NULL, &v, &ve), 1);
	assert_memory_equal(v, "1", 1);
	assert_int_equal(json_iter_next(&in, NULL, NULL, &v, &ve), 1);
	assert_int_equal(ve - v, 3);
	assert_int_equal(json_iter_next(&in, NULL, NULL, &v, &ve), 0);
	assert_int_equal(json_iter_next(&it, &k, &kn, &v, &ve), 1);
	assert_memory_equal(v, "{}", 2);
	assert_int_equal(json_iter_next(&it, &k, &kn, &v, &ve), 0);
	assert_int_equal(json_iter_next(&it, &k, &kn, &v, &ve), 0);
	assert_memory_equal(it.p, " tail", 5);           /* past the closing brace */
	p = guarded("[1,,2]", 6);
	assert_int_equal(json_iter_init(&it, p, p + 6, '[', 0), 0);
	assert_int_equal(json_iter_next(&it, NULL, NULL, NULL, NULL), 1);
	assert_int_equal(json_iter_next(&it, NULL, NULL, NULL, NULL), -EBADMSG);
	p = guarded("[1", 2);
	assert_int_equal(json_iter_init(&it, p, p + 2, '[', 0), 0);
	assert_int_equal(json_iter_next(&it, NULL, NULL, NULL, NULL), 1);
	assert_int_equal(json_iter_next(&it, NULL, NULL, NULL, NULL), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skip_table),
		cmocka_unit_test(test_depth_bound),
		cmocka_unit_test(test_string_decode),
		cmocka_unit_test(test_member_and_path),
		cmocka_unit_test(test_iter),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
