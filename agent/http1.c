/* Incremental, zero-copy HTTP/1.x parser (RFC 9112) and streaming body decoder.
 *
 * The head parser is re-run from the start of the head on every call: it keeps no
 * state, so it checks each byte as it reaches it and reports HTTP1_MALFORMED as soon
 * as no continuation could make the head valid, HTTP1_NEED_MORE when the buffer ends
 * first. Character classes come from one table; the two long scans (request-target
 * and field values) use SSE2 when available, 16 bytes at a time. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <tmmintrin.h>
#define HTTP1_SSSE3 1
#endif

#include "http1.h"

#define HTTP1_C_TCHAR  0x01   /* token character (RFC 9110 5.6.2) */
#define HTTP1_C_VALUE  0x02   /* field-value / reason-phrase: VCHAR, obs-text, SP, HTAB */
#define HTTP1_C_TARGET 0x04   /* request-target: VCHAR and obs-text */
#define HTTP1_C_TEXT   0x08   /* chunk-ext / trailer bytes: anything but CTL (HTAB ok) */

#define HTTP1_IS_ALNUM(c) (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'z') || \
			   ((c) >= 'A' && (c) <= 'Z'))
#define HTTP1_IS_TSPECIAL(c) ((c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || \
			      (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || \
			      (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || \
			      (c) == '`' || (c) == '|' || (c) == '~')
#define HTTP1_IS_VISIBLE(c) (((c) > 0x20 && (c) < 0x7f) || (c) >= 0x80)
#define HTTP1_CLS(c) \
	(((HTTP1_IS_ALNUM(c) || HTTP1_IS_TSPECIAL(c)) ? HTTP1_C_TCHAR : 0) | \
	 ((HTTP1_IS_VISIBLE(c) || (c) == ' ' || (c) == '\t') ? HTTP1_C_VALUE : 0) | \
	 (HTTP1_IS_VISIBLE(c) ? HTTP1_C_TARGET : 0) | \
	 ((HTTP1_IS_VISIBLE(c) || (c) == ' ' || (c) == '\t') ? HTTP1_C_TEXT : 0))
#define HTTP1_R4(c)  HTTP1_CLS(c), HTTP1_CLS((c) + 1), HTTP1_CLS((c) + 2), HTTP1_CLS((c) + 3)
#define HTTP1_R16(c) HTTP1_R4(c), HTTP1_R4((c) + 4), HTTP1_R4((c) + 8), HTTP1_R4((c) + 12)
#define HTTP1_R64(c) HTTP1_R16(c), HTTP1_R16((c) + 16), HTTP1_R16((c) + 32), HTTP1_R16((c) + 48)

static const uint8_t http1_cls[256] = {
	HTTP1_R64(0), HTTP1_R64(64), HTTP1_R64(128), HTTP1_R64(192)
};

#define HTTP1_HEX(c) (((c) >= '0' && (c) <= '9') ? (c) - '0' : \
		      ((c) >= 'a' && (c) <= 'f') ? (c) - 'a' + 10 : \
		      ((c) >= 'A' && (c) <= 'F') ? (c) - 'A' + 10 : 0xff)
#define HTTP1_H4(c)  HTTP1_HEX(c), HTTP1_HEX((c) + 1), HTTP1_HEX((c) + 2), HTTP1_HEX((c) + 3)
#define HTTP1_H16(c) HTTP1_H4(c), HTTP1_H4((c) + 4), HTTP1_H4((c) + 8), HTTP1_H4((c) + 12)
#define HTTP1_H64(c) HTTP1_H16(c), HTTP1_H16((c) + 16), HTTP1_H16((c) + 32), HTTP1_H16((c) + 48)

static const uint8_t http1_hex[256] = {
	HTTP1_H64(0), HTTP1_H64(64), HTTP1_H64(128), HTTP1_H64(192)
};

typedef const unsigned char *http1_ptr;

static inline unsigned char http1_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c | 0x20 : c;
}

