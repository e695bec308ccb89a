/* One-pass JSON flattening for the comparisons (see fields_json.h).
 *
 * Hashes: a scalar hashes its type and canonical text (strings decoded; numbers as
 * the double they denote when that is exact, i.e. when they carry a fraction or an
 * exponent or have at most 15 digits, else as text), an object sums its members'
 * (key, value) hashes so member order does not count, an array chains its elements'
 * so theirs does. Equal hashes are taken as equal values; a collision would hide a
 * difference with odds of 2^-64 per pair. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fields_json.h"
#include "json.h"
#include "util.h"

#define FJ_SEED 0xcbf29ce484222325ull

/* Eight bytes a step (keys and strings are hashed for every node of both bodies):
 * multiply-xorshift on little-endian words, the tail byte by byte, the length last. */
static uint64_t fj_fnv(uint64_t h, const char *p, size_t n)
{
	size_t i = 0;
	uint64_t w;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 32;
	}
	for (; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
	return h ^ n;
}

int fj_num_eq(const char *a, size_t an, const char *b, size_t bn)
{
	char x[64], y[64];

	if (an == bn && memcmp(a, b, an) == 0)
		return 1;
	/* two integers: JSON has no leading zeros, so other texts are other values but
	 * for -0 (a double would also conflate integers past 2^53) */
	if (!memchr(a, '.', an) && !memchr(a, 'e', an) && !memchr(a, 'E', an) &&
	    !memchr(b, '.', bn) && !memchr(b, 'e', bn) && !memchr(b, 'E', bn))
		return (an == 1 || an == 2) && (bn == 1 || bn == 2) && a[an - 1] == '0' && b[bn - 1] == '0' &&
		       (an == 1 || a[0] == '-') && (bn == 1 || b[0] == '-');
	if (an >= sizeof(x) || bn >= sizeof(y))
		return 0;
	memcpy(x, a, an);
	x[an] = '\0';
	memcpy(y, b, bn);
	y[bn] = '\0';
	return strtod(x, NULL) == strtod(y, NULL);
}

static uint64_t fj_num_hash(const char *p, size_t n)
{
	bool frac = false;
	size_t digits = n - (n && *p == '-'), k;

	for (k = 0; k < n && !frac; k++)
		frac = p[k] == '.' || p[k] == 'e' || p[k] == 'E';
	double v;
	uint64_t bits;
	char x[64];

	if (!frac && digits > 15)
		return st_mix64(fj_fnv(FJ_SEED + FJ_NUM, p, n));
	if (!frac) {
		/* the common case, without strtod: an integer of at most 15 digits */
		long long i = 0;

		for (k = n - digits; k < n; k++)
			i = i * 10 + (p[k] - '0');
		v = (double)(n - digits ? -i : i);
	} else {
		if (n >= sizeof(x))
			return st_mix64(fj_fnv(FJ_SEED + FJ_NUM, p, n));
		memcpy(x, p, n);
		x[n] = '\0';
		v = strtod(x, NULL);
	}
	if (v == 0)
		v = 0;   /* -0 and 0 are one value */
	memcpy(&bits, &v, sizeof(bits));
	return st_mix64(bits ^ (FJ_SEED + FJ_NUM));
}

