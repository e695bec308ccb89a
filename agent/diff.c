/* Comparison of serverA's and serverB's responses.
 *
 * Bodies cut at the body limit (body_stored < body_bytes on either side): the full
 * bodies were never seen, so byte and JSON comparison cannot be decisive. Then the
 * bodies count as different when their full lengths differ or the stored prefixes
 * differ; otherwise they count as the same and diff.reason says "body compared up to
 * the body limit only", so a dashboard can tell a verified match from a likely one.
 * In that case Content-Length is compared as a header too (it is otherwise skipped:
 * the body comparison already covers it, and JSON bodies may differ in whitespace). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blkpool.h"
#include "diff.h"
#include "endpoint.h"
#include "fields_json.h"
#include "fields.h"
#include "json.h"

#define DIFF_DEFAULT_MAX_PATHS 20
#define DIFF_PATH_MAX 512

const char *const diff_default_ignore[] = {
	"date", "server", "transfer-encoding", "connection", "keep-alive", "etag",
	"last-modified", "expires", "age", "set-cookie", "x-request-id", "x-correlation-id",
	"x-trace-id", "traceparent", "tracestate", "x-amzn-trace-id", "x-b3-traceid",
	"x-runtime", "x-response-time", "x-served-by", "x-cache", "x-cache-hits", "x-timer",
	"via", "cf-ray", "report-to", "nel", "x-powered-by",
	NULL
};

/* ---- headers ---- */

static bool diff_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

static bool diff_ignored(const char *const *ignore, const char *name, size_t len)
{
	/* the first letter rules out most of the list before a strlen (P, issue 19) */
	for (; *ignore; ignore++)
		if (len && (((*ignore)[0] ^ name[0]) & ~0x20) == 0 &&
		    diff_name_eq(*ignore, strlen(*ignore), name, len))
			return true;
	return false;
}

/* Do all values of header `name` (in order) agree between a and b? */
static bool diff_values_same(const struct st_msg *a, const struct st_msg *b,
			     const char *name, size_t len)
{
	size_t i = 0, j = 0;

	for (;;) {
		while (i < a->nhdrs && !diff_name_eq(a->hdrs[i].name, a->hdrs[i].name_len, name, len))
			i++;
		while (j < b->nhdrs && !diff_name_eq(b->hdrs[j].name, b->hdrs[j].name_len, name, len))
			j++;
		if (i == a->nhdrs || j == b->nhdrs)
			return i == a->nhdrs && j == b->nhdrs;
		if (a->hdrs[i].value_len != b->hdrs[j].value_len ||
		    memcmp(a->hdrs[i].value, b->hdrs[j].value, a->hdrs[i].value_len) != 0)
			return false;
		i++;
		j++;
	}
}

/* A comparison's output as it is found: counts and flags in d, every string in t
 * (per thread, reused). The body paths are pushed in one run, then the header
 * names in another, so each list is its run of NUL-terminated strings, from pstart
 * and hstart. diff_pack turns it into one allocation. */
struct diff_b {
	struct st_diff d;
	struct fields_text *t;
	size_t pstart, hstart, reason;
	bool has_reason;
	struct fields_acc fa;
};

static int diff_reason(struct diff_b *b, const char *s)
{
	b->reason = fields_text_add(b->t, s, strlen(s), false);
	b->has_reason = !b->t->err;
	return b->t->err;
}

static int diff_push_header(struct diff_b *b, const char *name, size_t len)
{
	fields_text_add(b->t, name, len, true);
	if (b->t->err)
		return b->t->err;
	b->d.nheaders++;
	return 0;
}

/* Is name among the header names listed so far? */
static bool diff_listed(const struct diff_b *b, const char *name, size_t len)
{
	size_t i, off = b->hstart, n;

	for (i = 0; i < b->d.nheaders; i++, off += n + 1) {
		n = strlen(b->t->p + off);
		if (diff_name_eq(b->t->p + off, n, name, len))
			return true;
	}
	return false;
}

static int diff_headers_msg(struct diff_b *d, const struct st_msg *m, const struct st_msg *a,
			    const struct st_msg *b, const char *const *ignore, bool cmp_length)
{
	size_t i;
	int err;

	for (i = 0; i < m->nhdrs; i++) {
		const struct http1_header *h = &m->hdrs[i];

		if (diff_ignored(ignore, h->name, h->name_len))
			continue;
		if (!cmp_length && diff_name_eq(h->name, h->name_len, "content-length", 14))
			continue;
		if (diff_listed(d, h->name, h->name_len))
			continue;
		if (diff_values_same(a, b, h->name, h->name_len))
			continue;
		err = diff_push_header(d, h->name, h->name_len);
		if (err)
			return err;
	}
	return 0;
}

