/* rec_redact_record_pii: the --redact-* rules in the bytes a recording stores, and the
 * framing that follows a body whose length changed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pii.h"
#include "rec_redact.h"
#include "record.h"

static const char *const hdrs[] = { "authorization", NULL };

static struct st_record *req(const char *raw, const char *body, int chunked)
{
	struct st_record *r = record_new();
	const char *sp = strchr(raw, ' '), *sp2 = strchr(sp + 1, ' ');
	size_t hl = (size_t)(strstr(raw, "\r\n\r\n") + 4 - raw);

	r->raw = malloc(strlen(raw));
	memcpy(r->raw, raw, strlen(raw));
	r->raw_len = strlen(raw);
	r->req.head = strndup(raw, hl);
	r->req.head_len = hl;
	r->target = r->req.head + (sp + 1 - raw);
	r->target_len = (size_t)(sp2 - sp - 1);
	if (*body)
		record_msg_body_append(&r->req, body, strlen(body), 1 << 20);
	r->req.body_bytes = strlen(body);
	r->req.chunked = chunked;
	return r;
}

static void build(struct pii_cfg *pc)
{
	const char *js[] = { "$..password" }, *q[] = { "token" }, *pat[] = { "email" };

	memset(pc, 0, sizeof(*pc));
	assert_int_equal(pii_cfg_build(pc, "mask", js, 1, q, 1, pat, 1), 0);
}

static void test_length_and_target(void **state)
{
	struct pii_cfg pc;
	struct rec_redacted s = { 0 };
	struct st_record view, *r;
	const char *want = "POST /login?token=[REDACTED]&x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: [REDACTED]\r\n"
			   "Content-Length: 30\r\n\r\n{\"u\":\"k\",\"password\":\"[REDACTED]\"}";
	(void)state;

	build(&pc);
	r = req("POST /login?token=QT998877&x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer zz\r\n"
		"Content-Length: 30\r\n\r\n{\"u\":\"k\",\"password\":\"hunter2\"}", "{\"u\":\"k\",\"password\":\"hunter2\"}", 0);
	assert_int_equal(rec_redact_record_pii(r, hdrs, &pc, &s, &view), 1);
	/* the body grew by 3 bytes ("hunter2" -> "[REDACTED]"): Content-Length follows */
	{
		char exp[512];

		snprintf(exp, sizeof(exp), "%s", want);
		memcpy(strstr(exp, "Content-Length: ") + 16, "33", 2);
		assert_int_equal((int)view.raw_len, (int)strlen(exp));
		assert_memory_equal(view.raw, exp, view.raw_len);
	}
	assert_non_null(memmem(view.req.head, view.req.head_len, "token=[REDACTED]&x=1", 20));
	assert_int_equal((int)view.req.body_stored, 33);
	assert_int_equal((int)view.req.body_bytes, 33);
	assert_null(memmem(view.req.body, view.req.body_stored, "hunter2", 7));
	/* the original is untouched */
	assert_non_null(memmem(r->raw, r->raw_len, "hunter2", 7));
	/* without pii: headers only, as before */
	assert_int_equal(rec_redact_record_pii(r, hdrs, NULL, &s, &view), 1);
	assert_non_null(memmem(view.raw, view.raw_len, "hunter2", 7));
	assert_non_null(memmem(view.raw, view.raw_len, "token=QT998877", 14));
	rec_redacted_free(&s);
	record_free(r);
	pii_cfg_free(&pc);
}

static void test_chunked_reframed(void **state)
{
	struct pii_cfg pc;
	struct rec_redacted s = { 0 };
	struct st_record view, *r;
	const char *exp = "POST /n HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "13\r\nmail [REDACTED] now\r\n0\r\n\r\n";
	(void)state;

	build(&pc);
	r = req("POST /n HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nmail \r\nf\r\njane@example.com\r\n"
		"4\r\n now\r\n0\r\n\r\n", "mail jane@example.com now", 1);
	assert_int_equal(rec_redact_record_pii(r, hdrs, &pc, &s, &view), 1);
	assert_int_equal((int)view.raw_len, (int)strlen(exp));
	assert_memory_equal(view.raw, exp, view.raw_len);
	/* cut by the body limit: the exact bytes cannot be re-framed, so they are dropped */
	r->req.body_bytes = 1000;
	assert_int_equal(rec_redact_record_pii(r, hdrs, &pc, &s, &view), 1);
	assert_null(view.raw);
	assert_int_equal((int)view.raw_len, 0);
	assert_null(memmem(view.req.body, view.req.body_stored, "jane@", 5));
	rec_redacted_free(&s);
	record_free(r);
	pii_cfg_free(&pc);
}

static void test_nothing_to_hide(void **state)
{
	struct pii_cfg pc;
	struct rec_redacted s = { 0 };
	struct st_record view, *r;
	(void)state;

	build(&pc);
	r = req("GET /a?page=2 HTTP/1.1\r\nHost: a\r\n\r\n", "", 0);
	assert_int_equal(rec_redact_record_pii(r, hdrs, &pc, &s, &view), 0);
	/* binary bodies are not text rules' business */
	record_free(r);
	r = req("POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\n\x01@a.", "\x01@a.", 0);
	assert_int_equal(rec_redact_record_pii(r, hdrs, &pc, &s, &view), 0);
	rec_redacted_free(&s);
	record_free(r);
	pii_cfg_free(&pc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_length_and_target),
		cmocka_unit_test(test_chunked_reframed),
		cmocka_unit_test(test_nothing_to_hide),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
