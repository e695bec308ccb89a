/* libFuzzer: arbitrary bytes as two response bodies (split at the first NUL, or in
 * half) under a content type picked by the first byte (JSON, form, text, JSON with
 * a charset), compared field by field. Checks: at most FIELDS_MAX kept, never more
 * kept than found,
 * every path non-empty, a body compared with itself has no differences, and the
 * fast paths (fields_fast) find exactly what the plain comparison finds. Inputs
 * whose first byte has bit 0x80 set compare the first body with a copy of itself in
 * which the rest of the input is spliced at a position, so the fast path that
 * derives one body from the other is reached. fj_locate (where the bodies differ,
 * found without parsing) must agree with fj_parse and fj_derive, and diff_compare
 * (which uses it) must give the same diff with and without the fast paths. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "fields.h"
#include "fields_json.h"
#include "record.h"

/* fj_locate against fj_parse + fj_derive on the same pair */
static void fuzz_locate(const char *a, size_t an, const char *b, size_t bn)
{
	struct fj_doc da, dd;
	struct fj_spot sp;
	int err = fj_locate(&sp, a, an, b, bn), perr, derr = -EAGAIN, k;
	size_t r = 0;

	perr = fj_parse(&da, a, an);
	memset(&dd, 0, sizeof(dd));
	if (!perr)
		derr = fj_derive(&dd, &da, b, bn);
	while (r < an && (a[r] == ' ' || a[r] == '\t' || a[r] == '\r' || a[r] == '\n'))
		r++;
	if (err) {
		/* declined: only where the usual way declines, a string has escapes or
		 * the root is not a container */
		if (err != -EAGAIN || (!perr && !derr && !memchr(a, '\\', an) && r < an &&
				       (a[r] == '{' || a[r] == '[')))
			abort();
	} else {
		const struct fj_node *x;

		if (perr || derr || dd.ndpath != sp.nlv + 1)
			abort();
		for (k = 0; k < sp.nlv; k++) {
			const struct fj_node *e = &da.n[dd.dpath[k]], *m = &da.n[dd.dpath[k + 1]];
			int32_t ch, i = 0;

			if (e->type != sp.lv[k].type)
				abort();
			if (e->type == FJ_OBJ) {
				if (m->key_len != sp.lv[k].key_len || memcmp(fj_key(&da, m), a + sp.lv[k].key, m->key_len))
					abort();
			} else {
				for (ch = e->first; ch >= 0 && ch != dd.dpath[k + 1]; ch = da.n[ch].next)
					i++;
				if (i != sp.lv[k].index)
					abort();
			}
		}
		x = &da.n[dd.dpath[sp.nlv]];
		if (x->type != FJ_STR || x->v != sp.v || x->ve != sp.ve ||
		    (int64_t)dd.n[dd.dpath[sp.nlv]].ve != (int64_t)sp.ve + sp.delta)
			abort();
	}
	fj_free(&da);
	fj_free(&dd);
}

static int same_list(char **x, size_t nx, char **y, size_t ny)
{
	size_t i;

	if (nx != ny)
		return 0;
	for (i = 0; i < nx; i++)
		if (strcmp(x[i], y[i]))
			return 0;
	return 1;
}