/* diff_headers_msg on names hashed once (fields_hdrs_index): the same names in the
 * same order. pushed[] remembers which headers' names are already listed. */
struct diff_pushed {
	const struct fields_hdrs *x;
	size_t i;
};

static bool diff_values_same_ix(const struct fields_hdrs *mx, size_t hi, const struct fields_hdrs *ax,
				const struct fields_hdrs *bx)
{
	size_t i = 0, j = 0;

	for (;;) {
		while (i < ax->n && !fields_hdrs_same(ax, i, mx, hi))
			i++;
		while (j < bx->n && !fields_hdrs_same(bx, j, mx, hi))
			j++;
		if (i == ax->n || j == bx->n)
			return i == ax->n && j == bx->n;
		if (ax->m->hdrs[i].value_len != bx->m->hdrs[j].value_len ||
		    !fields_bytes_eq(ax->m->hdrs[i].value, bx->m->hdrs[j].value, ax->m->hdrs[i].value_len))
			return false;
		i++;
		j++;
	}
}

static int diff_headers_ix(struct diff_b *d, const struct fields_hdrs *mx, const struct fields_hdrs *ax,
			   const struct fields_hdrs *bx, bool cmp_length, struct diff_pushed *pushed,
			   size_t *npushed)
{
	size_t i, k;
	int err;

	for (i = 0; i < mx->n; i++) {
		const struct http1_header *h = &mx->m->hdrs[i];

		if (mx->ign[i])
			continue;
		if (!cmp_length && diff_name_eq(h->name, h->name_len, "content-length", 14))
			continue;
		for (k = 0; k < *npushed; k++)
			if (fields_hdrs_same(pushed[k].x, pushed[k].i, mx, i))
				break;
		if (k < *npushed)
			continue;
		if (diff_values_same_ix(mx, i, ax, bx))
			continue;
		err = diff_push_header(d, h->name, h->name_len);
		if (err)
			return err;
		pushed[*npushed].x = mx;
		pushed[(*npushed)++].i = i;
	}
	return 0;
}

/* ax, bx: the headers indexed (fields_hdrs_index), or NULL when they could not be */
static int diff_headers(struct diff_b *d, const struct st_msg *a, const struct st_msg *b,
			const struct fields_hdrs *ax, const struct fields_hdrs *bx,
			const char *const *ignore, bool cmp_length)
{
	struct diff_pushed pushed[2 * FIELDS_HDRS_MAX];
	struct fields_hdrs ix, iy;
	size_t np = 0;
	int err;

	d->hstart = d->t->len;
	if (ax && bx && ax->clean) {
		/* fields_hdrs_pair: nothing differs but maybe Content-Length */
		if (!cmp_length || !ax->cl_diff)
			return 0;
		ax = fields_hdrs_index(&ix, a, ignore) ? NULL : &ix;
		bx = ax && !fields_hdrs_index(&iy, b, ignore) ? &iy : NULL;
	}
	if (!ax || !bx) {
		err = diff_headers_msg(d, a, a, b, ignore, cmp_length);
		return err ? err : diff_headers_msg(d, b, a, b, ignore, cmp_length);
	}
	err = diff_headers_ix(d, ax, ax, bx, cmp_length, pushed, &np);
	return err ? err : diff_headers_ix(d, bx, ax, bx, cmp_length, pushed, &np);
}

/* ---- JSON ---- */

/* The bodies are flattened once each (fields_json.c) and the same flat documents
 * serve diff.body_paths here and diff.fields in fields.c. */
struct dj_cmp {
	struct fj_doc *a, *b;
	struct diff_b *d;
	int max_paths;
	size_t ndiff;
	int err;
	char path[DIFF_PATH_MAX];
};

static void dj_report(struct dj_cmp *c, size_t plen)
{
	c->ndiff++;
	if (c->err || (int)c->d->d.nbody_paths >= c->max_paths)
		return;
	fields_text_add(c->d->t, c->path, plen, false);
	c->err = c->d->t->err;
	if (!c->err)
		c->d->d.nbody_paths++;
}

