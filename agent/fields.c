/* Field-level comparison.
 *
 * JSON is compared in place with the shared scanner (json.h), without building a
 * tree: objects by key (member order never matters), arrays element by element.
 * Whether two arrays hold the same elements in another order is decided on a
 * canonical 64-bit hash of each element (member order ignored inside objects), so
 * a set-like array in random order is one "order" difference, not N value ones.
 * Two equal hashes are taken as equal values: a collision would hide a difference
 * with odds of 2^-64 per pair, a price we pay to keep the comparison linear.
 *
 * Array indices fold to [*] in paths: the report counts requests in which a field
 * differed, and $.items[3].price and $.items[7].price are the same field. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fields.h"
#include "json.h"
#include "util.h"

static const char *const fields_kinds[FK_NKINDS] = {
	"value", "type", "missing", "extra", "length", "order",
};

const char *fields_kind_name(int kind)
{
	return kind >= 0 && kind < FK_NKINDS ? fields_kinds[kind] : "value";
}

int fields_kind_parse(const char *s, size_t n)
{
	int k;

	for (k = 0; k < FK_NKINDS; k++)
		if (strlen(fields_kinds[k]) == n && memcmp(fields_kinds[k], s, n) == 0)
			return k;
	return -1;
}

bool fields_real(double raw, double noise, double requests, double rel, double abs)
{
	double d = raw - noise;

	if (raw <= noise || requests <= 0)
		return false;
	return d / (raw + noise) > rel && d / requests > abs;
}

void fields_free(struct st_field *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(f[i].path);
		free(f[i].a);
		free(f[i].b);
	}
	free(f);
}

struct fc {
	struct st_field *v;
	size_t n, cap, total;
	int err;
	char path[FIELDS_PATH_MAX];
};

static char *fc_excerpt(const char *s, size_t n)
{
	char *c;

	if (!s)
		return NULL;
	if (n > FIELDS_VAL_MAX)
		n = FIELDS_VAL_MAX;
	c = malloc(n + 1);
	if (c) {
		memcpy(c, s, n);
		c[n] = '\0';
	}
	return c;
}

/* One difference at path[0..plen): kept once per (path, kind). */
static void fc_add(struct fc *c, size_t plen, int kind, const char *a, size_t an, const char *b,
		   size_t bn)
{
	struct st_field *f;
	size_t i;

	c->total++;
	if (c->err)
		return;
	for (i = 0; i < c->n; i++)
		if (c->v[i].kind == kind && strlen(c->v[i].path) == plen &&
		    memcmp(c->v[i].path, c->path, plen) == 0)
			return;
	if (c->n >= FIELDS_MAX)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4;

		f = realloc(c->v, cap * sizeof(*f));
		if (!f) {
			c->err = -ENOMEM;
			return;
		}
		c->v = f;
		c->cap = cap;
	}
	f = &c->v[c->n];
	memset(f, 0, sizeof(*f));
	f->kind = (uint8_t)kind;
	f->path = strndup(c->path, plen);
	f->a = fc_excerpt(a, an);
	f->b = fc_excerpt(b, bn);
	if (!f->path || (a && !f->a) || (b && !f->b)) {
		free(f->path);
		free(f->a);
		free(f->b);
		c->err = -ENOMEM;
		return;
	}
	c->n++;
}

/* Appends s to the path; returns the new length, or plen when it does not fit (the
 * difference is then reported at the parent, which is still true). */
static size_t fc_path(struct fc *c, size_t plen, const char *s, size_t n)
{
	if (plen + n >= FIELDS_PATH_MAX)
		return plen;
	memcpy(c->path + plen, s, n);
	c->path[plen + n] = '\0';
	return plen + n;
}

static size_t fc_path_key(struct fc *c, size_t plen, const char *k, size_t kn)
{
	char tmp[FIELDS_PATH_MAX];
	size_t i, o = 0;
	bool ident = kn > 0;

	for (i = 0; i < kn; i++)
		if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-' && k[i] != '$')
			ident = false;
	if (ident) {
		tmp[o++] = '.';
		for (i = 0; i < kn && o < sizeof(tmp) - 1; i++)
			tmp[o++] = k[i];
		return o >= sizeof(tmp) - 1 ? plen : fc_path(c, plen, tmp, o);
	}
	tmp[o++] = '[';
	tmp[o++] = '"';
	for (i = 0; i < kn && o < sizeof(tmp) - 4; i++)
		tmp[o++] = (unsigned char)k[i] < 0x20 || k[i] == '"' ? '?' : k[i];
	if (i < kn)
		return plen;
	tmp[o++] = '"';
	tmp[o++] = ']';
	return fc_path(c, plen, tmp, o);
}

