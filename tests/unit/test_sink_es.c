/* sink_es internals: URL/env parsing, bulk bodies, bulk responses, GET / parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "es_bulk.h"
#include "es_internal.h"
#include "sink_es.h"

static void check_url(const char *in, const char *port, const char *want)
{
	char out[256];

	assert_int_equal(es_url_normalize(in, port, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_url_normalize(void **state)
{
	char out[256];

	check_url("elasticsearch", NULL, "http://elasticsearch:9200");
	check_url("elasticsearch", "9201", "http://elasticsearch:9201");
	check_url("http://es.local", NULL, "http://es.local");
	check_url("https://es.local:9243/", NULL, "https://es.local:9243");
	check_url("https://es.local:9243/prefix/", "443", "https://es.local:443/prefix");
	check_url("http://127.0.0.1:9200", "19200", "http://127.0.0.1:19200");
	check_url("[::1]", NULL, "http://[::1]:9200");
	check_url("http://[::1]:9200", "9300", "http://[::1]:9300");
	check_url(NULL, "9400", "http://localhost:9400");
	check_url("HTTPS://Es", NULL, "https://Es");
	assert_int_equal(es_url_normalize("ftp://x", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(es_url_normalize("es", "0", out, sizeof(out)), -EINVAL);
	assert_int_equal(es_url_normalize("es", "70000", out, sizeof(out)), -EINVAL);
	assert_int_equal(es_url_normalize("es", "92x", out, sizeof(out)), -EINVAL);
	assert_int_equal(es_url_normalize("http://:9200", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(es_url_normalize("elasticsearch", NULL, out, 10), -ENAMETOOLONG);
}

static void test_url_from_env(void **state)
{
	char out[256];

	unsetenv("ELASTICSEARCH_URL");
	unsetenv("ES_PORT");
	assert_int_equal(es_url_from_env(out, sizeof(out)), 0);
	assert_string_equal(out, "");
	setenv("ELASTICSEARCH_URL", "elasticsearch", 1);
	assert_int_equal(es_url_from_env(out, sizeof(out)), 0);
	assert_string_equal(out, "http://elasticsearch:9200");
	setenv("ES_PORT", "9999", 1);
	assert_int_equal(es_url_from_env(out, sizeof(out)), 0);
	assert_string_equal(out, "http://elasticsearch:9999");
	setenv("ELASTICSEARCH_URL", "https://user@es.example:443/", 1);
	assert_int_equal(es_url_from_env(out, sizeof(out)), 0);
	assert_string_equal(out, "https://user@es.example:9999");
	setenv("ES_PORT", "nope", 1);
	assert_int_equal(es_url_from_env(out, sizeof(out)), -EINVAL);
	unsetenv("ELASTICSEARCH_URL");
	unsetenv("ES_PORT");
}

static void test_index_name(void **state)
{
	char out[64];

	/* 2024-02-29T23:59:59Z */
	assert_int_equal(es_index_name(out, sizeof(out), "shadowtap", 1709251199ull * 1000000000ull + 999), 0);
	assert_string_equal(out, "shadowtap-2024.02.29");
	assert_int_equal(es_index_name(out, sizeof(out), "x", 1709251200ull * 1000000000ull), 0);
	assert_string_equal(out, "x-2024.03.01");
	assert_int_equal(es_index_name(out, 8, "shadowtap", 1), -ENAMETOOLONG);
}

