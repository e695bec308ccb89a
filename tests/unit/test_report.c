/* shadowtap report: reading record lines (summaries and uncompared records
 * skipped, bad lines refused), ranking, the JSON and HTML outputs (escaping). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "fields_sum.h"
#include "report.h"

static int line(struct fields_sum *s, const char *l)
{
	return report_read_line(s, l, strlen(l));
}

static struct fields_sum *load(void)
{
	struct fields_sum_cfg cfg;
	struct fields_sum *s;
	char l[512];
	int i;

	fields_sum_cfg_default(&cfg);
	s = fields_sum_new(&cfg);
	assert_non_null(s);
	for (i = 0; i < 200; i++) {
		snprintf(l, sizeof(l),
			 "{\"event\":{\"id\":\"e%d\",\"dataset\":\"shadowtap.exchange\"},\"diff\":{\"match\":false,"
			 "\"endpoint\":\"GET /x/{int}\",\"fields\":[{\"path\":\"$.ts\",\"kind\":\"value\",\"a\":\"1\","
			 "\"b\":\"2\",\"noise\":true}%s],\"noise\":{\"source\":\"baseline\",\"fields\":[\"$.ts\"]}}}\n",
			 i, i % 10 ? "" : ",{\"path\":\"$.p<b>\",\"kind\":\"missing\",\"a\":\"\\\"<i>\\\"\"}");
		assert_int_equal(line(s, l), 1);
	}
	return s;
}

static void test_read(void **state)
{
	struct fields_sum *s = load();

	/* a summary document, a record without a comparison, blank, junk */
	assert_int_equal(line(s, "{\"event\":{\"dataset\":\"shadowtap.diff_summary\"},\"diff_summary\":{}}"), 0);
	assert_int_equal(line(s, "{\"event\":{\"id\":\"x\"},\"replay\":{\"error\":\"timeout\"}}"), 0);
	assert_int_equal(line(s, "  \n"), 0);
	assert_int_equal(line(s, "{\"diff\":"), -EBADMSG);
	assert_int_equal(line(s, "[1]"), -EBADMSG);
	fields_sum_free(s);
}

static void test_json_and_table(void **state)
{
	struct fields_sum *s = load();
	struct buf b = { 0 };

	assert_int_equal(report_json(s, &b), 0);
	buf_putc(&b, '\0');
	assert_non_null(strstr(b.data, "\"endpoints\":[{\"endpoint\":\"GET /x/{int}\",\"requests\":200,"
				       "\"matched\":0,\"noise_requests\":200}]"));
	/* real first: the missing field, then the noisy timestamp */
	assert_true(strstr(b.data, "\"path\":\"$.p<b>\",\"kind\":\"missing\",\"raw\":20,\"noise\":0") <
		    strstr(b.data, "\"path\":\"$.ts\""));
	assert_non_null(strstr(b.data, "\"verdict\":\"real\",\"example\":{\"event_id\":\"e0\",\"a\":\"\\\"<i>\\\"\",\"b\":null}"));
	assert_non_null(strstr(b.data, "\"raw\":200,\"noise\":200,\"noise_scaled\":200.0"));
	buf_reset(&b);
	assert_int_equal(report_table(s, 0, &b), 0);
	buf_putc(&b, '\0');
	assert_non_null(strstr(b.data, "1 real differences, 1 noise or ignored"));
	assert_non_null(strstr(b.data, "$.p<b>"));
	assert_null(strstr(b.data, "$.ts "));      /* noise: only with --all */
	buf_reset(&b);
	assert_int_equal(report_table(s, 1, &b), 0);
	buf_putc(&b, '\0');
	assert_non_null(strstr(b.data, "$.ts "));
	buf_free(&b);
	fields_sum_free(s);
}

static void test_html(void **state)
{
	struct fields_sum *s = load();
	struct buf b = { 0 };

	assert_int_equal(report_html(s, "t<&>", &b), 0);
	buf_putc(&b, '\0');
	assert_non_null(strstr(b.data, "<title>t&lt;&amp;&gt;</title>"));
	assert_non_null(strstr(b.data, "<tr class=\"diff real\"><td class=\"ep\">GET /x/{int}</td>"
				       "<td class=\"path\"><code>$.p&lt;b&gt;</code>"));
	assert_non_null(strstr(b.data, "&quot;&lt;i&gt;&quot;"));
	assert_null(strstr(b.data, "<i>"));
	/* self-contained: no external assets */
	assert_null(strstr(b.data, "src="));
	assert_null(strstr(b.data, "href="));
	buf_free(&b);
	fields_sum_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_json_and_table),
		cmocka_unit_test(test_html),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
