/* es_retention_pick: which index names the agent's own retention deletes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "buf.h"
#include "es_retention.h"

/* 2026-12-06 12:00:00 UTC */
#define NOW ((time_t)1796558400)

static int pick(const char *list, int days, struct buf *out, int max, int *more)
{
	return es_retention_pick("st", days, NOW, list, strlen(list), out, max, more);
}

static void test_pick_own_old_days(void **state)
{
	struct buf out = { 0 };
	int more;
	const char *list =
		"st-2020.01.01\n"          /* old: goes */
		"  st-2026.11.28  \n"      /* day ended 7 d 12 h ago, N = 7: goes (padded by _cat) */
		"st-2026.11.29\n"          /* ended 6 d 12 h ago: some records < 7 d old, stays */
		"st-2026.12.06\n"          /* today */
		"st-2027.01.01\n"          /* future */
		"other-2020.01.01\n"       /* another prefix */
		"stx-2020.01.01\n"
		"st-diff-2020.01.01\n"     /* the difference summaries' prefix: their sink's own */
		"st-2020.01.01-x\n"
		"st-2020.13.01\n"          /* no such month */
		"st-2021.02.30\n"          /* no such day */
		"st-2020.1.01\n"
		"st-20a0.01.01\n"
		"st-2019.12.31";           /* old, no newline at the end */
	(void)state;

	assert_int_equal(pick(list, 7, &out, 64, &more), 3);
	assert_int_equal(more, 0);
	assert_int_equal((int)out.len, (int)strlen("st-2020.01.01,st-2026.11.28,st-2019.12.31"));
	assert_memory_equal(out.data, "st-2020.01.01,st-2026.11.28,st-2019.12.31", out.len);
	/* a longer retention keeps the recent one */
	assert_int_equal(pick(list, 30, &out, 64, &more), 2);
	assert_memory_equal(out.data, "st-2020.01.01,st-2019.12.31", out.len);
	/* nothing listed, nothing picked */
	assert_int_equal(pick("", 7, &out, 64, &more), 0);
	assert_int_equal(more, 0);
	buf_free(&out);
}

static void test_pick_bounded(void **state)
{
	struct buf out = { 0 }, list = { 0 };
	int more, i;
	(void)state;

	for (i = 1; i <= 28; i++)
		assert_int_equal(buf_printf(&list, "st-2020.02.%02d\n", i), 0);
	assert_int_equal(es_retention_pick("st", 1, NOW, list.data, list.len, &out, 10, &more), 10);
	assert_int_equal(more, 1);
	assert_int_equal(es_retention_pick("st", 1, NOW, list.data, list.len, &out, 64, &more), 28);
	assert_int_equal(more, 0);
	/* the URL stays short whatever the count allows */
	buf_reset(&list);
	for (i = 0; i < 200; i++)
		assert_int_equal(buf_printf(&list, "st-20%02d.01.01\n", i % 26 + 0), 0);
	assert_true(es_retention_pick("st", 1, NOW, list.data, list.len, &out, 1000, &more) > 0);
	assert_int_equal(more, 1);
	assert_true(out.len <= 1500);
	buf_free(&out);
	buf_free(&list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_own_old_days),
		cmocka_unit_test(test_pick_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
