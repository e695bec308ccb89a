#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#include "buf_sse.h"

int buf_grow(struct buf *b, size_t extra)
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

int buf_putc_slow(struct buf *b, char c)
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

/* Word-at-a-time scans (SWAR): 8 bytes are tested with a few integer operations
 * instead of 8 table look-ups. With no byte >= 0x80 in x, (x - k*ONES) & ~x & HIGHS
 * is non-zero exactly when some byte of x is below k. */
#define SWAR_ONES  0x0101010101010101ull
#define SWAR_HIGHS 0x8080808080808080ull

static inline uint64_t swar_load(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t swar_has_below(uint64_t x, unsigned k)
{
	return (x - SWAR_ONES * k) & ~x & SWAR_HIGHS;
}

static inline uint64_t swar_has_byte(uint64_t x, unsigned c)
{
	return swar_has_below(x ^ (SWAR_ONES * c), 1);
}

#ifdef BUF_X86
/* a bit per '"' or '\\' in x */
static inline unsigned sse_quotes16(__m128i x)
{
	return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
							_mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
}
#endif

size_t buf_text_ascii_prefix(const uint8_t *p, size_t n)
{
	size_t i = 0;

#ifdef BUF_X86
	for (; i + 16 <= n; i += 16) {
		unsigned m = sse_special16(_mm_loadu_si128((const __m128i *)(const void *)(p + i)), false);

		if (m)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	for (; i + 8 <= n; i += 8) {
		uint64_t x = swar_load(p + i);

		if ((x & SWAR_HIGHS) || swar_has_below(x, 0x20) || swar_has_byte(x, 0x7f))
			break;
	}
	while (i < n && p[i] >= 0x20 && p[i] < 0x7f)
		i++;
	return i;
}

/* buf_json_str's general path, the room reserved (6 bytes a byte and the quotes):
 * apart, so that the short strings' path does not pay this one's register saves */
__attribute__((noinline)) int buf_json_str_long(struct buf *b, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run;
	char *o = b->data + b->len;
	unsigned char c;

	*o++ = '"';
	/* under 16 bytes (an ETag, a short value with a quote): a byte a step while the
	 * bytes are printable ASCII, quotes and backslashes escaped on the way; anything
	 * else continues in the general loop from there */
	if (n < 16) {
		for (; i < n; i++) {
			c = p[i];
			if (json_plain[c]) {
				*o++ = (char)c;
			} else if (c == '"' || c == '\\') {
				o[0] = '\\';
				o[1] = (char)c;
				o += 2;
			} else {
				break;
			}
		}
	}
	while (i < n) {
#ifdef BUF_X86
		/* 16 bytes stored at once while 16 are left (inside the reserve: the
		 * cursor is at most 1 + 6 * i, and 6 * (n - i) >= 16), the cursor moved past
		 * the plain ones only; the last 15 or fewer take the 8-byte steps below */
		if (n - i >= 16) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
			unsigned m = sse_special16(x, true);

			_mm_storeu_si128((__m128i *)(void *)o, x);
			if (!m) {
				o += 16;
				i += 16;
				continue;
			}
			/* only quotes and backslashes in these 16 (JSON text has a quote
			 * every few bytes): each takes a backslash before it and starts the
			 * next run; runs are stored 16 bytes at a time from where they start,
			 * which reads at most 31 bytes past i */
			if (n - i >= 32 && m == sse_quotes16(x)) {
				size_t prev = i;

				do {
					size_t at = i + (size_t)__builtin_ctz(m);

					_mm_storeu_si128((__m128i *)(void *)o,
							 _mm_loadu_si128((const __m128i *)(const void *)(p + prev)));
					o += at - prev;
					*o++ = '\\';
					prev = at;
					m &= m - 1;
				} while (m);
				_mm_storeu_si128((__m128i *)(void *)o,
						 _mm_loadu_si128((const __m128i *)(const void *)(p + prev)));
				o += i + 16 - prev;
				i += 16;
				continue;
			}
			run = (size_t)__builtin_ctz(m);
			o += run;
			i += run;
		} else
#endif
		if (n >= 8) {
			/* 8 bytes stored at once, then the cursor moves past the plain ones
			 * only: the store stays inside the reserve (6 * 8 >= 8 + 1, and with
			 * k < 8 bytes left, 6 * k + 2 >= 8). Fewer than 8 left: the last 8
			 * bytes of the string, shifted so the first unread one comes first;
			 * the zeros shifted in look like controls and are masked off. */
			size_t left = n - i;
			uint64_t x = left >= 8 ? swar_load(p + i) : swar_load(p + n - 8) >> (8 * (8 - left));
			uint64_t m = (x & SWAR_HIGHS) | swar_has_below(x, 0x20) |
				     swar_has_byte(x, '"') | swar_has_byte(x, '\\') |
				     swar_has_byte(x, 0x7f);

			if (left < 8)
				m &= (1ull << (8 * left)) - 1;
			memcpy(o, &x, sizeof(x));
			if (!m) {
				run = left < 8 ? left : 8;
				o += run;
				i += run;
				continue;
			}
			run = (size_t)__builtin_ctzll(m) >> 3;
			o += run;
			i += run;
		} else if (json_plain[p[i]]) {
			*o++ = (char)p[i++];
			continue;
		}
		c = p[i];
		if (c >= 0x80) {
			run = buf_utf8_seq_len(p + i, n - i);
			if (run) {
				memcpy(o, p + i, run);
				o += run;
				i += run;
				continue;
			}
		}
		switch (c) {
		case '"': memcpy(o, "\\\"", 2); o += 2; break;
		case '\\': memcpy(o, "\\\\", 2); o += 2; break;
		case '\n': memcpy(o, "\\n", 2); o += 2; break;
		case '\r': memcpy(o, "\\r", 2); o += 2; break;
		case '\t': memcpy(o, "\\t", 2); o += 2; break;
		default:
			o[0] = '\\'; o[1] = 'u'; o[2] = '0'; o[3] = '0';
			o[4] = hex[c >> 4]; o[5] = hex[c & 15];
			o += 6;
		}
		i++;
	}
	*o++ = '"';
	*o = '\0';
	b->len = (size_t)(o - b->data);
	return 0;
}

int buf_json_str(struct buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	/* worst case 6 bytes per input byte plus quotes; both paths rely on it */
	if (buf_reserve(b, n * 6 + 2))
		return -ENOMEM;
#ifdef BUF_X86
	if (n >= 4 && n <= 32) {
		char *o = b->data + b->len + 1;
		struct sse_short t;

		sse_short_load(&t, p, n);
		if (sse_short_plain(&t)) {
			sse_short_store(o, &t, n);
			o[-1] = '"';
			o[n] = '"';
			o[n + 1] = '\0';
			b->len += n + 2;
			return 0;
		}
	}
#endif
	return buf_json_str_long(b, p, n);
}

int buf_json_token_lower(struct buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	char *o;

	if (buf_reserve(b, n + 2))
		return -ENOMEM;
	o = b->data + b->len + 1;
#ifdef BUF_X86
	if (n >= 4 && n <= 32) {
		struct sse_short t;

		sse_short_load(&t, p, n);
		if (!sse_short_plain(&t))
			return 1;
		sse_short_lower(&t);
		sse_short_store(o, &t, n);
		i = n;
	}
#endif
	/* 8 bytes a step, the last step overlapping the one before; bytes A-Z get 0x20
	 * added from a mask of the bytes at or above 'A' and not above 'Z' (exact with
	 * no byte >= 0x80, which the test before it rules out) */
	while (n >= 8 && i < n) {
		size_t at = n - i >= 8 ? i : n - 8;
		uint64_t x = swar_load(p + at);
		uint64_t ge = x + SWAR_ONES * (0x80 - 'A'), gt = x + SWAR_ONES * (0x80 - 'Z' - 1);

		if ((x & SWAR_HIGHS) || swar_has_below(x, 0x20) || swar_has_byte(x, '"') ||
		    swar_has_byte(x, '\\') || swar_has_byte(x, 0x7f))
			return 1;
		x |= ((ge & ~gt) & SWAR_HIGHS) >> 2;
		memcpy(o + at, &x, sizeof(x));
		i = at + 8;
	}
	for (; i < n; i++) {
		unsigned char c = p[i];

		if (!json_plain[c])
			return 1;
		o[i] = (char)((unsigned)c - 'A' < 26u ? c | 0x20 : c);
	}
	o[-1] = '"';
	o[n] = '"';
	o[n + 1] = '\0';
	b->len += n + 2;
	return 0;
}

int buf_json_member_lower(struct buf *b, bool comma, const char *name, size_t nlen,
			  const char *val, size_t vlen)
{
	return buf_json_member_lower_inl(b, comma, name, nlen, val, vlen);
}

/* "00" .. "99": two digits per division (buf_sse.h writes numbers with it) */
const char buf_digits2[200] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

int buf_put_u64(struct buf *b, uint64_t v)
{
	return buf_put_u64_inl(b, v);
}

int buf_put_u_fixed(struct buf *b, uint64_t v, unsigned width)
{
	char *o;
	unsigned i;

	if (width > 20)
		return -EINVAL;
	if (buf_reserve(b, width))
		return -ENOMEM;
	o = b->data + b->len;
	for (i = width; i >= 2; i -= 2) {
		unsigned k = (unsigned)(v % 100) * 2;

		v /= 100;
		o[i - 2] = buf_digits2[k];
		o[i - 1] = buf_digits2[k + 1];
	}
	if (i)
		o[0] = (char)('0' + v % 10);
	b->len += width;
	b->data[b->len] = '\0';
	return 0;
}

/* Two output characters per table entry: 3 input bytes take two 12-bit look-ups
 * instead of four 6-bit ones (built once; 8 KiB). */
static uint16_t b64_pairs[4096];
static const char b64_tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static bool b64_use_avx2;

static void b64_init(void)
{
	unsigned i;

	for (i = 0; i < 4096; i++) {
		char two[2] = { b64_tbl[i >> 6], b64_tbl[i & 63] };

		memcpy(&b64_pairs[i], two, 2);
	}
#ifdef BUF_X86
	__builtin_cpu_init();
	b64_use_avx2 = __builtin_cpu_supports("avx2");
#endif
}

static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

/* The portable encoder: 6 input bytes per step through the pair table, then the
 * tail with its padding. Every build has it: on x86-64 it does the tail after the
 * AVX2 steps, and the whole input where AVX2 is missing; test_buf compares the two.
 * o has room for (n + 2) / 3 * 4 characters; returns the end. */
static char *b64_plain(char *o, const uint8_t *p, size_t n)
{
	size_t i = 0;

	/* 6 input bytes -> 8 characters per step, from one 8-byte load while 8 are there */
	for (; i + 8 <= n; i += 6) {
		uint64_t v;
		uint16_t w[4];

		memcpy(&v, p + i, 8);
		v = __builtin_bswap64(v);   /* big-endian: the first byte in the top bits */
		w[0] = b64_pairs[(v >> 52) & 0xfff];
		w[1] = b64_pairs[(v >> 40) & 0xfff];
		w[2] = b64_pairs[(v >> 28) & 0xfff];
		w[3] = b64_pairs[(v >> 16) & 0xfff];
		memcpy(o, w, 8);
		o += 8;
	}
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		uint16_t w[2] = { b64_pairs[v >> 12], b64_pairs[v & 0xfff] };

		memcpy(o, w, 4);
		o += 4;
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = b64_tbl[v >> 18];
		*o++ = b64_tbl[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64_tbl[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	return o;
}

#ifdef BUF_X86
/* 24 input bytes -> 32 characters per step (the method of Muła and Lemire, written
 * here from its description): each 128-bit lane takes 12 bytes; a byte shuffle puts
 * every 3 bytes a, b, c in a 32-bit word as b a c b; two 16-bit multiplies move the
 * four 6-bit fields to the bottom of the four bytes; the fields become characters by
 * adding an offset chosen from their range (A-Z, a-z, 0-9, +, /) by a second
 * shuffle. Loads read 28 bytes from each step's start, so steps run while 28 are
 * there; the rest goes to b64_plain. Returns the end; *done = input bytes used. */
__attribute__((target("avx2"))) static char *b64_avx2(char *o, const uint8_t *p, size_t n, size_t *done)
{
	const __m256i shuf = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
					      1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
	const __m256i mask_ac = _mm256_set1_epi32(0x0fc0fc00), mul_ac = _mm256_set1_epi32(0x04000040);
	const __m256i mask_bd = _mm256_set1_epi32(0x003f03f0), mul_bd = _mm256_set1_epi32(0x01000010);
	/* offset to add, by class: 0 a-z (+71), 1-10 digits (-4), 11 '+' (-19),
	 * 12 '/' (-16), 13 A-Z (+65) */
	const __m256i lut = _mm256_setr_epi8(71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0,
					     71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0);
	const __m256i k51 = _mm256_set1_epi8(51), k26 = _mm256_set1_epi8(26), k13 = _mm256_set1_epi8(13);
	size_t i = 0;

	for (; i + 28 <= n; i += 24) {
		__m128i lo = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 12));
		__m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
		__m256i ac, bd, idx, cls;

		v = _mm256_shuffle_epi8(v, shuf);
		ac = _mm256_mulhi_epu16(_mm256_and_si256(v, mask_ac), mul_ac);
		bd = _mm256_mullo_epi16(_mm256_and_si256(v, mask_bd), mul_bd);
		idx = _mm256_or_si256(ac, bd);
		/* 52..63 -> 1..12, every other -> 0; then 0..25 -> 13 */
		cls = _mm256_subs_epu8(idx, k51);
		cls = _mm256_or_si256(cls, _mm256_and_si256(_mm256_cmpgt_epi8(k26, idx), k13));
		v = _mm256_add_epi8(idx, _mm256_shuffle_epi8(lut, cls));
		_mm256_storeu_si256((__m256i *)(void *)o, v);
		o += 32;
	}
	*done = i;
	return o;
}
#endif

/* base64 of p[0..n) at o, which has room for (n + 2) / 3 * 4 characters; the
 * portable path alone when plain is set (tests) or AVX2 is missing. */
static char *b64_encode(char *o, const uint8_t *p, size_t n, bool plain)
{
	size_t done = 0;

	pthread_once(&b64_once, b64_init);
#ifdef BUF_X86
	if (b64_use_avx2 && !plain)
		o = b64_avx2(o, p, n, &done);
#else
	(void)plain;
#endif
	return b64_plain(o, p + done, n - done);
}

static int b64_append(struct buf *b, const uint8_t *p, size_t n, bool plain)
{
	char *o;

	/* the exact output length, reserved once; the encoders write straight into it */
	if (buf_reserve(b, (n + 2) / 3 * 4))
		return -ENOMEM;
	o = b64_encode(b->data + b->len, p, n, plain);
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
	return 0;
}

int buf_base64(struct buf *b, const uint8_t *p, size_t n)
{
	return b64_append(b, p, n, false);
}

int buf_base64_plain(struct buf *b, const uint8_t *p, size_t n)
{
	return b64_append(b, p, n, true);
}

bool buf_base64_simd(void)
{
	pthread_once(&b64_once, b64_init);
	return b64_use_avx2;
}
