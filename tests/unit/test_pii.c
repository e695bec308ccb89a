/* Correlatable tokens, the free-text detectors and query redaction. Token oracle:
 * RFC 4231's HMAC-SHA256 test cases; card numbers: the issuers' published test numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <cmocka.h>

#include "pii.h"

static void test_token_rfc4231(void **state)
{
	struct pii_key k = { .len = 20 };
	char tok[PII_TOKEN_LEN + 1];

	memset(k.bytes, 0x0b, 20);
	/* RFC 4231 test case 1: HMAC-SHA256 = b0344c61d8db38535ca8afceaf0bf12b... */
	assert_int_equal(pii_replacement(PII_HASH, &k, "Hi There", 8, tok), PII_TOKEN_LEN);
	assert_string_equal(tok, "REDACTED-b0344c61d8db3853");
	/* test case 2: key "Jefe" */
	memcpy(k.bytes, "Jefe", 4);
	k.len = 4;
	pii_replacement(PII_HASH, &k, "what do ya want for nothing?", 28, tok);
	assert_string_equal(tok, "REDACTED-5bdcc146bf60754e");
	/* mask mode, and hash mode without a key, never leak the value */
	assert_int_equal(pii_replacement(PII_MASK, &k, "secret", 6, tok), 10);
	assert_string_equal(tok, "[REDACTED]");
	assert_int_equal(pii_replacement(PII_HASH, NULL, "secret", 6, tok), 10);
	assert_string_equal(tok, "[REDACTED]");
}

static void test_token_correlates(void **state)
{
	struct pii_key a = { .len = 3 }, b = { .len = 3 };
	char t1[PII_TOKEN_LEN + 1], t2[PII_TOKEN_LEN + 1], t3[PII_TOKEN_LEN + 1];

	memcpy(a.bytes, "k-1", 3);
	memcpy(b.bytes, "k-2", 3);
	pii_replacement(PII_HASH, &a, "session=abc", 11, t1);
	pii_replacement(PII_HASH, &a, "session=abc", 11, t2);
	assert_string_equal(t1, t2);
	pii_replacement(PII_HASH, &a, "session=abd", 11, t2);
	assert_string_not_equal(t1, t2);
	pii_replacement(PII_HASH, &b, "session=abc", 11, t3);
	assert_string_not_equal(t1, t3);
}

static void test_key_from_env(void **state)
{
	char path[] = "/tmp/pii-key-XXXXXX";
	struct pii_key k;
	int fd;

	unsetenv("SHADOWTAP_REDACT_KEY");
	unsetenv("SHADOWTAP_REDACT_KEY_FILE");
	assert_int_equal(pii_key_from_env(&k), -ENOENT);
	setenv("SHADOWTAP_REDACT_KEY", "s3cret", 1);
	assert_int_equal(pii_key_from_env(&k), 0);
	assert_int_equal(k.len, 6);
	unsetenv("SHADOWTAP_REDACT_KEY");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "from-file\n", 10), 10);
	close(fd);
	setenv("SHADOWTAP_REDACT_KEY_FILE", path, 1);
	assert_int_equal(pii_key_from_env(&k), 0);
	assert_int_equal(k.len, 9);
	assert_memory_equal(k.bytes, "from-file", 9);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	assert_int_equal(pii_key_from_env(&k), -EINVAL);
	unlink(path);
	assert_int_equal(pii_key_from_env(&k), -ENOENT);
	unsetenv("SHADOWTAP_REDACT_KEY_FILE");
}

static void test_luhn(void **state)
{
	assert_true(pii_luhn_ok("4111111111111111", 16));
	assert_true(pii_luhn_ok("5500 0000 0000 0004", 19));
	assert_true(pii_luhn_ok("3782-822463-10005", 17));
	assert_false(pii_luhn_ok("4111111111111112", 16));
	assert_false(pii_luhn_ok("", 0));
}

