#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	size_t cap;
	char *p;

	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n))
		return -ENOMEM;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_putc(struct buf *b, char c)
{
	if (buf_reserve(b, 1))
		return -ENOMEM;
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if (buf_reserve(b, (size_t)n))
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t buf_utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	unsigned int cp;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		len = 2;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* printable ASCII other than '"' and '\\' goes into a JSON string as it is */
static const unsigned char json_plain[256] = {
	[0x20 ... 0x21] = 1,     /* '"' is 0x22 */
	[0x23 ... 0x5b] = 1,     /* '\\' is 0x5c */
	[0x5d ... 0x7e] = 1,
};

int buf_json_str(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run;

	/* worst case 6 bytes per input byte plus quotes */
	if (buf_reserve(b, n * 6 + 2))
		return -ENOMEM;
	b->data[b->len++] = '"';
	while (i < n) {
		unsigned char c = p[i];
		char *o = b->data + b->len;

		if (json_plain[c]) {
			/* copy a whole run of bytes that need no escaping at once */
			run = 1;
			while (i + run < n && json_plain[p[i + run]])
				run++;
			memcpy(o, p + i, run);
			b->len += run;
			i += run;
			continue;
		}
		if (c >= 0x80) {
			run = buf_utf8_seq_len(p + i, n - i);
			if (run) {
				memcpy(o, p + i, run);
				b->len += run;
				i += run;
				continue;
			}
		}
		switch (c) {
		case '"': memcpy(o, "\\\"", 2); b->len += 2; break;
		case '\\': memcpy(o, "\\\\", 2); b->len += 2; break;
		case '\n': memcpy(o, "\\n", 2); b->len += 2; break;
		case '\r': memcpy(o, "\\r", 2); b->len += 2; break;
		case '\t': memcpy(o, "\\t", 2); b->len += 2; break;
		default:
			o[0] = '\\'; o[1] = 'u'; o[2] = '0'; o[3] = '0';
			o[4] = hex[c >> 4]; o[5] = hex[c & 15];
			b->len += 6;
		}
		i++;
	}
	b->data[b->len++] = '"';
	b->data[b->len] = '\0';
	return 0;
}

int buf_base64(struct buf *b, const uint8_t *p, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;
	char *o;

	if (buf_reserve(b, (n + 2) / 3 * 4))
		return -ENOMEM;
	o = b->data + b->len;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = tbl[(v >> 6) & 63];
		*o++ = tbl[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
	return 0;
}