/* ---- JSON ---- */

enum { JT_NULL, JT_BOOL, JT_NUM, JT_STR, JT_ARR, JT_OBJ };

static int fj_type(const char *p)
{
	switch (*p) {
	case '{': return JT_OBJ;
	case '[': return JT_ARR;
	case '"': return JT_STR;
	case 't': case 'f': return JT_BOOL;
	case 'n': return JT_NULL;
	default: return JT_NUM;
	}
}

static uint64_t fj_bytes(uint64_t h, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
	return h;
}

/* Canonical hash of the (valid) value at [p, e): object members are summed, so
 * their order does not count; array elements are chained, so theirs does. */
static uint64_t fj_hash(const char *p, const char *e, int depth)
{
	struct json_iter it;
	const char *k, *v, *ve;
	size_t kn;
	uint64_t h;
	int t = fj_type(p);

	if ((t != JT_OBJ && t != JT_ARR) || depth >= JSON_MAX_DEPTH)
		return st_mix64(fj_bytes(0xcbf29ce484222325ull + (uint64_t)t, p, (size_t)(e - p)));
	h = (uint64_t)t * 0x9e3779b97f4a7c15ull;
	if (json_iter_init(&it, p, e, 0, depth))
		return h;
	while (json_iter_next(&it, &k, &kn, &v, &ve) == 1) {
		uint64_t x = fj_hash(v, ve, depth + 1);

		if (t == JT_OBJ)
			h += st_mix64(fj_bytes(0xcbf29ce484222325ull, k, kn) ^ x);
		else
			h = st_mix64(h ^ x);
	}
	return h;
}

/* Numbers: the same text, or the same double when either has a fraction or an
 * exponent (JSON integers have no leading zeros, so other integer texts differ
 * and are never folded through a double, which would lose digits past 2^53). */
static bool fj_num_eq(const char *a, size_t an, const char *b, size_t bn)
{
	char x[64], y[64];

	if (an == bn && memcmp(a, b, an) == 0)
		return true;
	if (!memchr(a, '.', an) && !memchr(a, 'e', an) && !memchr(a, 'E', an) &&
	    !memchr(b, '.', bn) && !memchr(b, 'e', bn) && !memchr(b, 'E', bn) && an > 2 && bn > 2)
		return false;
	if (an >= sizeof(x) || bn >= sizeof(y))
		return false;
	memcpy(x, a, an);
	x[an] = '\0';
	memcpy(y, b, bn);
	y[bn] = '\0';
	return strtod(x, NULL) == strtod(y, NULL);
}

/* Strings: the same raw text, or the same text once escapes are decoded. */
static int fj_str_eq(const char *a, const char *ae, const char *b, const char *be)
{
	char *x, *y;
	size_t xn, yn;
	int eq;

	if (ae - a == be - b && memcmp(a, b, (size_t)(ae - a)) == 0)
		return 1;
	if (!memchr(a, '\\', (size_t)(ae - a)) && !memchr(b, '\\', (size_t)(be - b)))
		return 0;
	x = malloc((size_t)(ae - a));
	y = malloc((size_t)(be - b));
	if (!x || !y) {
		free(x);
		free(y);
		return -ENOMEM;
	}
	eq = json_string_decode(a, ae, x, &xn) && json_string_decode(b, be, y, &yn) && xn == yn &&
	     memcmp(x, y, xn) == 0;
	free(x);
	free(y);
	return eq;
}

struct fj_el {
	const char *k, *v, *ve;
	size_t kn;
	uint64_t h;
};

static bool fj_raw_eq(const struct fj_el *a, const struct fj_el *b)
{
	return a->ve - a->v == b->ve - b->v && memcmp(a->v, b->v, (size_t)(a->ve - a->v)) == 0;
}

/* The elements (members) of the container at [p, e); their hashes only when
 * hash (hashing walks each element again, so it is done only where the order of
 * an array's elements has to be judged). */
