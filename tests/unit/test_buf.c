/* JSON string escaping and base64: every input must give valid JSON with the same
 * meaning (invalid UTF-8 bytes become \u00XX), and base64 must match RFC 4648. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "../ref_json.h"

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


/* The tests' random numbers: one step of a 64-bit LCG (Knuth's MMIX constants). */
static uint64_t lcg_next(uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
	return *seed;
}

/* The word-at-a-time scanner against the reference on random inputs biased towards
 * the bytes that matter (quotes, backslashes, controls, UTF-8 lead and continuation
 * bytes), at every length and alignment up to 80 bytes. */
static void test_json_matches_reference(void **state)
{
	static const unsigned char pick[] = { 'a', 'z', ' ', '~', '"', '\\', '\n', 0, 0x1f, 0x7f,
					      0x80, 0xbf, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xed, 0xff };
	unsigned char in[96];
	struct buf got = { 0 }, want = { 0 };
	uint64_t seed = 12345;
	int round;

	for (round = 0; round < 200000; round++) {
		size_t n, i, off;

		lcg_next(&seed);
		n = (seed >> 33) % 81;
		off = (seed >> 20) % 8;
		for (i = 0; i < n; i++) {
			lcg_next(&seed);
			in[off + i] = (seed >> 40) % 4 ? (unsigned char)('a' + (seed >> 50) % 26)
						       : pick[(seed >> 45) % sizeof(pick)];
		}
		buf_reset(&got);
		buf_reset(&want);
		assert_int_equal(buf_json_str(&got, (const char *)in + off, n), 0);
		ref_json(&want, in + off, n);
		assert_int_equal(got.len, want.len);
		assert_memory_equal(got.data, want.data, want.len);
	}
	buf_free(&got);
	buf_free(&want);
}

/* The 16-byte SSE2 steps (and the quotes-only step, which needs 32 bytes left) against
 * the reference: every length 0..300 and a few large ones, with inputs of several
 * shapes: letters only, letters with a quote or backslash now and then, JSON-like
 * text dense with quotes, and any byte at all. */
static void fill_shape(unsigned char *in, size_t n, int shape, uint64_t *seed)
{
	static const unsigned char pick[] = { '"', '\\', '\n', 0, 0x1f, 0x7f, 0x80, 0xc3, 0xa9,
					      0xe2, 0x82, 0xac, 0xff };
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned r;

		lcg_next(seed);
		r = (unsigned)(*seed >> 33);
		switch (shape) {
		case 0: in[i] = (unsigned char)('a' + r % 26); break;
		case 1: in[i] = r % 40 ? (unsigned char)('a' + r % 26) : (r & 64 ? '"' : '\\'); break;
		case 2: in[i] = r % 5 == 0 ? '"' : r % 17 == 0 ? '\\' : r % 23 == 0 ? (unsigned char)pick[r % sizeof(pick)]
				  : (unsigned char)('a' + r % 26); break;
		default: in[i] = (unsigned char)(r >> 7); break;
		}
	}
}

static void test_json_simd_matches_reference(void **state)
{
	static const size_t big[] = { 4096, 43000, 65536 + 7 };
	struct buf got = { 0 }, want = { 0 };
	uint64_t seed = 99;
	unsigned char *in = malloc(65536 + 64);
	size_t n, k;
	int shape, rep;

	(void)state;
	assert_non_null(in);
	for (shape = 0; shape < 4; shape++) {
		for (n = 0; n <= 300; n++) {
			for (rep = 0; rep < 8; rep++) {
				fill_shape(in + rep, n, shape, &seed);
				buf_reset(&got);
				buf_reset(&want);
				buf_append(&got, "x", 1);   /* output not at the buffer's start */
				assert_int_equal(buf_json_str(&got, (const char *)in + rep, n), 0);
				buf_putc(&want, 'x');
				ref_json(&want, in + rep, n);
				assert_int_equal(got.len, want.len);
				assert_memory_equal(got.data, want.data, want.len);
			}
		}
		for (k = 0; k < sizeof(big) / sizeof(big[0]); k++) {
			fill_shape(in, big[k], shape, &seed);
			buf_reset(&got);
			buf_reset(&want);
			assert_int_equal(buf_json_str(&got, (const char *)in, big[k]), 0);
			ref_json(&want, in, big[k]);
			assert_int_equal(got.len, want.len);
			assert_memory_equal(got.data, want.data, want.len);
		}
	}
	free(in);
	buf_free(&got);
	buf_free(&want);
}

/* A byte for the header-name tests: 15 times in 16 one of the table's first `common`
 * entries (letters around the case boundaries, token punctuation, digits; '~' and
 * space from 14), else any entry, including a quote, a backslash, controls and
 * non-ASCII bytes, which the fast paths must refuse or escape. */
