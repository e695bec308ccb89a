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

#include "diff.h"
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
	for (; *ignore; ignore++)
		if (diff_name_eq(*ignore, strlen(*ignore), name, len))
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

static int diff_push(char ***arr, size_t *n, const char *s, size_t len, bool lower)
{
	char **p, *c;
	size_t k;

	c = malloc(len + 1);
	if (!c)
		return -ENOMEM;
	for (k = 0; k < len; k++)
		c[k] = lower ? (char)tolower((unsigned char)s[k]) : s[k];
	c[len] = '\0';
	p = realloc(*arr, (*n + 1) * sizeof(*p));
	if (!p) {
		free(c);
		return -ENOMEM;
	}
	p[(*n)++] = c;
	*arr = p;
	return 0;
}

static bool diff_listed(char **arr, size_t n, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (diff_name_eq(arr[i], strlen(arr[i]), name, len))
			return true;
	return false;
}

static int diff_headers_msg(struct st_diff *d, const struct st_msg *m, const struct st_msg *a,
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
		if (diff_listed(d->headers, d->nheaders, h->name, h->name_len))
			continue;
		if (diff_values_same(a, b, h->name, h->name_len))
			continue;
		err = diff_push(&d->headers, &d->nheaders, h->name, h->name_len, true);
		if (err)
			return err;
	}
	return 0;
}

/* ---- JSON ---- */

enum { DJ_NULL, DJ_FALSE, DJ_TRUE, DJ_NUM, DJ_STR, DJ_ARR, DJ_OBJ };

struct dj_node {
	int type;
	int key;            /* index into the string arena of the member key, -1 if none */
	size_t key_len;
	size_t str;         /* DJ_STR: decoded text in the arena; DJ_NUM: raw text offset in src */
	size_t str_len;
	int first, next;    /* first child, next sibling; -1 = none */
	int nchild;
};

struct dj_doc {
	const char *src;
	size_t len, pos;
	struct dj_node *nodes;
	int nnodes, cap;
	char *arena;        /* decoded strings: never longer than the source */
	size_t alen;
};

static void dj_ws(struct dj_doc *d)
{
	d->pos = (size_t)(json_ws(d->src + d->pos, d->src + d->len) - d->src);
}

