/* libFuzzer: arbitrary bytes through the record encoder's string paths (buf.c), each
 * against a plain one-byte-at-a-time reference written here: buf_json_str (SSE2
 * steps, the short-string and quotes-only paths), buf_json_token_lower (writes what
 * lower-casing and buf_json_str give, or refuses a name with a byte outside printable
 * ASCII or a quote or backslash), buf_base64 (AVX2 where the CPU
 * has it) against buf_base64_plain, and buf_text_ascii_prefix. The first byte picks
 * an offset so that every alignment is reached; the output starts after other text. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static size_t ref_utf8_len(const uint8_t *p, size_t n)
{
	unsigned c = p[0];
	size_t len, k;
	uint32_t cp;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[k] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void ref_json(struct buf *b, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, l;

	buf_putc(b, '"');
	while (i < n) {
		unsigned c = p[i];
		char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		if (c >= 0x80 && (l = ref_utf8_len(p + i, n - i))) {
			buf_append(b, p + i, l);
			i += l;
			continue;
		}
		if (c == '"')
			buf_append(b, "\\\"", 2);
		else if (c == '\\')
			buf_append(b, "\\\\", 2);
		else if (c == '\n')
			buf_append(b, "\\n", 2);
		else if (c == '\r')
			buf_append(b, "\\r", 2);
		else if (c == '\t')
			buf_append(b, "\\t", 2);
		else if (c < 0x20 || c >= 0x7f)
			buf_append(b, u, 6);
		else
			buf_putc(b, (char)c);
		i++;
	}
	buf_putc(b, '"');
}

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