static size_t dj_path_key(char *path, size_t plen, const char *k, size_t klen)
{
	size_t i, o = plen;

	if (fields_key_ident(k, klen)) {
		if (o + 1 + klen >= DIFF_PATH_MAX)
			return plen;
		path[o++] = '.';
		memcpy(path + o, k, klen);
		return o + klen;
	}
	if (o + 2 >= DIFF_PATH_MAX)
		return plen;
	path[o++] = '[';
	path[o++] = '"';
	for (i = 0; i < klen && o + 4 < DIFF_PATH_MAX; i++) {
		if (k[i] == '"' || k[i] == '\\')
			path[o++] = '\\';
		path[o++] = (unsigned char)k[i] < 0x20 ? '?' : k[i];
	}
	if (o + 2 >= DIFF_PATH_MAX)
		return plen;
	path[o++] = '"';
	path[o++] = ']';
	return o;
}

static void dj_cmp_node(struct dj_cmp *c, int32_t ia, int32_t ib, size_t plen);

static void dj_cmp_obj(struct dj_cmp *c, int32_t ia, int32_t ib, size_t plen)
{
	int32_t sa = fj_sorted(c->a, ia), sb = fj_sorted(c->b, ib);
	int32_t na = c->a->n[ia].nchild, nb = c->b->n[ib].nchild, i = 0, j = 0;
	size_t kl;
	int r;

	if (sa < 0 || sb < 0) {
		c->err = -ENOMEM;
		return;
	}
	while ((i < na || j < nb) && !c->err) {
		const struct fj_node *ma = i < na ? &c->a->n[c->a->order[sa + i]] : NULL, *mb = j < nb ? &c->b->n[c->b->order[sb + j]] : NULL;

		if (!ma) {
			r = 1;
		} else if (!mb) {
			r = -1;
		} else {
			size_t n = ma->key_len < mb->key_len ? ma->key_len : mb->key_len;

			r = memcmp(fj_key(c->a, ma), fj_key(c->b, mb), n);
			if (!r && ma->key_len != mb->key_len)
				r = ma->key_len < mb->key_len ? -1 : 1;
		}
		if (r == 0) {
			/* equal values: no path to build (dj_cmp_node would stop at once) */
			if (ma->h != mb->h) {
				kl = dj_path_key(c->path, plen, fj_key(c->a, ma), ma->key_len);
				dj_cmp_node(c, c->a->order[sa + i], c->b->order[sb + j], kl);
			}
			i++;
			j++;
		} else if (r < 0) {
			kl = dj_path_key(c->path, plen, fj_key(c->a, ma), ma->key_len);
			dj_report(c, kl);
			i++;
		} else {
			kl = dj_path_key(c->path, plen, fj_key(c->b, mb), mb->key_len);
			dj_report(c, kl);
			j++;
		}
	}
}

static void dj_cmp_node(struct dj_cmp *c, int32_t ia, int32_t ib, size_t plen)
{
	const struct fj_node *a = &c->a->n[ia], *b = &c->b->n[ib];
	int32_t ca, cb;
	int k = 0;
	size_t pl;
	char idx[24];

	/* equal hashes, equal values: nothing below differs */
	if (c->err || a->h == b->h)
		return;
	if (a->type != b->type) {
		dj_report(c, plen);
		return;
	}
	switch (a->type) {
	case FJ_NUM:
		if (!fj_num_eq(c->a->src + a->v, a->ve - a->v, c->b->src + b->v, b->ve - b->v))
			dj_report(c, plen);
		return;
	case FJ_STR:
		if (a->s_len != b->s_len || memcmp(fj_s(c->a, a), fj_s(c->b, b), a->s_len) != 0)
			dj_report(c, plen);
		return;
	case FJ_BOOL:
		if (a->ve - a->v != b->ve - b->v)
			dj_report(c, plen);
		return;
	case FJ_OBJ:
		dj_cmp_obj(c, ia, ib, plen);
		return;
	case FJ_ARR:
		ca = a->first;
		cb = b->first;
		while ((ca >= 0 || cb >= 0) && !c->err) {
			int n = snprintf(idx, sizeof(idx), "[%d]", k++);

			pl = plen + (size_t)n < DIFF_PATH_MAX ? plen + (size_t)n : plen;
			if (pl != plen)
				memcpy(c->path + plen, idx, (size_t)n);
			if (ca >= 0 && cb >= 0)
				dj_cmp_node(c, ca, cb, pl);
			else
				dj_report(c, pl);
			if (ca >= 0)
				ca = c->a->n[ca].next;
			if (cb >= 0)
				cb = c->b->n[cb].next;
		}
		return;
	default:
		return;
	}
}