static int fj_elements(const char *p, const char *e, int depth, bool hash, struct fj_el **out,
		       size_t *n)
{
	struct json_iter it;
	struct fj_el *v = NULL, *nv;
	size_t cap = 0;
	int r;

	*n = 0;
	if (json_iter_init(&it, p, e, 0, depth))
		return -EINVAL;
	for (;;) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		r = json_iter_next(&it, &v[*n].k, &v[*n].kn, &v[*n].v, &v[*n].ve);
		if (r != 1)
			break;
		v[*n].h = hash ? fj_hash(v[*n].v, v[*n].ve, depth + 1) : 0;
		(*n)++;
	}
	*out = v;
	return r < 0 ? r : 0;
}

static int fj_key_cmp(const void *x, const void *y)
{
	const struct fj_el *a = x, *b = y;
	size_t n = a->kn < b->kn ? a->kn : b->kn;
	int r = memcmp(a->k, b->k, n);

	if (r)
		return r;
	if (a->kn != b->kn)
		return a->kn < b->kn ? -1 : 1;
	return a->v < b->v ? -1 : a->v > b->v;   /* duplicates keep their order */
}

static int fj_u64_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

static void fj_cmp(struct fc *c, const char *a, const char *ae, const char *b, const char *be,
		   size_t plen, int depth);

static void fj_cmp_obj(struct fc *c, const char *a, const char *ae, const char *b,
		       const char *be, size_t plen, int depth)
{
	struct fj_el *ea = NULL, *eb = NULL;
	size_t na = 0, nb = 0, i = 0, j = 0, kl;
	int r;

	if (fj_elements(a, ae, depth, false, &ea, &na) || fj_elements(b, be, depth, false, &eb, &nb)) {
		c->err = c->err ?: -ENOMEM;
		goto out;
	}
	qsort(ea, na, sizeof(*ea), fj_key_cmp);
	qsort(eb, nb, sizeof(*eb), fj_key_cmp);
	while (i < na || j < nb) {
		if (i == na)
			r = 1;
		else if (j == nb)
			r = -1;
		else if (ea[i].kn == eb[j].kn && memcmp(ea[i].k, eb[j].k, ea[i].kn) == 0)
			r = 0;
		else
			r = fj_key_cmp(&ea[i], &eb[j]);
		if (r == 0) {
			/* the same text is the same value; other text may still be (key
			 * order, spaces, escapes), which the walk below finds */
			if (!fj_raw_eq(&ea[i], &eb[j])) {
				kl = fc_path_key(c, plen, ea[i].k, ea[i].kn);
				fj_cmp(c, ea[i].v, ea[i].ve, eb[j].v, eb[j].ve, kl, depth + 1);
			}
			i++;
			j++;
		} else if (r < 0) {
			kl = fc_path_key(c, plen, ea[i].k, ea[i].kn);
			fc_add(c, kl, FK_MISSING, ea[i].v, (size_t)(ea[i].ve - ea[i].v), NULL, 0);
			i++;
		} else {
			kl = fc_path_key(c, plen, eb[j].k, eb[j].kn);
			fc_add(c, kl, FK_EXTRA, NULL, 0, eb[j].v, (size_t)(eb[j].ve - eb[j].v));
			j++;
		}
	}
out:
	free(ea);
	free(eb);
}

