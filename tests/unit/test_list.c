/* list.h: the intrusive list's links stay consistent through every operation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "list.h"

struct item {
	int v;
	struct list_node node;
};

/* the values on l, in order, checking both directions of every link */
static int values(struct list_node *l, int *out, int max)
{
	struct list_node *n;
	int k = 0;

	list_for_each(n, l) {
		assert_ptr_equal(n->next->prev, n);
		assert_ptr_equal(n->prev->next, n);
		assert_true(k < max);
		out[k++] = list_entry(n, struct item, node)->v;
	}
	assert_ptr_equal(l->next->prev, l);
	return k;
}

static void test_add_del_move(void **state)
{
	struct item it[5];
	struct list_node a, b, *n, *nx;
	int v[8], i;

	list_init(&a);
	list_init(&b);
	assert_true(list_empty(&a));
	for (i = 0; i < 5; i++) {
		it[i].v = i;
		list_add_tail(&a, &it[i].node);
	}
	assert_int_equal(values(&a, v, 8), 5);
	assert_int_equal(v[4], 4);
	list_del(&it[2].node);
	assert_true(list_empty(&it[2].node));
	assert_int_equal(values(&a, v, 8), 4);
	assert_int_equal(v[2], 3);
	list_move_tail(&a, &it[0].node);
	assert_int_equal(values(&a, v, 8), 4);
	assert_int_equal(v[0], 1);
	assert_int_equal(v[3], 0);
	assert_ptr_equal(list_first_entry(&a, struct item, node), &it[1]);
	/* move the first two onto b, then the rest */
	list_cut_before(&b, &a, &it[4].node);
	assert_int_equal(values(&b, v, 8), 2);
	assert_int_equal(v[0], 1);
	assert_int_equal(v[1], 3);
	assert_int_equal(values(&a, v, 8), 2);
	assert_int_equal(v[0], 4);
	list_cut_before(&b, &a, &a);
	assert_true(list_empty(&a));
	assert_int_equal(values(&b, v, 8), 4);
	assert_int_equal(v[3], 0);
	list_cut_before(&b, &a, &a);      /* empty: nothing moves */
	assert_int_equal(values(&b, v, 8), 4);
	list_for_each_safe(n, nx, &b)
		list_del(n);
	assert_true(list_empty(&b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_del_move),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