static unsigned char name_byte(uint64_t *seed, size_t common)
{
	static const unsigned char pick[] = { 'A', 'Z', '@', '[', '`', '{', 'a', 'z', '-', '_',
					      '0', '9', '~', ' ', '"', '\\', 0x7f, 0x1f, 0x80, 0xc3 };
	uint64_t r = lcg_next(seed);

	return (r >> 40) % 16 ? pick[(r >> 45) % common] : pick[(r >> 45) % sizeof(pick)];
}

/* Header names: buf_json_token_lower must give exactly what lower-casing (ASCII) and
 * then buf_json_str give, or refuse (1, nothing written) when escaping is needed; at
 * every length up to 40 (the 8-byte steps and the overlapping last one), appended
 * after other text. */
static void test_token_lower(void **state)
{
	unsigned char in[48], low[48];
	struct buf got = { 0 }, want = { 0 };
	uint64_t seed = 777;
	int round, refused = 0, written = 0;

	for (round = 0; round < 100000; round++) {
		size_t n, i, plain = 1;
		int rc;

		lcg_next(&seed);
		n = (seed >> 33) % 41;
		for (i = 0; i < n; i++) {
			in[i] = name_byte(&seed, 12);
			low[i] = in[i] >= 'A' && in[i] <= 'Z' ? in[i] | 0x20 : in[i];
			if (in[i] < 0x20 || in[i] >= 0x7f || in[i] == '"' || in[i] == '\\')
				plain = 0;
		}
		buf_reset(&got);
		buf_reset(&want);
		buf_append(&got, "{x:", 3);
		buf_append(&want, "{x:", 3);
		rc = buf_json_token_lower(&got, (const char *)in, n);
		if (!plain) {
			assert_int_equal(rc, 1);
			assert_int_equal(got.len, 3);
			refused++;
			continue;
		}
		assert_int_equal(rc, 0);
		written++;
		assert_int_equal(buf_json_str(&want, (const char *)low, n), 0);
		assert_int_equal(got.len, want.len);
		assert_memory_equal(got.data, want.data, want.len + 1);
	}
	assert_true(refused > 1000 && written > 1000);
	buf_free(&got);
	buf_free(&want);
}

/* Header members: buf_json_member_lower must give exactly [,]"name":"value" as
 * buf_json_token_lower and buf_json_str write it piece by piece, or refuse (1, nothing
 * written) for a name outside its fast path; names and values of every length up to
 * 40 with bytes that need escaping, appended after other text. */