/* diff_compare with and without the fast paths */
static void fuzz_diff(const char *head, const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

static const char *const heads[] = {
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n\r\n",
};

static void fuzz_msg(struct st_msg *m, const char *head, const uint8_t *p, size_t n)
{
	struct http1_header h;

	memset(m, 0, sizeof(*m));
	h.name = strstr(head, "Content-Type");
	h.name_len = 12;
	h.value = h.name + 14;
	h.value_len = (size_t)(strstr(h.value, "\r\n") - h.value);
	if (record_msg_set_head(m, head, strlen(head), &h, 1) ||
	    (n && record_msg_body_append(m, (const char *)p, n, n + 1)))
		abort();
	m->complete = 1;
}

static void fuzz_cmp(const char *head, const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
		     int expect_same)
{
	struct st_msg ma, mb;
	struct st_field *f = NULL;
	size_t n = 0, total = 0, i;

	struct st_field *g = NULL;
	size_t gn = 0, gtotal = 0;

	fuzz_msg(&ma, head, a, an);
	fuzz_msg(&mb, head, b, bn);
	if (fields_compare(200, &ma, 200, &mb, NULL, &f, &n, &total))
		abort();   /* only -ENOMEM, which the fuzzer's sizes never reach */
	if (n > FIELDS_MAX || total < n || (expect_same && n))
		abort();
	for (i = 0; i < n; i++)
		if (!f[i].path || !f[i].path[0] || f[i].kind >= FK_NKINDS)
			abort();
	fields_fast = false;
	if (fields_compare(200, &ma, 200, &mb, NULL, &g, &gn, &gtotal))
		abort();
	fields_fast = true;
	if (gn != n || gtotal != total)
		abort();
	for (i = 0; i < n; i++)
		if (strcmp(f[i].path, g[i].path) || f[i].kind != g[i].kind || !f[i].a != !g[i].a ||
		    !f[i].b != !g[i].b || (f[i].a && strcmp(f[i].a, g[i].a)) ||
		    (f[i].b && strcmp(f[i].b, g[i].b)))
			abort();
	fields_free(g, gn);
	fields_free(f, n);
	record_msg_free(&ma);
	record_msg_free(&mb);
	fuzz_locate((const char *)a, an, (const char *)b, bn);
	fuzz_diff(head, a, an, b, bn);
}

static void fuzz_diff(const char *head, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	struct st_record *r = record_new();
	struct st_diff *x, *y;
	size_t i;

	if (!r)
		abort();
	r->status_code = 200;
	r->replay = calloc(1, sizeof(*r->replay));
	if (!r->replay)
		abort();
	r->replay->status_code = 200;
	fuzz_msg(&r->resp, head, a, an);
	fuzz_msg(&r->replay->resp, head, b, bn);
	x = diff_compare(r, NULL);
	fields_fast = false;
	y = diff_compare(r, NULL);
	fields_fast = true;
	if (!x || !y || x->match != y->match || x->body_same != y->body_same ||
	    x->body_json != y->body_json || x->status_same != y->status_same ||
	    !same_list(x->headers, x->nheaders, y->headers, y->nheaders) ||
	    !same_list(x->body_paths, x->nbody_paths, y->body_paths, y->nbody_paths) ||
	    !x->reason != !y->reason || (x->reason && strcmp(x->reason, y->reason)) ||
	    x->nfields != y->nfields || x->fields_total != y->fields_total)
		abort();
	for (i = 0; i < x->nfields; i++)
		if (strcmp(x->fields[i].path, y->fields[i].path) || x->fields[i].kind != y->fields[i].kind ||
		    !x->fields[i].a != !y->fields[i].a || !x->fields[i].b != !y->fields[i].b ||
		    (x->fields[i].a && strcmp(x->fields[i].a, y->fields[i].a)) ||
		    (x->fields[i].b && strcmp(x->fields[i].b, y->fields[i].b)))
			abort();
	record_diff_free(x);
	record_diff_free(y);
	record_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul;
	const char *head;
	size_t an;

	if (size < 1)
		return 0;
	head = heads[data[0] % 4];
	if (data[0] & 0x80 && size >= 3) {
		/* body a = data[3..3+len), b = a with data[3+len..) spliced in at pos,
		 * replacing del bytes */
		size_t len = (size_t)data[1] < size - 3 ? (size_t)data[1] : size - 3;
		size_t pos = len ? data[2] % (len + 1) : 0, del = (size_t)(data[0] & 3);
		size_t rest = size - 3 - len;
		uint8_t *b = malloc(len + rest + 1);

		if (!b)
			return 0;
		if (pos + del > len)
			del = len - pos;
		memcpy(b, data + 3, pos);
		memcpy(b + pos, data + 3 + len, rest);
		memcpy(b + pos + rest, data + 3 + pos + del, len - pos - del);
		fuzz_cmp(head, data + 3, len, b, len - del + rest, 0);
		free(b);
		return 0;
	}
	data++;
	size--;
	nul = memchr(data, 0, size);
	an = nul ? (size_t)(nul - data) : size / 2;
	fuzz_cmp(head, data, an, data + an + (nul != NULL), size - an - (nul != NULL), 0);
	fuzz_cmp(head, data, an, data, an, 1);
	return 0;
}
