/* Field-level comparison.
 *
 * JSON bodies are flattened once each (fields_json.c: one pass, every node with
 * its canonical hash) and compared on the flat nodes: objects by key (member order
 * never matters), arrays element by element, equal subtrees skipped on their
 * hashes. Whether two arrays hold the same elements in another order is decided on
 * those hashes (member order ignored inside objects), so a set-like array in random
 * order is one "order" difference, not N value ones. Two equal hashes are taken as
 * equal values: a collision would hide a difference with odds of 2^-64 per pair, a
 * price we pay to keep the comparison linear.
 *
 * Array indices fold to [*] in paths: the report counts requests in which a field
 * differed, and $.items[3].price and $.items[7].price are the same field. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fields.h"
#include "fields_json.h"
#include "json.h"
#include "util.h"

bool fields_fast = true;

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

/* ---- the output's strings ---- */

#define FIELDS_TEXT_KEEP (16 * 1024)

size_t fields_text_add(struct fields_text *t, const char *s, size_t n, bool lower)
{
	size_t off = t->len, k;

	if (t->err)
		return 0;
	if (n + 1 > t->cap - t->len) {
		size_t cap = t->cap ? t->cap : 512;
		char *p;

		while (cap - t->len < n + 1)
			cap *= 2;
		p = realloc(t->p, cap);
		if (!p) {
			t->err = -ENOMEM;
			return 0;
		}
		t->p = p;
		t->cap = cap;
	}
	if (lower)
		for (k = 0; k < n; k++)
			t->p[off + k] = (char)tolower((unsigned char)s[k]);
	else if (n)
		memcpy(t->p + off, s, n);
	t->p[off + n] = '\0';
	t->len += n + 1;
	return off;
}

static pthread_key_t fields_text_key;
static pthread_once_t fields_text_once = PTHREAD_ONCE_INIT;
static int fields_text_key_err;

static void fields_text_release(void *v)
{
	struct fields_text *t = v;

	free(t->p);
	free(t);
}

static void fields_text_init(void)
{
	fields_text_key_err = pthread_key_create(&fields_text_key, fields_text_release);
}

struct fields_text *fields_text_scratch(void)
{
	struct fields_text *t;

	pthread_once(&fields_text_once, fields_text_init);
	if (fields_text_key_err)
		return NULL;
	t = pthread_getspecific(fields_text_key);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (t && pthread_setspecific(fields_text_key, t)) {
			free(t);
			t = NULL;
		}
	}
	if (t) {
		t->len = 0;
		t->err = 0;
	}
	return t;
}

void fields_text_done(struct fields_text *t)
{
	if (t->cap > FIELDS_TEXT_KEEP) {
		free(t->p);
		t->p = NULL;
		t->cap = 0;
	}
	t->len = 0;
	t->err = 0;
}

struct fc {
	struct fields_acc *acc;
	const struct fj_spot *sp;
	int err;
	char path[FIELDS_PATH_MAX];
};

