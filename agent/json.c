/* JSON scanning shared by the diff's JSON reader and the Elasticsearch response
 * parser: pure, no allocation, nesting bounded. Owns: the JSON grammar. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "json.h"

const char *json_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static bool json_hex4(const char *s, const char *e, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (e - s < 4)
		return false;
	for (i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

static size_t json_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* One scanner for both: with out NULL it only checks. An escape never decodes to
 * more bytes than it takes in the source (\uXXXX: 6 -> at most 3, a surrogate
 * pair: 12 -> 4), so out sized like the raw contents cannot overflow. */
static const char *json_str_scan(const char *p, const char *e, char *out, size_t *outlen)
{
	size_t n = 0;
	unsigned cp, lo;

	if (p >= e || *p != '"')
		return NULL;
	p++;
	while (p < e) {
		unsigned char c = (unsigned char)*p;

		if (c == '"') {
			if (outlen)
				*outlen = n;
			return p + 1;
		}
		if (c < 0x20)
			return NULL;
		if (c != '\\') {
			if (out)
				out[n] = (char)c;
			n++;
			p++;
			continue;
		}
		if (p + 1 >= e)
			return NULL;
		c = (unsigned char)p[1];
		p += 2;
		switch (c) {
		case '"': case '\\': case '/': break;
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'u':
			if (!json_hex4(p, e, &cp))
				return NULL;
			p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && e - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
			    json_hex4(p + 2, e, &lo) && lo >= 0xdc00 && lo < 0xe000) {
				p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (out) {
				n += json_utf8(out + n, cp);
			} else {
				char tmp[4];

				n += json_utf8(tmp, cp);
			}
			continue;
		default:
			return NULL;
		}
		if (out)
			out[n] = (char)c;
		n++;
	}
	return NULL;
}

const char *json_string(const char *p, const char *e, const char **s, size_t *sn)
{
	const char *q = json_str_scan(p, e, NULL, NULL);

	if (q && s) {
		*s = p + 1;
		*sn = (size_t)(q - p - 2);
	}
	return q;
}

const char *json_string_decode(const char *p, const char *e, char *out, size_t *outlen)
{
	return json_str_scan(p, e, out, outlen);
}

static const char *json_digits(const char *p, const char *e)
{
	const char *s = p;

	while (p < e && *p >= '0' && *p <= '9')
		p++;
	return p > s ? p : NULL;
}

const char *json_number(const char *p, const char *e)
{
	if (p < e && *p == '-')
		p++;
	p = json_digits(p, e);
	if (p && p < e && *p == '.')
		p = json_digits(p + 1, e);
	if (p && p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		p = json_digits(p, e);
	}
	return p;
}

const char *json_literal(const char *p, const char *e, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(e - p) < n || memcmp(p, lit, n))
		return NULL;
	return p + n;
}

int json_iter_init(struct json_iter *it, const char *p, const char *e, char open, int depth)
{
	p = json_ws(p, e);
	if (p >= e || (*p != '{' && *p != '[') || (open && *p != open))
		return -EBADMSG;
	it->close = *p == '{' ? '}' : ']';
	it->p = p + 1;
	it->e = e;
	it->depth = depth;
	it->n = 0;
	it->done = false;
	return 0;
}

int json_iter_next(struct json_iter *it, const char **k, size_t *kn, const char **v,
		   const char **ve)
{
	const char *p = json_ws(it->p, it->e), *e = it->e, *val, *end;

	if (it->done)
		return 0;
	if (p < e && *p == it->close) {
		/* "[]" or the end after an element; "[1,]" fails below as a missing value */
		it->p = p + 1;
		it->done = true;
		return 0;
	}
	if (it->n) {
		if (p >= e || *p != ',')
			return -EBADMSG;
		p = json_ws(p + 1, e);
	}
	if (it->close == '}') {
		p = json_string(p, e, k, kn);
		if (!p)
			return -EBADMSG;
		p = json_ws(p, e);
		if (p >= e || *p != ':')
			return -EBADMSG;
		p++;
	}
	val = json_ws(p, e);
	end = json_skip(val, e, it->depth + 1);
	if (!end)
		return -EBADMSG;
	if (v) {
		*v = val;
		*ve = end;
	}
	it->p = end;
	it->n++;
	return 1;
}

const char *json_skip(const char *p, const char *e, int depth)
{
	struct json_iter it;
	int r;

	p = json_ws(p, e);
	if (p >= e || depth > JSON_MAX_DEPTH)
		return NULL;
	if (*p == '"')
		return json_string(p, e, NULL, NULL);
	if (*p == '{' || *p == '[') {
		json_iter_init(&it, p, e, 0, depth);
		while ((r = json_iter_next(&it, NULL, NULL, NULL, NULL)) > 0)
			;
		return r < 0 ? NULL : it.p;
	}
	if (*p == 't')
		return json_literal(p, e, "true");
	if (*p == 'f')
		return json_literal(p, e, "false");
	if (*p == 'n')
		return json_literal(p, e, "null");
	return json_number(p, e);
}

int json_member(const char *p, const char *e, const char *key, size_t kn,
		const char **v, const char **ve)
{
	struct json_iter it;
	const char *k;
	size_t kl;
	int r;

	if (json_iter_init(&it, p, e, '{', 0))
		return -EBADMSG;
	while ((r = json_iter_next(&it, &k, &kl, v, ve)) > 0)
		if (kl == kn && !memcmp(k, key, kn))
			return 0;
	return r < 0 ? -EBADMSG : -ENOENT;
}

int json_path(const char *body, size_t len, const char *path, const char **v, const char **ve)
{
	const char *p = body, *e = body + len, *seg = path, *dot;
	int err;

	for (;;) {
		dot = strchr(seg, '.');
		err = json_member(p, e, seg, dot ? (size_t)(dot - seg) : strlen(seg), v, ve);
		if (err || !dot)
			return err;
		p = *v;
		e = *ve;
		seg = dot + 1;
	}
}