static int http1_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++)
		if (http1_lower((unsigned char)a[i]) != http1_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Case-insensitive a == lit for a literal of lowercase letters, digits and '-' of 8
 * bytes or more, 8 bytes per compare (the last load overlaps the one before).
 * Exact for any a: a letter of lit has bit 0x40, and only there may a's byte differ
 * from it, by 0x20 (its capital); digits and '-' lack that bit and must match. */
static inline int http1_lit_eq(const char *a, size_t alen, const char *lit, size_t len)
{
	uint64_t x, y;
	size_t i;

	if (alen != len)
		return 0;
	for (i = 0;; i += 8) {
		if (i + 8 > len)
			i = len - 8;
		memcpy(&x, a + i, 8);
		memcpy(&y, lit + i, 8);
		if ((x | ((y >> 1) & 0x2020202020202020ull)) != y)
			return 0;
		if (i + 8 == len)
			return 1;
	}
}

/* First byte at or after p that is not a request-target byte (or end). */
static inline http1_ptr http1_scan_target(http1_ptr p, http1_ptr end)
{
#ifdef __SSE2__
	const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)p);
		__m128i bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, sp), v),
					   _mm_cmpeq_epi8(v, del));
		int m = _mm_movemask_epi8(bad);

		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#endif
	while (p < end && (http1_cls[*p] & HTTP1_C_TARGET))
		p++;
	return p;
}

/* First byte at or after p that is not a field-value byte (or end). */
static inline http1_ptr http1_scan_value(http1_ptr p, http1_ptr end)
{
#ifdef __SSE2__
	const __m128i ctl = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)p);
		__m128i bad = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v),
					   _mm_cmpeq_epi8(v, del));
		int m = _mm_movemask_epi8(bad);

		if (m) {
			p += __builtin_ctz((unsigned)m);
			/* HTAB is the one control byte a value may hold */
			if (*p != '\t')
				return p;
			p++;
			continue;
		}
		p += 16;
	}
#endif
	while (p < end && (http1_cls[*p] & HTTP1_C_VALUE))
		p++;
	return p;
}

/* First byte at or after p that is not a token byte (or end), a byte at a time. */
static inline http1_ptr http1_scan_name_plain(http1_ptr p, http1_ptr end)
{
	while (p < end && (http1_cls[*p] & HTTP1_C_TCHAR))
		p++;
	return p;
}

#ifdef HTTP1_SSSE3
/* Field names were a quarter of a GET's parsing in Callgrind (P, issue 19). An SSE2
 * test of the token set needs a compare per delimiter and did not pay for names
 * this short (docs/cost.md); with SSSE3, two nibble lookups classify 16 bytes: a byte
 * is a token byte if lo[its low nibble] and hi[its high nibble] share a bit, one bit
 * per high nibble 2..7 (no token byte lies outside 0x21..0x7e). The tables are
 * http1_cls's token class; test_http1 and fuzz_http1 compare both paths. */
static int http1_simd;

__attribute__((constructor)) static void http1_simd_init(void)
{
	__builtin_cpu_init();
	http1_simd = __builtin_cpu_supports("ssse3");
}

__attribute__((target("ssse3"))) static http1_ptr http1_scan_name_ssse3(http1_ptr p, http1_ptr end)
{
	const __m128i lo_lut = _mm_setr_epi8(0x3a, 0x3f, 0x3e, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f,
					     0x3e, 0x3e, 0x3d, 0x15, 0x34, 0x15, 0x3d, 0x1c);
	const __m128i hi_lut = _mm_setr_epi8(0, 0, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20,
					     0, 0, 0, 0, 0, 0, 0, 0);
	const __m128i nib = _mm_set1_epi8(0x0f), zero = _mm_setzero_si128();

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)p);
		__m128i lo = _mm_shuffle_epi8(lo_lut, _mm_and_si128(v, nib));
		__m128i hi = _mm_shuffle_epi8(hi_lut, _mm_and_si128(_mm_srli_epi16(v, 4), nib));
		int m = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(lo, hi), zero));

		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
	return http1_scan_name_plain(p, end);
}

