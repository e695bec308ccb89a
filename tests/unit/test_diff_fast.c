/* The comparisons' fast paths (fields_fast: header names hashed once, a body
 * derived from the other when they differ inside one string) against the plain
 * ones, on random headers (case, repeats, ignored names, empty names) and random
 * edits of JSON bodies: diff_compare's and fields_compare's results must be the
 * same, field for field. A fixed seed, so a failure repeats. */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "diff.h"
#include "fields.h"
#include "fields_json.h"
#include "record.h"

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static const char *const names[] = {
	"Content-Type", "content-type", "CONTENT-TYPE", "Content-Length", "content-length",
	"Date", "date", "ETag", "Server", "Accept-Ranges", "accept-ranges", "X-A", "x-a",
	"X-Request-Id", "x-request-ID", "Cache-Control", "Vary", "X-B", "", "X-Very-Long-Header-Name-1",
	"x-very-long-header-name-1", "Set-Cookie", "A[", "a{",
};
static const char *const values[] = { "application/json", "text/plain", "1", "2", "x", "", "bytes",
				      "application/json; charset=utf-8", "Application/JSON;q",
				      "application/jsonx", "application/json ;a", "text/json" };

/* A message with random headers and the given body; with like, like's header names
 * in like's order (values drawn anew, or kept one time in two). */
static void rnd_msg(struct st_msg *m, const char *body, size_t blen, const struct st_msg *like)
{
	struct http1_header h[24];
	char head[2048], nb[64];
	size_t n = like ? like->nhdrs : rnd(12), i, o;

	o = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n");
	for (i = 0; i < n; i++) {
		const char *nm = names[rnd(sizeof(names) / sizeof(names[0]))];
		const char *v = values[rnd(sizeof(values) / sizeof(values[0]))];

		if (like) {
			snprintf(nb, sizeof(nb), "%.*s", (int)like->hdrs[i].name_len, like->hdrs[i].name);
			nm = nb;
			if (rnd(2)) {
				snprintf(nb + 32, 32, "%.*s", (int)like->hdrs[i].value_len, like->hdrs[i].value);
				v = nb + 32;
			}
		}

		h[i].name_len = strlen(nm);
		h[i].value_len = strlen(v);
		o += (size_t)snprintf(head + o, sizeof(head) - o, "%s: %s\r\n", nm, v);
	}
	o += (size_t)snprintf(head + o, sizeof(head) - o, "\r\n");
	/* point the headers into head, in order */
	{
		const char *p = strchr(head, '\n') + 1;

		for (i = 0; i < n; i++) {
			h[i].name = p;
			h[i].value = p + h[i].name_len + 2;
			p = strchr(p, '\n') + 1;
		}
	}
	memset(m, 0, sizeof(*m));
	assert_int_equal(record_msg_set_head(m, head, o, h, n), 0);
	if (blen)
		assert_int_equal(record_msg_body_append(m, body, blen, 1 << 20), 0);
	m->complete = true;
}

static const char *const bodies[] = {
	"{\"server\":\"serverA\",\"items\":[1,2,3,4,5,6,7,8],\"note\":\"benchmark response body\"}\n",
	"{\"a\":{\"b\":\"xy\",\"c\":[\"p\",\"q\",{\"d\":\"e\\\"f\"}]},\"k\\u0041\":\"v\",\"z\":null,\"t\":true}",
	"[\"one\",\"two\",[\"three\",\"four\"],{\"x\":\"y\",\"x\":\"w\"},1.5e3,\"\"]",
	"{\"weird key\":\"v\",\"n\":-0,\"s\":\"tab\\tend\",\"arr\":[{\"id\":\"1\"},{\"id\":\"2\"}]}",
	" {\"a\":[{\"b\":\"c\",\"d\":[\"e\",\"ff\"]},\"g\"],\"h\":{\"i\":{\"j\":\"kk\"}},\"m n\":\"o\",\"n\":12} ",
};