/* b was derived from a (fj_derive): they differ in one string and are byte for byte
 * the same elsewhere, so every other subtree hashes equal and dj_cmp_node would go
 * straight down to that string: the same path, built without the walk. */
static void dj_cmp_derived(struct dj_cmp *c)
{
	const struct fj_doc *a = c->a, *b = c->b;
	size_t plen = 1, pl;
	int32_t k, ch, i;
	char idx[24];

	for (k = 0; k + 1 < b->ndpath; k++) {
		const struct fj_node *e = &a->n[b->dpath[k]], *m = &a->n[b->dpath[k + 1]];
		int n;

		if (e->type == FJ_OBJ) {
			plen = dj_path_key(c->path, plen, fj_key(a, m), m->key_len);
			continue;
		}
		for (ch = e->first, i = 0; ch >= 0 && ch != b->dpath[k + 1]; ch = a->n[ch].next)
			i++;
		n = snprintf(idx, sizeof(idx), "[%d]", i);
		pl = plen + (size_t)n < DIFF_PATH_MAX ? plen + (size_t)n : plen;
		if (pl != plen)
			memcpy(c->path + plen, idx, (size_t)n);
		plen = pl;
	}
	dj_report(c, plen);
}

/* dj_cmp_derived on fj_locate's answer (no doc parsed): the same path. */
static void dj_cmp_spot(struct dj_cmp *c, const struct fj_spot *sp)
{
	size_t plen = 1, pl;
	int32_t k;
	char idx[24];

	for (k = 0; k < sp->nlv; k++) {
		const struct fj_spot_lv *lv = &sp->lv[k];
		int n;

		if (lv->type == FJ_OBJ) {
			plen = dj_path_key(c->path, plen, sp->a + lv->key, lv->key_len);
			continue;
		}
		n = snprintf(idx, sizeof(idx), "[%d]", lv->index);
		pl = plen + (size_t)n < DIFF_PATH_MAX ? plen + (size_t)n : plen;
		if (pl != plen)
			memcpy(c->path + plen, idx, (size_t)n);
		plen = pl;
	}
	dj_report(c, plen);
}

static bool diff_is_json_type(const struct st_msg *m)
{
	size_t i, n;
	const char *v, *semi;

	for (i = 0; i < m->nhdrs; i++) {
		if (m->hdrs[i].name_len != 12 || !fields_lc_eq(m->hdrs[i].name, "content-type", 12))
			continue;
		v = m->hdrs[i].value;
		n = m->hdrs[i].value_len;
		/* the usual value, one word compare: what the lines below find for it */
		if (fields_fast && n >= 16 && fields_lc_eq(v, "application/json", 16) && (n == 16 || v[16] == ';'))
			return true;
		semi = memchr(v, ';', n);
		if (semi)
			n = (size_t)(semi - v);
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if ((n == 16 && fields_lc_eq(v, "application/json", 16)) ||
		    (n == 9 && fields_lc_eq(v, "text/json", 9)))
			return true;
		return n > 5 && fields_lc_eq(v + n - 5, "+json", 5);
	}
	return false;
}

