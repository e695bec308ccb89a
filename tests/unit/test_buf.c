/* JSON string escaping and base64: every input must give valid JSON with the same
 * meaning (invalid UTF-8 bytes become \u00XX), and base64 must match RFC 4648. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"

static void expect_json(const char *in, size_t n, const char *want)
{
	struct buf b = { 0 };

	assert_int_equal(buf_json_str(&b, in, n), 0);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void test_json_escapes(void **state)
{
	expect_json("plain text", 10, "\"plain text\"");
	expect_json("q\"b\\s", 5, "\"q\\\"b\\\\s\"");
	expect_json("a\nb\rc\td", 7, "\"a\\nb\\rc\\td\"");
	expect_json("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"");
	expect_json("nul\0x", 5, "\"nul\\u0000x\"");
	expect_json("", 0, "\"\"");
}

static void test_json_utf8(void **state)
{
	expect_json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb5", 14, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb5\"");
	/* invalid: lone continuation, truncated sequence, overlong, surrogate */
	expect_json("\x80", 1, "\"\\u0080\"");
	expect_json("\xc3", 1, "\"\\u00c3\"");
	expect_json("\xc0\xaf", 2, "\"\\u00c0\\u00af\"");
	expect_json("\xed\xa0\x80", 3, "\"\\u00ed\\u00a0\\u0080\"");
}

static void test_json_long_runs(void **state)
{
	char in[5000], want[5004];
	size_t i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (char)('a' + i % 26);
	in[2500] = '"';
	want[0] = '"';
	memcpy(want + 1, in, 2500);
	memcpy(want + 1 + 2500, "\\\"", 2);
	memcpy(want + 3 + 2500, in + 2501, sizeof(in) - 2501);
	want[sizeof(want) - 2] = '"';
	want[sizeof(want) - 1] = '\0';
	expect_json(in, sizeof(in), want);
}

static void test_base64(void **state)
{
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct buf b = { 0 };

		assert_int_equal(buf_base64(&b, (const uint8_t *)v[i].in, strlen(v[i].in)), 0);
		assert_string_equal(b.data ? b.data : "", v[i].out);
		buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_escapes),
		cmocka_unit_test(test_json_utf8),
		cmocka_unit_test(test_json_long_runs),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