static void fj_cmp_arr(struct fc *c, const char *a, const char *ae, const char *b,
		       const char *be, size_t plen, int depth)
{
	struct fj_el *ea = NULL, *eb = NULL;
	uint64_t *ha = NULL, *hb = NULL;
	size_t na = 0, nb = 0, i, pl;
	char sa[24], sb[24];
	bool same = true;

	if (fj_elements(a, ae, depth, false, &ea, &na) || fj_elements(b, be, depth, false, &eb, &nb)) {
		c->err = c->err ?: -ENOMEM;
		goto out;
	}
	if (na != nb) {
		/* element by element would blame every shifted element */
		snprintf(sa, sizeof(sa), "%zu items", na);
		snprintf(sb, sizeof(sb), "%zu items", nb);
		fc_add(c, plen, FK_LENGTH, sa, strlen(sa), sb, strlen(sb));
		goto out;
	}
	for (i = 0; i < na; i++)
		if (!fj_raw_eq(&ea[i], &eb[i]))
			same = false;
	if (same)
		goto out;
	for (i = 0; i < na; i++) {
		ea[i].h = fj_hash(ea[i].v, ea[i].ve, depth + 1);
		eb[i].h = fj_hash(eb[i].v, eb[i].ve, depth + 1);
	}
	same = true;
	for (i = 0; i < na; i++)
		if (ea[i].h != eb[i].h)
			same = false;
	if (same)
		goto out;   /* other text, same values (key order, spaces) */
	ha = malloc((na ? na : 1) * sizeof(*ha));
	hb = malloc((na ? na : 1) * sizeof(*hb));
	if (!ha || !hb) {
		c->err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < na; i++) {
		ha[i] = ea[i].h;
		hb[i] = eb[i].h;
	}
	qsort(ha, na, sizeof(*ha), fj_u64_cmp);
	qsort(hb, na, sizeof(*hb), fj_u64_cmp);
	if (memcmp(ha, hb, na * sizeof(*ha)) == 0) {
		fc_add(c, plen, FK_ORDER, a, (size_t)(ae - a), b, (size_t)(be - b));
		goto out;
	}
	pl = fc_path(c, plen, "[*]", 3);
	for (i = 0; i < na; i++)
		if (ea[i].h != eb[i].h)
			fj_cmp(c, ea[i].v, ea[i].ve, eb[i].v, eb[i].ve, pl, depth + 1);
out:
	free(ea);
	free(eb);
	free(ha);
	free(hb);
}

static void fj_cmp(struct fc *c, const char *a, const char *ae, const char *b, const char *be,
		   size_t plen, int depth)
{
	int ta = fj_type(a), tb = fj_type(b), eq;

	if (c->err)
		return;
	if (ta != tb) {
		fc_add(c, plen, FK_TYPE, a, (size_t)(ae - a), b, (size_t)(be - b));
		return;
	}
	if (depth >= JSON_MAX_DEPTH && (ta == JT_OBJ || ta == JT_ARR))
		ta = JT_NULL;   /* too deep to walk: compare as text */
	switch (ta) {
	case JT_OBJ:
		fj_cmp_obj(c, a, ae, b, be, plen, depth);
		return;
	case JT_ARR:
		fj_cmp_arr(c, a, ae, b, be, plen, depth);
		return;
	case JT_NUM:
		eq = fj_num_eq(a, (size_t)(ae - a), b, (size_t)(be - b));
		break;
	case JT_STR:
		eq = fj_str_eq(a, ae, b, be);
		if (eq < 0) {
			c->err = eq;
			return;
		}
		break;
	default:
		eq = ae - a == be - b && memcmp(a, b, (size_t)(ae - a)) == 0;
		break;
	}
	if (!eq)
		fc_add(c, plen, FK_VALUE, a, (size_t)(ae - a), b, (size_t)(be - b));
}

/* The whole body is one JSON value: [*v, *ve) without the surrounding spaces. */
static bool fj_whole(const struct st_msg *m, const char **v, const char **ve)
{
	const char *p = m->body ? (const char *)m->body : "", *e = p + m->body_stored, *q;

	p = json_ws(p, e);
	if (p == e || (*p != '{' && *p != '['))
		return false;
	q = json_skip(p, e, 0);
	if (!q || json_ws(q, e) != e)
		return false;
	*v = p;
	*ve = q;
	return true;
}

/* ---- forms and text ---- */

static bool fc_ctype_is(const struct st_msg *m, const char *want)
{
	size_t i, n, wl = strlen(want);

	for (i = 0; i < m->nhdrs; i++) {
		const struct http1_header *h = &m->hdrs[i];

		if (h->name_len != 12 || strncasecmp(h->name, "content-type", 12))
			continue;
		n = strcspn(h->value, ";");
		if (n > h->value_len)
			n = h->value_len;
		while (n && (h->value[n - 1] == ' ' || h->value[n - 1] == '\t'))
			n--;
		if (want[wl - 1] == '/')
			return n >= wl && strncasecmp(h->value, want, wl) == 0;
		return n == wl && strncasecmp(h->value, want, wl) == 0;
	}
	return false;
}

