/* fields_compare: every difference kind, paths of JSON/form/text bodies, headers,
 * status, the noise verdict; and diff_compare filling diff.fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "diff.h"
#include "fields.h"
#include "record.h"

static void set_msg(struct st_msg *m, const char *head, const char *body)
{
	struct http1_header h[ST_MAX_HEADERS];
	const char *p = strchr(head, '\n') + 1, *end = head + strlen(head);
	size_t n = 0;

	memset(m, 0, sizeof(*m));
	while (p < end && *p != '\r' && *p != '\n') {
		const char *colon = strchr(p, ':'), *eol = strchr(p, '\r');
		const char *v = colon + 1;

		while (*v == ' ')
			v++;
		h[n].name = p;
		h[n].name_len = (size_t)(colon - p);
		h[n].value = v;
		h[n].value_len = (size_t)(eol - v);
		n++;
		p = eol + 2;
	}
	assert_int_equal(record_msg_set_head(m, head, strlen(head), h, n), 0);
	if (body)
		assert_int_equal(record_msg_body_append(m, body, strlen(body), 1 << 20), 0);
	m->complete = true;
}

#define HJ "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
#define HT "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
#define HF "HTTP/1.1 200 OK\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"

struct res {
	struct st_field *f;
	size_t n, total;
};

static struct res cmp(int sa, const char *ha, const char *ba, int sb, const char *hb, const char *bb)
{
	struct st_msg a, b;
	struct res r = { 0 };

	set_msg(&a, ha, ba);
	set_msg(&b, hb, bb);
	assert_int_equal(fields_compare(sa, &a, sb, &b, diff_default_ignore, &r.f, &r.n, &r.total), 0);
	record_msg_free(&a);
	record_msg_free(&b);
	return r;
}

static const struct st_field *find(const struct res *r, const char *path)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->f[i].path, path) == 0)
			return &r->f[i];
	return NULL;
}

static void expect(const struct res *r, const char *path, int kind)
{
	const struct st_field *f = find(r, path);

	if (!f)
		fail_msg("no difference at %s", path);
	assert_string_equal(fields_kind_name(f->kind), fields_kind_name(kind));
}

static void test_json_kinds(void **state)
{
	struct res r = cmp(200, HJ,
		"{\"price\":10,\"id\":\"x\",\"gone\":1,\"t\":1,\"tags\":[\"a\",\"b\",\"c\"],"
		"\"items\":[1,2],\"o\":{\"k\":[{\"v\":1},{\"v\":2}]},\"same\":[1,{\"a\":1,\"b\":2}]}",
		200, HJ,
		"{\"id\":\"x\",\"price\":11,\"t\":\"1\",\"new\":null,\"tags\":[\"c\",\"a\",\"b\"],"
		"\"items\":[1,2,3],\"o\":{\"k\":[{\"v\":1},{\"v\":3}]},\"same\":[1,{\"b\":2,\"a\":1}]}");

	expect(&r, "$.price", FK_VALUE);
	assert_string_equal(find(&r, "$.price")->a, "10");
	assert_string_equal(find(&r, "$.price")->b, "11");
	expect(&r, "$.gone", FK_MISSING);
	assert_null(find(&r, "$.gone")->b);
	expect(&r, "$.new", FK_EXTRA);
	expect(&r, "$.t", FK_TYPE);
	expect(&r, "$.tags", FK_ORDER);
	expect(&r, "$.items", FK_LENGTH);
	expect(&r, "$.o.k[*].v", FK_VALUE);
	assert_null(find(&r, "$.id"));
	assert_null(find(&r, "$.same"));   /* member order inside objects never counts */
	assert_int_equal(r.n, 7);
	fields_free(r.f, r.n);
}

static void test_json_equal_forms(void **state)
{
	/* 1.0 == 1.00, "\u0041" == "A", whitespace, member order */
	struct res r = cmp(200, HJ, "{\"a\":1.0,\"s\":\"\\u0041\",\"b\":[true,null]}", 200, HJ,
			   " { \"b\" : [ true , null ] , \"s\":\"A\", \"a\":1.00 } ");

	assert_int_equal(r.n, 0);
	fields_free(r.f, r.n);
	/* integers past 2^53 are not folded through a double */
	r = cmp(200, HJ, "[9007199254740993]", 200, HJ, "[9007199254740992]");
	expect(&r, "$[*]", FK_VALUE);
	fields_free(r.f, r.n);
}

static void test_json_index_folding(void **state)
{
	/* the same field differing in two elements is one difference */
	struct res r = cmp(200, HJ, "[{\"p\":1,\"q\":1},{\"p\":2,\"q\":1}]", 200, HJ,
			   "[{\"p\":5,\"q\":1},{\"p\":6,\"q\":1}]");

	assert_int_equal(r.n, 1);
	expect(&r, "$[*].p", FK_VALUE);
	assert_int_equal(r.total, 2);
	fields_free(r.f, r.n);
}

static void test_json_odd_keys(void **state)
{
	struct res r = cmp(200, HJ, "{\"a b\":1,\"x.y\":2}", 200, HJ, "{\"a b\":2,\"x.y\":3}");

	expect(&r, "$[\"a b\"]", FK_VALUE);
	expect(&r, "$[\"x.y\"]", FK_VALUE);
	fields_free(r.f, r.n);
}

