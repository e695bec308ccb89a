/* libFuzzer: arbitrary bytes through the record encoder's string paths (buf.c), each
 * against a plain one-byte-at-a-time reference written here: buf_json_str (SSE2
 * steps, the short-string and quotes-only paths), buf_json_token_lower (writes what
 * lower-casing and buf_json_str give, or refuses a name with a byte outside printable
 * ASCII or a quote or backslash), buf_json_member_lower (the two together, one
 * reserve), buf_base64 (AVX2 where the CPU
 * has it) against buf_base64_plain, and buf_text_ascii_prefix. The first byte picks
 * an offset so that every alignment is reached; the output starts after other text. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "../ref_json.h"

#if defined(__x86_64__) && defined(__SSE2__)
#define FUZZ_SSE2 1              /* buf_json_member_lower's fast path is built */
#else
#define FUZZ_SSE2 0
#endif

static void same(const struct buf *a, const struct buf *b)
{
	if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf got = { 0 }, want = { 0 };
	uint8_t *copy, *p, *low;
	size_t off, n, i, k;
	int r;

	if (!size)
		return 0;
	off = data[0] & 15;
	n = size - 1;
	copy = malloc(n + off + 1);
	low = malloc(n + 1);
	if (!copy || !low)
		abort();
	p = copy + off;
	memcpy(p, data + 1, n);

	buf_append(&got, "x", 1);
	buf_append(&want, "x", 1);
	if (buf_json_str(&got, (const char *)p, n))
		abort();
	ref_json(&want, p, n);
	same(&got, &want);

	buf_reset(&got);
	buf_reset(&want);
	buf_append(&got, "y", 1);
	r = buf_json_token_lower(&got, (const char *)p, n);
	for (i = 0; i < n; i++)
		low[i] = (uint8_t)(p[i] - 'A' < 26u ? p[i] | 0x20 : p[i]);
	buf_append(&want, "y", 1);
	ref_json(&want, low, n);
	if (r == 0) {
		same(&got, &want);
	} else {
		/* refused (the caller escapes the name byte by byte): only when a byte is
		 * not printable ASCII or is a quote or backslash, and nothing was added */
		for (i = 0; i < n && p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\'; i++)
			;
		if (r != 1 || got.len != 1 || i == n)
			abort();
	}

	/* a header member: the input split at a point the second byte picks into a
	 * name and a value; written whole, or refused with nothing written when the
	 * name is outside 4..32 bytes or refused by the token path (checked above) */
	if (n >= 1) {
		size_t nl = data[1 < size ? 1 : 0] % (n + 1);
		int tr;

		buf_reset(&got);
		buf_reset(&want);
		buf_append(&got, "z", 1);
		buf_append(&want, "z,", 2);
		r = buf_json_member_lower(&got, true, (const char *)p, nl, (const char *)p + nl, n - nl);
		tr = buf_json_token_lower(&want, (const char *)p, nl);
		if (r == 1) {
			if (got.len != 1 || (tr == 0 && nl >= 4 && nl <= 32 && FUZZ_SSE2))
				abort();
		} else {
			if (r != 0 || tr != 0)
				abort();
			buf_append(&want, ":", 1);
			ref_json(&want, p + nl, n - nl);
			same(&got, &want);
		}
	}

	buf_reset(&got);
	buf_reset(&want);
	if (buf_base64(&got, p, n) || buf_base64_plain(&want, p, n) || got.len != (n + 2) / 3 * 4)
		abort();
	same(&got, &want);

	k = buf_text_ascii_prefix(p, n);
	for (i = 0; i < n && p[i] >= 0x20 && p[i] < 0x7f; i++)
		;
	if (k != i)
		abort();

	buf_free(&got);
	buf_free(&want);
	free(copy);
	free(low);
	return 0;
}
