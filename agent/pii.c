/* Tokens are HMAC-SHA256 (OpenSSL's libcrypto, already a dependency of libcurl) cut to
 * 64 bits: enough to correlate equal values across millions of records, too short and
 * keyed so that a value cannot be found by hashing guesses without the key. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "json.h"
#include "pii.h"

/* v (bare, or as a JSON string in quotes) is already the mask or a token: copied
 * to out so that redacting twice (a redacted recording through `convert` with the
 * same rules) gives the live tokens, not tokens of tokens. Returns its length or 0. */
static size_t pii_already(const char *v, size_t n, char out[PII_TOKEN_LEN + 1])
{
	size_t i;

	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		v++, n -= 2;
	if (n == sizeof(PII_MASK_STR) - 1 && !memcmp(v, PII_MASK_STR, n))
		goto same;
	if (n != PII_TOKEN_LEN || memcmp(v, "REDACTED-", 9))
		return 0;
	for (i = 9; i < n; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return 0;
same:
	memcpy(out, v, n);
	out[n] = '\0';
	return n;
}

size_t pii_replacement(enum pii_mode mode, const struct pii_key *key, const char *v, size_t n,
		       char out[PII_TOKEN_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	size_t i;

	if ((i = pii_already(v, n, out)))
		return i;
	if (mode != PII_HASH || !key || !key->len ||
	    !HMAC(EVP_sha256(), key->bytes, (int)key->len, (const unsigned char *)v, n, mac, &mlen) ||
	    mlen < 8) {
		memcpy(out, PII_MASK_STR, sizeof(PII_MASK_STR));
		return sizeof(PII_MASK_STR) - 1;
	}
	memcpy(out, "REDACTED-", 9);
	for (i = 0; i < 8; i++) {
		out[9 + 2 * i] = hex[mac[i] >> 4];
		out[10 + 2 * i] = hex[mac[i] & 15];
	}
	out[PII_TOKEN_LEN] = '\0';
	return PII_TOKEN_LEN;
}

int pii_key_from_env(struct pii_key *key)
{
	const char *v = getenv("SHADOWTAP_REDACT_KEY"), *f = getenv("SHADOWTAP_REDACT_KEY_FILE");
	ssize_t n;
	int fd;

	memset(key, 0, sizeof(*key));
	if (v && *v) {
		n = (ssize_t)strlen(v);
		if ((size_t)n > sizeof(key->bytes))
			return -EINVAL;
		memcpy(key->bytes, v, (size_t)n);
		key->len = (size_t)n;
		return 0;
	}
	if (!f || !*f)
		return -ENOENT;
	fd = open(f, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, key->bytes, sizeof(key->bytes));
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	{
		char extra;

		if (n == (ssize_t)sizeof(key->bytes) && read(fd, &extra, 1) == 1) {
			close(fd);
			memset(key, 0, sizeof(*key));
			return -EINVAL;
		}
	}
	close(fd);
	if (n > 0 && key->bytes[n - 1] == '\n')
		n--;
	if (n > 0 && key->bytes[n - 1] == '\r')
		n--;
	if (n == 0)
		return -EINVAL;
	key->len = (size_t)n;
	return 0;
}

bool pii_luhn_ok(const char *s, size_t n)
{
	int sum = 0, dbl = 0, digits = 0;
	size_t i = n;

	while (i--) {
		int d;

		if (!isdigit((unsigned char)s[i]))
			continue;
		d = s[i] - '0';
		if (dbl && (d *= 2) > 9)
			d -= 9;
		sum += d;
		dbl = !dbl;
		digits++;
	}
	return digits > 0 && sum % 10 == 0;
}

/* A card number at s[i]: 13..19 digits, single ' ' or '-' allowed between digits, not
 * glued to other digits or letters. Returns its length or 0. */
static size_t card_at(const char *s, size_t n, size_t i)
{
	size_t j = i, digits = 0, last_digit_end = i;

	if (i > 0 && isalnum((unsigned char)s[i - 1]))
		return 0;
	while (j < n) {
		if (isdigit((unsigned char)s[j])) {
			digits++;
			j++;
			last_digit_end = j;
			if (digits > 19)
				return 0;
		} else if ((s[j] == ' ' || s[j] == '-') && j + 1 < n && isdigit((unsigned char)s[j + 1]) &&
			   digits > 0) {
			j++;
		} else {
			break;
		}
	}
	if (digits < 13)
		return 0;
	if (last_digit_end < n && isalnum((unsigned char)s[last_digit_end]))
		return 0;
	return pii_luhn_ok(s + i, last_digit_end - i) ? last_digit_end - i : 0;
}

static bool email_local(char c)
{
	return isalnum((unsigned char)c) || strchr(".!#$%&'*+/=?^_`{|}~-", c);
}

static bool email_domain(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.';
}

/* An e-mail address with its '@' at s[at]: returns the span or len 0. */
static struct pii_span email_at(const char *s, size_t n, size_t at)
{
	struct pii_span sp = { 0, 0 };
	size_t a = at, b = at + 1, dot = 0;

	while (a > 0 && email_local(s[a - 1]))
		a--;
	while (a < at && s[a] == '.')
		a++;
	if (a == at)
		return sp;
	while (b < n && email_domain(s[b])) {
		if (s[b] == '.')
			dot = b;
		b++;
	}
	while (b > at + 1 && (s[b - 1] == '.' || s[b - 1] == '-'))
		b--;
	if (!dot || dot <= at + 1 || dot >= b - 2)
		return sp;
	sp.off = a;
	sp.len = b - a;
	return sp;
}

static int span_cmp(const void *x, const void *y)
{
	const struct pii_span *a = x, *b = y;

	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	return a->len > b->len ? -1 : a->len < b->len;
}

static size_t pii_spans_merge(struct pii_span *spans, size_t cnt);

size_t pii_scan(const char *s, size_t n, unsigned kinds, const regex_t *res, size_t nres,
		struct pii_span *spans, size_t max)
{
	size_t cnt = 0, i, k;

	for (i = 0; i < n && cnt < max; i++) {
		if ((kinds & PII_SCAN_CARD) && isdigit((unsigned char)s[i])) {
			size_t l = card_at(s, n, i);

			if (l) {
				spans[cnt++] = (struct pii_span){ i, l };
				i += l - 1;
				continue;
			}
		}
		if ((kinds & PII_SCAN_EMAIL) && s[i] == '@') {
			struct pii_span sp = email_at(s, n, i);

			if (sp.len)
				spans[cnt++] = sp;
		}
	}
	for (k = 0; k < nres; k++) {
		size_t off = 0;
		regmatch_t m;

		while (off < n && cnt < max &&
		       regexec(&res[k], s + off, 1, &m, off ? REG_NOTBOL : 0) == 0) {
			if (m.rm_eo <= m.rm_so) {          /* empty match: step past it */
				off += (size_t)m.rm_so + 1;
				continue;
			}
			spans[cnt++] = (struct pii_span){ off + (size_t)m.rm_so, (size_t)(m.rm_eo - m.rm_so) };
			off += (size_t)m.rm_eo;
		}
	}
	return pii_spans_merge(spans, cnt);
}

/* Sorts spans and merges overlapping ones; returns the new count. */
static size_t pii_spans_merge(struct pii_span *spans, size_t cnt)
{
	size_t i, out;

	qsort(spans, cnt, sizeof(*spans), span_cmp);
	for (i = 0, out = 0; i < cnt; i++) {
		if (out && spans[i].off < spans[out - 1].off + spans[out - 1].len) {
			size_t end = spans[i].off + spans[i].len, pend = spans[out - 1].off + spans[out - 1].len;

			if (end > pend)
				spans[out - 1].len = end - spans[out - 1].off;
			continue;
		}
		spans[out++] = spans[i];
	}
	return out;
}

int pii_apply(struct buf *out, const char *s, size_t n, const struct pii_span *spans, size_t nspans,
	      enum pii_mode mode, const struct pii_key *key)
{
	char tok[PII_TOKEN_LEN + 1];
	size_t pos = 0, i, tl;

	for (i = 0; i < nspans; i++) {
		if (spans[i].off < pos || spans[i].off + spans[i].len > n)
			return -EINVAL;
		if (buf_append(out, s + pos, spans[i].off - pos))
			return -ENOMEM;
		tl = pii_replacement(mode, key, s + spans[i].off, spans[i].len, tok);
		if (buf_append(out, tok, tl))
			return -ENOMEM;
		pos = spans[i].off + spans[i].len;
	}
	return buf_append(out, s + pos, n - pos) ? -ENOMEM : 0;
}

int pii_redact_query(struct buf *out, const char *t, size_t n, const char *const *names,
		     enum pii_mode mode, const struct pii_key *key)
{
	const char *q = memchr(t, '?', n), *end = t + n, *p;
	char tok[PII_TOKEN_LEN + 1];
	int replaced = 0;

	if (!q || !names || !names[0])
		return buf_append(out, t, n) ? -ENOMEM : 0;
	if (buf_append(out, t, (size_t)(q + 1 - t)))
		return -ENOMEM;
	for (p = q + 1; p <= end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		const char *const *nm;
		bool hit = false;

		if (eq)
			for (nm = names; *nm; nm++)
				if (strlen(*nm) == (size_t)(eq - p) && memcmp(*nm, p, (size_t)(eq - p)) == 0)
					hit = true;
		if (hit) {
			size_t tl = pii_replacement(mode, key, eq + 1, (size_t)(pe - eq - 1), tok);

			if (buf_append(out, p, (size_t)(eq + 1 - p)) || buf_append(out, tok, tl))
				return -ENOMEM;
			replaced++;
		} else if (buf_append(out, p, (size_t)(pe - p))) {
			return -ENOMEM;
		}
		if (!amp)
			break;
		if (buf_putc(out, '&'))
			return -ENOMEM;
		p = amp + 1;
	}
	return replaced;
}

/* ---- JSON bodies ---- */

enum { PJ_NAME, PJ_ANY_INDEX, PJ_DESCENDANT };

int pii_json_path_parse(struct pii_json_path *jp, const char *p)
{
	memset(jp, 0, sizeof(*jp));
	if (p[0] != '$' || !p[1])
		return -EINVAL;
	p++;
	while (*p) {
		if (jp->nseg >= PII_JSON_MAX_SEGS - 1)
			return -EINVAL;
		if (p[0] == '.' && p[1] == '.') {
			jp->seg[jp->nseg++].kind = PJ_DESCENDANT;
			p += 2;
		} else if (p[0] == '.') {
			p++;
		} else if (!strncmp(p, "[*]", 3)) {
			jp->seg[jp->nseg++].kind = PJ_ANY_INDEX;
			p += 3;
			continue;
		} else {
			return -EINVAL;
		}
		if (*p == '[' || *p == '.' || !*p) {
			/* `$..[*]` is fine; `$.` or `$.a.` is not */
			if (jp->nseg && jp->seg[jp->nseg - 1].kind == PJ_DESCENDANT && *p == '[')
				continue;
			return -EINVAL;
		}
		{
			size_t l = strcspn(p, ".[");

			jp->seg[jp->nseg].kind = PJ_NAME;
			jp->seg[jp->nseg].name = p;
			jp->seg[jp->nseg].len = l;
			jp->nseg++;
			p += l;
		}
	}
	return jp->nseg && jp->seg[jp->nseg - 1].kind != PJ_DESCENDANT ? 0 : -EINVAL;
}

struct pj_seg {
	const char *name;        /* NULL: an array element */
	size_t len;
};

static bool pj_match(const struct pii_json_path *jp, int pi, const struct pj_seg *st, int si, int depth)
{
	if (pi == jp->nseg)
		return si == depth;
	if (jp->seg[pi].kind == PJ_DESCENDANT) {
		int k;

		for (k = si; k <= depth; k++)
			if (pj_match(jp, pi + 1, st, k, depth))
				return true;
		return false;
	}
	if (si == depth)
		return false;
	if (jp->seg[pi].kind == PJ_ANY_INDEX)
		return !st[si].name && pj_match(jp, pi + 1, st, si + 1, depth);
	return st[si].name && st[si].len == jp->seg[pi].len &&
	       !memcmp(st[si].name, jp->seg[pi].name, st[si].len) && pj_match(jp, pi + 1, st, si + 1, depth);
}

struct pj_ctx {
	struct buf *out;
	const char *copied;          /* body text before this is already in out */
	const struct pii_json_path *paths;
	size_t npaths;
	enum pii_mode mode;
	const struct pii_key *key;
	struct pj_seg st[JSON_MAX_DEPTH + 1];
	int replaced, err;
};

static const char *pj_value(struct pj_ctx *c, const char *p, const char *e, int depth)
{
	const char *v = json_ws(p, e), *ve;
	size_t i;

	for (i = 0; i < c->npaths; i++)
		if (pj_match(&c->paths[i], 0, c->st, 0, depth))
			break;
	if (i < c->npaths) {
		char tok[PII_TOKEN_LEN + 1];
		size_t tl;

		ve = json_skip(v, e, depth);
		if (!ve)
			return NULL;
		tl = pii_replacement(c->mode, c->key, v, (size_t)(ve - v), tok);
		if (buf_append(c->out, c->copied, (size_t)(v - c->copied)) || buf_putc(c->out, '"') ||
		    buf_append(c->out, tok, tl) || buf_putc(c->out, '"'))
			c->err = -ENOMEM;
		c->copied = ve;
		c->replaced++;
		return ve;
	}
	if (depth >= JSON_MAX_DEPTH || v >= e)
		return v < e && (*v == '{' || *v == '[') ? NULL : json_skip(v, e, depth);
	if (*v == '{') {
		p = json_ws(v + 1, e);
		if (p < e && *p == '}')
			return p + 1;
		for (;;) {
			const char *k;
			size_t kn;

			p = json_ws(p, e);
			if (p >= e || *p != '"' || !(p = json_string(p, e, &k, &kn)))
				return NULL;
			p = json_ws(p, e);
			if (p >= e || *p != ':')
				return NULL;
			c->st[depth].name = k;
			c->st[depth].len = kn;
			if (!(p = pj_value(c, p + 1, e, depth + 1)))
				return NULL;
			p = json_ws(p, e);
			if (p < e && *p == ',') {
				p++;
				continue;
			}
			return p < e && *p == '}' ? p + 1 : NULL;
		}
	}
	if (*v == '[') {
		p = json_ws(v + 1, e);
		if (p < e && *p == ']')
			return p + 1;
		for (;;) {
			c->st[depth].name = NULL;
			c->st[depth].len = 0;
			if (!(p = pj_value(c, p, e, depth + 1)))
				return NULL;
			p = json_ws(p, e);
			if (p < e && *p == ',') {
				p++;
				continue;
			}
			return p < e && *p == ']' ? p + 1 : NULL;
		}
	}
	return json_skip(v, e, depth);
}

int pii_redact_json(struct buf *out, const char *body, size_t n, const struct pii_json_path *paths,
		    size_t npaths, enum pii_mode mode, const struct pii_key *key)
{
	struct pj_ctx c = { .out = out, .copied = body, .paths = paths, .npaths = npaths,
			    .mode = mode, .key = key };
	size_t start = out->len;
	const char *end;

	end = pj_value(&c, body, body + n, 0);
	if (!end || json_ws(end, body + n) != body + n) {
		out->len = start;
		return -EBADMSG;
	}
	if (c.err || buf_append(out, c.copied, (size_t)(body + n - c.copied)))
		return -ENOMEM;
	return c.replaced;
}

/* ---- configuration ---- */

int pii_cfg_build(struct pii_cfg *pc, const char *mode, const char *const *json, int njson,
		  const char *const *query, int nquery, const char *const *pattern, int npattern)
{
	int i, err;

	memset(pc, 0, sizeof(*pc));
	if (!mode || !strcmp(mode, "mask")) {
		pc->mode = PII_MASK;
	} else if (!strcmp(mode, "hash")) {
		pc->mode = PII_HASH;
		err = pii_key_from_env(&pc->key);
		if (err) {
			fprintf(stderr, "shadowtap: --redact-mode hash needs a key in SHADOWTAP_REDACT_KEY or "
				"SHADOWTAP_REDACT_KEY_FILE (%s)\n",
				err == -ENOENT ? "neither is set" : err == -EINVAL ? "empty or over 256 bytes"
									: strerror(-err));
			return -EINVAL;
		}
	} else {
		fprintf(stderr, "shadowtap: invalid value '%s' for --redact-mode: expected mask or hash\n", mode);
		return -EINVAL;
	}
	if (njson) {
		pc->paths = calloc((size_t)njson, sizeof(*pc->paths));
		if (!pc->paths)
			return -ENOMEM;
		for (i = 0; i < njson; i++)
			if (pii_json_path_parse(&pc->paths[i], json[i])) {
				fprintf(stderr, "shadowtap: invalid value '%s' for --redact-json: expected "
					"$.a.b, $..name or $.list[*].name\n", json[i]);
				pii_cfg_free(pc);
				return -EINVAL;
			}
		pc->npaths = (size_t)njson;
	}
	if (nquery) {
		pc->query = calloc((size_t)nquery + 1, sizeof(*pc->query));
		if (!pc->query) {
			pii_cfg_free(pc);
			return -ENOMEM;
		}
		for (i = 0; i < nquery; i++)
			pc->query[i] = query[i];
	}
	if (npattern) {
		pc->res = calloc((size_t)npattern, sizeof(*pc->res));
		if (!pc->res) {
			pii_cfg_free(pc);
			return -ENOMEM;
		}
		for (i = 0; i < npattern; i++) {
			if (!strcmp(pattern[i], "credit-card")) {
				pc->scan |= PII_SCAN_CARD;
			} else if (!strcmp(pattern[i], "email")) {
				pc->scan |= PII_SCAN_EMAIL;
			} else if (regcomp(&pc->res[pc->nres], pattern[i], REG_EXTENDED)) {
				fprintf(stderr, "shadowtap: invalid value '%s' for --redact-pattern: not "
					"credit-card, email or a valid extended regular expression\n", pattern[i]);
				pii_cfg_free(pc);
				return -EINVAL;
			} else {
				pc->nres++;
			}
		}
	}
	return 0;
}

void pii_cfg_free(struct pii_cfg *pc)
{
	size_t i;

	if (!pc)
		return;
	for (i = 0; i < pc->nres; i++)
		regfree(&pc->res[i]);
	free(pc->res);
	free(pc->paths);
	free(pc->query);
	memset(pc, 0, sizeof(*pc));
}

bool pii_cfg_rewrites(const struct pii_cfg *pc)
{
	return pc && (pc->npaths || pc->query || pc->scan || pc->nres);
}

/* Spans of the literal values in s, merged with the scanners' spans below. */
static size_t pii_lit_spans(const char *s, size_t n, const struct pii_lit *lits, size_t nlits,
			    struct pii_span *sp, size_t max)
{
	size_t k = 0, i;

	for (i = 0; i < nlits; i++) {
		const char *at = s, *hit;

		if (lits[i].n < PII_LIT_MIN)
			continue;
		while (k < max && (hit = memmem(at, (size_t)(s + n - at), lits[i].p, lits[i].n))) {
			sp[k++] = (struct pii_span){ (size_t)(hit - s), lits[i].n };
			at = hit + lits[i].n;
		}
	}
	return k;
}

/* The scanners over s (copied so the regexes see a NUL), appended to out. */
static int pii_scan_apply_lits(const struct pii_cfg *pc, const char *s, size_t n,
			       const struct pii_lit *lits, size_t nlits, struct buf *out);

static int pii_scan_apply(const struct pii_cfg *pc, const char *s, size_t n, struct buf *out)
{
	return pii_scan_apply_lits(pc, s, n, NULL, 0, out);
}

static int pii_scan_apply_lits(const struct pii_cfg *pc, const char *s, size_t n,
			       const struct pii_lit *lits, size_t nlits, struct buf *out)
{
	struct pii_span sp[64];
	struct buf tmp = { 0 }, next = { 0 };
	int total = 0, err = 0;
	size_t k, pass;

	if (!pc->scan && !pc->nres && !nlits)
		return buf_append(out, s, n) ? -ENOMEM : 0;
	if (buf_append(&tmp, s, n) || buf_reserve(&tmp, 1)) {
		buf_free(&tmp);
		return -ENOMEM;
	}
	tmp.data[tmp.len] = '\0';
	/* a full span array means there may be more: scan the result again (bounded) */
	for (pass = 0; pass < 64; pass++) {
		k = pii_lit_spans(tmp.data, tmp.len, lits, nlits, sp, 32);
		k += pii_scan(tmp.data, tmp.len, pc->scan, pc->res, pc->nres, sp + k, 64 - k);
		if (!k)
			break;
		k = pii_spans_merge(sp, k);
		buf_reset(&next);
		if (pii_apply(&next, tmp.data, tmp.len, sp, k, pc->mode, &pc->key) || buf_reserve(&next, 1)) {
			err = -ENOMEM;
			break;
		}
		next.data[next.len] = '\0';
		total += (int)k;
		{
			struct buf t = tmp;

			tmp = next;
			next = t;
		}
		if (k < 64)
			break;
	}
	if (!err && buf_append(out, tmp.data ? tmp.data : "", tmp.len))
		err = -ENOMEM;
	buf_free(&tmp);
	buf_free(&next);
	return err ? err : total;
}

int pii_redact_text(const struct pii_cfg *pc, const char *s, size_t n, struct buf *out)
{
	return pii_redact_text_lits(pc, s, n, NULL, 0, out);
}

size_t pii_query_values(const struct pii_cfg *pc, const char *t, size_t n, struct pii_lit *out, size_t max)
{
	const char *q = memchr(t, '?', n), *end = t + n, *p;
	const char *const *nm;
	size_t k = 0;

	if (!q || !pc->query)
		return 0;
	for (p = q + 1; p < end && k < max;) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));

		if (eq)
			for (nm = pc->query; *nm; nm++)
				if (strlen(*nm) == (size_t)(eq - p) && !memcmp(*nm, p, (size_t)(eq - p)) && k < max)
					out[k++] = (struct pii_lit){ eq + 1, (size_t)(pe - eq - 1) };
		if (!amp)
			break;
		p = amp + 1;
	}
	return k;
}

