/* libFuzzer target for agent/http1.c. The first input byte steers (header limit,
 * fallback framing), the rest is parsed as a request head and as a response head,
 * and what follows the head runs through the body decoder twice: in one go and in
 * pieces of sizes derived from the input, each piece in its own exact-size heap
 * block. Any broken invariant abort()s. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1.h"

#define FZ_MAX_HDRS 64

struct fz_sink {
	const char *lo, *hi;    /* the buffer being fed */
	char *out;              /* decoded data, at most out_cap bytes */
	size_t len, out_cap;
};

static void fz_check(int ok)
{
	if (!ok)
		abort();
}

static void fz_cb(void *ctx, const char *data, size_t len)
{
	struct fz_sink *s = ctx;

	fz_check(len > 0);
	fz_check(data >= s->lo && data + len <= s->hi);
	/* decoded data can never exceed the wire bytes it came from */
	fz_check(s->len + len <= s->out_cap);
	memcpy(s->out + s->len, data, len);
	s->len += len;
}

static int fz_within(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && p + n <= buf + len;
}

static void fz_check_headers(const struct http1_header *hdrs, size_t n, const char *buf,
			     size_t hl)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fz_check(hdrs[i].name_len > 0);
		fz_check(fz_within(hdrs[i].name, hdrs[i].name_len, buf, hl));
		fz_check(fz_within(hdrs[i].value, hdrs[i].value_len, buf, hl));
		fz_check(hdrs[i].value > hdrs[i].name);
		/* no field line is split by a CR or LF */
		fz_check(!memchr(hdrs[i].value, '\n', hdrs[i].value_len));
		fz_check(!memchr(hdrs[i].value, '\r', hdrs[i].value_len));
		fz_check(!memchr(hdrs[i].name, ':', hdrs[i].name_len));
	}
}

/* A prefix of the input must agree with the whole: NEED_MORE before the head ends,
 * the same length after it, and never success when the whole is malformed. */
static void fz_check_prefix(int full, int cut_rc, size_t cut)
{
	if (full > 0)
		fz_check(cut < (size_t)full ? cut_rc == HTTP1_NEED_MORE : cut_rc == full);
	else if (full == HTTP1_NEED_MORE)
		fz_check(cut_rc == HTTP1_NEED_MORE);
	else
		fz_check(cut_rc == HTTP1_NEED_MORE || cut_rc == HTTP1_MALFORMED);
}

static int fz_naive_token(const char *v, size_t len, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i <= len) {
		size_t s = i, e;

		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && tl && strncasecmp(v + s, tok, tl) == 0)
			return 1;
		i++;
	}
	return 0;
}

/* A second, whole-buffer chunked decoder written the plain way, as an oracle for the
 * streaming one. Returns the body length, HTTP1_MALFORMED, or HTTP1_NEED_MORE. */
static int fz_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int fz_text(unsigned char c)
{
	return (c >= 0x20 && c != 0x7f) || c == '\t';
}