static void test_bulk_append(void **state)
{
	struct buf b = { 0 };
	const char *doc = "{\"a\":1,\n\"b\":\"x\"}";

	assert_int_equal(es_bulk_append(&b, "st-2024.01.01", "abc\"1", doc, strlen(doc)), 0);
	assert_int_equal(es_bulk_append(&b, "st-2024.01.01", "def", "{}", 2), 0);
	assert_non_null(b.data);
	assert_int_equal(b.len, strlen(
		"{\"create\":{\"_index\":\"st-2024.01.01\",\"_id\":\"abc\\\"1\"}}\n"
		"{\"a\":1, \"b\":\"x\"}\n"
		"{\"create\":{\"_index\":\"st-2024.01.01\",\"_id\":\"def\"}}\n{}\n"));
	assert_memory_equal(b.data,
		"{\"create\":{\"_index\":\"st-2024.01.01\",\"_id\":\"abc\\\"1\"}}\n"
		"{\"a\":1, \"b\":\"x\"}\n"
		"{\"create\":{\"_index\":\"st-2024.01.01\",\"_id\":\"def\"}}\n{}\n", b.len);
	buf_free(&b);
}

static void test_bulk_parse(void **state)
{
	const char *ok =
		"{\"took\":3,\"errors\":true,\"items\":["
		"{\"create\":{\"_index\":\"i\",\"_id\":\"1\",\"result\":\"created\",\"status\":201}},"
		"{\"create\":{\"_index\":\"i\",\"_id\":\"2\",\"status\":409,\"error\":{\"type\":"
		"\"version_conflict_engine_exception\",\"reason\":\"[2]: version conflict\"}}},"
		"{\"create\":{\"_index\":\"i\",\"_id\":\"3\",\"status\":429,\"error\":{\"type\":\"es_rejected\"}}},"
		"{\"create\":{\"_index\":\"i\",\"_id\":\"4\",\"error\":{\"type\":\"mapper_parsing_exception\","
		"\"reason\":\"failed to parse [a]\",\"caused_by\":{\"type\":\"x\",\"reason\":\"y \\\"q\\\" ]}\"}},"
		"\"status\":400}}]}";
	struct es_bulk_item it[8];

	assert_int_equal(es_bulk_parse(ok, strlen(ok), it, 8), 4);
	assert_int_equal(it[0].status, 201);
	assert_null(it[0].error);
	assert_int_equal(it[1].status, 409);
	assert_int_equal(it[2].status, 429);
	assert_int_equal(it[3].status, 400);
	assert_non_null(it[3].error);
	assert_true(it[3].error_len > 20);
	assert_memory_equal(it[3].error, "{\"type\":\"mapper_parsing_exception\"", 34);
	assert_int_equal(it[3].error[it[3].error_len - 1], '}');
	/* fewer slots than items still counts them all */
	assert_int_equal(es_bulk_parse(ok, strlen(ok), it, 1), 4);
	assert_int_equal(es_bulk_parse("{\"items\":[]}", 12, it, 8), 0);
	/* garbage, truncation, missing status, a status out of range */
	assert_int_equal(es_bulk_parse("<html>busy</html>", 17, it, 8), -EBADMSG);
	assert_int_equal(es_bulk_parse(ok, strlen(ok) - 5, it, 8), -EBADMSG);
	assert_int_equal(es_bulk_parse("{\"errors\":false}", 16, it, 8), -EBADMSG);
	assert_int_equal(es_bulk_parse("{\"items\":[{\"create\":{\"_id\":\"1\"}}]}", 34, it, 8), -EBADMSG);
	assert_int_equal(es_bulk_parse("{\"items\":[{\"create\":{\"status\":99999}}]}", 39, it, 8), -EBADMSG);
	assert_int_equal(es_bulk_parse("", 0, it, 8), -EBADMSG);
}

/* An answer is matched to its document by position; one naming another _id (or
 * none) is not that document's answer (a hostile or confused server). */