/* b: a with one random edit, most of them inside a string */
static size_t edit(const char *a, char *b, size_t cap)
{
	static const char alpha[] = "ab\"\\{}[],:0 \t\x01zZ";
	size_t al = strlen(a), pos = rnd((uint32_t)al + 1), del = rnd(4), ins = rnd(5), o, i;

	if (rnd(4)) {
		/* a position inside a string's text: after some quote */
		const char *q = strchr(a + pos, '"');

		if (q && q[1])
			pos = (size_t)(q - a) + 1 + rnd(2);
		if (pos > al)
			pos = al;
	}
	if (pos + del > al)
		del = al - pos;
	memcpy(b, a, pos);
	o = pos;
	for (i = 0; i < ins && o < cap - 1; i++)
		b[o++] = rnd(3) ? (char)('a' + rnd(26)) : alpha[rnd(sizeof(alpha) - 1)];
	memcpy(b + o, a + pos + del, al - pos - del);
	o += al - pos - del;
	b[o] = '\0';
	return o;
}

static void same_strs(char **x, size_t nx, char **y, size_t ny)
{
	size_t i;

	assert_int_equal(nx, ny);
	for (i = 0; i < nx; i++)
		assert_string_equal(x[i], y[i]);
}

static void same_fields(const struct st_field *x, size_t nx, const struct st_field *y, size_t ny)
{
	size_t i;

	assert_int_equal(nx, ny);
	for (i = 0; i < nx; i++) {
		assert_string_equal(x[i].path, y[i].path);
		assert_int_equal(x[i].kind, y[i].kind);
		assert_true((x[i].a == NULL) == (y[i].a == NULL));
		assert_true((x[i].b == NULL) == (y[i].b == NULL));
		if (x[i].a)
			assert_string_equal(x[i].a, y[i].a);
		if (x[i].b)
			assert_string_equal(x[i].b, y[i].b);
	}
}

static void same_diff(const struct st_diff *x, const struct st_diff *y)
{
	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal(x->status_same, y->status_same);
	assert_int_equal(x->body_same, y->body_same);
	assert_int_equal(x->match, y->match);
	assert_int_equal(x->body_json, y->body_json);
	same_strs(x->headers, x->nheaders, y->headers, y->nheaders);
	same_strs(x->body_paths, x->nbody_paths, y->body_paths, y->nbody_paths);
	assert_true((x->reason == NULL) == (y->reason == NULL));
	if (x->reason)
		assert_string_equal(x->reason, y->reason);
	same_fields(x->fields, x->nfields, y->fields, y->nfields);
	assert_int_equal(x->fields_total, y->fields_total);
}

static void test_random(void **state)
{
	static const char *const ign[] = { "x-a", "date", "a{", NULL };
	char b[512];
	int round, fast_hits = 0;

	(void)state;
	for (round = 0; round < 20000; round++) {
		const char *a = bodies[rnd(sizeof(bodies) / sizeof(bodies[0]))];
		struct st_record *r = record_new();
		struct diff_cfg cfg = { .ignore = rnd(2) ? ign : NULL, .max_paths = (int)rnd(4) };
		struct st_diff *dfast, *dslow;
		struct st_field *ff = NULL, *fs = NULL;
		size_t nff = 0, nfs = 0, tf = 0, ts = 0, bl;

		assert_non_null(r);
		bl = rnd(8) ? edit(a, b, sizeof(b)) : strlen(strcpy(b, a));
		r->status_code = 200;
		r->replay = calloc(1, sizeof(*r->replay));
		assert_non_null(r->replay);
		r->replay->status_code = rnd(8) ? 200 : 404;
		rnd_msg(&r->resp, a, strlen(a), NULL);
		rnd_msg(&r->replay->resp, b, bl, rnd(2) ? &r->resp : NULL);
		if (rnd(3) == 0) {
			/* serverA's own headers on serverB's side too, so values are compared */
			record_msg_free(&r->replay->resp);
			memset(&r->replay->resp, 0, sizeof(r->replay->resp));
			assert_int_equal(record_msg_set_head(&r->replay->resp, r->resp.head, r->resp.head_len,
							     r->resp.hdrs, r->resp.nhdrs), 0);
			if (bl)
				assert_int_equal(record_msg_body_append(&r->replay->resp, b, bl, 1 << 20), 0);
			r->replay->resp.complete = true;
		}
		fields_fast = true;
		dfast = diff_compare(r, &cfg);
		assert_int_equal(fields_compare(200, &r->resp, 200, &r->replay->resp, cfg.ignore, &ff, &nff, &tf), 0);
		fields_fast = false;
		dslow = diff_compare(r, &cfg);
		assert_int_equal(fields_compare(200, &r->resp, 200, &r->replay->resp, cfg.ignore, &fs, &nfs, &ts), 0);
		fields_fast = true;
		same_diff(dfast, dslow);
		same_fields(ff, nff, fs, nfs);
		assert_int_equal(tf, ts);
		fast_hits += dfast->body_json && dfast->nbody_paths;
		record_diff_free(dfast);
		record_diff_free(dslow);
		fields_free(ff, nff);
		fields_free(fs, nfs);
		record_free(r);
	}
	/* the edits did reach the JSON comparison, not only the byte one */
	assert_true(fast_hits > 1000);
}