void http1_set_simd(int on)
{
	http1_simd_init();
	if (!on)
		http1_simd = 0;
}

static inline http1_ptr http1_scan_name(http1_ptr p, http1_ptr end)
{
	return http1_simd ? http1_scan_name_ssse3(p, end) : http1_scan_name_plain(p, end);
}
#else
void http1_set_simd(int on)
{
	(void)on;
}

static inline http1_ptr http1_scan_name(http1_ptr p, http1_ptr end)
{
	return http1_scan_name_plain(p, end);
}
#endif

/* Consume a line end (CRLF or bare LF) at *pp; anything else is malformed. */
static inline int http1_eol(http1_ptr *pp, http1_ptr end)
{
	http1_ptr p = *pp;

	if (p == end)
		return HTTP1_NEED_MORE;
	if (*p == '\r') {
		if (++p == end)
			return HTTP1_NEED_MORE;
		if (*p != '\n')
			return HTTP1_MALFORMED;
	} else if (*p != '\n') {
		return HTTP1_MALFORMED;
	}
	*pp = p + 1;
	return 0;
}

/* "HTTP/1." DIGIT; minor versions above 1 are treated as 1 (RFC 9110 2.5). */
static inline int http1_version(http1_ptr *pp, http1_ptr end, int *minor)
{
	static const char want[] = "HTTP/1.";
	http1_ptr p = *pp;
	size_t i;

	/* the whole version in one compare when 8 bytes are there (a byte loop was
	 * ~70 instructions per head, P session 7); the loop below tells NEED_MORE from
	 * MALFORMED on a short buffer or a mismatch */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (end - p >= 8) {
		uint64_t x, w;
		unsigned d;

		memcpy(&x, p, 8);
		memcpy(&w, "HTTP/1.", 8);
		d = (unsigned)(x >> 56) - '0';
		if ((x & 0x00ffffffffffffffull) == (w & 0x00ffffffffffffffull) && d <= 9) {
			*minor = d > 1 ? 1 : (int)d;
			*pp = p + 8;
			return 0;
		}
	}
#endif
	for (i = 0; i < sizeof(want) - 1; i++, p++) {
		if (p == end)
			return HTTP1_NEED_MORE;
		if (*p != (unsigned char)want[i])
			return HTTP1_MALFORMED;
	}
	if (p == end)
		return HTTP1_NEED_MORE;
	if (*p < '0' || *p > '9')
		return HTTP1_MALFORMED;
	*minor = *p > '1' ? 1 : *p - '0';
	*pp = p + 1;
	return 0;
}

static inline http1_ptr http1_skip_sp(http1_ptr p, http1_ptr end)
{
	while (p < end && *p == ' ')
		p++;
	return p;
}

/* Fields the agent itself reads (framing, upgrades, the URL's host, body decoding):
 * past the caller's array they still take a place, see http1_headers. */
static int http1_key_field(const char *n, size_t len)
{
	static const char *const key[] = {
		"content-length", "transfer-encoding", "connection", "upgrade", "host",
		"content-type", "content-encoding", NULL,
	};
	int i;

	for (i = 0; key[i]; i++)
		if (http1_name_eq(n, len, key[i], strlen(key[i])))
			return 1;
	return 0;
}

/* A field line past the caller's array: counted in *over; a key field replaces the
 * last ordinary field kept (later fields keep their order), so the head is framed
 * as the server frames it however many fields come first. */
static void http1_header_over(struct http1_header *hdrs, size_t max_hdrs,
			      const struct http1_header *h, size_t *over)
{
	size_t j;

	(*over)++;
	if (!max_hdrs || !http1_key_field(h->name, h->name_len))
		return;
	for (j = max_hdrs; j-- > 0;) {
		if (!http1_key_field(hdrs[j].name, hdrs[j].name_len)) {
			memmove(&hdrs[j], &hdrs[j + 1], (max_hdrs - 1 - j) * sizeof(*hdrs));
			hdrs[max_hdrs - 1] = *h;
			return;
		}
	}
}

