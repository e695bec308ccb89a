/* Elasticsearch sink safety (issue 15 items 3 and 12): URLs are printed without
 * their userinfo, the credentials in a URL are taken out of it, and the dead-letter
 * file is capped, rotated and one JSON line per document whatever ES sends. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "buf.h"
#include "es_bulk.h"
#include "es_internal.h"
#include "json.h"
#include "urlsafe.h"

static void test_url_printable(void **state)
{
	char out[256];

	(void)state;
	assert_string_equal(url_printable("http://u:SECRET@h:9200/p", out, sizeof(out)), "http://h:9200/p");
	assert_string_equal(url_printable("https://u@h", out, sizeof(out)), "https://h");
	/* an unescaped '@' in the password: the last '@' of the authority ends it */
	assert_string_equal(url_printable("http://u:a@b@h:1/x@y", out, sizeof(out)), "http://h:1/x@y");
	assert_string_equal(url_printable("http://h:9200", out, sizeof(out)), "http://h:9200");
	assert_string_equal(url_list_printable("http://a:S1@x:1,https://b:S2@y:2,z", out, sizeof(out)),
			    "http://x:1,https://y:2,z");
	assert_true(url_has_userinfo("http://u:p@h"));
	assert_false(url_has_userinfo("http://h/a@b"));
	assert_string_equal(url_printable("http://u:p@hostname", out, 8), "http://");
}

static void test_take_userinfo(void **state)
{
	char url[] = "http://us%40er:p%3Aw@127.0.0.1:9200/base", *up = NULL;
	char plain[] = "http://127.0.0.1:9200";

	(void)state;
	assert_int_equal(es_url_take_userinfo(url, &up), 0);
	assert_string_equal(url, "http://127.0.0.1:9200/base");
	assert_string_equal(up, "us@er:p:w");
	free(up);
	assert_int_equal(es_url_take_userinfo(plain, &up), 0);
	assert_null(up);
	assert_string_equal(plain, "http://127.0.0.1:9200");
}

/* The sink keeps the credentials for curl, never in s->url (printed everywhere). */
static void test_start_strips_userinfo(void **state)
{
	char dir[] = "/tmp/test_es_safety.XXXXXX";
	struct es_sink *s = NULL;
	struct es_cfg c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	unsetenv("ES_USERNAME");
	unsetenv("ES_API_KEY");
	es_cfg_default(&c);
	c.url = "http://agent:SECRETPW@127.0.0.1:1";
	c.spool_dir = dir;
	assert_int_equal(es_sink_start(&s, &c), 0);
	assert_string_equal(s->url, "http://127.0.0.1:1");
	assert_string_equal(s->auth_user, "agent:SECRETPW");
	f = open_memstream(&buf, &len);
	es_sink_print_stats(s, f);
	fclose(f);
	assert_null(strstr(buf, "SECRETPW"));
	assert_non_null(strstr(buf, "url=http://127.0.0.1:1"));
	free(buf);
	es_sink_stop(s, 0);
	es_sink_free(s);
}

static struct es_item *item(const char *id, const char *json)
{
	size_t il = strlen(id), jl = strlen(json);
	struct es_item *it = calloc(1, sizeof(*it) + il + 1 + jl + 1);

	memcpy(it->id, id, il + 1);
	it->json = it->id + il + 1;
	memcpy(it->json, json, jl + 1);
	it->len = jl;
	it->ts_ns = 1700000000ull * 1000000000ull;
	return it;
}

/* Every line of path is one JSON object; returns how many. */
static int check_lines(const char *path)
{
	char line[65536];
	int n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		size_t l = strlen(line);
		const char *e;

		assert_true(l > 0 && line[l - 1] == '\n');
		e = json_skip(line, line + l - 1, 0);
		assert_non_null(e);
		assert_ptr_equal(json_ws(e, line + l - 1), line + l - 1);
		n++;
	}
	fclose(f);
	return n;
}