/* fj_derive gives what fj_parse gives, node for node, or declines */
static void test_derive(void **state)
{
	char b[512];
	int round, derived = 0, declined = 0, k;

	(void)state;
	for (round = 0; round < 20000; round++) {
		const char *a = bodies[rnd(sizeof(bodies) / sizeof(bodies[0]))];
		struct fj_doc da, dd, dp;
		size_t bl = edit(a, b, sizeof(b));
		int err, perr;

		assert_int_equal(fj_parse(&da, a, strlen(a)), 0);
		memset(&dd, 0, sizeof(dd));
		err = fj_derive(&dd, &da, b, bl);
		perr = fj_parse(&dp, b, bl);
		if (err == -EAGAIN) {
			declined++;
		} else {
			assert_int_equal(err, 0);
			assert_int_equal(perr, 0);
			assert_int_equal(dd.nn, dp.nn);
			assert_int_equal(dd.len, dp.len);
			for (k = 0; k < dp.nn; k++) {
				const struct fj_node *x = &dd.n[k], *y = &dp.n[k];

				assert_int_equal(x->h, y->h);
				assert_int_equal(x->v, y->v);
				assert_int_equal(x->ve, y->ve);
				assert_int_equal(x->type, y->type);
				assert_int_equal(x->first, y->first);
				assert_int_equal(x->next, y->next);
				assert_int_equal(x->nchild, y->nchild);
				assert_int_equal(x->depth, y->depth);
				assert_int_equal(x->sorted, -1);
				assert_int_equal(x->key_len, y->key_len);
				assert_memory_equal(fj_key(&dd, x), fj_key(&dp, y), y->key_len);
				if (y->type == FJ_STR) {
					assert_int_equal(x->s_len, y->s_len);
					assert_memory_equal(fj_s(&dd, x), fj_s(&dp, y), y->s_len);
				}
			}
			derived++;
		}
		fj_free(&da);
		fj_free(&dd);
		fj_free(&dp);
	}
	print_message("derived %d, declined %d\n", derived, declined);
	/* both ways were taken often */
	assert_true(derived > 1000);
	assert_true(declined > 2000);
}

/* fj_locate finds what fj_parse and fj_derive find (the containers on the way, the
 * keys and positions, the string's span), and declines only when they decline, a
 * string of a has escapes, or the root is not a container. */