/* Field lines up to and including the empty line. */
static int http1_headers(http1_ptr *pp, http1_ptr end, struct http1_header *hdrs,
			 size_t max_hdrs, size_t *num, size_t *over)
{
	http1_ptr p = *pp, name, value, vend;
	struct http1_header h;
	size_t name_len;
	int err;

	for (;;) {
		if (p == end)
			return HTTP1_NEED_MORE;
		if (*p == '\r' || *p == '\n') {
			err = http1_eol(&p, end);
			if (err)
				return err;
			break;
		}
		name = p;
		p = http1_scan_name(p, end);
		if (p == end)
			return HTTP1_NEED_MORE;
		/* an empty name also catches obs-fold and leading whitespace */
		if (p == name || *p != ':')
			return HTTP1_MALFORMED;
		name_len = (size_t)(p - name);
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		value = p;
		p = http1_scan_value(p, end);
		vend = p;
		err = http1_eol(&p, end);
		if (err)
			return err;
		while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		h.name = (const char *)name;
		h.name_len = name_len;
		h.value = (const char *)value;
		h.value_len = (size_t)(vend - value);
		if (*num == max_hdrs)
			http1_header_over(hdrs, max_hdrs, &h, over);
		else
			hdrs[(*num)++] = h;
	}
	*pp = p;
	return 0;
}

int http1_parse_request(const char *buf, size_t len, struct http1_request *req,
			struct http1_header *hdrs, size_t max_hdrs)
{
	http1_ptr start = (http1_ptr)buf, p = start, end, t;
	size_t num = 0;
	int err;

	memset(req, 0, sizeof(*req));
	req->minor_version = -1;
	req->headers = hdrs;
	if (len > INT_MAX)
		len = INT_MAX;
	end = p + len;

	/* RFC 9112 2.2: ignore empty lines before the request-line */
	for (;;) {
		if (p == end)
			return HTTP1_NEED_MORE;
		if (*p != '\r' && *p != '\n')
			break;
		err = http1_eol(&p, end);
		if (err)
			return err;
	}

	req->method = (const char *)p;
	while (p < end && (http1_cls[*p] & HTTP1_C_TCHAR))
		p++;
	if (p == end)
		return HTTP1_NEED_MORE;
	if (*p != ' ' || p == (http1_ptr)req->method)
		return HTTP1_MALFORMED;
	req->method_len = (size_t)(p - (http1_ptr)req->method);
	p = http1_skip_sp(p, end);
	if (p == end)
		return HTTP1_NEED_MORE;

	t = p;
	p = http1_scan_target(p, end);
	if (p == end)
		return HTTP1_NEED_MORE;
	if (p == t)
		return HTTP1_MALFORMED;
	req->target = (const char *)t;
	req->target_len = (size_t)(p - t);

	if (*p == '\r' || *p == '\n') {
		/* HTTP/0.9 Simple-Request: GET only, no version, no headers */
		if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
			return HTTP1_MALFORMED;
		err = http1_eol(&p, end);
		if (err)
			return err;
		return (int)(p - start);
	}
	if (*p != ' ')
		return HTTP1_MALFORMED;
	p = http1_skip_sp(p, end);
	err = http1_version(&p, end, &req->minor_version);
	if (!err)
		err = http1_eol(&p, end);
	if (!err)
		err = http1_headers(&p, end, hdrs, max_hdrs, &num, &req->num_over);
	if (err) {
		req->minor_version = -1;
		req->num_over = 0;
		return err;
	}
	req->num_headers = num;
	return (int)(p - start);
}

int http1_parse_response(const char *buf, size_t len, struct http1_response *resp,
			 struct http1_header *hdrs, size_t max_hdrs)
{
	http1_ptr start = (http1_ptr)buf, p = start, end, r;
	size_t num = 0, i;
	int err, status = 0;

	memset(resp, 0, sizeof(*resp));
	resp->minor_version = -1;
	resp->headers = hdrs;
	if (len > INT_MAX)
		len = INT_MAX;
	end = p + len;