/* One difference at path[0..plen): kept once per (path, kind). */
static void fc_add(struct fc *c, size_t plen, int kind, const char *a, size_t an, const char *b,
		   size_t bn)
{
	struct fields_acc *x = c->acc;
	struct fields_ent *f;
	size_t i;

	x->total++;
	if (c->err)
		return;
	for (i = 0; i < x->n; i++)
		if (x->e[i].kind == kind && x->e[i].path_len == plen &&
		    memcmp(x->t->p + x->e[i].path, c->path, plen) == 0)
			return;
	if (x->n >= FIELDS_MAX)
		return;
	f = &x->e[x->n];
	f->kind = (uint8_t)kind;
	f->path = fields_text_add(x->t, c->path, plen, false);
	f->path_len = plen;
	f->has_a = a != NULL;
	f->has_b = b != NULL;
	f->a = a ? fields_text_add(x->t, a, an > FIELDS_VAL_MAX ? FIELDS_VAL_MAX : an, false) : 0;
	f->b = b ? fields_text_add(x->t, b, bn > FIELDS_VAL_MAX ? FIELDS_VAL_MAX : bn, false) : 0;
	if (x->t->err) {
		c->err = -ENOMEM;
		return;
	}
	x->n++;
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

const uint8_t fields_ident_tab[256] = {
	['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['_'] = 1, ['-'] = 1, ['$'] = 1,
};

static size_t fc_path_key(struct fc *c, size_t plen, const char *k, size_t kn)
{
	char tmp[FIELDS_PATH_MAX];
	size_t i, o = 0;

	if (fields_key_ident(k, kn)) {
		/* ".key" straight into the path, within the same bounds as fc_path's */
		if (kn + 1 >= FIELDS_PATH_MAX - 1 || plen + kn + 1 >= FIELDS_PATH_MAX)
			return plen;
		c->path[plen] = '.';
		memcpy(c->path + plen + 1, k, kn);
		c->path[plen + 1 + kn] = '\0';
		return plen + 1 + kn;
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

/* fc_form splits a form into these, sorted by key */
struct fj_el {
	const char *k, *v, *ve;
	size_t kn;
};

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

/* Two flattened bodies (fields_json.h) and scratch for array hashes. */
struct fjc {
	struct fc *c;
	struct fj_doc *a, *b;
	uint64_t *ha, *hb;
	size_t hcap;
};

#define FJ_TEXT(d, x) ((d)->src + (x)->v), ((size_t)((x)->ve - (x)->v))

static void fjc_cmp(struct fjc *x, int32_t ia, int32_t ib, size_t plen);

static void fjc_cmp_obj(struct fjc *x, int32_t ia, int32_t ib, size_t plen)
{
	int32_t sa = fj_sorted(x->a, ia), sb = fj_sorted(x->b, ib);
	int32_t na = x->a->n[ia].nchild, nb = x->b->n[ib].nchild, i = 0, j = 0;
	struct fc *c = x->c;
	size_t kl;
	int r;

	if (sa < 0 || sb < 0) {
		c->err = -ENOMEM;
		return;
	}
	while ((i < na || j < nb) && !c->err) {
		const struct fj_node *ma = i < na ? &x->a->n[x->a->order[sa + i]] : NULL, *mb = j < nb ? &x->b->n[x->b->order[sb + j]] : NULL;

		if (!ma) {
			r = 1;
		} else if (!mb) {
			r = -1;
		} else {
			size_t n = ma->key_len < mb->key_len ? ma->key_len : mb->key_len;

			r = memcmp(fj_key(x->a, ma), fj_key(x->b, mb), n);
			if (!r && ma->key_len != mb->key_len)
				r = ma->key_len < mb->key_len ? -1 : 1;
		}
		if (r == 0) {
			/* equal values: no path to build (fjc_cmp would stop at once) */
			if (ma->h != mb->h) {
				kl = fc_path_key(c, plen, fj_key(x->a, ma), ma->key_len);
				fjc_cmp(x, x->a->order[sa + i], x->b->order[sb + j], kl);
			}
			i++;
			j++;
		} else if (r < 0) {
			kl = fc_path_key(c, plen, fj_key(x->a, ma), ma->key_len);
			fc_add(c, kl, FK_MISSING, FJ_TEXT(x->a, ma), NULL, 0);
			i++;
		} else {
			kl = fc_path_key(c, plen, fj_key(x->b, mb), mb->key_len);
			fc_add(c, kl, FK_EXTRA, NULL, 0, FJ_TEXT(x->b, mb));
			j++;
		}
	}
}

static void fjc_cmp_arr(struct fjc *x, int32_t ia, int32_t ib, size_t plen)
{
	const struct fj_node *a = &x->a->n[ia], *b = &x->b->n[ib];
	size_t n = (size_t)a->nchild, i, pl;
	struct fc *c = x->c;
	int32_t ca, cb;
	char sa[24], sb[24];

	if (a->nchild != b->nchild) {
		/* element by element would blame every shifted element */
		snprintf(sa, sizeof(sa), "%d items", a->nchild);
		snprintf(sb, sizeof(sb), "%d items", b->nchild);
		fc_add(c, plen, FK_LENGTH, sa, strlen(sa), sb, strlen(sb));
		return;
	}
	/* the same elements in another order? Decided on the hashes the parse made */
	if (n > x->hcap) {
		uint64_t *ha = realloc(x->ha, n * sizeof(*ha)), *hb;

		if (ha)
			x->ha = ha;
		hb = ha ? realloc(x->hb, n * sizeof(*hb)) : NULL;
		if (!hb) {
			c->err = -ENOMEM;
			return;
		}
		x->hb = hb;
		x->hcap = n;
	}
	for (ca = a->first, cb = b->first, i = 0; ca >= 0 && cb >= 0;
	     ca = x->a->n[ca].next, cb = x->b->n[cb].next, i++) {
		x->ha[i] = x->a->n[ca].h;
		x->hb[i] = x->b->n[cb].h;
	}
	qsort(x->ha, n, sizeof(*x->ha), fj_u64_cmp);
	qsort(x->hb, n, sizeof(*x->hb), fj_u64_cmp);
	if (memcmp(x->ha, x->hb, n * sizeof(*x->ha)) == 0) {
		fc_add(c, plen, FK_ORDER, FJ_TEXT(x->a, a), FJ_TEXT(x->b, b));
		return;
	}
	pl = fc_path(c, plen, "[*]", 3);
	for (ca = a->first, cb = b->first; ca >= 0 && cb >= 0 && !c->err;
	     ca = x->a->n[ca].next, cb = x->b->n[cb].next)
		fjc_cmp(x, ca, cb, pl);
}

static void fjc_cmp(struct fjc *x, int32_t ia, int32_t ib, size_t plen)
{
	const struct fj_node *a = &x->a->n[ia], *b = &x->b->n[ib];
	struct fc *c = x->c;
	bool eq;

	/* equal hashes, equal values: the subtree is not walked again */
	if (c->err || a->h == b->h)
		return;
	if (a->type != b->type) {
		fc_add(c, plen, FK_TYPE, FJ_TEXT(x->a, a), FJ_TEXT(x->b, b));
		return;
	}
	switch (a->type) {
	case FJ_OBJ:
		fjc_cmp_obj(x, ia, ib, plen);
		return;
	case FJ_ARR:
		fjc_cmp_arr(x, ia, ib, plen);
		return;
	case FJ_NUM:
		eq = fj_num_eq(FJ_TEXT(x->a, a), FJ_TEXT(x->b, b));
		break;
	case FJ_STR:
		eq = a->s_len == b->s_len && !memcmp(fj_s(x->a, a), fj_s(x->b, b), a->s_len);
		break;
	default:
		eq = a->ve - a->v == b->ve - b->v && !memcmp(x->a->src + a->v, x->b->src + b->v, a->ve - a->v);
		break;
	}
	if (!eq)
		fc_add(c, plen, FK_VALUE, FJ_TEXT(x->a, a), FJ_TEXT(x->b, b));
}

/* b was derived from a (fj_derive): they differ in one string and are byte for byte
 * the same elsewhere, so every other subtree hashes equal (and every array on the
 * way holds other elements, one hash having changed) and fjc_cmp would go straight
 * down to that string: the same difference, found without the walk. */
static void fjc_cmp_derived(struct fjc *x)
{
	const struct fj_doc *a = x->a, *b = x->b;
	const struct fj_node *na, *nb;
	size_t plen = 1;
	int32_t k;

	for (k = 0; k + 1 < b->ndpath; k++) {
		const struct fj_node *e = &a->n[b->dpath[k]], *m = &a->n[b->dpath[k + 1]];

		if (e->type == FJ_OBJ)
			plen = fc_path_key(x->c, plen, fj_key(a, m), m->key_len);
		else
			plen = fc_path(x->c, plen, "[*]", 3);
	}
	na = &a->n[b->dpath[b->ndpath - 1]];
	nb = &b->n[b->dpath[b->ndpath - 1]];
	fc_add(x->c, plen, FK_VALUE, FJ_TEXT(a, na), FJ_TEXT(b, nb));
}

/* fjc_cmp_derived on fj_locate's answer: the same path and texts. */
static void fc_cmp_spot(struct fc *c, const struct fj_spot *sp)
{
	size_t plen = 1;
	int32_t k;

	c->path[0] = '$';
	for (k = 0; k < sp->nlv; k++) {
		const struct fj_spot_lv *lv = &sp->lv[k];

		if (lv->type == FJ_OBJ)
			plen = fc_path_key(c, plen, sp->a + lv->key, lv->key_len);
		else
			plen = fc_path(c, plen, "[*]", 3);
	}
	fc_add(c, plen, FK_VALUE, sp->a + sp->v, sp->ve - sp->v, sp->b + sp->v,
	       (size_t)((int64_t)sp->ve + sp->delta) - sp->v);
}

/* The body starts like a JSON container: worth flattening. */
static bool fj_container(const struct st_msg *m)
{
	const char *p = m->body ? (const char *)m->body : "", *e = p + m->body_stored;

	p = json_ws(p, e);
	return p < e && (*p == '{' || *p == '[');
}

static bool fj_doc_container(const struct fj_doc *d)
{
	return d && d->n && d->nn > 0 && (d->n[0].type == FJ_OBJ || d->n[0].type == FJ_ARR);
}

/* 1 when both bodies were compared as JSON, 0 when they are not both JSON. */
static int fc_cmp_json(struct fc *c, const struct st_msg *a, struct fj_doc *da,
		       const struct st_msg *b, struct fj_doc *db)
{
	struct fj_doc local[2], *docs = NULL;
	struct fjc x = { .c = c };
	int ok = 0, err, i;

	if (c->sp) {
		fc_cmp_spot(c, c->sp);
		return 1;
	}
	if (!da || !db) {
		/* not parsed by the caller: flatten each body once here (the second
		 * derived from the first when they differ inside one string) */
		if (!fj_container(a) || !fj_container(b))
			return 0;
		docs = fields_fast ? fj_scratch() : NULL;
		if (docs) {
			docs += 2;   /* diff.c's are 0 and 1 */
		} else {
			memset(local, 0, sizeof(local));
			docs = local;
		}
		err = fj_reparse(&docs[0], (const char *)a->body, a->body_stored);
		if (!err) {
			err = fields_fast ? fj_derive(&docs[1], &docs[0], (const char *)b->body, b->body_stored)
					  : -EAGAIN;
			if (err == -EAGAIN)
				err = fj_reparse(&docs[1], (const char *)b->body, b->body_stored);
		}
		if (err) {
			if (err == -ENOMEM)
				c->err = err;
			goto out;
		}
		da = &docs[0];
		db = &docs[1];
	}
	if (!fj_doc_container(da) || !fj_doc_container(db))
		goto out;
	c->path[0] = '$';
	x.a = da;
	x.b = db;
	if (db->ndpath && db->twin == da)
		fjc_cmp_derived(&x);
	else
		fjc_cmp(&x, 0, 0, 1);
	ok = 1;
out:
	free(x.ha);
	free(x.hb);
	for (i = 0; docs && i < 2; i++) {
		if (docs == local)
			fj_free(&docs[i]);
		else
			fj_scratch_done(&docs[i]);
	}
	return ok;
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

static void fc_cmp_body(struct fc *c, const struct st_msg *a, struct fj_doc *da,
			const struct st_msg *b, struct fj_doc *db)
{
	if (a->body_stored == b->body_stored && a->body_bytes == b->body_bytes &&
	    (!a->body_stored || memcmp(a->body, b->body, a->body_stored) == 0))
		return;
	if (a->body_stored < a->body_bytes || b->body_stored < b->body_bytes) {
		/* cut at the body limit: the structure of the rest is unknown */
		fc_add(c, fc_path(c, 0, "body", 4), FK_VALUE, NULL, 0, NULL, 0);
		return;
	}
	if (fc_cmp_json(c, a, da, b, db) || c->err)
		return;
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

/* Case-insensitive: letters fold with | 0x20, which maps other bytes to themselves
 * or to bytes strncasecmp would not equate, so equal names hash equal. */
static uint64_t fields_name_hash(const char *p, size_t n)
{
	uint64_t h = 0x6c62272e07bb0142ull ^ n, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ (w | 0x2020202020202020ull)) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ ((uint8_t)p[i] | 0x20)) * 0x100000001b3ull;
	return st_mix64(h);
}

/* The ignore list as an open-addressing table of its hashes, built once per list
 * and thread: one probe per header instead of a walk of the list. A list is the
 * built-in one or the options' (copied into the replay's state), whose entries do
 * not change while it is in use; the table is checked against the list's entry
 * pointers on every use, so a list rebuilt at the same address (another replay
 * instance, a test) is not mistaken for the old one. */
#define FIELDS_IGN_MAX 128
#define FIELDS_IGN_SLOTS 256
struct fields_ign {
	const char *const *list;
	size_t n;
	bool too_long;                   /* more than FIELDS_IGN_MAX: walk the list */
	const char *ent[FIELDS_IGN_MAX]; /* list[0..n) when built */
	uint64_t h[FIELDS_IGN_SLOTS];
	int16_t k[FIELDS_IGN_SLOTS];     /* the entry's index in list + 1, 0 = free */
};
static __thread struct fields_ign fields_ign_cache;

static bool fields_ign_same(const struct fields_ign *c, const char *const *list)
{
	if (c->list != list)
		return false;
	if (c->too_long)
		return true;   /* the table is not used: fields_ign_slow reads the list itself */
	/* the entry pointers as one block: a loop of pointer compares was ~180
	 * instructions per call on the built-in list of 28 */
	if (c->n && memcmp(list, c->ent, c->n * sizeof(*list)) != 0)
		return false;
	return !list || !list[c->n];
}

static const struct fields_ign *fields_ign_get(const char *const *list)
{
	struct fields_ign *c = &fields_ign_cache;
	size_t n, slot;
	uint64_t h;

	if (fields_ign_same(c, list))
		return c;
	memset(c, 0, sizeof(*c));
	c->list = list;
	for (n = 0; list && list[n]; n++) {
		if (n == FIELDS_IGN_MAX) {
			c->too_long = true;
			break;
		}
		c->ent[n] = list[n];
		h = fields_name_hash(list[n], strlen(list[n]));
		for (slot = h % FIELDS_IGN_SLOTS; c->k[slot]; slot = (slot + 1) % FIELDS_IGN_SLOTS)
			;
		c->h[slot] = h;
		c->k[slot] = (int16_t)(n + 1);
	}
	c->n = n;
	return c;
}

static bool fields_ign_slow(const char *const *ignore, const char *name, size_t n)
{
	for (; ignore && *ignore; ignore++)
		if (n && strlen(*ignore) == n && strncasecmp(*ignore, name, n) == 0)
			return true;
	return false;
}

static bool fields_ign_has(const struct fields_ign *c, uint64_t h, const char *name, size_t n)
{
	size_t slot;

	for (slot = h % FIELDS_IGN_SLOTS; c->k[slot]; slot = (slot + 1) % FIELDS_IGN_SLOTS) {
		const char *e = c->list[c->k[slot] - 1];

		if (c->h[slot] == h && strnlen(e, n + 1) == n && fields_name_eq(e, name, n))
			return true;
	}
	return false;
}

static bool fc_is_length(const struct http1_header *h)
{
	return h->name_len == 14 && fields_lc_eq(h->name, "content-length", 14);
}

/* The same head bytes split into the same headers (each name and value at the same
 * offset): every name and value is the same, which is what the walk below would find
 * one header at a time. Most pairs of one service's answers have it when no header
 * carries a time or an id (the benchmark's nginx answers, issue 19 session 6); a pair
 * that differs stops at its first different byte. Only offsets are read from hdrs. */
static bool fields_heads_same(const struct st_msg *a, const struct st_msg *b)
{
	size_t i;

	if (a->head_len != b->head_len || !a->head_len)
		return false;
	/* the bytes first: heads that differ (an ETag, a Date a second apart) stop here,
	 * before the offsets of every header are read (~300 instructions on 8 headers) */
	if (memcmp(a->head, b->head, a->head_len) != 0)
		return false;
	for (i = 0; i < a->nhdrs; i++) {
		const struct http1_header *x = &a->hdrs[i], *y = &b->hdrs[i];

		size_t no = (size_t)(x->name - a->head), vo = (size_t)(x->value - a->head);

		/* inside the head (record_head_copy keeps them there), so equal bytes vouch */
		if (no > a->head_len || x->name_len > a->head_len - no || vo > a->head_len ||
		    x->value_len > a->head_len - vo)
			return false;
		if (y->name != b->head + no || x->name_len != y->name_len ||
		    y->value != b->head + vo || x->value_len != y->value_len)
			return false;
	}
	return true;
}

int fields_hdrs_pair(struct fields_hdrs *ax, struct fields_hdrs *bx, const struct st_msg *a,
		     const struct st_msg *b, const char *const *ignore)
{
	const struct fields_ign *ig;
	bool cl_diff = false;
	size_t i;
	int err;

	if (a->nhdrs != b->nhdrs)
		goto index;
	ax->same = bx->same = fields_heads_same(a, b);
	if (ax->same) {
		cl_diff = false;
		goto clean;
	}
	for (i = 0; i < a->nhdrs; i++) {
		const struct http1_header *x = &a->hdrs[i], *y = &b->hdrs[i];

		if (x->name_len != y->name_len || !fields_bytes_eq(x->name, y->name, x->name_len))
			goto index;
	}
	/* the same names, so occurrences pair up by position: only the headers whose
	 * values differ can differ, and none does if each of them is skipped */
	ig = fields_ign_get(ignore);
	for (i = 0; i < a->nhdrs; i++) {
		const struct http1_header *x = &a->hdrs[i], *y = &b->hdrs[i];

		if (x->value_len == y->value_len && fields_bytes_eq(x->value, y->value, x->value_len))
			continue;
		if (fc_is_length(x)) {
			cl_diff = true;
			continue;
		}
		if (!x->name_len || ig->too_long ||
		    !fields_ign_has(ig, fields_name_hash(x->name, x->name_len), x->name, x->name_len))
			goto index;
	}
clean:
	ax->m = a;
	bx->m = b;
	ax->n = a->nhdrs;
	bx->n = b->nhdrs;
	ax->clean = bx->clean = true;
	ax->cl_diff = bx->cl_diff = cl_diff;
	return 0;
index:
	err = fields_hdrs_index(ax, a, ignore);
	return err ? err : fields_hdrs_index(bx, b, ignore);
}

int fields_hdrs_index(struct fields_hdrs *x, const struct st_msg *m, const char *const *ignore)
{
	const struct fields_ign *ig = fields_ign_get(ignore);
	size_t i;

	x->m = m;
	x->n = m->nhdrs;
	x->clean = x->cl_diff = x->same = false;
	if (m->nhdrs > FIELDS_HDRS_MAX)
		return -E2BIG;
	for (i = 0; i < m->nhdrs; i++) {
		const struct http1_header *hd = &m->hdrs[i];

		x->h[i] = fields_name_hash(hd->name, hd->name_len);
		x->ign[i] = false;
		if (!hd->name_len)
			continue;
		x->ign[i] = ig->too_long ? fields_ign_slow(ignore, hd->name, hd->name_len)
					 : fields_ign_has(ig, x->h[i], hd->name, hd->name_len);
	}
	return 0;
}

static bool fc_ignored(const char *const *ignore, const char *name, size_t n)
{
	if (n == 14 && strncasecmp(name, "content-length", 14) == 0)
		return true;   /* the body comparison says it better */
	for (; ignore && *ignore; ignore++)   /* first letter before strlen (P, issue 19) */
		if (n && (((*ignore)[0] ^ name[0]) & ~0x20) == 0 && strlen(*ignore) == n &&
		    strncasecmp(*ignore, name, n) == 0)
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


/* The first header of y named like header i of x, or -1. */
static ssize_t fc_hdrs_first(const struct fields_hdrs *x, size_t i, const struct fields_hdrs *y)
{
	size_t j;

	for (j = 0; j < y->n; j++)
		if (fields_hdrs_same(x, i, y, j))
			return (ssize_t)j;
	return -1;
}

/* fc_cmp_headers on names hashed once (fields_hdrs_index): the same differences in
 * the same order. */
static void fc_cmp_headers_ix(struct fc *c, const struct fields_hdrs *ax, const struct fields_hdrs *bx)
{
	const struct http1_header *h, *o;
	size_t i, pl, k;
	ssize_t j;
	char name[128];

	for (i = 0; i < ax->n + bx->n; i++) {
		bool in_a = i < ax->n;
		const struct fields_hdrs *mx = in_a ? ax : bx, *ox = in_a ? bx : ax;
		size_t hi = in_a ? i : i - ax->n;

		h = &mx->m->hdrs[hi];
		if (mx->ign[hi] || fc_is_length(h) || fc_hdrs_first(mx, hi, mx) != (ssize_t)hi)
			continue;   /* ignored, or a repeat: the first occurrence speaks for it */
		j = fc_hdrs_first(mx, hi, ox);
		if (j >= 0 && !in_a)
			continue;   /* in both: compared from serverA's side */
		o = j >= 0 ? &ox->m->hdrs[j] : NULL;
		if (o && o->value_len == h->value_len && !memcmp(o->value, h->value, h->value_len))
			continue;
		memcpy(name, "header:", 7);
		for (k = 0; k < h->name_len && 7 + k < sizeof(name) - 1; k++)
			name[7 + k] = (char)tolower((unsigned char)h->name[k]);
		pl = fc_path(c, 0, name, 7 + k);
		if (!o)
			fc_add(c, pl, in_a ? FK_MISSING : FK_EXTRA, in_a ? h->value : NULL,
			       in_a ? h->value_len : 0, in_a ? NULL : h->value, in_a ? 0 : h->value_len);
		else
			fc_add(c, pl, FK_VALUE, h->value, h->value_len, o->value, o->value_len);
	}
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
	struct fields_text local = { 0 }, *t = fields_text_scratch();
	struct fields_acc acc;
	struct st_field *v = NULL;
	size_t i;
	int err;

	if (!t)
		t = &local;
	acc.t = t;
	acc.n = 0;
	acc.total = *total;
	err = fields_compare_acc(a_status, a, NULL, b_status, b, NULL, ignore, NULL, NULL, NULL, &acc);
	if (!err && acc.n) {
		v = calloc(acc.n, sizeof(*v));
		err = v ? 0 : -ENOMEM;
	}
	for (i = 0; !err && i < acc.n; i++) {
		const struct fields_ent *e = &acc.e[i];

		v[i].kind = e->kind;
		v[i].path = strdup(t->p + e->path);
		v[i].a = e->has_a ? strdup(t->p + e->a) : NULL;
		v[i].b = e->has_b ? strdup(t->p + e->b) : NULL;
		if (!v[i].path || (e->has_a && !v[i].a) || (e->has_b && !v[i].b))
			err = -ENOMEM;
	}
	if (err) {
		fields_free(v, i);
		v = NULL;
		i = 0;
	}
	*out = v;
	*nout = err ? 0 : acc.n;
	*total = acc.total;
	if (t == &local)
		free(local.p);
	else
		fields_text_done(t);
	return err;
}

int fields_compare_acc(int a_status, const struct st_msg *a, struct fj_doc *da, int b_status,
		       const struct st_msg *b, struct fj_doc *db, const char *const *ignore,
		       const struct fields_hdrs *ax, const struct fields_hdrs *bx,
		       const struct fj_spot *sp, struct fields_acc *acc)
{
	struct fields_hdrs ix, iy;
	struct fc c;
	char sa[8], sb[8];

	c.acc = acc;
	c.sp = sp;
	c.err = 0;
	c.path[0] = '\0';
	if (a_status != b_status) {
		snprintf(sa, sizeof(sa), "%d", a_status);
		snprintf(sb, sizeof(sb), "%d", b_status);
		fc_add(&c, fc_path(&c, 0, "status", 6), FK_VALUE, sa, strlen(sa), sb, strlen(sb));
	}
	if (!fields_fast) {
		ax = bx = NULL;
	} else if (!ax || !bx) {
		ax = fields_hdrs_pair(&ix, &iy, a, b, ignore) ? NULL : &ix;
		bx = ax ? &iy : NULL;
	}
	if (ax && bx && ax->clean)
		;   /* fields_hdrs_pair: no header differs but maybe Content-Length, skipped here */
	else if (ax && bx)
		fc_cmp_headers_ix(&c, ax, bx);
	else
		fc_cmp_headers(&c, a, b, ignore);
	fc_cmp_body(&c, a, da, b, db);
	return c.err;
}
