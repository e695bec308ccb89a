/* The SSE2 tests and moves of short JSON strings (buf.c), and the header member's
 * fast path inline for record.c's header loop (issue 19: a call per member was ~25
 * instructions of ~150). Internal to the encoder: buf.c and record.c only. */
#ifndef ST_BUF_SSE_H
#define ST_BUF_SSE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>
#define BUF_X86 1
#endif

/* buf_json_str's general path; the room (6 bytes a byte and the two quotes) is
 * reserved by the caller */
int buf_json_str_long(struct buf *b, const unsigned char *p, size_t n);

#ifdef BUF_X86
/* SSE2 (every x86-64 CPU has it): a bit per byte of x that is below 0x20 or from
 * 0x80 on (both are below 0x20 compared as signed bytes), or 0x7f; with quotes set,
 * '"' and '\\' too: the bytes a JSON string cannot take as they are. */
static inline unsigned sse_special16(__m128i x, bool quotes)
{
	__m128i m = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
				 _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)));

	if (quotes)
		m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
						 _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
	return (unsigned)_mm_movemask_epi8(m);
}

/* A string of 4..32 bytes as two overlapping parts that cover it: 4-byte parts
 * below 8, 8-byte parts below 17, both packed in one register (a: the first part in
 * its low lanes, the last above it; so one test, one lower-casing covers them), else
 * two 16-byte registers a and b. Short strings (header names and values, addresses,
 * ids) are most of a record's strings: tested and stored in a few moves instead of 8
 * bytes a step. */
struct sse_short {
	__m128i a, b;            /* a: p[0..] (and p[n - w..] above it when w < 16), b: p[n - 16..] */
	unsigned w;
};

static inline void sse_short_load(struct sse_short *t, const unsigned char *p, size_t n)
{
	if (n < 8) {
		uint32_t lo, hi;

		memcpy(&lo, p, 4);
		memcpy(&hi, p + n - 4, 4);
		t->a = _mm_cvtsi64_si128((long long)((uint64_t)lo | (uint64_t)hi << 32));
		t->b = t->a;     /* unused below 16 bytes; set for the compiler */
		t->w = 4;
	} else if (n <= 16) {
		t->a = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(const void *)p),
					  _mm_loadl_epi64((const __m128i *)(const void *)(p + n - 8)));
		t->b = t->a;
		t->w = 8;
	} else {
		t->a = _mm_loadu_si128((const __m128i *)(const void *)p);
		t->b = _mm_loadu_si128((const __m128i *)(const void *)(p + n - 16));
		t->w = 16;
	}
}

static inline void sse_short_store(char *o, const struct sse_short *t, size_t n)
{
	if (t->w == 4) {
		uint64_t x = (uint64_t)_mm_cvtsi128_si64(t->a);
		uint32_t lo = (uint32_t)x, hi = (uint32_t)(x >> 32);

		memcpy(o, &lo, 4);
		memcpy(o + n - 4, &hi, 4);
	} else if (t->w == 8) {
		_mm_storel_epi64((__m128i *)(void *)o, t->a);
		_mm_storel_epi64((__m128i *)(void *)(o + n - 8), _mm_unpackhi_epi64(t->a, t->a));
	} else {
		_mm_storeu_si128((__m128i *)(void *)o, t->a);
		_mm_storeu_si128((__m128i *)(void *)(o + n - 16), t->b);
	}
}

/* Neither part holds a byte a JSON string cannot take as it is (the zero bytes
 * above two packed 4-byte parts are masked off) */
static inline bool sse_short_plain(const struct sse_short *t)
{
	if (t->w == 16)
		return !(sse_special16(t->a, true) | sse_special16(t->b, true));
	return !(sse_special16(t->a, true) & (t->w == 4 ? 0xffu : 0xffffu));
}

/* ASCII upper case to lower in x: 0x20 added to the bytes above 'A' - 1 and below
 * 'Z' + 1 (exact for plain parts, which hold no byte >= 0x80) */
static inline __m128i sse_lower16(__m128i x)
{
	const __m128i a_1 = _mm_set1_epi8('A' - 1), z_1 = _mm_set1_epi8('Z' + 1);
	const __m128i k20 = _mm_set1_epi8(0x20);

	return _mm_or_si128(x, _mm_and_si128(k20, _mm_and_si128(_mm_cmpgt_epi8(x, a_1),
								_mm_cmplt_epi8(x, z_1))));
}