static void test_locate(void **state)
{
	char b[512];
	int round, located = 0, k;

	(void)state;
	for (round = 0; round < 20000; round++) {
		const char *a = bodies[rnd(sizeof(bodies) / sizeof(bodies[0]))];
		size_t al = strlen(a), bl = rnd(16) ? edit(a, b, sizeof(b)) : strlen(strcpy(b, a));
		struct fj_doc da, dd;
		struct fj_spot sp;
		int err = fj_locate(&sp, a, al, b, bl), perr, derr = -EAGAIN;
		const char *r = a + strspn(a, " ");

		perr = fj_parse(&da, a, al);
		memset(&dd, 0, sizeof(dd));
		if (!perr)
			derr = fj_derive(&dd, &da, b, bl);
		if (err) {
			assert_int_equal(err, -EAGAIN);
			assert_true(perr || derr || strchr(a, '\\') || (*r != '{' && *r != '[') ||
				    (al == bl && !memcmp(a, b, al)));
		} else {
			const struct fj_node *x;

			assert_int_equal(perr, 0);
			assert_int_equal(derr, 0);
			assert_int_equal(dd.ndpath, sp.nlv + 1);
			for (k = 0; k < sp.nlv; k++) {
				const struct fj_node *e = &da.n[dd.dpath[k]], *m = &da.n[dd.dpath[k + 1]];
				int32_t ch, i = 0;

				assert_int_equal(e->type, sp.lv[k].type);
				if (e->type == FJ_OBJ) {
					assert_int_equal(m->key_len, sp.lv[k].key_len);
					assert_memory_equal(fj_key(&da, m), a + sp.lv[k].key, m->key_len);
				} else {
					for (ch = e->first; ch >= 0 && ch != dd.dpath[k + 1]; ch = da.n[ch].next)
						i++;
					assert_int_equal(i, sp.lv[k].index);
				}
			}
			x = &da.n[dd.dpath[sp.nlv]];
			assert_int_equal(x->type, FJ_STR);
			assert_int_equal(x->v, sp.v);
			assert_int_equal(x->ve, sp.ve);
			assert_int_equal((int64_t)dd.n[dd.dpath[sp.nlv]].ve, (int64_t)sp.ve + sp.delta);
			assert_ptr_equal(sp.a, a);
			assert_ptr_equal(sp.b, b);
			located++;
		}
		fj_free(&da);
		fj_free(&dd);
	}
	print_message("located %d\n", located);
	assert_true(located > 1000);
}

/* fields_lc_eq answers as strncasecmp does (C locale) for the constants it is used
 * with: every byte value at every position, and random cases of the letters. */
static void test_lc_eq(void **state)
{
	static const char *const lcs[] = { "content-type", "application/json", "text/json", "+json",
					   "content-length", "ab", "a-z@[`{09" };
	char s[32];
	size_t k, i, n;
	int c, round;

	(void)state;
	for (k = 0; k < sizeof(lcs) / sizeof(lcs[0]); k++) {
		n = strlen(lcs[k]);
		for (i = 0; i < n; i++)
			for (c = 0; c < 256; c++) {
				memcpy(s, lcs[k], n);
				s[i] = (char)c;
				assert_int_equal(fields_lc_eq(s, lcs[k], n), strncasecmp(s, lcs[k], n) == 0);
			}
		for (round = 0; round < 1000; round++) {
			for (i = 0; i < n; i++)
				s[i] = rnd(2) ? (char)toupper((unsigned char)lcs[k][i]) : lcs[k][i];
			assert_true(fields_lc_eq(s, lcs[k], n));
		}
	}
}

/* An ignore list rebuilt at the same address with other names is not taken for the
 * old one (the per-thread table of its hashes is checked against its entries). */
static void test_ignore_list_reused(void **state)
{
	static const char xa[] = "x-a", xb[] = "x-b";
	const char *list[2] = { xa, NULL };
	struct st_msg a, b;
	struct http1_header ha[2], hb[2];
	static const char head_a[] = "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 1\r\n\r\n";
	static const char head_b[] = "HTTP/1.1 200 OK\r\nX-A: 2\r\nX-B: 2\r\n\r\n";
	struct st_field *f = NULL;
	size_t n = 0, total = 0;
	int round;

	(void)state;
	for (round = 0; round < 2; round++) {
		ha[0] = (struct http1_header){ head_a + 17, 3, head_a + 22, 1 };
		ha[1] = (struct http1_header){ head_a + 25, 3, head_a + 30, 1 };
		hb[0] = (struct http1_header){ head_b + 17, 3, head_b + 22, 1 };
		hb[1] = (struct http1_header){ head_b + 25, 3, head_b + 30, 1 };
		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		assert_int_equal(record_msg_set_head(&a, head_a, sizeof(head_a) - 1, ha, 2), 0);
		assert_int_equal(record_msg_set_head(&b, head_b, sizeof(head_b) - 1, hb, 2), 0);
		a.complete = b.complete = true;
		assert_int_equal(fields_compare(200, &a, 200, &b, list, &f, &n, &total), 0);
		assert_int_equal(n, 1);
		assert_string_equal(f[0].path, round ? "header:x-a" : "header:x-b");
		fields_free(f, n);
		f = NULL;
		n = total = 0;
		record_msg_free(&a);
		record_msg_free(&b);
		list[0] = xb;   /* the same array, another name */
	}
}