static void test_dead_letter(void **state)
{
	char dir[] = "/tmp/test_es_dl.XXXXXX", path[128], old[160];
	/* ES answering with ?pretty, or through a reformatting proxy: newlines between
	 * tokens; and a raw newline inside a string (not even JSON) */
	static const char pretty[] = "{\n  \"type\" : \"mapper_parsing_exception\",\n"
				     "  \"reason\" : \"failed to parse\\nfield [a]\"\n}";
	static const char broken[] = "{\"type\":\"x\",\"reason\":\"line1\nline2\"}";
	struct es_sink *s = calloc(1, sizeof(*s));
	struct es_item *it = item("id-1", "{\"a\":1}");
	struct stat st;
	int i, n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dl.ndjson", dir);
	snprintf(old, sizeof(old), "%s.1", path);
	s->prefix = "shadowtap";
	s->dead_letter_path = path;
	s->cfg.dead_letter_max_bytes = 4096;
	es_dead_letter(s, it, 400, pretty, strlen(pretty), true);
	es_dead_letter(s, it, 400, broken, strlen(broken), true);
	es_dead_letter(s, it, 400, "plain\ntext", 10, false);
	assert_int_equal(check_lines(path), 3);
	for (i = 0; i < 200; i++)
		es_dead_letter(s, it, 400, pretty, strlen(pretty), true);
	fclose(s->dead_letter);
	n = check_lines(path) + check_lines(old);
	assert_int_not_equal(stat(path, &st), -1);
	assert_true(st.st_size <= 4096);
	assert_int_not_equal(stat(old, &st), -1);
	assert_true(st.st_size <= 4096);
	assert_true(s->ctr[ES_C_DEAD_LETTER_ROTATIONS] > 0);
	assert_true(n > 0 && n < 203);
	assert_int_equal(s->ctr[ES_C_DEAD_LETTERED], 203);
	assert_int_equal(s->ctr[ES_C_ERR_DEAD_LETTER_WRITE], 0);
	unlink(path);
	unlink(old);
	rmdir(dir);
	free(it);
	free(s);
}

static void test_cut_bodies(void **state)
{
	static const char doc[] =
		"{\"http\":{\"request\":{\"body\":{\"bytes\":3,\"content\":\"abc\"}},"
		"\"response\":{\"body\":{\"bytes\":12,\"content\":\"h\\u00e9llo w\\\"rld\"}}},"
		"\"replay\":{\"body\":{\"bytes\":9,\"content\":\"QUJDREVGR0hJ\",\"encoding\":\"base64\","
		"\"truncated\":true}}}";
	struct buf out = { 0 };
	const char *e;

	(void)state;
	assert_int_equal(es_doc_cut_bodies(doc, strlen(doc), 100, &out), 0);
	assert_int_equal(es_doc_cut_bodies(doc, strlen(doc), 5, &out), 1);
	e = json_skip(out.data, out.data + out.len, 0);
	assert_ptr_equal(e, out.data + out.len);
	/* the escape \u00e9 is not split; base64 to whole quads; bytes unchanged */
	assert_non_null(strstr(out.data, "\"content\":\"h\"") ? out.data : NULL);
	assert_non_null(strstr(out.data, "\"bytes\":12,\"content\":\"h\",\"truncated\":true}"));
	assert_non_null(strstr(out.data, "\"content\":\"abc\"}"));
	assert_non_null(strstr(out.data, "\"content\":\"QUJD\",\"encoding\":\"base64\",\"truncated\":true}"));
	buf_free(&out);
}

static void test_retention_body(void **state)
{
	struct buf b = { 0 };

	(void)state;
	assert_int_equal(es_build_retention("st", 7, true, &b), 0);
	assert_ptr_equal(json_skip(b.data, b.data + b.len, 0), b.data + b.len);
	assert_non_null(strstr(b.data, "\"min_index_age\":\"7d\""));
	assert_non_null(strstr(b.data, "\"index_patterns\":[\"st-*\"]"));
	assert_non_null(strstr(b.data, "{\"delete\":{}}"));
	assert_int_equal(es_build_retention("st", 30, false, &b), 0);
	assert_ptr_equal(json_skip(b.data, b.data + b.len, 0), b.data + b.len);
	assert_non_null(strstr(b.data, "\"delete\":{\"min_age\":\"30d\",\"actions\":{\"delete\":{}}}"));
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_printable),
		cmocka_unit_test(test_take_userinfo),
		cmocka_unit_test(test_start_strips_userinfo),
		cmocka_unit_test(test_dead_letter),
		cmocka_unit_test(test_cut_bodies),
		cmocka_unit_test(test_retention_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