static void test_status_headers(void **state)
{
	struct res r = cmp(200, "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-Gone: y\r\nDate: d1\r\nContent-Length: 2\r\n\r\n",
			   "ok", 500,
			   "HTTP/1.1 500 E\r\nx-a: 2\r\nX-New: z\r\nDate: d2\r\nContent-Length: 3\r\n\r\n", "ok!");

	expect(&r, "status", FK_VALUE);
	assert_string_equal(find(&r, "status")->a, "200");
	assert_string_equal(find(&r, "status")->b, "500");
	expect(&r, "header:x-a", FK_VALUE);
	expect(&r, "header:x-gone", FK_MISSING);
	expect(&r, "header:x-new", FK_EXTRA);
	assert_null(find(&r, "header:date"));           /* on the ignore list */
	assert_null(find(&r, "header:content-length")); /* the body speaks for it */
	expect(&r, "line[0]", FK_VALUE);
	fields_free(r.f, r.n);
}

static void test_form(void **state)
{
	struct res r = cmp(200, HF, "a=1&b=2&c=3", 200, HF, "c=3&a=9&d=4");

	expect(&r, "form.a", FK_VALUE);
	expect(&r, "form.b", FK_MISSING);
	expect(&r, "form.d", FK_EXTRA);
	assert_null(find(&r, "form.c"));
	assert_int_equal(r.n, 3);
	fields_free(r.f, r.n);
}

static void test_text_lines(void **state)
{
	struct res r = cmp(200, HT, "one\r\ntwo\nthree\n", 200, HT, "one\nTWO\nthree\nfour\n");

	expect(&r, "line[1]", FK_VALUE);
	expect(&r, "lines", FK_LENGTH);
	assert_null(find(&r, "line[0]"));   /* CRLF and LF are the same line end */
	fields_free(r.f, r.n);
}

static void test_not_json_falls_back(void **state)
{
	/* one side is not valid JSON: compared as text */
	struct res r = cmp(200, HJ, "{\"a\":1}", 200, HJ, "{\"a\":1");

	expect(&r, "line[0]", FK_VALUE);
	fields_free(r.f, r.n);
}

static void test_cap(void **state)
{
	char a[4096], b[4096];
	size_t o = 0, p = 0;
	int i;

	o += (size_t)snprintf(a + o, sizeof(a) - o, "{");
	p += (size_t)snprintf(b + p, sizeof(b) - p, "{");
	for (i = 0; i < 50; i++) {
		o += (size_t)snprintf(a + o, sizeof(a) - o, "%s\"k%d\":1", i ? "," : "", i);
		p += (size_t)snprintf(b + p, sizeof(b) - p, "%s\"k%d\":2", i ? "," : "", i);
	}
	snprintf(a + o, sizeof(a) - o, "}");
	snprintf(b + p, sizeof(b) - p, "}");
	{
		struct res r = cmp(200, HJ, a, 200, HJ, b);

		assert_int_equal(r.n, FIELDS_MAX);
		assert_int_equal(r.total, 50);
		fields_free(r.f, r.n);
	}
}

static void test_verdict(void **state)
{
	/* Diffy's defaults: 20% relative, 0.03% of requests */
	assert_true(fields_real(50, 0, 1000, FIELDS_DEFAULT_REL, FIELDS_DEFAULT_ABS));
	assert_false(fields_real(1000, 990, 1000, FIELDS_DEFAULT_REL, FIELDS_DEFAULT_ABS));
	assert_false(fields_real(10, 20, 1000, FIELDS_DEFAULT_REL, FIELDS_DEFAULT_ABS));
	assert_false(fields_real(1, 0, 1000000, FIELDS_DEFAULT_REL, FIELDS_DEFAULT_ABS));
	assert_true(fields_real(12, 8, 1000, 0.19, FIELDS_DEFAULT_ABS));
	assert_false(fields_real(12, 8, 1000, 0.21, FIELDS_DEFAULT_ABS));
	assert_false(fields_real(0, 0, 0, FIELDS_DEFAULT_REL, FIELDS_DEFAULT_ABS));
}

static void test_diff_compare_fields(void **state)
{
	struct st_record *r = record_new();
	struct st_diff *d;

	r->replay = calloc(1, sizeof(*r->replay));
	r->status_code = 200;
	r->replay->status_code = 200;
	set_msg(&r->resp, HJ, "{\"a\":[1,2,3]}");
	set_msg(&r->replay->resp, HJ, "{\"a\":[3,2,1]}");
	d = diff_compare(r, NULL);
	assert_non_null(d);
	assert_false(d->match);
	assert_int_equal(d->nfields, 1);
	assert_string_equal(d->fields[0].path, "$.a");
	assert_int_equal(d->fields[0].kind, FK_ORDER);
	record_diff_free(d);
	record_msg_free(&r->replay->resp);
	set_msg(&r->replay->resp, HJ, "{\"a\":[1,2,3]}");
	d = diff_compare(r, NULL);
	assert_true(d->match);
	assert_int_equal(d->nfields, 0);
	record_diff_free(d);
	record_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_kinds),
		cmocka_unit_test(test_json_equal_forms),
		cmocka_unit_test(test_json_index_folding),
		cmocka_unit_test(test_json_odd_keys),
		cmocka_unit_test(test_status_headers),
		cmocka_unit_test(test_form),
		cmocka_unit_test(test_text_lines),
		cmocka_unit_test(test_not_json_falls_back),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_diff_compare_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