/* Splits "k=v&k2=v2" into elements (key, value) sorted by key. */
static int fc_form(const struct st_msg *m, struct fj_el **out, size_t *n)
{
	const char *p = m->body ? (const char *)m->body : "", *e = p + m->body_stored;
	struct fj_el *v = NULL, *nv;
	size_t cap = 0;

	*n = 0;
	while (p < e) {
		const char *amp = memchr(p, '&', (size_t)(e - p)), *end = amp ? amp : e;
		const char *eq = memchr(p, '=', (size_t)(end - p));

		if (end > p) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 8;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			v[*n].k = p;
			v[*n].kn = (size_t)((eq ? eq : end) - p);
			v[*n].v = eq ? eq + 1 : end;
			v[*n].ve = end;
			(*n)++;
		}
		p = end + 1;
	}
	if (*n)
		qsort(v, *n, sizeof(*v), fj_key_cmp);
	*out = v;
	return 0;
}

static void fc_cmp_form(struct fc *c, const struct st_msg *a, const struct st_msg *b)
{
	struct fj_el *ea = NULL, *eb = NULL;
	size_t na = 0, nb = 0, i = 0, j = 0, pl;
	int r;

	if (fc_form(a, &ea, &na) || fc_form(b, &eb, &nb)) {
		c->err = -ENOMEM;
		goto out;
	}
	while (i < na || j < nb) {
		if (i == na)
			r = 1;
		else if (j == nb)
			r = -1;
		else if (ea[i].kn == eb[j].kn && memcmp(ea[i].k, eb[j].k, ea[i].kn) == 0)
			r = 0;
		else
			r = fj_key_cmp(&ea[i], &eb[j]);
		pl = fc_path(c, 0, "form.", 5);
		pl = r > 0 ? fc_path(c, pl, eb[j].k, eb[j].kn) : fc_path(c, pl, ea[i].k, ea[i].kn);
		if (r == 0) {
			if (ea[i].ve - ea[i].v != eb[j].ve - eb[j].v ||
			    memcmp(ea[i].v, eb[j].v, (size_t)(ea[i].ve - ea[i].v)))
				fc_add(c, pl, FK_VALUE, ea[i].v, (size_t)(ea[i].ve - ea[i].v), eb[j].v,
				       (size_t)(eb[j].ve - eb[j].v));
			i++;
			j++;
		} else if (r < 0) {
			fc_add(c, pl, FK_MISSING, ea[i].v, (size_t)(ea[i].ve - ea[i].v), NULL, 0);
			i++;
		} else {
			fc_add(c, pl, FK_EXTRA, NULL, 0, eb[j].v, (size_t)(eb[j].ve - eb[j].v));
			j++;
		}
	}
out:
	free(ea);
	free(eb);
}

static bool fc_is_text(const struct st_msg *m)
{
	return !m->body_stored || !memchr(m->body, '\0', m->body_stored);
}

static size_t fc_line(const char *p, const char *e, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(e - p));
	size_t n = (size_t)((nl ? nl : e) - p);

	*next = nl ? nl + 1 : e;
	if (n && p[n - 1] == '\r')
		n--;
	return n;
}

static void fc_cmp_text(struct fc *c, const struct st_msg *a, const struct st_msg *b)
{
	const char *pa = a->body ? (const char *)a->body : "", *ea = pa + a->body_stored;
	const char *pb = b->body ? (const char *)b->body : "", *eb = pb + b->body_stored;
	size_t la = 0, lb = 0, line = 0, an, bn, pl;
	char tmp[32];

	while (pa < ea && pb < eb && !c->err) {
		const char *sa = pa, *sb = pb;

		an = fc_line(pa, ea, &pa);
		bn = fc_line(pb, eb, &pb);
		if (an != bn || memcmp(sa, sb, an)) {
			pl = (size_t)snprintf(tmp, sizeof(tmp), "line[%zu]", line);
			fc_add(c, fc_path(c, 0, tmp, pl), FK_VALUE, sa, an, sb, bn);
		}
		line++;
	}
	la = lb = line;
	while (pa < ea) {
		fc_line(pa, ea, &pa);
		la++;
	}
	while (pb < eb) {
		fc_line(pb, eb, &pb);
		lb++;
	}
	if (la != lb) {
		char sa[24], sb[24];

		snprintf(sa, sizeof(sa), "%zu lines", la);
		snprintf(sb, sizeof(sb), "%zu lines", lb);
		fc_add(c, fc_path(c, 0, "lines", 5), FK_LENGTH, sa, strlen(sa), sb, strlen(sb));
	}
}

