/* fields_json: the one-pass flattening the comparisons stand on. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fields_json.h"
#include "json.h"

static uint64_t root_hash(const char *s)
{
	struct fj_doc d;
	uint64_t h;

	assert_int_equal(fj_parse(&d, s, strlen(s)), 0);
	h = d.n[0].h;
	fj_free(&d);
	return h;
}

static void test_hash_is_value(void **state)
{
	(void)state;
	/* member order, spaces, escapes and number spelling do not count */
	assert_true(root_hash("{\"a\":1,\"b\":[1,2]}") == root_hash(" { \"b\" : [1, 2], \"a\" : 1 } "));
	assert_true(root_hash("[\"ab\"]") == root_hash("[\"a\\u0062\"]"));
	assert_true(root_hash("[1.0,-0,2e0]") == root_hash("[1,0,2]"));
	/* array order, types, values and keys do */
	assert_true(root_hash("[1,2]") != root_hash("[2,1]"));
	assert_true(root_hash("[1]") != root_hash("[\"1\"]"));
	assert_true(root_hash("{\"a\":1}") != root_hash("{\"b\":1}"));
	assert_true(root_hash("{\"a\":true}") != root_hash("{\"a\":false}"));
	assert_true(root_hash("[12345678901234567]") != root_hash("[12345678901234568]"));
	assert_true(root_hash("{}") != root_hash("[]"));
}

static void test_num_eq(void **state)
{
	(void)state;
	assert_true(fj_num_eq("10", 2, "10", 2));
	assert_false(fj_num_eq("10", 2, "11", 2));
	assert_false(fj_num_eq("10", 2, "0", 1));
	assert_true(fj_num_eq("-0", 2, "0", 1));
	assert_true(fj_num_eq("1", 1, "1.0", 3));
	assert_true(fj_num_eq("1e2", 3, "100", 3));
	assert_false(fj_num_eq("12345678901234567", 17, "12345678901234568", 17));
	assert_false(fj_num_eq("1.5", 3, "1.25", 4));
}

static void test_nodes_and_order(void **state)
{
	const char *s = "{\"z\":\"x\\ny\",\"a\":{\"k\":null},\"m\":[true,1.5]}";
	struct fj_doc d;
	const struct fj_node *z;
	int32_t o;
	(void)state;

	assert_int_equal(fj_parse(&d, s, strlen(s)), 0);
	assert_int_equal(d.n[0].type, FJ_OBJ);
	assert_int_equal(d.n[0].nchild, 3);
	z = &d.n[d.n[0].first];
	assert_int_equal(z->type, FJ_STR);
	assert_memory_equal(fj_key(&d, z), "z", 1);
	assert_int_equal((int)z->s_len, 3);            /* decoded: "x\ny" */
	assert_memory_equal(fj_s(&d, z), "x\ny", 3);
	assert_memory_equal(d.src + z->v, "\"x\\ny\"", z->ve - z->v);
	o = fj_sorted(&d, 0);
	assert_true(o >= 0);
	assert_memory_equal(fj_key(&d, &d.n[d.order[o]]), "a", 1);
	assert_memory_equal(fj_key(&d, &d.n[d.order[o + 1]]), "m", 1);
	assert_memory_equal(fj_key(&d, &d.n[d.order[o + 2]]), "z", 1);
	assert_int_equal(fj_sorted(&d, 0), o);        /* once per node */
	fj_free(&d);
}

static void test_rejects(void **state)
{
	static const char *const bad[] = {
		"", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "[1] x", "\"\x01\"", "[tru]", "{1:2}", NULL,
	};
	struct fj_doc d;
	char deep[2 * (JSON_MAX_DEPTH + 4) + 1];
	int i;
	(void)state;

	for (i = 0; bad[i]; i++) {
		assert_int_equal(fj_parse(&d, bad[i], strlen(bad[i])), -EINVAL);
		fj_free(&d);
	}
	/* nesting past JSON_MAX_DEPTH is refused, not recursed into */
	memset(deep, '[', JSON_MAX_DEPTH + 4);
	memset(deep + JSON_MAX_DEPTH + 4, ']', JSON_MAX_DEPTH + 4);
	deep[sizeof(deep) - 1] = '\0';
	assert_int_equal(fj_parse(&d, deep, strlen(deep)), -EINVAL);
	fj_free(&d);
	assert_int_equal(fj_parse(&d, deep + 8, strlen(deep) - 16), 0);
	fj_free(&d);
}

static void test_large_object_sorted(void **state)
{
	char s[4096];
	struct fj_doc d;
	int n = 0, i;
	int32_t o;
	(void)state;

	n += snprintf(s + n, sizeof(s) - (size_t)n, "{");
	for (i = 99; i >= 0; i--)
		n += snprintf(s + n, sizeof(s) - (size_t)n, "%s\"k%03d\":%d", i == 99 ? "" : ",", i, i);
	n += snprintf(s + n, sizeof(s) - (size_t)n, "}");
	assert_int_equal(fj_parse(&d, s, (size_t)n), 0);
	o = fj_sorted(&d, 0);
	for (i = 0; i < 100; i++) {
		char k[8];

		snprintf(k, sizeof(k), "k%03d", i);
		assert_memory_equal(fj_key(&d, &d.n[d.order[o + i]]), k, 4);
	}
	fj_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_is_value),
		cmocka_unit_test(test_num_eq),
		cmocka_unit_test(test_nodes_and_order),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_large_object_sorted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