static bool diff_looks_json(const struct st_msg *m)
{
	size_t i;

	for (i = 0; i < m->body_stored; i++) {
		uint8_t c = m->body[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		return c == '{' || c == '[';
	}
	return false;
}

/* Structural comparison on bodies flattened into da and db (zeroed or reused docs,
 * which the caller releases and hands on to fields_compare_acc). 1 = compared, 0 = not both JSON, negative
 * errno. */
static int diff_json(struct diff_b *d, const struct st_msg *a, const struct st_msg *b,
		     int max_paths, struct fj_doc *da, struct fj_doc *db, bool *parsed,
		     struct fj_spot *sp, bool *located, bool same_head)
{
	struct dj_cmp c;
	char why[96];
	bool ja;
	int err;

	/* the same head bytes (fields_hdrs_pair): the same Content-Type */
	ja = diff_is_json_type(a);
	if (!(ja && (same_head || diff_is_json_type(b))) && !(diff_looks_json(a) && diff_looks_json(b)))
		return 0;
	c.d = d;
	c.max_paths = max_paths;
	c.ndiff = 0;
	c.err = 0;
	c.path[0] = '$';
	/* most pairs differ in a string or two: when in exactly one, neither body is
	 * flattened, only a is checked and the string located */
	if (fields_fast && !fj_locate(sp, (const char *)a->body, a->body_stored, (const char *)b->body,
				      b->body_stored)) {
		*located = true;
		d->pstart = d->t->len;
		dj_cmp_spot(&c, sp);
		goto done;
	}
	err = fj_reparse(da, (const char *)a->body, a->body_stored);
	if (!err) {
		/* most pairs differ in a string or two: derived, not parsed, when exact */
		err = fields_fast ? fj_derive(db, da, (const char *)b->body, b->body_stored) : -EAGAIN;
		if (err == -EAGAIN)
			err = fj_reparse(db, (const char *)b->body, b->body_stored);
	}
	if (err)
		return err == -ENOMEM ? -ENOMEM : 0;
	*parsed = true;
	c.a = da;
	c.b = db;
	d->pstart = d->t->len;
	if (db->ndpath && db->twin == da)
		dj_cmp_derived(&c);
	else
		dj_cmp_node(&c, 0, 0, 1);
done:
	if (c.err)
		return c.err;
	d->d.body_json = true;
	d->d.body_same = c.ndiff == 0;
	if (c.ndiff > d->d.nbody_paths && !d->has_reason) {
		snprintf(why, sizeof(why), "%zu json paths differ, %zu listed", c.ndiff, d->d.nbody_paths);
		return diff_reason(d, why) ?: 1;
	}
	return 1;
}

static int diff_body(struct diff_b *db_, const struct st_msg *a, const struct st_msg *b,
		     int max_paths, bool *cut, struct fj_doc *da, struct fj_doc *db, bool *parsed,
		     struct fj_spot *sp, bool *located, bool same_head)
{
	struct st_diff *d = &db_->d;
	size_t n;
	int err;

	*cut = a->body_stored < a->body_bytes || b->body_stored < b->body_bytes;
	if (!a->complete) {
		/* serverA's answer was not captured whole: nothing to vouch for */
		*cut = true;
		d->body_same = false;
		return diff_reason(db_, "serverA response incomplete");
	}
	if (*cut) {
		n = a->body_stored < b->body_stored ? a->body_stored : b->body_stored;
		d->body_same = a->body_bytes == b->body_bytes &&
			       (n == 0 || memcmp(a->body, b->body, n) == 0);
		if (d->body_same)
			return diff_reason(db_, "body compared up to the body limit only");
		return 0;
	}
	if (a->body_stored == b->body_stored &&
	    (a->body_stored == 0 || memcmp(a->body, b->body, a->body_stored) == 0)) {
		d->body_same = true;
		return 0;
	}
	d->body_same = false;
	err = diff_json(db_, a, b, max_paths, da, db, parsed, sp, located, same_head);
	return err < 0 ? err : 0;
}

static void diff_docs_done(struct fj_doc *docs, struct fj_doc *local)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (docs == local)
			fj_free(&docs[i]);
		else
			fj_scratch_done(&docs[i]);
	}
}

/* Room left at the end of every diff for its endpoint name (fields_sum_observe
 * writes it there instead of allocating it). */
#define DIFF_ROOM ENDPOINT_MAX

/* The diff, its lists, fields and strings in one allocation (record_diff_free
 * frees it in one call), instead of one per string and list. */
static struct st_diff *diff_pack(const struct diff_b *b)
{
	size_t nh = b->d.nheaders, np = b->d.nbody_paths, nf = b->fa.n, i, off, size;
	const char *src = b->t->p;
	struct st_field *f;
	struct st_diff *d;
	char **ptr, *txt;
	bool pooled;

	size = sizeof(*d) + (nh + np) * sizeof(char *) + nf * sizeof(*f) + b->t->len + DIFF_ROOM;
	/* a block of the thread's own when it fits (blkpool.h), else malloc */
	d = blk_get(size);
	pooled = d != NULL;
	if (!d)
		d = malloc(size);
	if (!d)
		return NULL;
	*d = b->d;
	d->pooled = pooled;
	ptr = (char **)(d + 1);
	f = (struct st_field *)(ptr + nh + np);
	txt = (char *)(f + nf);
	if (b->t->len)
		memcpy(txt, src, b->t->len);
	d->headers = nh ? ptr : NULL;
	for (i = 0, off = b->hstart; i < nh; i++, off += strlen(txt + off) + 1)
		ptr[i] = txt + off;
	d->body_paths = np ? ptr + nh : NULL;
	for (i = 0, off = b->pstart; i < np; i++, off += strlen(txt + off) + 1)
		ptr[nh + i] = txt + off;
	d->reason = b->has_reason ? txt + b->reason : NULL;
	d->fields = nf ? f : NULL;
	d->nfields = nf;
	d->fields_total = b->fa.total;
	for (i = 0; i < nf; i++) {
		const struct fields_ent *e = &b->fa.e[i];

		f[i].path = txt + e->path;
		f[i].a = e->has_a ? txt + e->a : NULL;
		f[i].b = e->has_b ? txt + e->b : NULL;
		f[i].kind = e->kind;
		f[i].noise = false;
		f[i].ignored = false;
	}
	d->block = size;
	d->room = DIFF_ROOM;
	return d;
}