	err = http1_version(&p, end, &resp->minor_version);
	if (err)
		goto fail;
	if (p == end) {
		err = HTTP1_NEED_MORE;
		goto fail;
	}
	if (*p != ' ') {
		err = HTTP1_MALFORMED;
		goto fail;
	}
	p = http1_skip_sp(p, end);
	for (i = 0; i < 3; i++, p++) {
		if (p == end) {
			err = HTTP1_NEED_MORE;
			goto fail;
		}
		if (*p < (i == 0 ? '1' : '0') || *p > '9') {
			err = HTTP1_MALFORMED;
			goto fail;
		}
		status = status * 10 + (*p - '0');
	}
	if (p == end) {
		err = HTTP1_NEED_MORE;
		goto fail;
	}
	if (*p == ' ') {
		p = http1_skip_sp(p, end);
		r = p;
		p = http1_scan_value(p, end);
		resp->reason = (const char *)r;
		resp->reason_len = (size_t)(p - r);
		while (resp->reason_len &&
		       (resp->reason[resp->reason_len - 1] == ' ' ||
			resp->reason[resp->reason_len - 1] == '\t'))
			resp->reason_len--;
	} else if (*p != '\r' && *p != '\n') {
		err = HTTP1_MALFORMED;
		goto fail;
	}
	err = http1_eol(&p, end);
	if (!err)
		err = http1_headers(&p, end, hdrs, max_hdrs, &num, &resp->num_over);
	if (err)
		goto fail;
	resp->status = status;
	resp->num_headers = num;
	return (int)(p - start);

fail:
	resp->minor_version = -1;
	resp->num_over = 0;
	resp->reason = NULL;
	resp->reason_len = 0;
	return err;
}

const struct http1_header *http1_find_header(const struct http1_header *hdrs, size_t n,
					     const char *name)
{
	size_t i, len;

	if (!hdrs || !name)
		return NULL;
	len = strlen(name);
	for (i = 0; i < n; i++)
		if (http1_name_eq(hdrs[i].name, hdrs[i].name_len, name, len))
			return &hdrs[i];
	return NULL;
}

/* Next element of a comma-separated list at value[*pos..len), OWS trimmed. Returns
 * 0 at the end of the list. Empty elements are returned (with *elen 0). */
static int http1_list_next(const char *value, size_t len, size_t *pos, const char **elem,
			   size_t *elen)
{
	size_t i = *pos, s, e;

	if (i > len)
		return 0;
	while (i < len && (value[i] == ' ' || value[i] == '\t'))
		i++;
	s = i;
	while (i < len && value[i] != ',')
		i++;
	e = i;
	while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
		e--;
	*elem = value + s;
	*elen = e - s;
	*pos = i + 1;
	return 1;
}

int http1_has_token(const char *value, size_t len, const char *token)
{
	const char *e;
	size_t pos = 0, elen, tlen;

	if (!value || !token)
		return 0;
	tlen = strlen(token);
	while (http1_list_next(value, len, &pos, &e, &elen))
		if (elen && http1_name_eq(e, elen, token, tlen))
			return 1;
	return 0;
}

struct http1_fields {
	int te;                 /* a Transfer-Encoding header was seen */
	int te_last_chunked;    /* its last coding is chunked */
	int te_chunked_early;   /* chunked appears before the last coding */
	int cl;                 /* a Content-Length header was seen */
	int cl_bad;             /* invalid or disagreeing Content-Length */
	uint64_t cl_value;
};