/* A record whose serverA and serverB answers are both 200, heads not set yet. */
static struct st_record *record_200_pair(void)
{
	struct st_record *r = record_new();

	assert_non_null(r);
	r->status_code = 200;
	r->replay = calloc(1, sizeof(*r->replay));
	assert_non_null(r->replay);
	r->replay->status_code = 200;
	return r;
}

/* r's diff with the fast paths and with the plain ones, which must agree. */
static void diff_both(struct st_record *r, struct st_diff **fast, struct st_diff **plain)
{
	fields_fast = true;
	*fast = diff_compare(r, NULL);
	fields_fast = false;
	*plain = diff_compare(r, NULL);
	fields_fast = true;
	assert_non_null(*fast);
	same_diff(*fast, *plain);
}

/* The same head bytes split into headers differently on each side: the block
 * compare (fields_heads_same) must not vouch for them, and diff_compare gives what
 * the plain walk gives. Here serverB's X-A is read as "1" out of the same "12". */
static void test_heads_same_split(void **state)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nX-A: 12\r\nX-B: 1\r\n\r\n";
	struct http1_header ha[2] = { { head + 17, 3, head + 22, 2 }, { head + 26, 3, head + 31, 1 } };
	struct http1_header hb[2] = { { head + 17, 3, head + 22, 1 }, { head + 26, 3, head + 31, 1 } };
	struct st_diff *dfast, *dslow;
	struct st_record *r;
	int round;

	(void)state;
	for (round = 0; round < 2; round++) {
		r = record_200_pair();
		assert_int_equal(record_msg_set_head(&r->resp, head, sizeof(head) - 1, ha, 2), 0);
		/* round 1: the same split on both sides, so the block compare is used */
		assert_int_equal(record_msg_set_head(&r->replay->resp, head, sizeof(head) - 1, round ? ha : hb, 2), 0);
		r->resp.complete = r->replay->resp.complete = true;
		diff_both(r, &dfast, &dslow);
		assert_int_equal(dfast->nheaders, round ? 0 : 1);
		if (!round)
			assert_string_equal(dfast->headers[0], "x-a");
		assert_true(dfast->match == (round == 1));
		record_diff_free(dfast);
		record_diff_free(dslow);
		record_free(r);
	}
}

/* Content-Type decides whether bodies that do not look like JSON (a scalar root)
 * are compared as JSON: diff_is_json_type's one-word check against its plain lines,
 * on each value (the same head on both sides too, where serverB's is not read). */