static void fc_cmp_body(struct fc *c, const struct st_msg *a, const struct st_msg *b)
{
	const char *va, *vae, *vb, *vbe;

	if (a->body_stored == b->body_stored && a->body_bytes == b->body_bytes &&
	    (!a->body_stored || memcmp(a->body, b->body, a->body_stored) == 0))
		return;
	if (a->body_stored < a->body_bytes || b->body_stored < b->body_bytes) {
		/* cut at the body limit: the structure of the rest is unknown */
		fc_add(c, fc_path(c, 0, "body", 4), FK_VALUE, NULL, 0, NULL, 0);
		return;
	}
	if (fj_whole(a, &va, &vae) && fj_whole(b, &vb, &vbe)) {
		c->path[0] = '$';
		fj_cmp(c, va, vae, vb, vbe, 1, 0);
		return;
	}
	if (fc_ctype_is(a, "application/x-www-form-urlencoded") &&
	    fc_ctype_is(b, "application/x-www-form-urlencoded")) {
		fc_cmp_form(c, a, b);
		return;
	}
	if (fc_is_text(a) && fc_is_text(b)) {
		fc_cmp_text(c, a, b);
		return;
	}
	fc_add(c, fc_path(c, 0, "body", 4), FK_VALUE, NULL, 0, NULL, 0);
}

/* ---- status and headers ---- */

static bool fc_ignored(const char *const *ignore, const char *name, size_t n)
{
	if (n == 14 && strncasecmp(name, "content-length", 14) == 0)
		return true;   /* the body comparison says it better */
	for (; ignore && *ignore; ignore++)
		if (strlen(*ignore) == n && strncasecmp(*ignore, name, n) == 0)
			return true;
	return false;
}

/* The first value of header name in m, or NULL. */
static const struct http1_header *fc_hdr(const struct st_msg *m, const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < m->nhdrs; i++)
		if (m->hdrs[i].name_len == n && strncasecmp(m->hdrs[i].name, name, n) == 0)
			return &m->hdrs[i];
	return NULL;
}

static void fc_cmp_headers(struct fc *c, const struct st_msg *a, const struct st_msg *b,
			   const char *const *ignore)
{
	const struct http1_header *h, *o;
	size_t i, pl, k;
	char name[128];

	for (i = 0; i < a->nhdrs + b->nhdrs; i++) {
		bool in_a = i < a->nhdrs;
		const struct st_msg *m = in_a ? a : b;

		h = &m->hdrs[in_a ? i : i - a->nhdrs];
		if (fc_ignored(ignore, h->name, h->name_len) || fc_hdr(m, h->name, h->name_len) != h)
			continue;   /* ignored, or a repeat: the first occurrence speaks for it */
		memcpy(name, "header:", 7);
		for (k = 0; k < h->name_len && 7 + k < sizeof(name) - 1; k++)
			name[7 + k] = (char)tolower((unsigned char)h->name[k]);
		pl = fc_path(c, 0, name, 7 + k);
		o = fc_hdr(in_a ? b : a, h->name, h->name_len);
		if (!o)
			fc_add(c, pl, in_a ? FK_MISSING : FK_EXTRA, in_a ? h->value : NULL,
			       in_a ? h->value_len : 0, in_a ? NULL : h->value, in_a ? 0 : h->value_len);
		else if (in_a && (o->value_len != h->value_len ||
				  memcmp(o->value, h->value, h->value_len)))
			fc_add(c, pl, FK_VALUE, h->value, h->value_len, o->value, o->value_len);
	}
}

int fields_compare(int a_status, const struct st_msg *a, int b_status, const struct st_msg *b,
		   const char *const *ignore, struct st_field **out, size_t *nout, size_t *total)
{
	struct fc c;
	char sa[8], sb[8];

	memset(&c, 0, sizeof(c));
	c.v = *out;
	c.n = c.cap = *nout;
	c.total = *total;
	if (a_status != b_status) {
		snprintf(sa, sizeof(sa), "%d", a_status);
		snprintf(sb, sizeof(sb), "%d", b_status);
		fc_add(&c, fc_path(&c, 0, "status", 6), FK_VALUE, sa, strlen(sa), sb, strlen(sb));
	}
	fc_cmp_headers(&c, a, b, ignore);
	fc_cmp_body(&c, a, b);
	*out = c.v;
	*nout = c.n;
	*total = c.total;
	return c.err;
}