static int diff_run(struct diff_b *db_, const struct st_record *r, const struct diff_cfg *cfg,
		    struct fj_doc *docs)
{
	const char *const *ignore = cfg && cfg->ignore ? cfg->ignore : diff_default_ignore;
	int max_paths = cfg && cfg->max_paths > 0 ? cfg->max_paths : DIFF_DEFAULT_MAX_PATHS;
	const struct st_msg *a = &r->resp, *b;
	struct fj_doc *da = &docs[0], *db = &docs[1];
	struct fields_hdrs ix, iy;
	const struct fields_hdrs *ax = NULL, *bx = NULL;
	struct st_diff *d = &db_->d;
	bool cut = false, parsed = false, located = false;
	struct fj_spot sp;
	int err;

	if (!r->replay || r->replay->error)
		return diff_reason(db_, "no replay response");
	b = &r->replay->resp;
	if (!r->status_code)
		return diff_reason(db_, "no serverA response");
	d->status_same = r->status_code == r->replay->status_code;
	if (fields_fast && !fields_hdrs_pair(&ix, &iy, a, b, ignore)) {
		ax = &ix;
		bx = &iy;
	}
	err = diff_body(db_, a, b, max_paths, &cut, da, db, &parsed, &sp, &located, ax && ax->same);
	if (!err)
		err = diff_headers(db_, a, b, ax, bx, ignore, cut);
	if (err)
		return err;
	d->match = d->status_same && d->nheaders == 0 && d->body_same;
	/* field by field only when there is something to explain, and only when
	 * serverA's answer was seen whole */
	if (!d->match && a->complete)
		return fields_compare_acc(r->status_code, a, parsed ? da : NULL, r->replay->status_code, b,
					  parsed ? db : NULL, ignore, ax, bx, located ? &sp : NULL, &db_->fa);
	return 0;
}

#define DIFF_PREFETCH_BODY 4096
void diff_prefetch_msg(const struct st_record *r)
{
	/* the pointers and lengths diff_prefetch reads, without waiting for them */
	__builtin_prefetch(&r->resp.head);
	__builtin_prefetch(&r->resp.body_stored);
}

void diff_prefetch(const struct st_record *r)
{
	const struct st_msg *m = &r->resp;
	const char *p = m->head, *e;

	if (p) {
		/* the header array sits right after the head (record_head_copy) */
		e = m->hdrs ? (const char *)(m->hdrs + m->nhdrs) : p + m->head_len;
		if (e < p || e - p > 8192)
			e = p + m->head_len;
		for (; p < e; p += 64)
			__builtin_prefetch(p);
		__builtin_prefetch(e - 1);
	}
	p = (const char *)m->body;
	if (p && m->body_stored) {
		e = p + (m->body_stored < DIFF_PREFETCH_BODY ? m->body_stored : DIFF_PREFETCH_BODY);
		for (; p < e; p += 64)
			__builtin_prefetch(p);
		__builtin_prefetch(e - 1);
	}
}

struct st_diff *diff_compare(const struct st_record *r, const struct diff_cfg *cfg)
{
	struct fj_doc local[2], *docs = fields_fast ? fj_scratch() : NULL;
	struct fields_text tlocal = { 0 };
	struct st_diff *d = NULL;
	struct diff_b b;
	int err;

	if (!docs) {
		/* no per-thread docs (or the plain way): these, freed on return */
		memset(local, 0, sizeof(local));
		docs = local;
	}
	memset(&b.d, 0, sizeof(b.d));
	b.t = fields_text_scratch();
	if (!b.t)
		b.t = &tlocal;
	b.pstart = b.hstart = b.reason = 0;
	b.has_reason = false;
	b.fa.t = b.t;
	b.fa.n = b.fa.total = 0;
	err = diff_run(&b, r, cfg, docs);
	if (!err)
		d = diff_pack(&b);
	diff_docs_done(docs, local);
	if (b.t == &tlocal)
		free(tlocal.p);
	else
		fields_text_done(b.t);
	return d;
}
