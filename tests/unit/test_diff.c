/* diff_compare: status, headers (with the ignore list), bytes, JSON structure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "diff.h"
#include "record.h"

/* Split "Name: value\r\n..." lines by hand so this test does not depend on http1.c. */
static void set_msg(struct st_msg *m, const char *head, const char *body)
{
	struct http1_header h[ST_MAX_HEADERS];
	const char *p = strchr(head, '\n') + 1, *end = head + strlen(head);
	size_t n = 0;

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

static struct st_record *mk(int sa, const char *ha, const char *ba, int sb, const char *hb,
			    const char *bb)
{
	struct st_record *r = record_new();

	assert_non_null(r);
	r->replay = calloc(1, sizeof(*r->replay));
	assert_non_null(r->replay);
	r->status_code = sa;
	r->replay->status_code = sb;
	set_msg(&r->resp, ha, ba);
	set_msg(&r->replay->resp, hb, bb);
	return r;
}

static int has(char **v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

#define H200 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 5\r\n\r\n"
#define H200B "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Tue, 02 Jan 2024 10:00:00 GMT\r\nContent-Length: 5\r\n\r\n"

static void test_identical(void **state)
{
	struct st_record *r = mk(200, H200, "hello", 200, H200B, "hello");
	struct st_diff *d = diff_compare(r, NULL);

	assert_non_null(d);
	assert_true(d->match);
	assert_true(d->status_same);
	assert_true(d->body_same);
	assert_int_equal(d->nheaders, 0);   /* date differs but is ignored */
	record_diff_free(d);
	record_free(r);
}

static void test_status_differs(void **state)
{
	struct st_record *r = mk(200, H200, "hello", 500, H200, "hello");
	struct st_diff *d = diff_compare(r, NULL);

	assert_non_null(d);
	assert_false(d->match);
	assert_false(d->status_same);
	assert_true(d->body_same);
	record_diff_free(d);
	record_free(r);
}

static void test_header_differs(void **state)
{
	struct st_record *r = mk(200,
		"HTTP/1.1 200 OK\r\nX-Version: 1\r\nServer: a\r\nCache-Control: no-cache\r\n\r\n", "x",
		200,
		"HTTP/1.1 200 OK\r\nX-Version: 2\r\nServer: b\r\nX-New: y\r\nCache-Control: no-cache\r\n\r\n", "x");
	struct st_diff *d = diff_compare(r, NULL);

	assert_non_null(d);
	assert_false(d->match);
	assert_true(d->status_same);
	assert_true(d->body_same);
	assert_int_equal(d->nheaders, 2);
	assert_true(has(d->headers, d->nheaders, "x-version"));
	assert_true(has(d->headers, d->nheaders, "x-new"));
	assert_false(has(d->headers, d->nheaders, "server"));
	record_diff_free(d);

	/* a configured ignore list replaces the default one */
	{
		const char *ign[] = { "x-version", "x-new", NULL };
		struct diff_cfg c = { .ignore = ign, .max_paths = 5 };

		d = diff_compare(r, &c);
		assert_non_null(d);
		assert_int_equal(d->nheaders, 1);
		assert_string_equal(d->headers[0], "server");
		record_diff_free(d);
	}
	record_free(r);
}

#define HJ "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"

static void test_json_reordered(void **state)
{
	struct st_record *r = mk(200, HJ, "{\"a\": 1, \"b\": [1, 2.0, {\"c\": \"x\"}], \"e\": null}",
				 200, HJ, "{\"e\":null,\"b\":[1,2,{\"c\":\"\\u0078\"}],\"a\":1.0}");
	struct st_diff *d = diff_compare(r, NULL);

	assert_non_null(d);
	assert_true(d->body_json);
	assert_true(d->body_same);
	assert_true(d->match);
	assert_int_equal(d->nbody_paths, 0);
	record_diff_free(d);
	record_free(r);
}

static void test_json_field_differs(void **state)
{
	struct st_record *r = mk(200, HJ,
		"{\"a\":{\"b\":[1,2,3]},\"id\":9007199254740993,\"s\":\"x\",\"gone\":1,\"odd key\":true}",
		200, HJ,
		"{\"s\":\"x\",\"a\":{\"b\":[1,2,4]},\"id\":9007199254740992,\"new\":2,\"odd key\":false}");
	struct st_diff *d = diff_compare(r, NULL);

	assert_non_null(d);
	assert_true(d->body_json);
	assert_false(d->body_same);
	assert_false(d->match);
	assert_int_equal(d->nbody_paths, 5);
	assert_true(has(d->body_paths, d->nbody_paths, "$.a.b[2]"));
	assert_true(has(d->body_paths, d->nbody_paths, "$.id"));   /* beyond double precision */
	assert_true(has(d->body_paths, d->nbody_paths, "$.gone"));
	assert_true(has(d->body_paths, d->nbody_paths, "$.new"));
	assert_true(has(d->body_paths, d->nbody_paths, "$[\"odd key\"]"));
	record_diff_free(d);

	{
		struct diff_cfg c = { .ignore = NULL, .max_paths = 2 };

		d = diff_compare(r, &c);
		assert_non_null(d);
		assert_int_equal(d->nbody_paths, 2);
		assert_non_null(d->reason);
		record_diff_free(d);
	}
	record_free(r);
}

static void test_text_body_differs(void **state)
{
	struct st_record *r = mk(200, H200, "hello", 200, H200, "hellO");
	struct st_diff *d = diff_compare(r, NULL);

	assert_non_null(d);
	assert_false(d->body_same);
	assert_false(d->body_json);
	assert_false(d->match);
	assert_int_equal(d->nbody_paths, 0);
	record_diff_free(d);
	record_free(r);
}

static void test_bad_json_is_bytes(void **state)
{
	struct st_record *r = mk(200, HJ, "{\"a\":1", 200, HJ, "{\"a\": 1");
	struct st_diff *d = diff_compare(r, NULL);

	assert_non_null(d);
	assert_false(d->body_json);
	assert_false(d->body_same);
	record_diff_free(d);
	record_free(r);

	/* deep nesting is refused, not recursed into */
	{
		char *deep = malloc(20001);
		int i;

		for (i = 0; i < 10000; i++) {
			deep[i] = '[';
			deep[10000 + i] = ']';
		}
		deep[20000] = '\0';
		r = mk(200, HJ, deep, 200, HJ, "[]");
		d = diff_compare(r, NULL);
		assert_non_null(d);
		assert_false(d->body_json);
		assert_false(d->body_same);
		record_diff_free(d);
		record_free(r);
		free(deep);
	}
}

static void test_cut_body(void **state)
{
	struct st_record *r = mk(200, H200, NULL, 200, H200, NULL);
	struct st_diff *d;

	assert_int_equal(record_msg_body_append(&r->resp, "abcdef", 6, 3), 0);
	assert_int_equal(record_msg_body_append(&r->replay->resp, "abcxyz", 6, 3), 0);
	d = diff_compare(r, NULL);
	assert_non_null(d);
	assert_true(d->body_same);   /* unknown past the limit: same prefix and length */
	assert_non_null(d->reason);
	record_diff_free(d);

	assert_int_equal(record_msg_body_append(&r->replay->resp, "z", 1, 3), 0);
	d = diff_compare(r, NULL);
	assert_non_null(d);
	assert_false(d->body_same);  /* lengths differ: certainly different */
	record_diff_free(d);
	record_free(r);
}

static int in_block(const struct st_diff *d, const void *p)
{
	uintptr_t x = (uintptr_t)p, lo = (uintptr_t)d;

	return x >= lo + sizeof(*d) && x < lo + d->block - d->room;
}

/* Every list and string of a diff is in its one allocation (record_diff_free frees
 * it in one call; ASan would report a leak or a bad free otherwise), the room for
 * the endpoint is past them, and the lists read as they were found. */
static void test_one_block(void **state)
{
	struct st_record *r = mk(200,
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-A: 1\r\nX-B: 1\r\n\r\n",
		"{\"a\":1,\"b\":2,\"c\":3,\"s\":\"x\"}", 201,
		"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-A: 2\r\nX-B: 2\r\nX-C: 3\r\n\r\n",
		"{\"a\":9,\"b\":8,\"c\":7,\"s\":\"y\"}");
	struct diff_cfg cfg = { .max_paths = 2 };
	struct st_diff *d = diff_compare(r, &cfg);
	size_t i;

	assert_non_null(d);
	assert_true(d->block > sizeof(*d));
	assert_true(d->room >= 160);
	assert_int_equal(d->nheaders, 3);
	assert_string_equal(d->headers[0], "x-a");
	assert_string_equal(d->headers[1], "x-b");
	assert_string_equal(d->headers[2], "x-c");
	assert_int_equal(d->nbody_paths, 2);
	assert_string_equal(d->body_paths[0], "$.a");
	assert_string_equal(d->body_paths[1], "$.b");
	assert_string_equal(d->reason, "4 json paths differ, 2 listed");
	assert_true(d->nfields >= 5);
	assert_true(in_block(d, d->headers) && in_block(d, d->body_paths) && in_block(d, d->reason) &&
		    in_block(d, d->fields));
	for (i = 0; i < d->nheaders; i++)
		assert_true(in_block(d, d->headers[i]));
	for (i = 0; i < d->nbody_paths; i++)
		assert_true(in_block(d, d->body_paths[i]));
	for (i = 0; i < d->nfields; i++) {
		assert_true(in_block(d, d->fields[i].path));
		assert_true(!d->fields[i].a || in_block(d, d->fields[i].a));
		assert_true(!d->fields[i].b || in_block(d, d->fields[i].b));
	}
	/* a heap string added later (as fields_sum adds noise paths) is still freed */
	d->noise_paths = calloc(1, sizeof(char *));
	assert_non_null(d->noise_paths);
	d->noise_paths[0] = strdup("$.s");
	d->nnoise = 1;
	record_diff_free(d);
	record_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identical),
		cmocka_unit_test(test_status_differs),
		cmocka_unit_test(test_header_differs),
		cmocka_unit_test(test_json_reordered),
		cmocka_unit_test(test_json_field_differs),
		cmocka_unit_test(test_text_body_differs),
		cmocka_unit_test(test_bad_json_is_bytes),
		cmocka_unit_test(test_cut_body),
		cmocka_unit_test(test_one_block),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