static void scan_is(const char *s, unsigned kinds, const char *want)
{
	struct pii_span sp[16];
	struct buf b = { 0 };
	size_t n = pii_scan(s, strlen(s), kinds, NULL, 0, sp, 16);

	assert_int_equal(pii_apply(&b, s, strlen(s), sp, n, PII_MASK, NULL), 0);
	buf_putc(&b, '\0');
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void test_scan(void **state)
{
	unsigned all = PII_SCAN_CARD | PII_SCAN_EMAIL;

	scan_is("card 4111111111111111 ok", all, "card [REDACTED] ok");
	scan_is("card=4111 1111 1111 1111&x=1", all, "card=[REDACTED]&x=1");
	scan_is("amex 3782-822463-10005.", all, "amex [REDACTED].");
	/* not a card: fails Luhn, too short, glued to letters or more digits */
	scan_is("order 4111111111111112", all, "order 4111111111111112");
	scan_is("id 411111111111", all, "id 411111111111");
	scan_is("x4111111111111111", all, "x4111111111111111");
	scan_is("41111111111111110000000", all, "41111111111111110000000");
	scan_is("mail jane.doe+x@example.co.uk, thanks", all, "mail [REDACTED], thanks");
	scan_is("{\"email\":\"a@b.io\"}", all, "{\"email\":\"[REDACTED]\"}");
	scan_is("not@mail and @home and a@b", all, "not@mail and @home and a@b");
	scan_is("only cards a@b.io", PII_SCAN_CARD, "only cards a@b.io");
}

static void test_scan_regex(void **state)
{
	const char *s = "token=abc123 other token=zz9";
	struct pii_span sp[8];
	struct buf b = { 0 };
	regex_t re;
	size_t n;

	assert_int_equal(regcomp(&re, "token=[a-z0-9]+", REG_EXTENDED), 0);
	n = pii_scan(s, strlen(s), 0, &re, 1, sp, 8);
	assert_int_equal(n, 2);
	assert_int_equal(pii_apply(&b, s, strlen(s), sp, n, PII_MASK, NULL), 0);
	buf_putc(&b, '\0');
	assert_string_equal(b.data, "[REDACTED] other [REDACTED]");
	buf_free(&b);
	regfree(&re);
}

static void query_is(const char *t, const char *const *names, int want_n, const char *want)
{
	struct buf b = { 0 };

	assert_int_equal(pii_redact_query(&b, t, strlen(t), names, PII_MASK, NULL), want_n);
	buf_putc(&b, '\0');
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void test_query(void **state)
{
	const char *const names[] = { "token", "card", NULL };

	query_is("/a?token=xyz&b=1", names, 1, "/a?token=[REDACTED]&b=1");
	query_is("/a?b=1&card=4111&token=", names, 2, "/a?b=1&card=[REDACTED]&token=[REDACTED]");
	query_is("/a?tokens=1&xtoken=2&token", names, 0, "/a?tokens=1&xtoken=2&token");
	query_is("/a/token=1", names, 0, "/a/token=1");
	query_is("/a?", names, 0, "/a?");
	query_is("/a?&&token=1&", names, 1, "/a?&&token=[REDACTED]&");
}

static void json_is(const char *const *paths, const char *body, int want_n, const char *want)
{
	struct pii_json_path jp[4];
	struct buf b = { 0 };
	size_t np = 0;

	for (; paths[np]; np++)
		assert_int_equal(pii_json_path_parse(&jp[np], paths[np]), 0);
	assert_int_equal(pii_redact_json(&b, body, strlen(body), jp, np, PII_MASK, NULL), want_n);
	if (want) {
		buf_putc(&b, '\0');
		assert_string_equal(b.data, want);
	} else {
		assert_int_equal(b.len, 0);
	}
	buf_free(&b);
}

static void test_json_paths(void **state)
{
	const char *pw[] = { "$.user.password", NULL };
	const char *card[] = { "$..card_number", NULL };
	const char *items[] = { "$.items[*].card", "$.token", NULL };
	struct pii_json_path jp;

	json_is(pw, "{\"user\": {\"name\":\"a\", \"password\" : \"hunter2\"}, \"password\":\"x\"}", 1,
		"{\"user\": {\"name\":\"a\", \"password\" : \"[REDACTED]\"}, \"password\":\"x\"}");
	json_is(card, "{\"a\":[{\"card_number\":4111111111111111},{\"b\":{\"card_number\":\"5500\"}}],"
		      "\"card_number\":null}", 3,
		"{\"a\":[{\"card_number\":\"[REDACTED]\"},{\"b\":{\"card_number\":\"[REDACTED]\"}}],"
		"\"card_number\":\"[REDACTED]\"}");
	/* containers are replaced whole; other members and spacing stay byte for byte */
	json_is(items, "{ \"items\" : [ {\"card\":{\"n\":1}} , {\"x\":2} ], \"token\":[1,2] }", 2,
		"{ \"items\" : [ {\"card\":\"[REDACTED]\"} , {\"x\":2} ], \"token\":\"[REDACTED]\" }");
	json_is(pw, "{\"user\":{}}", 0, "{\"user\":{}}");
	/* not JSON: nothing written, the caller falls back */
	json_is(pw, "{\"user\":", -EBADMSG, NULL);
	json_is(pw, "password=hunter2", -EBADMSG, NULL);
	json_is(pw, "{} trailing", -EBADMSG, NULL);
	assert_int_equal(pii_json_path_parse(&jp, "user.password"), -EINVAL);
	assert_int_equal(pii_json_path_parse(&jp, "$"), -EINVAL);
	assert_int_equal(pii_json_path_parse(&jp, "$."), -EINVAL);
	assert_int_equal(pii_json_path_parse(&jp, "$.a."), -EINVAL);
	assert_int_equal(pii_json_path_parse(&jp, "$.."), -EINVAL);
	assert_int_equal(pii_json_path_parse(&jp, "$.a[0]"), -EINVAL);
}

static void test_json_tokens_correlate(void **state)
{
	const char *b1 = "{\"card\":\"4111111111111111\"}", *b2 = "{\"card\" : \"4111111111111111\" }";
	struct pii_key k = { .len = 4 };
	struct pii_json_path jp;
	struct buf o1 = { 0 }, o2 = { 0 };

	memcpy(k.bytes, "key!", 4);
	assert_int_equal(pii_json_path_parse(&jp, "$.card"), 0);
	assert_int_equal(pii_redact_json(&o1, b1, strlen(b1), &jp, 1, PII_HASH, &k), 1);
	assert_int_equal(pii_redact_json(&o2, b2, strlen(b2), &jp, 1, PII_HASH, &k), 1);
	buf_putc(&o1, '\0');
	buf_putc(&o2, '\0');
	assert_null(strstr(o1.data, "4111"));
	assert_memory_equal(strstr(o1.data, "REDACTED-"), strstr(o2.data, "REDACTED-"), PII_TOKEN_LEN);
	buf_free(&o1);
	buf_free(&o2);
}

static void test_lits_and_cfg(void **state)
{
	const char *const q[] = { "token" }, *const pat[] = { "email" }, *const js[] = { "$.pw" };
	const char *t = "/a?token=SECRET123&x=1", *body = "echo: /a?token=SECRET123 pw SECRET123 a@b.io";
	struct pii_cfg pc;
	struct pii_lit lits[4];
	struct buf o = { 0 };
	size_t n;

	assert_int_equal(pii_cfg_build(&pc, "mask", js, 1, q, 1, pat, 1), 0);
	assert_true(pii_cfg_rewrites(&pc));
	n = pii_query_values(&pc, t, strlen(t), lits, 4);
	assert_int_equal(n, 1);
	assert_int_equal(lits[0].n, 9);
	assert_int_equal(pii_redact_text_lits(&pc, body, strlen(body), lits, n, &o), 3);
	buf_putc(&o, '\0');
	assert_string_equal(o.data, "echo: /a?token=[REDACTED] pw [REDACTED] [REDACTED]");
	buf_reset(&o);
	assert_int_equal(pii_redact_target(&pc, t, strlen(t), &o), 1);
	buf_putc(&o, '\0');
	assert_string_equal(o.data, "/a?token=[REDACTED]&x=1");
	buf_free(&o);
	pii_cfg_free(&pc);
	/* bad values are refused at start */
	assert_int_equal(pii_cfg_build(&pc, "sha1", NULL, 0, NULL, 0, NULL, 0), -EINVAL);
	assert_int_equal(pii_cfg_build(&pc, "mask", (const char *const[]){ "pw" }, 1, NULL, 0, NULL, 0), -EINVAL);
	assert_int_equal(pii_cfg_build(&pc, "mask", NULL, 0, NULL, 0, (const char *const[]){ "a(" }, 1), -EINVAL);
	unsetenv("SHADOWTAP_REDACT_KEY");
	unsetenv("SHADOWTAP_REDACT_KEY_FILE");
	assert_int_equal(pii_cfg_build(&pc, "hash", NULL, 0, NULL, 0, NULL, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_rfc4231),
		cmocka_unit_test(test_token_correlates),
		cmocka_unit_test(test_key_from_env),
		cmocka_unit_test(test_luhn),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_scan_regex),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_json_paths),
		cmocka_unit_test(test_json_tokens_correlate),
		cmocka_unit_test(test_lits_and_cfg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