static void test_json_type(void **state)
{
	static const char *const types[] = {
		"application/json", "Application/JSON", "application/json;charset=utf-8",
		"application/json; charset=utf-8", "application/json ;a", "application/jsonx",
		"application/json5", "application/jso", "text/json", "application/problem+json",
		"text/plain", "", "application/json\t", "application/json;",
	};
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		for (k = 0; k < 2; k++) {
			struct st_record *r = record_200_pair();
			struct st_diff *dfast, *dslow;
			struct http1_header h;
			char head[128];
			size_t o;

			o = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", types[i]);
			h = (struct http1_header){ head + 17, 12, head + 31, strlen(types[i]) };
			assert_int_equal(record_msg_set_head(&r->resp, head, o, &h, 1), 0);
			if (k)   /* serverB: another head, text/plain, so only serverA's type counts */
				o = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n",
						     "text/plain"), h.value_len = 10;
			assert_int_equal(record_msg_set_head(&r->replay->resp, head, o, &h, 1), 0);
			assert_int_equal(record_msg_body_append(&r->resp, "\"a\"", 3, 1 << 20), 0);
			assert_int_equal(record_msg_body_append(&r->replay->resp, "\"b\"", 3, 1 << 20), 0);
			r->resp.complete = r->replay->resp.complete = true;
			diff_both(r, &dfast, &dslow);
			assert_true(dfast->body_json == dslow->body_json);
			record_diff_free(dfast);
			record_diff_free(dslow);
			record_free(r);
		}
	}
}

/* fj_plain_end (the string scan of fj_parse and fj_locate) takes its stop from the
 * lowest flagged byte of a word (session 9): against a byte-by-byte reading, for
 * every byte value at every position of strings of 0-40 bytes, with a second random
 * byte after it in the same word. A stop missed (a quote, a backslash, a control
 * byte) shows as a string kept in the source with the wrong length; a stop found at
 * a plain byte as a string decoded instead of kept (FJ_S_SRC clear). */
static void test_plain_end(void **state)
{
	static const char fill[] = "nabcxyzABC09\x7f\x80\xc3\xa9\xff~#";
	char doc[64], s[48];
	struct fj_doc d;
	size_t len, pos, pos2, i, f;
	int c, rc;

	(void)state;
	memset(&d, 0, sizeof(d));
	for (len = 1; len <= 40; len++)
		for (pos = 0; pos < len; pos++)
			for (c = 0; c < 256; c++) {
				for (i = 0; i < len; i++)
					s[i] = fill[rnd(sizeof(fill) - 1)];
				s[pos] = (char)c;
				if (pos + 1 < len)
					s[pos + 1] = 'n';   /* after a backslash: a valid escape */
				pos2 = pos + 2 + rnd(7);
				if (pos2 < len)
					s[pos2] = (char)rnd(256);
				for (f = 0; f < len; f++)
					if (s[f] == '"' || s[f] == '\\' || (uint8_t)s[f] < 0x20)
						break;
				doc[0] = '[';
				doc[1] = '"';
				memcpy(doc + 2, s, len);
				doc[len + 2] = '"';
				doc[len + 3] = ']';
				rc = fj_reparse(&d, doc, len + 4);
				if (f == len) {
					assert_int_equal(rc, 0);
					assert_int_equal(d.nn, 2);
					assert_true(d.n[1].flags & FJ_S_SRC);
					assert_int_equal(d.n[1].s, 2);
					assert_int_equal(d.n[1].s_len, len);
				} else if (s[f] == '\\') {
					/* decoded, never kept in the source */
					assert_true(rc != 0 || !(d.n[1].flags & FJ_S_SRC));
				} else {
					/* a quote inside (an 'n' or the closing quote follows) or a
					 * control byte: not JSON */
					assert_int_equal(rc, -EINVAL);
				}
			}
	fj_free(&d);
}

/* the key table against the isalnum test it replaced, every byte value, alone and
 * inside a key (fields_key_ident: .key in paths, else ["key"]) */
static void test_key_ident(void **state)
{
	char k[3] = { 'a', 0, 'b' };
	int c;

	(void)state;
	assert_false(fields_key_ident("", 0));
	for (c = 0; c < 256; c++) {
		bool want = isalnum(c) || c == '_' || c == '-' || c == '$';

		k[1] = (char)c;
		assert_int_equal(fields_key_ident(k + 1, 1), want);
		assert_int_equal(fields_key_ident(k, 3), want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_derive),
		cmocka_unit_test(test_locate),
		cmocka_unit_test(test_lc_eq),
		cmocka_unit_test(test_ignore_list_reused),
		cmocka_unit_test(test_heads_same_split),
		cmocka_unit_test(test_json_type),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_plain_end),
		cmocka_unit_test(test_key_ident),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