int pii_redact_text_lits(const struct pii_cfg *pc, const char *s, size_t n, const struct pii_lit *lits,
			 size_t nlits, struct buf *out)
{
	struct buf j = { 0 };
	int a = 0, b;

	if (pc->npaths) {
		a = pii_redact_json(&j, s, n, pc->paths, pc->npaths, pc->mode, &pc->key);
		if (a == -ENOMEM) {
			buf_free(&j);
			return a;
		}
		if (a >= 0) {
			s = j.data ? j.data : "";
			n = j.len;
		} else {
			a = 0;      /* not JSON: the scanners still run */
		}
	}
	b = pii_scan_apply_lits(pc, s, n, lits, nlits, out);
	buf_free(&j);
	return b < 0 ? b : a + b;
}

int pii_redact_target(const struct pii_cfg *pc, const char *t, size_t n, struct buf *out)
{
	struct buf q = { 0 };
	int a = 0, b;

	if (pc->query) {
		a = pii_redact_query(&q, t, n, pc->query, pc->mode, &pc->key);
		if (a < 0) {
			buf_free(&q);
			return a;
		}
		t = q.data ? q.data : "";
		n = q.len;
	}
	b = pii_scan_apply(pc, t, n, out);
	buf_free(&q);
	return b < 0 ? b : a + b;
}