/* Content-Length value: a list of 1*DIGIT that must all agree (RFC 9110 8.6). */
static void http1_content_length(struct http1_fields *f, const char *v, size_t len)
{
	const char *e;
	size_t pos = 0, elen, i;

	/* the usual value, up to 18 digits and nothing else (the list walk below was
	 * ~110 instructions per answer, P session 7): as the walk reads it, since the
	 * header parser already trimmed the blanks around the value */
	if (len && len <= 18) {
		uint64_t n = 0;

		for (i = 0; i < len; i++) {
			unsigned d = (unsigned char)v[i] - '0';

			if (d > 9)
				break;
			n = n * 10 + d;
		}
		if (i == len) {
			if (f->cl && n != f->cl_value) {
				f->cl_bad = 1;
				return;
			}
			f->cl = 1;
			f->cl_value = n;
			return;
		}
	}
	while (http1_list_next(v, len, &pos, &e, &elen)) {
		uint64_t n = 0;

		if (!elen) {
			f->cl_bad = 1;
			return;
		}
		for (i = 0; i < elen; i++) {
			unsigned d = (unsigned char)e[i] - '0';

			if (d > 9 || n > (uint64_t)(INT64_MAX - d) / 10) {
				f->cl_bad = 1;
				return;
			}
			n = n * 10 + d;
		}
		if (f->cl && n != f->cl_value) {
			f->cl_bad = 1;
			return;
		}
		f->cl = 1;
		f->cl_value = n;
	}
}

static void http1_transfer_encoding(struct http1_fields *f, const char *v, size_t len)
{
	const char *e;
	size_t pos = 0, elen;

	f->te = 1;
	while (http1_list_next(v, len, &pos, &e, &elen)) {
		if (!elen)
			continue;
		if (f->te_last_chunked)
			f->te_chunked_early = 1;
		f->te_last_chunked = http1_name_eq(e, elen, "chunked", 7);
	}
}

static void http1_scan_fields(struct http1_fields *f, const struct http1_header *hdrs,
			      size_t n)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	for (i = 0; i < n; i++) {
		const struct http1_header *h = &hdrs[i];

		if (http1_lit_eq(h->name, h->name_len, "content-length", 14)) {
			if (!f->cl_bad && h->value_len == 0)
				f->cl_bad = 1;
			if (!f->cl_bad)
				http1_content_length(f, h->value, h->value_len);
		} else if (http1_lit_eq(h->name, h->name_len, "transfer-encoding", 17)) {
			http1_transfer_encoding(f, h->value, h->value_len);
		}
	}
}

static int http1_length_framing(uint64_t cl, uint64_t *content_length)
{
	if (cl == 0)
		return HTTP1_BODY_NONE;
	if (content_length)
		*content_length = cl;
	return HTTP1_BODY_LENGTH;
}

int http1_request_framing(const struct http1_request *req, uint64_t *content_length)
{
	struct http1_fields f;

	if (content_length)
		*content_length = 0;
	if (req->minor_version < 0)
		return HTTP1_BODY_NONE;
	http1_scan_fields(&f, req->headers, req->num_headers);
	if (f.te) {
		/* RFC 9112 6.1 and 6.3: any doubt about the framing is an attack shape */
		if (f.cl || f.cl_bad || req->minor_version == 0 || !f.te_last_chunked ||
		    f.te_chunked_early)
			return HTTP1_MALFORMED;
		return HTTP1_BODY_CHUNKED;
	}
	if (f.cl_bad)
		return HTTP1_MALFORMED;
	if (f.cl)
		return http1_length_framing(f.cl_value, content_length);
	return HTTP1_BODY_NONE;
}

int http1_response_framing(const struct http1_response *resp, const char *req_method,
			   size_t req_method_len, uint64_t *content_length)
{
	struct http1_fields f;
	int status = resp->status;

	if (content_length)
		*content_length = 0;
	if (status == 101)
		return HTTP1_BODY_TUNNEL;
	if ((status >= 100 && status < 200) || status == 204 || status == 304)
		return HTTP1_BODY_NONE;
	if (req_method && req_method_len == 4 && memcmp(req_method, "HEAD", 4) == 0)
		return HTTP1_BODY_NONE;
	if (req_method && req_method_len == 7 && memcmp(req_method, "CONNECT", 7) == 0 &&
	    status >= 200 && status < 300)
		return HTTP1_BODY_TUNNEL;
	http1_scan_fields(&f, resp->headers, resp->num_headers);
	if (f.te) {
		/* Transfer-Encoding overrides Content-Length; in HTTP/1.0 it is faulty */
		if (f.te_last_chunked && resp->minor_version != 0)
			return HTTP1_BODY_CHUNKED;
		return HTTP1_BODY_CLOSE;
	}
	if (f.cl_bad)
		return HTTP1_MALFORMED;
	if (f.cl)
		return http1_length_framing(f.cl_value, content_length);
	return HTTP1_BODY_CLOSE;
}

