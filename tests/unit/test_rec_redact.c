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

/* Redacting a redacted recording again (convert with the agent's rules) changes
 * nothing: tokens stay the live tokens, not tokens of tokens; the mask stays too. */
static void test_twice_same(void **state)
{
	const char *js[] = { "$..password" }, *q[] = { "token" }, *pat[] = { "email" };
	const char *body = "{\"password\":\"hunter2\",\"m\":\"jane@example.com\"}";
	struct pii_cfg pc = { 0 };
	struct rec_redacted s1 = { 0 }, s2 = { 0 };
	struct st_record v1, v2, *r, *r2;
	char raw[512], *once, tok[PII_TOKEN_LEN + 1];
	const char *b1;
	(void)state;

	setenv("SHADOWTAP_REDACT_KEY", "unit-key", 1);
	assert_int_equal(pii_cfg_build(&pc, "hash", js, 1, q, 1, pat, 1), 0);
	snprintf(raw, sizeof(raw), "POST /l?token=QT998877 HTTP/1.1\r\nAuthorization: Bearer zz\r\n"
		 "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	r = req(raw, body, 0);
	assert_int_equal(rec_redact_record_pii(r, hdrs, &pc, &s1, &v1), 1);
	once = strndup((const char *)v1.raw, v1.raw_len);
	assert_null(strstr(once, "hunter2"));
	assert_null(strstr(once, "QT998877"));
	assert_null(strstr(once, "Bearer"));
	b1 = strstr(once, "\r\n\r\n") + 4;
	r2 = req(once, b1, 0);
	rec_redact_record_pii(r2, hdrs, &pc, &s2, &v2);
	/* 1 (the headers were "redacted" again) or 0: either way, the same bytes */
	if (s2.raw.len) {
		assert_int_equal((int)v2.raw_len, (int)strlen(once));
		assert_memory_equal(v2.raw, once, v2.raw_len);
	}
	/* the mask and a token are kept; a token-like value with an upper-case digit is not */
	assert_int_equal(pii_replacement(PII_HASH, &pc.key, "[REDACTED]", 10, tok), 10);
	assert_string_equal(tok, "[REDACTED]");
	assert_int_equal(pii_replacement(PII_MASK, NULL, "\"REDACTED-0123456789abcdef\"", 27, tok), 25);
	assert_string_equal(tok, "REDACTED-0123456789abcdef");
	pii_replacement(PII_HASH, &pc.key, "REDACTED-0123456789ABCDEF", 25, tok);
	assert_string_not_equal(tok, "REDACTED-0123456789ABCDEF");
	free(once);
	rec_redacted_free(&s1);
	rec_redacted_free(&s2);
	record_free(r);
	record_free(r2);
	pii_cfg_free(&pc);
	unsetenv("SHADOWTAP_REDACT_KEY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_length_and_target),
		cmocka_unit_test(test_chunked_reframed),
		cmocka_unit_test(test_nothing_to_hide),
		cmocka_unit_test(test_twice_same),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