static inline __attribute__((always_inline)) int32_t fj_new(struct fj_doc *d, int type, size_t v, int depth)
{
	struct fj_node *n;

	if (d->nn == d->cap) {
		int32_t cap = d->cap ? d->cap * 2 : 64;

		n = realloc(d->n, (size_t)cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		d->n = n;
		d->cap = cap;
	}
	n = &d->n[d->nn];
	*n = (struct fj_node){ .type = (uint8_t)type, .first = -1, .next = -1, .sorted = -1,
			       .v = (uint32_t)v, .depth = (uint8_t)depth };
	return d->nn++;
}

#define FJ_ONES 0x0101010101010101ull
#define FJ_HIGH 0x8080808080808080ull

/* The first byte in [p, e) that is a quote, a backslash or a control character
 * (or e), eight bytes a step: a word with none of them is skipped whole. */
static inline const char *fj_plain_end(const char *p, const char *e)
{
	uint64_t w, q, b;

	for (; e - p >= 8; p += 8) {
		memcpy(&w, p, 8);
		q = w ^ (FJ_ONES * '"');
		b = w ^ (FJ_ONES * '\\');
		/* a zero byte in q or b, or a byte below 0x20 in w */
		w = (((q - FJ_ONES) & ~q) | ((b - FJ_ONES) & ~b) | ((w - FJ_ONES * 0x20) & ~w)) & FJ_HIGH;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		/* The lowest flagged byte is exact: a borrow runs upwards only from a
		 * byte that is itself flagged, so only bytes above the first stop can be
		 * flagged wrongly. The stop is that byte, without the byte loop below
		 * (~130 instructions per record on the benchmark's body, session 9). */
		if (w)
			return p + (__builtin_ctzll(w) >> 3);
#else
		if (w)
			break;
#endif
	}
	while (p < e && *p != '"' && *p != '\\' && (uint8_t)*p >= 0x20)
		p++;
	return p;
}

/* A string at pos (its opening quote). Without escapes (most strings) its text is
 * left in src and only scanned; with them it is decoded into the arena. *in_src
 * says which. */
static inline __attribute__((always_inline)) int fj_string(struct fj_doc *d, size_t *pos, uint32_t *off, uint32_t *len, bool *in_src)
{
	const char *p = d->src + *pos + 1, *e = d->src + d->len, *q;
	size_t l;

	q = fj_plain_end(p, e);
	if (q < e && *q == '"') {
		*off = (uint32_t)(p - d->src);
		*len = (uint32_t)(q - p);
		*in_src = true;
		*pos = (size_t)(q + 1 - d->src);
		return 0;
	}
	if (!d->arena || d->acap < d->len) {
		/* the first escaped string: decoded text never outgrows the source */
		char *a = realloc(d->arena, d->len);

		if (!a)
			return -ENOMEM;
		d->arena = a;
		d->acap = d->len;
	}
	q = json_string_decode(d->src + *pos, e, d->arena + d->alen, &l);
	if (!q)
		return -EINVAL;
	*off = (uint32_t)d->alen;
	*len = (uint32_t)l;
	*in_src = false;
	d->alen += l;
	*pos = (size_t)(q - d->src);
	return 0;
}

static inline void fj_ws(const struct fj_doc *d, size_t *pos)
{
	/* most tokens follow the previous one directly */
	if (*pos < d->len && (uint8_t)d->src[*pos] > ' ')
		return;
	*pos = (size_t)(json_ws(d->src + *pos, d->src + d->len) - d->src);
}

/* The value at *pos: its node index, or a negative errno. Recursion is bounded by
 * JSON_MAX_DEPTH so a hostile body cannot exhaust the stack. */
static int32_t fj_value(struct fj_doc *d, size_t *pos, int depth)
{
	const char *q;
	int32_t idx, child, last = -1;
	uint64_t h;
	char c;
	int err;

	if (depth > JSON_MAX_DEPTH)
		return -EINVAL;
	fj_ws(d, pos);
	if (*pos >= d->len)
		return -EINVAL;
	c = d->src[*pos];
	if (c == '{' || c == '[') {
		bool obj = c == '{';

		idx = fj_new(d, obj ? FJ_OBJ : FJ_ARR, *pos, depth);
		if (idx < 0)
			return idx;
		h = (obj ? FJ_OBJ : FJ_ARR) * 0x9e3779b97f4a7c15ull;
		(*pos)++;
		fj_ws(d, pos);
		if (*pos < d->len && d->src[*pos] == (obj ? '}' : ']')) {
			(*pos)++;
			goto done;
		}
		for (;;) {
			uint32_t koff = 0, klen = 0;
			bool ksrc = false;

			fj_ws(d, pos);
			if (obj) {
				if (*pos >= d->len || d->src[*pos] != '"')
					return -EINVAL;
				err = fj_string(d, pos, &koff, &klen, &ksrc);
				if (err)
					return err;
				fj_ws(d, pos);
				if (*pos >= d->len || d->src[*pos] != ':')
					return -EINVAL;
				(*pos)++;
			}
			child = fj_value(d, pos, depth + 1);
			if (child < 0)
				return child;
			d->n[child].key = koff;
			d->n[child].key_len = klen;
			if (ksrc)
				d->n[child].flags |= FJ_KEY_SRC;
			if (obj)
				h += st_mix64(fj_fnv(FJ_SEED, fj_key(d, &d->n[child]), klen) ^ d->n[child].h);
			else
				h = st_mix64(h ^ d->n[child].h);
			if (last < 0)
				d->n[idx].first = child;
			else
				d->n[last].next = child;
			last = child;
			d->n[idx].nchild++;
			fj_ws(d, pos);
			if (*pos >= d->len)
				return -EINVAL;
			c = d->src[(*pos)++];
			if (c == ',')
				continue;
			if (c == (obj ? '}' : ']'))
				break;
			return -EINVAL;
		}
done:
		d->n[idx].h = h;
		d->n[idx].ve = (uint32_t)*pos;
		return idx;
	}
	if (c == '"') {
		uint32_t off, len;
		size_t start = *pos;
		bool ssrc;

		err = fj_string(d, pos, &off, &len, &ssrc);
		if (err)
			return err;
		idx = fj_new(d, FJ_STR, start, depth);
		if (idx < 0)
			return idx;
		d->n[idx].s = off;
		d->n[idx].s_len = len;
		if (ssrc)
			d->n[idx].flags |= FJ_S_SRC;
		d->n[idx].h = st_mix64(fj_fnv(FJ_SEED + FJ_STR, fj_s(d, &d->n[idx]), len));
		d->n[idx].ve = (uint32_t)*pos;
		return idx;
	}
	if (c == 't' || c == 'f' || c == 'n') {
		q = json_literal(d->src + *pos, d->src + d->len, c == 't' ? "true" : c == 'f' ? "false" : "null");
		if (!q)
			return -EINVAL;
		idx = fj_new(d, c == 'n' ? FJ_NULL : FJ_BOOL, *pos, depth);
		if (idx < 0)
			return idx;
		d->n[idx].h = st_mix64(FJ_SEED + (uint64_t)c);
	} else {
		q = json_number(d->src + *pos, d->src + d->len);
		if (!q)
			return -EINVAL;
		idx = fj_new(d, FJ_NUM, *pos, depth);
		if (idx < 0)
			return idx;
		d->n[idx].h = fj_num_hash(d->src + *pos, (size_t)(q - d->src) - *pos);
	}
	*pos = (size_t)(q - d->src);
	d->n[idx].ve = (uint32_t)*pos;
	return idx;
}

int fj_parse(struct fj_doc *d, const char *p, size_t n)
{
	memset(d, 0, sizeof(*d));
	return fj_reparse(d, p, n);
}

int fj_reparse(struct fj_doc *d, const char *p, size_t n)
{
	size_t pos = 0;
	int32_t root;

	d->src = p ? p : "";    /* an empty body may have no buffer */
	d->len = n;
	d->nn = 0;
	d->alen = 0;
	d->norder = 0;
	d->twin = NULL;
	d->ndpath = 0;
	if (n >= UINT32_MAX)
		return -EINVAL;
	root = fj_value(d, &pos, 0);
	if (root < 0)
		return root == -ENOMEM ? -ENOMEM : -EINVAL;
	fj_ws(d, &pos);
	return pos == d->len ? 0 : -EINVAL;
}

void fj_free(struct fj_doc *d)
{
	free(d->n);
	free(d->arena);
	free(d->order);
	memset(d, 0, sizeof(*d));
}

/* An object member's share of its object's hash (fj_value sums them). */
static uint64_t fj_member_hash(const struct fj_doc *d, const struct fj_node *c)
{
	return st_mix64(fj_fnv(FJ_SEED, fj_key(d, c), c->key_len) ^ c->h);
}

/* Length of the common prefix of a and b (at most m bytes), eight bytes a step. */
static size_t fj_common_prefix(const char *a, const char *b, size_t m)
{
	uint64_t x, y;
	size_t i = 0;

	for (; i + 8 <= m; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			break;
	}
	while (i < m && a[i] == b[i])
		i++;
	return i;
}

/* Length of the common suffix of the texts ending at ae and be (at most m bytes). */
static size_t fj_common_suffix(const char *ae, const char *be, size_t m)
{
	uint64_t x, y;
	size_t i = 0;

	for (; i + 8 <= m; i += 8) {
		memcpy(&x, ae - i - 8, 8);
		memcpy(&y, be - i - 8, 8);
		if (x != y)
			break;
	}
	while (i < m && ae[-1 - (ptrdiff_t)i] == be[-1 - (ptrdiff_t)i])
		i++;
	return i;
}

int fj_derive(struct fj_doc *d, const struct fj_doc *s, const char *p, size_t n)
{
	int32_t path[JSON_MAX_DEPTH + 2], np = 0, cur = 0, c, x, k;
	size_t la = s->len, pre = 0, suf = 0, m = la < n ? la : n, ea, i;
	int64_t delta = (int64_t)n - (int64_t)la;
	const char *q = p ? p : "";

	if (!s->n || s->nn <= 0 || n >= UINT32_MAX)
		return -EAGAIN;
	pre = fj_common_prefix(s->src, q, m);
	suf = fj_common_suffix(s->src + la, q + n, m - pre);
	ea = la - suf;
	/* down from the root to the string holding [pre, ea) strictly inside its quotes */
	for (;;) {
		const struct fj_node *cn = &s->n[cur];

		if (np == JSON_MAX_DEPTH + 2)
			return -EAGAIN;
		path[np++] = cur;
		if (cn->type == FJ_STR)
			break;
		if (cn->type != FJ_OBJ && cn->type != FJ_ARR)
			return -EAGAIN;
		for (c = cn->first; c >= 0; c = s->n[c].next)
			if (s->n[c].v < pre && ea < s->n[c].ve)
				break;
		if (c < 0)
			return -EAGAIN;
		cur = c;
	}
	x = cur;
	if (!(s->n[x].flags & FJ_S_SRC) || !(s->n[x].v < pre && ea < s->n[x].ve))
		return -EAGAIN;
	/* serverB's side of the change must not end or escape the string either */
	for (i = pre; i < n - suf; i++)
		if (q[i] == '"' || q[i] == '\\' || (uint8_t)q[i] < 0x20)
			return -EAGAIN;
	if (d->cap < s->nn) {
		struct fj_node *nn = realloc(d->n, (size_t)s->nn * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		d->n = nn;
		d->cap = s->nn;
	}
	if (s->alen) {
		/* escaped strings are all outside the change: the same decoded text */
		if (d->acap < n) {
			char *a = realloc(d->arena, n);

			if (!a)
				return -ENOMEM;
			d->arena = a;
			d->acap = n;
		}
		memcpy(d->arena, s->arena, s->alen);
	}
	memcpy(d->n, s->n, (size_t)s->nn * sizeof(*d->n));
	d->src = q;
	d->len = n;
	d->nn = s->nn;
	d->alen = s->alen;
	d->norder = 0;
	d->twin = s;
	memcpy(d->dpath, path, (size_t)np * sizeof(*path));
	d->ndpath = np;
	/* nodes are in document order: those before x end before it but for its
	 * ancestors, which end after it; those after x lie wholly after it */
	if (s->norder)
		for (k = 0; k < d->nn; k++)
			d->n[k].sorted = -1;
	for (k = 0; k + 1 < np; k++)
		d->n[path[k]].ve = (uint32_t)(d->n[path[k]].ve + delta);
	d->n[x].ve = (uint32_t)(d->n[x].ve + delta);
	for (k = x + 1; k < d->nn; k++) {
		struct fj_node *e = &d->n[k];

		e->v = (uint32_t)(e->v + delta);
		e->ve = (uint32_t)(e->ve + delta);
		if (e->flags & FJ_KEY_SRC)
			e->key = (uint32_t)(e->key + delta);
		if (e->flags & FJ_S_SRC)
			e->s = (uint32_t)(e->s + delta);
	}
	d->n[x].s_len = (uint32_t)(d->n[x].s_len + delta);
	d->n[x].h = st_mix64(fj_fnv(FJ_SEED + FJ_STR, fj_s(d, &d->n[x]), d->n[x].s_len));
	/* the hashes on the way up: an object's is a sum, so one member's share is
	 * swapped; an array's chains its elements, so it is recomputed */
	for (k = np - 2; k >= 0; k--) {
		struct fj_node *e = &d->n[path[k]];
		int32_t ch = path[k + 1];

		if (e->type == FJ_OBJ) {
			e->h = e->h - fj_member_hash(s, &s->n[ch]) + fj_member_hash(d, &d->n[ch]);
		} else {
			uint64_t h = FJ_ARR * 0x9e3779b97f4a7c15ull;

			for (c = e->first; c >= 0; c = d->n[c].next)
				h = st_mix64(h ^ d->n[c].h);
			e->h = h;
		}
	}
	return 0;
}

/* ---- fj_locate ---- */

struct fj_skim {
	const char *src;
	size_t len, pre, ea;
	struct fj_spot *sp;
	bool found;
	struct fj_spot_lv cur[JSON_MAX_DEPTH + 1];
};

/* Whitespace before a token: most tokens follow the previous one directly, so the
 * call is made only when there is some. */
static inline const char *fj_skim_ws(const char *p, const char *e)
{
	return p < e && (uint8_t)*p > ' ' ? p : json_ws(p, e);
}

/* fj_value's grammar, step for step, without nodes or hashes; a string that is
 * not plain (an escape, a control character, no end) gives up: fj_value decodes
 * or refuses it, and fj_locate leaves both to the usual parse. The value at p (the
 * root, a container) to its end in *end. A loop over k->cur, not a recursion, with
 * the position in a register: it reads serverA's whole body for every located
 * pair, and the recursive form cost ~2,300 instructions on the benchmark's 108
 * bytes (issue 19, session 6). The value at depth d sits in the container
 * k->cur[d - 1]; like fj_value, none deeper than JSON_MAX_DEPTH. */
static int fj_skim_value(struct fj_skim *k, const char *p, const char **end)
{
	const char *s = k->src, *e = s + k->len, *q;
	struct fj_spot_lv *lv = NULL;
	int depth = 0;
	char c;

value:
	if (depth > JSON_MAX_DEPTH)
		return -EAGAIN;
	p = fj_skim_ws(p, e);
	if (p >= e)
		return -EAGAIN;
	c = *p;
	if (c == '{' || c == '[') {
		p = fj_skim_ws(p + 1, e);
		if (p < e && *p == (c == '{' ? '}' : ']')) {
			p++;
			goto done;
		}
		lv = &k->cur[depth++];
		lv->type = c == '{' ? FJ_OBJ : FJ_ARR;
		lv->index = 0;
		goto member;
	}
	if (c == '"') {
		q = fj_plain_end(p + 1, e);
		if (q >= e || *q != '"')
			return -EAGAIN;
		if ((size_t)(p - s) < k->pre && k->ea < (size_t)(q + 1 - s)) {
			/* the string holding the change strictly inside its quotes */
			k->found = true;
			k->sp->nlv = depth;
			memcpy(k->sp->lv, k->cur, (size_t)depth * sizeof(k->cur[0]));
			k->sp->v = (uint32_t)(p - s);
			k->sp->ve = (uint32_t)(q + 1 - s);
		}
		p = q + 1;
		goto done;
	}
	if (c == 't' || c == 'f' || c == 'n') {
		q = json_literal(p, e, c == 't' ? "true" : c == 'f' ? "false" : "null");
	} else {
		/* most numbers are plain integers: digits, then neither a fraction nor an
		 * exponent; anything else goes to json_number from the start */
		for (q = p; q < e && *q >= '0' && *q <= '9'; q++)
			;
		if (q == p || (q < e && (*q == '.' || *q == 'e' || *q == 'E')))
			q = json_number(p, e);
	}
	if (!q)
		return -EAGAIN;
	p = q;
done:
	/* a value ended at p: the root, or one member of the innermost container */
	if (!depth) {
		*end = p;
		return 0;
	}
	p = fj_skim_ws(p, e);
	if (p >= e)
		return -EAGAIN;
	c = *p++;
	if (c == (lv->type == FJ_OBJ ? '}' : ']')) {
		depth--;
		lv = depth ? &k->cur[depth - 1] : NULL;
		goto done;
	}
	if (c != ',')
		return -EAGAIN;
	lv->index++;
member:
	p = fj_skim_ws(p, e);
	if (lv->type == FJ_OBJ) {
		if (p >= e || *p != '"')
			return -EAGAIN;
		q = fj_plain_end(p + 1, e);
		if (q >= e || *q != '"')
			return -EAGAIN;
		lv->key = (uint32_t)(p + 1 - s);
		lv->key_len = (uint32_t)(q - (p + 1));
		p = fj_skim_ws(q + 1, e);
		if (p >= e || *p != ':')
			return -EAGAIN;
		p++;
	}
	goto value;
}

int fj_locate(struct fj_spot *sp, const char *a, size_t an, const char *b, size_t bn)
{
	size_t m = an < bn ? an : bn, pre, suf, i;
	struct fj_skim k;
	const char *p;
	int err;

	if (!a || !b || an >= UINT32_MAX || bn >= UINT32_MAX)
		return -EAGAIN;
	pre = fj_common_prefix(a, b, m);
	suf = fj_common_suffix(a + an, b + bn, m - pre);
	if (pre == an && pre == bn)
		return -EAGAIN;   /* the same text */
	/* serverB's side of the change must not end or escape the string */
	for (i = pre; i < bn - suf; i++)
		if (b[i] == '"' || b[i] == '\\' || (uint8_t)b[i] < 0x20)
			return -EAGAIN;
	k.src = a;
	k.len = an;
	k.pre = pre;
	k.ea = an - suf;
	k.sp = sp;
	k.found = false;
	p = json_ws(a, a + an);
	if (p >= a + an || (*p != '{' && *p != '['))
		return -EAGAIN;
	err = fj_skim_value(&k, p, &p);
	if (err)
		return err;
	if (json_ws(p, a + an) != a + an || !k.found)
		return -EAGAIN;
	sp->a = a;
	sp->b = b;
	sp->delta = (int64_t)bn - (int64_t)an;
	return 0;
}

/* ---- per-thread docs ---- */

static pthread_key_t fj_scratch_key;
static pthread_once_t fj_scratch_once = PTHREAD_ONCE_INIT;
static int fj_scratch_key_err;

static void fj_scratch_release(void *v)
{
	struct fj_doc *d = v;
	int i;

	for (i = 0; i < FJ_SCRATCH_DOCS; i++)
		fj_free(&d[i]);
	free(d);
}

static void fj_scratch_init(void)
{
	fj_scratch_key_err = pthread_key_create(&fj_scratch_key, fj_scratch_release);
}

struct fj_doc *fj_scratch(void)
{
	struct fj_doc *d;

	pthread_once(&fj_scratch_once, fj_scratch_init);
	if (fj_scratch_key_err)
		return NULL;
	d = pthread_getspecific(fj_scratch_key);
	if (d)
		return d;
	d = calloc(FJ_SCRATCH_DOCS, sizeof(*d));
	if (d && pthread_setspecific(fj_scratch_key, d)) {
		free(d);
		d = NULL;
	}
	return d;
}

void fj_scratch_done(struct fj_doc *d)
{
	if (d->cap > FJ_KEEP_NODES || d->acap > FJ_KEEP_ARENA || d->ocap > FJ_KEEP_NODES) {
		fj_free(d);
		return;
	}
	d->src = NULL;
	d->len = 0;
	d->nn = 0;
	d->alen = 0;
	d->norder = 0;
	d->twin = NULL;
	d->ndpath = 0;
}

static int fj_key_cmp(const struct fj_doc *d, int32_t x, int32_t y)
{
	const struct fj_node *a = &d->n[x], *b = &d->n[y];
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len, i;
	const unsigned char *ka = (const unsigned char *)fj_key(d, a), *kb = (const unsigned char *)fj_key(d, b);
	int r;

	/* keys are short: a loop beats a call, and the first bytes usually differ */
	for (i = 0; i < n && i < 16; i++)
		if (ka[i] != kb[i])
			return ka[i] < kb[i] ? -1 : 1;
	r = n > 16 ? memcmp(ka + 16, kb + 16, n - 16) : 0;
	if (r)
		return r;
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len ? -1 : 1;
	return x < y ? -1 : x > y;   /* duplicates keep their order */
}

static int fj_key_cmp_q(const void *x, const void *y, void *d)
{
	return fj_key_cmp(d, *(const int32_t *)x, *(const int32_t *)y);
}

int32_t fj_sorted(struct fj_doc *d, int32_t i)
{
	struct fj_node *n = &d->n[i];
	int32_t *o, c, k, j;

	if (n->sorted >= 0)
		return n->sorted;
	if (d->norder + n->nchild > d->ocap) {
		int32_t cap = d->ocap ? d->ocap : 64;

		while (cap < d->norder + n->nchild)
			cap *= 2;
		o = realloc(d->order, (size_t)cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		d->order = o;
		d->ocap = cap;
	}
	o = d->order + d->norder;
	if (d->twin && i < d->twin->nn && d->twin->n[i].sorted >= 0 && d->twin->n[i].nchild == n->nchild) {
		/* derived from the twin: the same members under the same keys */
		memcpy(o, d->twin->order + d->twin->n[i].sorted, (size_t)n->nchild * sizeof(*o));
	} else if (n->nchild > 16) {
		/* a large (or hostile) object: O(n log n) */
		for (c = n->first, k = 0; c >= 0; c = d->n[c].next, k++)
			o[k] = c;
		qsort_r(o, (size_t)n->nchild, sizeof(*o), fj_key_cmp_q, d);
	} else {
		/* insertion sort: most objects are small, and often come sorted already */
		for (c = n->first, k = 0; c >= 0; c = d->n[c].next, k++) {
			for (j = k; j > 0 && fj_key_cmp(d, o[j - 1], c) > 0; j--)
				o[j] = o[j - 1];
			o[j] = c;
		}
	}
	n->sorted = d->norder;
	d->norder += n->nchild;
	return n->sorted;
}