static inline void sse_short_lower(struct sse_short *t)
{
	t->a = sse_lower16(t->a);
	if (t->w == 16)
		t->b = sse_lower16(t->b);
}

#endif

static inline __attribute__((always_inline)) int
buf_json_member_lower_inl(struct buf *b, bool comma, const char *name, size_t nlen,
			  const char *val, size_t vlen)
{
#ifdef BUF_X86
	const unsigned char *v = (const unsigned char *)val;
	struct sse_short t;
	char *o;

	if (nlen < 4 || nlen > 32)
		return 1;
	/* one reserve for both: ,"name": and the value's worst case (6 bytes a byte) */
	if (buf_reserve(b, nlen + 4 + vlen * 6 + 2))
		return -ENOMEM;
	sse_short_load(&t, (const unsigned char *)name, nlen);
	if (!sse_short_plain(&t))
		return 1;
	sse_short_lower(&t);
	o = b->data + b->len;
	*o = ',';
	o += comma;
	*o++ = '"';
	sse_short_store(o, &t, nlen);
	o += nlen;
	*o++ = '"';
	*o++ = ':';
	if (vlen >= 4 && vlen <= 32) {
		sse_short_load(&t, v, vlen);
		if (sse_short_plain(&t)) {
			*o++ = '"';
			sse_short_store(o, &t, vlen);
			o += vlen;
			*o++ = '"';
			*o = '\0';
			b->len = (size_t)(o - b->data);
			return 0;
		}
	}
	b->len = (size_t)(o - b->data);
	return buf_json_str_long(b, v, vlen);
#else
	(void)b; (void)comma; (void)name; (void)nlen; (void)val; (void)vlen;
	return 1;
#endif
}

/* "00" .. "99" (buf.c) */
extern const char buf_digits2[200];

/* Decimal digits of v (1..20): from the bit length (1233 / 4096 is just above
 * log10(2)) and one compare with a power of ten, no division. p10[0] is 0 so that
 * 0..7 count one digit. */
static inline unsigned buf_u64_digits(uint64_t v)
{
	static const uint64_t p10[20] = {
		0ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
		100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
		1000000000000ull, 10000000000000ull, 100000000000000ull,
		1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
		1000000000000000000ull, 10000000000000000000ull,
	};
	unsigned t = ((unsigned)(64 - __builtin_clzll(v | 1)) * 1233u) >> 12;

	return t + (v >= p10[t]);
}

/* two digits of k < 100 at o */
static inline void buf_put2(char *o, unsigned k)
{
	memcpy(o, buf_digits2 + 2 * k, 2);
}

/* the digits of v written backwards from e, in place: eight digits per 64-bit
 * division, then two per step in 32-bit arithmetic (no temporary and no memcpy call
 * of a variable length; issue 19) */
static inline void buf_u64_write(char *e, uint64_t v)
{
	uint32_t w;

	while (v >= 100000000u) {
		uint64_t q = v / 100000000u;
		uint32_t lo = (uint32_t)(v - q * 100000000u);
		uint32_t hi4 = lo / 10000, lo4 = lo % 10000;

		e -= 8;
		buf_put2(e, hi4 / 100);
		buf_put2(e + 2, hi4 % 100);
		buf_put2(e + 4, lo4 / 100);
		buf_put2(e + 6, lo4 % 100);
		v = q;
	}
	w = (uint32_t)v;
	while (w >= 100) {
		e -= 2;
		buf_put2(e, w % 100);
		w /= 100;
	}
	if (w >= 10) {
		e -= 2;
		buf_put2(e, w);
	} else {
		*--e = (char)('0' + w);
	}
}

/* buf_put_u64 inline: the record's numbers without a call each */
static inline __attribute__((always_inline)) int buf_put_u64_inl(struct buf *b, uint64_t v)
{
	unsigned n = buf_u64_digits(v);

	if (buf_reserve(b, 20))
		return -ENOMEM;
	buf_u64_write(b->data + b->len + n, v);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

#endif