/* Chunked decoder states. */
enum {
	HTTP1_CH_SIZE_START = 0,   /* first hex digit of a chunk-size */
	HTTP1_CH_SIZE,             /* further hex digits */
	HTTP1_CH_SIZE_WS,          /* BWS after the digits: only ";" or the line end may follow */
	HTTP1_CH_EXT,              /* chunk extensions, skipped */
	HTTP1_CH_SIZE_LF,          /* LF after the chunk-size line's CR */
	HTTP1_CH_DATA,
	HTTP1_CH_DATA_CR,          /* line end after chunk-data */
	HTTP1_CH_DATA_LF,
	HTTP1_CH_TRAILER_START,    /* a trailer field line, or the final empty line */
	HTTP1_CH_TRAILER,
	HTTP1_CH_TRAILER_LF,
	HTTP1_CH_END_LF,           /* LF of the final empty line */
	HTTP1_CH_ERROR,
};

void http1_body_init(struct http1_body *b, int framing, uint64_t content_length)
{
	memset(b, 0, sizeof(*b));
	b->framing = framing;
	b->state = HTTP1_CH_SIZE_START;
	switch (framing) {
	case HTTP1_BODY_LENGTH:
		b->remaining = content_length;
		b->done = content_length == 0;
		break;
	case HTTP1_BODY_CHUNKED:
	case HTTP1_BODY_CLOSE:
	case HTTP1_BODY_TUNNEL:
		break;
	default:
		b->done = 1;
		break;
	}
}

static inline void http1_deliver(struct http1_body *b, http1_data_cb cb, void *ctx,
				 const unsigned char *p, size_t n)
{
	if (!n)
		return;
	b->data_bytes += n;
	if (cb)
		cb(ctx, (const char *)p, n);
}

