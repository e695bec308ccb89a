/* The byte-at-a-time reference for buf_json_str (buf.c): what it must produce for any
 * input. Shared by tests/unit/test_buf.c and tests/fuzz/fuzz_encode.c, which compare
 * the fast paths against it. */
#ifndef SHADOWTAP_TESTS_REF_JSON_H
#define SHADOWTAP_TESTS_REF_JSON_H

#include <stddef.h>
#include <stdint.h>

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

#endif