static int dj_new(struct dj_doc *d, int type)
{
	struct dj_node *n;

	if (d->nnodes == d->cap) {
		int cap = d->cap ? d->cap * 2 : 64;

		n = realloc(d->nodes, (size_t)cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		d->nodes = n;
		d->cap = cap;
	}
	n = &d->nodes[d->nnodes];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->key = -1;
	n->first = n->next = -1;
	return d->nnodes++;
}

/* A string (text in the arena) or number (text in the source) node. */
static int dj_new_text(struct dj_doc *d, int type, size_t off, size_t len)
{
	int idx = dj_new(d, type);

	if (idx >= 0) {
		d->nodes[idx].str = off;
		d->nodes[idx].str_len = len;
	}
	return idx;
}

/* Decode a string at d->pos (on the opening quote) into the arena, which is sized
 * like the source: decoding never makes text longer. */
static int dj_string(struct dj_doc *d, size_t *off, size_t *len)
{
	const char *q = json_string_decode(d->src + d->pos, d->src + d->len, d->arena + d->alen, len);

	if (!q)
		return -EINVAL;
	*off = d->alen;
	d->alen += *len;
	d->pos = (size_t)(q - d->src);
	return 0;
}

static int dj_number(struct dj_doc *d, size_t *off, size_t *len)
{
	const char *q = json_number(d->src + d->pos, d->src + d->len);

	if (!q)
		return -EINVAL;
	*off = d->pos;
	*len = (size_t)(q - d->src) - d->pos;
	d->pos = (size_t)(q - d->src);
	return 0;
}

static int dj_lit(struct dj_doc *d, const char *lit)
{
	const char *q = json_literal(d->src + d->pos, d->src + d->len, lit);

	if (!q)
		return -EINVAL;
	d->pos = (size_t)(q - d->src);
	return 0;
}

/* Returns the node index or a negative errno. Depth is bounded so a hostile body
 * cannot exhaust the replay thread's stack. */
static int dj_value(struct dj_doc *d, int depth)
{
	int idx, child, last = -1, err;
	size_t off, len;
	char c;

	if (depth > JSON_MAX_DEPTH)
		return -E2BIG;
	dj_ws(d);
	if (d->pos >= d->len)
		return -EINVAL;
	c = d->src[d->pos];
	if (c == '{' || c == '[') {
		bool obj = c == '{';

		idx = dj_new(d, obj ? DJ_OBJ : DJ_ARR);
		if (idx < 0)
			return idx;
		d->pos++;
		dj_ws(d);
		if (d->pos < d->len && d->src[d->pos] == (obj ? '}' : ']')) {
			d->pos++;
			return idx;
		}
		for (;;) {
			int key = -1;
			size_t klen = 0;

			dj_ws(d);
			if (obj) {
				if (d->pos >= d->len || d->src[d->pos] != '"')
					return -EINVAL;
				err = dj_string(d, &off, &klen);
				if (err)
					return err;
				key = (int)off;
				dj_ws(d);
				if (d->pos >= d->len || d->src[d->pos] != ':')
					return -EINVAL;
				d->pos++;
			}
			child = dj_value(d, depth + 1);
			if (child < 0)
				return child;
			d->nodes[child].key = key;
			d->nodes[child].key_len = klen;
			if (last < 0)
				d->nodes[idx].first = child;
			else
				d->nodes[last].next = child;
			last = child;
			d->nodes[idx].nchild++;
			dj_ws(d);
			if (d->pos >= d->len)
				return -EINVAL;
			c = d->src[d->pos++];
			if (c == ',')
				continue;
			if (c == (obj ? '}' : ']'))
				return idx;
			return -EINVAL;
		}
	}
	if (c == '"') {
		err = dj_string(d, &off, &len);
		return err ? err : dj_new_text(d, DJ_STR, off, len);
	}
	if (c == 't')
		return dj_lit(d, "true") ?: dj_new(d, DJ_TRUE);
	if (c == 'f')
		return dj_lit(d, "false") ?: dj_new(d, DJ_FALSE);
	if (c == 'n')
		return dj_lit(d, "null") ?: dj_new(d, DJ_NULL);
	err = dj_number(d, &off, &len);
	return err ? err : dj_new_text(d, DJ_NUM, off, len);
}

static void dj_free(struct dj_doc *d)
{
	free(d->nodes);
	free(d->arena);
	d->nodes = NULL;
	d->arena = NULL;
}

/* 0 when the whole text is one JSON value, -EINVAL if not, -ENOMEM. */
static int dj_parse(struct dj_doc *d, const uint8_t *p, size_t n)
{
	int root;

	memset(d, 0, sizeof(*d));
	d->src = p ? (const char *)p : "";   /* an empty body may have no buffer */
	d->len = n;
	d->arena = malloc(n ? n : 1);
	if (!d->arena)
		return -ENOMEM;
	root = dj_value(d, 0);
	if (root < 0)
		return root == -ENOMEM ? -ENOMEM : -EINVAL;
	dj_ws(d);
	return d->pos == d->len ? 0 : -EINVAL;
}

struct dj_cmp {
	const struct dj_doc *a, *b;
	struct st_diff *d;
	int max_paths;
	size_t ndiff;
	int err;
	char path[DIFF_PATH_MAX];
};

static void dj_report(struct dj_cmp *c, size_t plen)
{
	c->ndiff++;
	if (c->err || (int)c->d->nbody_paths >= c->max_paths)
		return;
	c->err = diff_push(&c->d->body_paths, &c->d->nbody_paths, c->path, plen, false);
}

static bool dj_num_eq(const struct dj_doc *da, const struct dj_node *a,
		      const struct dj_doc *db, const struct dj_node *b)
{
	char x[64], y[64];

	if (a->str_len == b->str_len && memcmp(da->src + a->str, db->src + b->str, a->str_len) == 0)
		return true;
	/* JSON has no leading zeros, so differing integer texts are different values
	 * (except -0); a double would conflate integers past 2^53. */
	if (!memchr(da->src + a->str, '.', a->str_len) && !memchr(da->src + a->str, 'e', a->str_len) &&
	    !memchr(da->src + a->str, 'E', a->str_len) && !memchr(db->src + b->str, '.', b->str_len) &&
	    !memchr(db->src + b->str, 'e', b->str_len) && !memchr(db->src + b->str, 'E', b->str_len) &&
	    a->str_len > 2 && b->str_len > 2)
		return false;
	if (a->str_len >= sizeof(x) || b->str_len >= sizeof(y))
		return false;
	memcpy(x, da->src + a->str, a->str_len);
	x[a->str_len] = '\0';
	memcpy(y, db->src + b->str, b->str_len);
	y[b->str_len] = '\0';
	return strtod(x, NULL) == strtod(y, NULL);
}

static size_t dj_path_key(char *path, size_t plen, const char *k, size_t klen)
{
	size_t i, o = plen;
	bool ident = klen > 0;

	for (i = 0; i < klen; i++)
		if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-' && k[i] != '$')
			ident = false;
	if (ident) {
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

struct dj_member {
	const char *key;
	size_t len;
	int node;
	int order;
};

static int dj_member_cmp(const void *x, const void *y)
{
	const struct dj_member *a = x, *b = y;
	size_t n = a->len < b->len ? a->len : b->len;
	int r = memcmp(a->key, b->key, n);

	if (r)
		return r;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->order - b->order;
}

static struct dj_member *dj_members(const struct dj_doc *d, const struct dj_node *n)
{
	struct dj_member *m = calloc(n->nchild ? (size_t)n->nchild : 1, sizeof(*m));
	int c, i = 0;

	if (!m)
		return NULL;
	for (c = n->first; c >= 0; c = d->nodes[c].next, i++) {
		m[i].key = d->arena + d->nodes[c].key;
		m[i].len = d->nodes[c].key_len;
		m[i].node = c;
		m[i].order = i;
	}
	qsort(m, (size_t)n->nchild, sizeof(*m), dj_member_cmp);
	return m;
}

static void dj_cmp_node(struct dj_cmp *c, int ia, int ib, size_t plen);

static void dj_cmp_obj(struct dj_cmp *c, const struct dj_node *a, const struct dj_node *b, size_t plen)
{
	struct dj_member *ma = dj_members(c->a, a), *mb = dj_members(c->b, b);
	int i = 0, j = 0, r;
	size_t kl;

	if (!ma || !mb) {
		c->err = -ENOMEM;
		goto out;
	}
	while (i < a->nchild || j < b->nchild) {
		if (i == a->nchild)
			r = 1;
		else if (j == b->nchild)
			r = -1;
		else
			r = dj_member_cmp(&ma[i], &mb[j]) ;
		if (r && i < a->nchild && j < b->nchild && ma[i].len == mb[j].len &&
		    memcmp(ma[i].key, mb[j].key, ma[i].len) == 0)
			r = 0;   /* same key, duplicate position: compare in order */
		if (r == 0) {
			kl = dj_path_key(c->path, plen, ma[i].key, ma[i].len);
			dj_cmp_node(c, ma[i].node, mb[j].node, kl);
			i++;
			j++;
		} else if (r < 0) {
			kl = dj_path_key(c->path, plen, ma[i].key, ma[i].len);
			dj_report(c, kl);
			i++;
		} else {
			kl = dj_path_key(c->path, plen, mb[j].key, mb[j].len);
			dj_report(c, kl);
			j++;
		}
	}
out:
	free(ma);
	free(mb);
}

static void dj_cmp_node(struct dj_cmp *c, int ia, int ib, size_t plen)
{
	const struct dj_node *a = &c->a->nodes[ia], *b = &c->b->nodes[ib];
	int ca, cb, k = 0;
	size_t pl;
	char idx[24];

	if (c->err)
		return;
	if (a->type != b->type) {
		dj_report(c, plen);
		return;
	}
	switch (a->type) {
	case DJ_NUM:
		if (!dj_num_eq(c->a, a, c->b, b))
			dj_report(c, plen);
		return;
	case DJ_STR:
		if (a->str_len != b->str_len ||
		    memcmp(c->a->arena + a->str, c->b->arena + b->str, a->str_len) != 0)
			dj_report(c, plen);
		return;
	case DJ_OBJ:
		dj_cmp_obj(c, a, b, plen);
		return;
	case DJ_ARR:
		ca = a->first;
		cb = b->first;
		while (ca >= 0 || cb >= 0) {
			int n = snprintf(idx, sizeof(idx), "[%d]", k++);

			pl = plen + (size_t)n < DIFF_PATH_MAX ? plen + (size_t)n : plen;
			if (pl != plen)
				memcpy(c->path + plen, idx, (size_t)n);
			if (ca >= 0 && cb >= 0)
				dj_cmp_node(c, ca, cb, pl);
			else
				dj_report(c, pl);
			if (ca >= 0)
				ca = c->a->nodes[ca].next;
			if (cb >= 0)
				cb = c->b->nodes[cb].next;
		}
		return;
	default:
		return;
	}
}

static bool diff_is_json_type(const struct st_msg *m)
{
	size_t i, n;
	const char *v;

	for (i = 0; i < m->nhdrs; i++) {
		if (!diff_name_eq(m->hdrs[i].name, m->hdrs[i].name_len, "content-type", 12))
			continue;
		v = m->hdrs[i].value;
		n = m->hdrs[i].value_len;
		if (memchr(v, ';', n))
			n = (size_t)((const char *)memchr(v, ';', n) - v);
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (diff_name_eq(v, n, "application/json", 16) || diff_name_eq(v, n, "text/json", 9))
			return true;
		return n > 5 && strncasecmp(v + n - 5, "+json", 5) == 0;
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

/* Structural comparison. 1 = compared, 0 = not both JSON, negative errno. */
static int diff_json(struct st_diff *d, const struct st_msg *a, const struct st_msg *b,
		     int max_paths)
{
	struct dj_doc da, db;
	struct dj_cmp c;
	char why[96];
	int err;

	if (!(diff_is_json_type(a) && diff_is_json_type(b)) && !(diff_looks_json(a) && diff_looks_json(b)))
		return 0;
	err = dj_parse(&da, a->body, a->body_stored);
	if (!err)
		err = dj_parse(&db, b->body, b->body_stored);
	else
		memset(&db, 0, sizeof(db));
	if (err) {
		err = err == -ENOMEM ? -ENOMEM : 0;
		goto out;
	}
	memset(&c, 0, sizeof(c));
	c.a = &da;
	c.b = &db;
	c.d = d;
	c.max_paths = max_paths;
	c.path[0] = '$';
	dj_cmp_node(&c, 0, 0, 1);
	if (c.err) {
		err = c.err;
		goto out;
	}
	d->body_json = true;
	d->body_same = c.ndiff == 0;
	if (c.ndiff > d->nbody_paths && !d->reason) {
		snprintf(why, sizeof(why), "%zu json paths differ, %zu listed", c.ndiff, d->nbody_paths);
		d->reason = strdup(why);
	}
	err = 1;
out:
	dj_free(&da);
	dj_free(&db);
	return err;
}

static int diff_body(struct st_diff *d, const struct st_msg *a, const struct st_msg *b,
		     int max_paths, bool *cut)
{
	size_t n;
	int err;

	*cut = a->body_stored < a->body_bytes || b->body_stored < b->body_bytes;
	if (!a->complete) {
		/* serverA's answer was not captured whole: nothing to vouch for */
		*cut = true;
		d->body_same = false;
		d->reason = strdup("serverA response incomplete");
		return d->reason ? 0 : -ENOMEM;
	}
	if (*cut) {
		n = a->body_stored < b->body_stored ? a->body_stored : b->body_stored;
		d->body_same = a->body_bytes == b->body_bytes &&
			       (n == 0 || memcmp(a->body, b->body, n) == 0);
		if (d->body_same) {
			d->reason = strdup("body compared up to the body limit only");
			if (!d->reason)
				return -ENOMEM;
		}
		return 0;
	}
	if (a->body_stored == b->body_stored &&
	    (a->body_stored == 0 || memcmp(a->body, b->body, a->body_stored) == 0)) {
		d->body_same = true;
		return 0;
	}
	d->body_same = false;
	err = diff_json(d, a, b, max_paths);
	return err < 0 ? err : 0;
}

struct st_diff *diff_compare(const struct st_record *r, const struct diff_cfg *cfg)
{
	const char *const *ignore = cfg && cfg->ignore ? cfg->ignore : diff_default_ignore;
	int max_paths = cfg && cfg->max_paths > 0 ? cfg->max_paths : DIFF_DEFAULT_MAX_PATHS;
	const struct st_msg *a = &r->resp, *b;
	struct st_diff *d;
	bool cut = false;
	int err;

	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	if (!r->replay || r->replay->error) {
		d->reason = strdup("no replay response");
		if (!d->reason)
			goto fail;
		return d;
	}
	b = &r->replay->resp;
	if (!r->status_code) {
		d->reason = strdup("no serverA response");
		if (!d->reason)
			goto fail;
		return d;
	}
	d->status_same = r->status_code == r->replay->status_code;
	err = diff_body(d, a, b, max_paths, &cut);
	if (!err)
		err = diff_headers_msg(d, a, a, b, ignore, cut);
	if (!err)
		err = diff_headers_msg(d, b, a, b, ignore, cut);
	if (err)
		goto fail;
	d->match = d->status_same && d->nheaders == 0 && d->body_same;
	/* field by field only when there is something to explain, and only when
	 * serverA's answer was seen whole */
	if (!d->match && a->complete &&
	    fields_compare(r->status_code, a, r->replay->status_code, b, ignore, &d->fields,
			   &d->nfields, &d->fields_total))
		goto fail;
	return d;
fail:
	record_diff_free(d);
	return NULL;
}