static ssize_t http1_chunked_feed(struct http1_body *b, const char *buf, size_t len,
				  http1_data_cb cb, void *ctx)
{
	http1_ptr start = (http1_ptr)buf, p = start, end = p + len;
	unsigned char c;
	size_t n;

	if (b->state == HTTP1_CH_ERROR)
		return HTTP1_MALFORMED;
	while (p < end && !b->done) {
		switch (b->state) {
		case HTTP1_CH_DATA:
			n = (size_t)(end - p);
			if (b->remaining < n)
				n = (size_t)b->remaining;
			http1_deliver(b, cb, ctx, p, n);
			p += n;
			b->remaining -= n;
			if (!b->remaining)
				b->state = HTTP1_CH_DATA_CR;
			continue;
		case HTTP1_CH_SIZE_START:
		case HTTP1_CH_SIZE:
			c = *p;
			if (++b->line_len > HTTP1_CHUNK_LINE_MAX)
				goto bad;
			if (http1_hex[c] != 0xff) {
				if (b->remaining > (UINT64_MAX >> 4))
					goto bad;
				b->remaining = (b->remaining << 4) | http1_hex[c];
				b->state = HTTP1_CH_SIZE;
			} else if (b->state == HTTP1_CH_SIZE_START) {
				goto bad;
			} else if (c == ';') {
				b->state = HTTP1_CH_EXT;
			} else if (c == ' ' || c == '\t') {
				b->state = HTTP1_CH_SIZE_WS;
			} else if (c == '\r') {
				b->state = HTTP1_CH_SIZE_LF;
			} else if (c == '\n') {
				goto size_line_end;
			} else {
				goto bad;
			}
			p++;
			continue;
		case HTTP1_CH_SIZE_WS:
			c = *p;
			if (++b->line_len > HTTP1_CHUNK_LINE_MAX)
				goto bad;
			if (c == ';')
				b->state = HTTP1_CH_EXT;
			else if (c == '\r')
				b->state = HTTP1_CH_SIZE_LF;
			else if (c == '\n')
				goto size_line_end;
			else if (c != ' ' && c != '\t')
				goto bad;
			p++;
			continue;
		case HTTP1_CH_EXT:
			c = *p;
			if (++b->line_len > HTTP1_CHUNK_LINE_MAX)
				goto bad;
			if (c == '\r')
				b->state = HTTP1_CH_SIZE_LF;
			else if (c == '\n')
				goto size_line_end;
			else if (!(http1_cls[c] & HTTP1_C_TEXT))
				goto bad;
			p++;
			continue;
		case HTTP1_CH_SIZE_LF:
			if (*p != '\n')
				goto bad;
			goto size_line_end;
		case HTTP1_CH_DATA_CR:
			if (*p == '\r')
				b->state = HTTP1_CH_DATA_LF;
			else if (*p == '\n')
				b->state = HTTP1_CH_SIZE_START;
			else
				goto bad;
			b->line_len = 0;
			p++;
			continue;
		case HTTP1_CH_DATA_LF:
			if (*p != '\n')
				goto bad;
			b->state = HTTP1_CH_SIZE_START;
			p++;
			continue;
		case HTTP1_CH_TRAILER_START:
		case HTTP1_CH_TRAILER:
			c = *p;
			if (++b->trailer_bytes > HTTP1_TRAILER_MAX)
				goto bad;
			if (c == '\r') {
				b->state = b->state == HTTP1_CH_TRAILER_START ? HTTP1_CH_END_LF
									      : HTTP1_CH_TRAILER_LF;
			} else if (c == '\n') {
				if (b->state == HTTP1_CH_TRAILER_START)
					b->done = 1;
				b->state = HTTP1_CH_TRAILER_START;
			} else if (b->state == HTTP1_CH_TRAILER_START) {
				/* a field name must start the line: no obs-fold, no CTL */
				if (!(http1_cls[c] & HTTP1_C_TCHAR))
					goto bad;
				b->state = HTTP1_CH_TRAILER;
			} else if (!(http1_cls[c] & HTTP1_C_TEXT)) {
				goto bad;
			}
			p++;
			continue;
		case HTTP1_CH_TRAILER_LF:
		case HTTP1_CH_END_LF:
			if (*p != '\n' || ++b->trailer_bytes > HTTP1_TRAILER_MAX)
				goto bad;
			if (b->state == HTTP1_CH_END_LF)
				b->done = 1;
			b->state = HTTP1_CH_TRAILER_START;
			p++;
			continue;
		default:
			goto bad;
		}
size_line_end:
		p++;
		b->line_len = 0;
		b->state = b->remaining ? HTTP1_CH_DATA : HTTP1_CH_TRAILER_START;
	}
	b->wire_bytes += (uint64_t)(p - start);
	return p - start;

bad:
	b->state = HTTP1_CH_ERROR;
	return HTTP1_MALFORMED;
}

ssize_t http1_body_feed(struct http1_body *b, const char *buf, size_t len,
			http1_data_cb cb, void *ctx)
{
	size_t n;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (b->framing == HTTP1_BODY_CHUNKED)
		return http1_chunked_feed(b, buf, len, cb, ctx);
	if (b->done)
		return 0;
	switch (b->framing) {
	case HTTP1_BODY_LENGTH:
		n = len;
		if (b->remaining < n)
			n = (size_t)b->remaining;
		http1_deliver(b, cb, ctx, (http1_ptr)buf, n);
		b->remaining -= n;
		b->done = b->remaining == 0;
		break;
	case HTTP1_BODY_CLOSE:
	case HTTP1_BODY_TUNNEL:
		n = len;
		http1_deliver(b, cb, ctx, (http1_ptr)buf, n);
		break;
	default:
		b->done = 1;
		return 0;
	}
	b->wire_bytes += n;
	return (ssize_t)n;
}

int http1_body_eof(struct http1_body *b)
{
	if (b->done)
		return 0;
	if (b->framing == HTTP1_BODY_CLOSE || b->framing == HTTP1_BODY_TUNNEL) {
		b->done = 1;
		return 0;
	}
	return -1;
}