static void test_member_lower(void **state)
{
	unsigned char name[48], val[48];
	struct buf got = { 0 }, want = { 0 };
	uint64_t seed = 4242;
	int round, refused = 0, written = 0;

	for (round = 0; round < 100000; round++) {
		size_t nn, vn, i;
		bool comma;
		int rc, trc;

		lcg_next(&seed);
		nn = (seed >> 33) % 41;
		vn = (seed >> 20) % 41;
		comma = (seed >> 50) & 1;
		for (i = 0; i < nn + vn; i++) {
			unsigned char c = name_byte(&seed, 14);

			if (i < nn)
				name[i] = c;
			else
				val[i - nn] = c;
		}
		buf_reset(&got);
		buf_reset(&want);
		buf_append(&got, "{x:1", 4);
		buf_append(&want, "{x:1", 4);
		rc = buf_json_member_lower(&got, comma, (const char *)name, nn, (const char *)val, vn);
		if (comma)
			buf_putc(&want, ',');
		trc = buf_json_token_lower(&want, (const char *)name, nn);
		if (rc == 1) {
			/* refused: only a name the token path refuses or out of 4..32 bytes */
			assert_true(trc == 1 || nn < 4 || nn > 32);
			assert_int_equal(got.len, 4);
			refused++;
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(trc, 0);
		written++;
		buf_putc(&want, ':');
		assert_int_equal(buf_json_str(&want, (const char *)val, vn), 0);
		assert_int_equal(got.len, want.len);
		assert_memory_equal(got.data, want.data, want.len + 1);
	}
#if defined(__x86_64__) && defined(__SSE2__)
	assert_true(refused > 1000 && written > 1000);
#endif
	buf_free(&got);
	buf_free(&want);
}

/* Integers by hand against printf: every power of ten and its neighbours, and random
 * values of every width; fixed width keeps the low digits. */
static void test_put_u64(void **state)
{
	struct buf got = { 0 };
	char want[32];
	uint64_t v, p = 1, seed = 99;
	int i;

	for (i = 0; i < 20; i++, p *= 10)
		for (v = p - 1; v <= p + 1; v++) {
			buf_reset(&got);
			assert_int_equal(buf_put_u64(&got, v), 0);
			snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
			assert_string_equal(got.data, want);
		}
	buf_reset(&got);
	assert_int_equal(buf_put_u64(&got, UINT64_MAX), 0);
	assert_string_equal(got.data, "18446744073709551615");
	for (i = 0; i < 100000; i++) {
		lcg_next(&seed);
		v = seed >> (seed % 64);
		buf_reset(&got);
		assert_int_equal(buf_put_u64(&got, v), 0);
		snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
		assert_string_equal(got.data, want);
	}
	/* the digit count comes from the bit length (session 10): every power of two
	 * and its neighbours, where a bit length holds two digit counts */
	for (i = 0; i < 64; i++)
		for (v = (1ull << i) - 1; v <= (1ull << i) + 1 && v >= (1ull << i) - 1; v++) {
			buf_reset(&got);
			assert_int_equal(buf_put_u64(&got, v), 0);
			snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
			assert_string_equal(got.data, want);
			assert_int_equal(got.len, strlen(want));
		}
	buf_reset(&got);
	assert_int_equal(buf_put_u_fixed(&got, 1234567, 6), 0);
	assert_string_equal(got.data, "234567");
	/* odd and even widths, zeros kept, 0 and 20 digits */
	for (i = 0; i <= 20; i++) {
		uint64_t x = 98765432109876543ull + i;
		char full[32];

		buf_reset(&got);
		assert_int_equal(buf_put_u_fixed(&got, x, (unsigned)i), 0);
		snprintf(full, sizeof(full), "%020llu", (unsigned long long)x);
		assert_int_equal(got.len, i);
		assert_memory_equal(got.data, full + 20 - i, i);
		assert_int_equal(got.data[i], '\0');
	}
	buf_reset(&got);
	assert_int_equal(buf_put_u_fixed(&got, 7, 6), 0);
	assert_string_equal(got.data, "000007");
	buf_free(&got);
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

/* The 6-bytes-per-step path against a one-character-at-a-time reference, every
 * length 0..300 and every byte value, so each tail and offset is covered. */
static void test_base64_matches_reference(void **state)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t in[300];
	char want[404];
	size_t n, i, k;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 167 + 13);
	for (n = 0; n <= sizeof(in); n++) {
		struct buf b = { 0 };

		for (i = 0, k = 0; i < n; i += 3) {
			uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
				     (i + 2 < n ? in[i + 2] : 0);

			want[k++] = tbl[v >> 18];
			want[k++] = tbl[(v >> 12) & 63];
			want[k++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
			want[k++] = i + 2 < n ? tbl[v & 63] : '=';
		}
		want[k] = '\0';
		assert_int_equal(buf_base64(&b, in, n), 0);
		assert_string_equal(b.data ? b.data : "", want);
		buf_free(&b);
	}
}

/* buf_base64 (AVX2 where the CPU has it) against the portable path alone, every length
 * 0..300 at every alignment 0..7 and a few large ones, random bytes; and the portable
 * path against RFC 4648's vectors. Says when AVX2 is missing (then both are the
 * portable path and this only checks the reference). */
static void test_base64_simd_matches_plain(void **state)
{
	static const size_t big[] = { 24 * 1024, 43000, 256 * 1024 + 5 };
	struct buf got = { 0 }, want = { 0 };
	uint64_t seed = 7;
	uint8_t *in = malloc(256 * 1024 + 64);
	size_t n, k, off;

	(void)state;
	assert_non_null(in);
	if (!buf_base64_simd())
		print_message("base64: no AVX2 on this CPU, the portable path is compared with itself\n");
	for (n = 0; n <= 300; n++) {
		for (off = 0; off < 8; off++) {
			fill_shape(in + off, n, 3, &seed);
			buf_reset(&got);
			buf_reset(&want);
			assert_int_equal(buf_base64(&got, in + off, n), 0);
			assert_int_equal(buf_base64_plain(&want, in + off, n), 0);
			assert_int_equal(got.len, (n + 2) / 3 * 4);
			assert_int_equal(got.len, want.len);
			if (n)
				assert_memory_equal(got.data, want.data, want.len);
		}
	}
	for (k = 0; k < sizeof(big) / sizeof(big[0]); k++) {
		fill_shape(in, big[k], 3, &seed);
		buf_reset(&got);
		buf_reset(&want);
		assert_int_equal(buf_base64(&got, in, big[k]), 0);
		assert_int_equal(buf_base64_plain(&want, in, big[k]), 0);
		assert_int_equal(got.len, want.len);
		assert_memory_equal(got.data, want.data, want.len);
	}
	/* bytes k + 37 j: a regular pattern beside the random ones */
	for (k = 0; k < 256; k++) {
		for (n = 0; n < 64; n++)
			in[n] = (uint8_t)(k + n * 37);
		buf_reset(&got);
		buf_reset(&want);
		assert_int_equal(buf_base64(&got, in, 64), 0);
		assert_int_equal(buf_base64_plain(&want, in, 64), 0);
		assert_memory_equal(got.data, want.data, want.len);
	}
	free(in);
	buf_free(&got);
	buf_free(&want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_escapes),
		cmocka_unit_test(test_json_utf8),
		cmocka_unit_test(test_json_long_runs),
		cmocka_unit_test(test_json_matches_reference),
		cmocka_unit_test(test_json_simd_matches_reference),
		cmocka_unit_test(test_token_lower),
		cmocka_unit_test(test_member_lower),
		cmocka_unit_test(test_put_u64),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64_matches_reference),
		cmocka_unit_test(test_base64_simd_matches_plain),
	};

	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
