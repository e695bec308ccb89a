/* Growable byte buffer used for JSON encoding and message copies.
 * Owns: its heap storage; every function accepts a zeroed struct. */
#ifndef ST_BUF_H
#define ST_BUF_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

int buf_grow(struct buf *b, size_t extra);      /* buf_reserve's slow path */
int buf_putc_slow(struct buf *b, char c);

/* Room for extra more bytes and the NUL after them: 0 or -ENOMEM. Inline: the JSON
 * encoder reserves before nearly every field, and the room is nearly always there. */
static inline int buf_reserve(struct buf *b, size_t extra)
{
	if (__builtin_expect(b->len + extra + 1 <= b->cap, 1))
		return 0;
	return buf_grow(b, extra);
}

static inline int buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n))
		return -ENOMEM;
	if (n)
		__builtin_memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* Inline: the JSON encoder puts single characters between every field. */
static inline int buf_putc(struct buf *b, char c)
{
	if (b->len + 2 > b->cap)
		return buf_putc_slow(b, c);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
	return 0;
}
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);                  /* len = 0, keeps storage */
void buf_free(struct buf *b);

/* JSON helpers: a quoted, escaped string. Invalid UTF-8 bytes become \u00XX of the
 * byte (so any input yields valid JSON). */
int buf_json_str(struct buf *b, const char *s, size_t n);
/* An HTTP token (a header name) quoted and lower-cased (ASCII): 0; 1 with nothing
 * written when a byte would need escaping (the caller lower-cases and escapes it);
 * -ENOMEM. */
int buf_json_token_lower(struct buf *b, const char *s, size_t n);
/* A JSON object member "name":"value" (a comma before it when comma is set), the
 * name quoted and lower-cased as buf_json_token_lower does, the value as
 * buf_json_str does, with one reserve (issue 19: a record's header lines). 1 with
 * nothing written when the name is not a token of 4..32 plain bytes or the CPU path
 * is not built (the caller writes the member piece by piece); -ENOMEM. */
int buf_json_member_lower(struct buf *b, bool comma, const char *name, size_t nlen,
			  const char *val, size_t vlen);
/* Length of the leading run of printable ASCII (0x20..0x7e) in p[0..n). */
size_t buf_text_ascii_prefix(const uint8_t *p, size_t n);
/* Decimal integers without stdio: v as is, or zero-padded to exactly width digits
 * (higher digits dropped; width <= 20). 0 or -ENOMEM. */
int buf_put_u64(struct buf *b, uint64_t v);
int buf_put_u_fixed(struct buf *b, uint64_t v, unsigned width);
/* base64 of n bytes, unquoted: 24 bytes a step with AVX2 where the CPU has it
 * (checked once at run time), else the portable 6-bytes-a-step table path. buf_base64_plain is the portable path
 * alone, for tests; buf_base64_simd tells whether buf_base64 uses AVX2. */
int buf_base64(struct buf *b, const uint8_t *p, size_t n);
int buf_base64_plain(struct buf *b, const uint8_t *p, size_t n);
bool buf_base64_simd(void);

#endif