static void test_bulk_ids(void **state)
{
	const char *r = "{\"items\":[{\"create\":{\"_id\":\"a1\",\"status\":201}},"
			"{\"create\":{\"_id\":\"\\u0061\\/2\",\"status\":201}},"
			"{\"create\":{\"status\":201}},"
			"{\"create\":{\"_id\":7,\"status\":201}}]}";
	struct es_bulk_item it[4];

	(void)state;
	assert_int_equal(es_bulk_parse(r, strlen(r), it, 4), 4);
	assert_true(es_bulk_item_is(&it[0], "a1"));
	assert_false(es_bulk_item_is(&it[0], "a"));
	assert_false(es_bulk_item_is(&it[0], "a12"));
	assert_true(es_bulk_item_is(&it[1], "a/2"));   /* escapes decoded */
	assert_false(es_bulk_item_is(&it[1], "a\\/2"));
	assert_false(es_bulk_item_is(&it[2], "x"));    /* no _id */
	assert_false(es_bulk_item_is(&it[3], "7"));    /* not a string */
}

/* What is read of an answer: 8 MiB, plus 4 KiB per document of a bulk request,
 * never more than 256 MiB (a 300 MB error body or an endless answer is cut). */
static void test_resp_cap(void **state)
{
	(void)state;
	assert_int_equal(es_resp_cap(ES_REQ_PROBE, 0), 8u << 20);
	assert_int_equal(es_resp_cap(ES_REQ_SNIFF, 1000), 8u << 20);
	assert_int_equal(es_resp_cap(ES_REQ_BULK, 10), (8u << 20) + 40960);
	assert_int_equal(es_resp_cap(ES_REQ_BULK, (size_t)1 << 40), 256u << 20);
}

static void test_json_get(void **state)
{
	const char *os = "{\n  \"name\" : \"n\",\n  \"version\" : {\n    \"distribution\" : \"opensearch\","
			 "\n    \"number\" : \"2.19.6\", \"x\": [1, {\"y\": null}]\n  },\n  \"tagline\" : \"t\"\n}";
	char out[32];

	assert_int_equal(es_json_get_str(os, strlen(os), "version.number", out, sizeof(out)), 0);
	assert_string_equal(out, "2.19.6");
	assert_int_equal(es_json_get_str(os, strlen(os), "version.distribution", out, sizeof(out)), 0);
	assert_string_equal(out, "opensearch");
	assert_int_equal(es_json_get_str(os, strlen(os), "tagline", out, sizeof(out)), 0);
	assert_int_equal(es_json_get_str(os, strlen(os), "version.build_flavor", out, sizeof(out)), -ENOENT);
	assert_int_equal(es_json_get_str(os, strlen(os), "version.number", out, 3), -ENAMETOOLONG);
	assert_int_equal(es_json_get_str(os, 20, "version.number", out, sizeof(out)), -EBADMSG);
}

static void test_cfg_default(void **state)
{
	struct es_cfg c;

	es_cfg_default(&c);
	assert_string_equal(c.index_prefix, "shadowtap");
	assert_int_equal(c.batch_bytes, 5u << 20);
	assert_int_equal(c.batch_ms, 1000);
	assert_int_equal(c.spool_max_bytes, 1ull << 30);
	assert_string_equal(c.fsync_policy, "batch");
	assert_int_equal(c.gzip, 1);
	assert_int_equal(c.mem_queue_bytes, 64u << 20);
}

static void test_start_bad_cfg(void **state)
{
	struct es_sink *s = (struct es_sink *)1;
	struct es_cfg c;

	es_cfg_default(&c);
	c.fsync_policy = "sometimes";
	assert_int_equal(es_sink_start(&s, &c), -EINVAL);
	assert_null(s);
	es_cfg_default(&c);
	c.url = "gopher://x";
	assert_int_equal(es_sink_start(&s, &c), -EINVAL);
	assert_null(s);
	es_sink_stop(NULL, 0);
	es_sink_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_normalize),
		cmocka_unit_test(test_url_from_env),
		cmocka_unit_test(test_index_name),
		cmocka_unit_test(test_bulk_append),
		cmocka_unit_test(test_bulk_parse),
		cmocka_unit_test(test_bulk_ids),
		cmocka_unit_test(test_resp_cap),
		cmocka_unit_test(test_json_get),
		cmocka_unit_test(test_cfg_default),
		cmocka_unit_test(test_start_bad_cfg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