static int fz_tchar(unsigned char c)
{
	return c && (fz_hexval(c) >= 0 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		     strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static ssize_t fz_ref_chunked(const unsigned char *b, size_t n, char *out, size_t *olen)
{
	size_t i = 0, line, tb = 0, take;
	uint64_t size;
	unsigned char c;
	int digits;

	*olen = 0;
	for (;;) {
		size = 0;
		digits = 0;
		line = 0;
		for (;;) {
			if (i == n)
				return HTTP1_NEED_MORE;
			if (++line > HTTP1_CHUNK_LINE_MAX)
				return HTTP1_MALFORMED;
			c = b[i];
			if (fz_hexval(c) < 0)
				break;
			if (size >> 60)
				return HTTP1_MALFORMED;
			size = size * 16 + (uint64_t)fz_hexval(c);
			digits++;
			i++;
		}
		if (!digits)
			return HTTP1_MALFORMED;
		while (c == ' ' || c == '\t') {
			if (++i == n)
				return HTTP1_NEED_MORE;
			if (++line > HTTP1_CHUNK_LINE_MAX)
				return HTTP1_MALFORMED;
			c = b[i];
		}
		if (c == ';') {
			for (;;) {
				if (++i == n)
					return HTTP1_NEED_MORE;
				if (++line > HTTP1_CHUNK_LINE_MAX)
					return HTTP1_MALFORMED;
				c = b[i];
				if (c == '\r' || c == '\n')
					break;
				if (!fz_text(c))
					return HTTP1_MALFORMED;
			}
		}
		if (c == '\r') {
			if (++i == n)
				return HTTP1_NEED_MORE;
			if (b[i] != '\n')
				return HTTP1_MALFORMED;
		} else if (c != '\n') {
			return HTTP1_MALFORMED;
		}
		i++;
		if (!size)
			break;
		take = n - i < size ? n - i : (size_t)size;
		memcpy(out + *olen, b + i, take);
		*olen += take;
		i += take;
		if (i == n)
			return HTTP1_NEED_MORE;
		if (b[i] == '\r') {
			if (++i == n)
				return HTTP1_NEED_MORE;
			if (b[i] != '\n')
				return HTTP1_MALFORMED;
		} else if (b[i] != '\n') {
			return HTTP1_MALFORMED;
		}
		i++;
	}
	for (;;) {
		if (i == n)
			return HTTP1_NEED_MORE;
		if (++tb > HTTP1_TRAILER_MAX)
			return HTTP1_MALFORMED;
		c = b[i++];
		if (c == '\n')
			return (ssize_t)i;
		if (c == '\r') {
			if (i == n)
				return HTTP1_NEED_MORE;
			if (b[i] != '\n' || ++tb > HTTP1_TRAILER_MAX)
				return HTTP1_MALFORMED;
			return (ssize_t)i + 1;
		}
		if (!fz_tchar(c))
			return HTTP1_MALFORMED;
		for (;;) {
			if (i == n)
				return HTTP1_NEED_MORE;
			if (++tb > HTTP1_TRAILER_MAX)
				return HTTP1_MALFORMED;
			c = b[i++];
			if (c == '\n')
				break;
			if (c == '\r') {
				if (i == n)
					return HTTP1_NEED_MORE;
				if (b[i] != '\n' || ++tb > HTTP1_TRAILER_MAX)
					return HTTP1_MALFORMED;
				i++;
				break;
			}
			if (!fz_text(c))
				return HTTP1_MALFORMED;
		}
	}
}

static uint64_t fz_rng;

static uint32_t fz_rand(void)
{
	fz_rng ^= fz_rng << 13;
	fz_rng ^= fz_rng >> 7;
	fz_rng ^= fz_rng << 17;
	return (uint32_t)(fz_rng >> 16);
}

struct fz_run {
	ssize_t consumed;       /* or HTTP1_MALFORMED */
	int done;
	size_t data_len;
};

/* Feed buf[0..len) in pieces (step 0: one go). */
static struct fz_run fz_body(int framing, uint64_t cl, const char *buf, size_t len, int split,
			     char *out)
{
	struct fz_sink s = { .out = out, .out_cap = len };
	struct fz_run r = { 0 };
	struct http1_body b;
	uint64_t fed_ok = 0;
	size_t off = 0;

	memset(&b, 0, sizeof(b));
	http1_body_init(&b, framing, cl);
	do {
		size_t n = len - off;
		char *piece;
		ssize_t k;

		if (split && n) {
			uint32_t x = fz_rand();
			size_t want = (x & 3) == 0 ? 1 + (x >> 8) % 512 : 1 + (x >> 8) % 8;

			if (want < n)
				n = want;
		}
		piece = malloc(n ? n : 1);
		if (!piece)
			abort();
		memcpy(piece, buf + off, n);
		s.lo = piece;
		s.hi = piece + n;
		k = http1_body_feed(&b, piece, n, fz_cb, &s);
		free(piece);
		if (k < 0) {
			fz_check(k == HTTP1_MALFORMED);
			fz_check(http1_body_feed(&b, "0\r\n\r\n", 5, NULL, NULL) == HTTP1_MALFORMED);
			r.consumed = k;
			break;
		}
		fz_check((size_t)k <= n);
		off += (size_t)k;
		r.consumed = (ssize_t)off;
		fed_ok += (uint64_t)k;
		fz_check(b.wire_bytes == fed_ok);
		fz_check(b.data_bytes == s.len);
		if (b.done)
			fz_check(http1_body_feed(&b, "x", 1, NULL, NULL) == 0);
		if ((size_t)k < n) {
			/* stopping short is only allowed at the end of the body */
			fz_check(b.done);
			break;
		}
		if (framing == HTTP1_BODY_CLOSE)
			fz_check(!b.done);
	} while (off < len && !b.done);
	fz_check(b.data_bytes == s.len);
	if (framing == HTTP1_BODY_LENGTH && r.consumed >= 0) {
		fz_check((uint64_t)r.consumed == (cl < len ? cl : len));
		fz_check(b.done == (cl <= len));
	}
	r.done = b.done;
	r.data_len = s.len;
	if (r.consumed >= 0) {
		int want = b.done || framing == HTTP1_BODY_CLOSE ? 0 : -1;

		fz_check(http1_body_eof(&b) == want);
	}
	return r;
}

static void fz_bodies(int framing, uint64_t cl, const char *buf, size_t len)
{
	char *one = malloc(len + 1), *many = malloc(len + 1);
	struct fz_run a, b;

	if (!one || !many)
		abort();
	a = fz_body(framing, cl, buf, len, 0, one);
	b = fz_body(framing, cl, buf, len, 1, many);
	fz_check(a.consumed == b.consumed);
	fz_check(a.done == b.done);
	fz_check(a.data_len == b.data_len);
	fz_check(memcmp(one, many, a.data_len) == 0);
	if (framing == HTTP1_BODY_CHUNKED) {
		size_t rlen;
		ssize_t r = fz_ref_chunked((const unsigned char *)buf, len, many, &rlen);

		if (r == HTTP1_NEED_MORE)
			fz_check(!a.done && a.consumed == (ssize_t)len);
		else
			fz_check(r == a.consumed && (r < 0 || a.done));
		fz_check(rlen == a.data_len && memcmp(one, many, rlen) == 0);
	}
	free(one);
	free(many);
}

/* The byte-at-a-time name scan (http1_set_simd(0)) must give what the SSSE3 one
 * gave: the same return, the same fields at the same places. */
static void fz_check_plain(const char *buf, size_t len, size_t max_hdrs, int rc, int response,
			   const struct http1_header *hdrs, size_t n)
{
	struct http1_header h2[FZ_MAX_HDRS];
	struct http1_request rq2;
	struct http1_response rs2;
	size_t i, n2;
	int rc2;

	http1_set_simd(0);
	if (response) {
		rc2 = http1_parse_response(buf, len, &rs2, h2, max_hdrs);
		n2 = rs2.num_headers;
	} else {
		rc2 = http1_parse_request(buf, len, &rq2, h2, max_hdrs);
		n2 = rq2.num_headers;
	}
	http1_set_simd(1);
	fz_check(rc2 == rc && n2 == n);
	for (i = 0; i < n; i++)
		fz_check(h2[i].name == hdrs[i].name && h2[i].name_len == hdrs[i].name_len &&
			 h2[i].value == hdrs[i].value && h2[i].value_len == hdrs[i].value_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http1_header hdrs[FZ_MAX_HDRS];
	struct http1_request req;
	struct http1_response resp;
	const char *buf = (const char *)data + 1;
	size_t len, max_hdrs, cut, i;
	uint64_t cl = 0, h = 1469598103934665603ULL;
	int rq, rs, fr = HTTP1_MALFORMED, cut_rc;
	uint8_t ctl;

	if (size < 1)
		return 0;
	ctl = data[0];
	len = size - 1;
	max_hdrs = ctl & 0x1f;
	for (i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	fz_rng = h | 1;

	rq = http1_parse_request(buf, len, &req, hdrs, max_hdrs);
	fz_check(rq == HTTP1_NEED_MORE || rq == HTTP1_MALFORMED || (rq > 0 && (size_t)rq <= len));
	fz_check_plain(buf, len, max_hdrs, rq, 0, hdrs, req.num_headers);
	if (rq > 0) {
		fz_check(req.method_len > 0 && fz_within(req.method, req.method_len, buf, (size_t)rq));
		fz_check(req.target_len > 0 && fz_within(req.target, req.target_len, buf, (size_t)rq));
		fz_check(req.minor_version >= -1 && req.minor_version <= 1);
		fz_check(req.num_headers <= max_hdrs);
		fz_check(req.minor_version >= 0 || req.num_headers == 0);
		fz_check_headers(hdrs, req.num_headers, buf, (size_t)rq);
		for (i = 0; i < req.num_headers; i++) {
			fz_check(http1_has_token(hdrs[i].value, hdrs[i].value_len, "close") ==
				 fz_naive_token(hdrs[i].value, hdrs[i].value_len, "close"));
			fz_check(http1_find_header(hdrs, req.num_headers, "host") !=
				 NULL || !(hdrs[i].name_len == 4 &&
					   strncasecmp(hdrs[i].name, "HOST", 4) == 0));
		}
		fr = http1_request_framing(&req, &cl);
		fz_check(fr >= HTTP1_MALFORMED && fr <= HTTP1_BODY_CHUNKED && fr != HTTP1_BODY_CLOSE);
		fz_check(fr == HTTP1_BODY_LENGTH ? cl > 0 : cl == 0);
	} else {
		fz_check(req.num_headers == 0);
	}
	cut = len ? fz_rand() % len : 0;
	cut_rc = http1_parse_request(buf, cut, &req, hdrs, max_hdrs);
	fz_check_prefix(rq, cut_rc, cut);
	if (rq > 0) {
		cut_rc = http1_parse_request(buf, (size_t)rq - 1, &req, hdrs, max_hdrs);
		fz_check(cut_rc == HTTP1_NEED_MORE);
	}

	rs = http1_parse_response(buf, len, &resp, hdrs, max_hdrs);
	fz_check(rs == HTTP1_NEED_MORE || rs == HTTP1_MALFORMED || (rs > 0 && (size_t)rs <= len));
	fz_check_plain(buf, len, max_hdrs, rs, 1, hdrs, resp.num_headers);
	if (rs > 0) {
		fz_check(resp.status >= 100 && resp.status <= 999);
		fz_check(resp.minor_version == 0 || resp.minor_version == 1);
		fz_check(resp.num_headers <= max_hdrs);
		fz_check(resp.reason_len == 0 || fz_within(resp.reason, resp.reason_len, buf, (size_t)rs));
		fz_check_headers(hdrs, resp.num_headers, buf, (size_t)rs);
		if (rq <= 0 || fr < 0) {
			static const char *const methods[] = { "GET", "HEAD", "CONNECT", "POST" };
			const char *m = methods[(ctl >> 5) & 3];

			fr = http1_response_framing(&resp, m, strlen(m), &cl);
			fz_check(fr >= HTTP1_MALFORMED && fr <= HTTP1_BODY_TUNNEL);
			fz_check(fr == HTTP1_BODY_LENGTH ? cl > 0 : cl == 0);
			rq = rs;
		}
		cut_rc = http1_parse_response(buf, (size_t)rs - 1, &resp, hdrs, max_hdrs);
		fz_check(cut_rc == HTTP1_NEED_MORE);
	} else {
		fz_check(resp.num_headers == 0);
	}
	cut_rc = http1_parse_response(buf, cut, &resp, hdrs, max_hdrs);
	fz_check_prefix(rs, cut_rc, cut);

	/* without a usable head, the whole input is a body of a framing the first
	 * byte picks: mostly chunked, as that is the decoder with state */
	if (rq <= 0 || fr < 0) {
		static const int pick[8] = {
			HTTP1_BODY_CHUNKED, HTTP1_BODY_CHUNKED, HTTP1_BODY_CHUNKED, HTTP1_BODY_CHUNKED,
			HTTP1_BODY_CHUNKED, HTTP1_BODY_LENGTH, HTTP1_BODY_CLOSE, HTTP1_BODY_NONE,
		};

		fr = pick[(ctl >> 5) & 7];
		cl = fr == HTTP1_BODY_LENGTH ? (uint64_t)(ctl & 0x1f) * 7 : 0;
		rq = 0;
	}
	if (fr == HTTP1_BODY_TUNNEL)
		fr = HTTP1_BODY_CLOSE;
	fz_bodies(fr, cl, buf + rq, len - (size_t)rq);
	return 0;
}
