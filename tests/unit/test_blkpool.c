/* Per-thread blocks for serverB's answer and the diff (agent/blkpool.c): a block
 * freed on its maker's thread is the next one it gets; freed on another thread it
 * goes back to malloc and the maker's list does not grow; too large a size is
 * refused (the caller mallocs); the list stops at BLK_KEEP. Then the users:
 * record_replay_new takes a block when its answer fits and plain memory when not,
 * and record_diff_free frees a pooled diff's heap endpoint and noise paths (ASan's
 * leak check fails the test if the walk is skipped for them). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* the sanitizers' allocator interface (no header for it on this toolchain) */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_bytes(void)
{
	return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_bytes(void)
{
	return 0;   /* no count without a sanitizer: that check is skipped */
}
#endif

#include "blkpool.h"
#include "diff.h"
#include "record.h"

static void test_reuse_same_thread(void **state)
{
	void *a, *b;
	size_t k0;

	(void)state;
	a = blk_get(100);
	assert_non_null(a);
	assert_int_equal((uintptr_t)a % 16, 0);
	memset(a, 0xab, BLK_MAX);           /* the whole usable size is the caller's */
	k0 = blk_kept();
	blk_put(a);
	assert_int_equal(blk_kept(), k0 + 1);
	b = blk_get(BLK_MAX);
	assert_ptr_equal(a, b);
	assert_int_equal(blk_kept(), k0);
	blk_put(b);
	assert_null(blk_get(BLK_MAX + 1));
	blk_put(NULL);
}

static void *put_other(void *p)
{
	size_t k = blk_kept();

	blk_put(p);
	/* not this thread's block: freed, not kept here */
	return (void *)(uintptr_t)(blk_kept() - k);
}

static void test_other_thread_frees(void **state)
{
	pthread_t th;
	void *p, *res;
	size_t k0;

	(void)state;
	p = blk_get(64);
	assert_non_null(p);
	k0 = blk_kept();
	assert_int_equal(pthread_create(&th, NULL, put_other, p), 0);
	assert_int_equal(pthread_join(th, &res), 0);
	assert_int_equal((uintptr_t)res, 0);
	assert_int_equal(blk_kept(), k0);
}

static void test_keep_bound(void **state)
{
	void **v = calloc(BLK_KEEP + 10, sizeof(void *));
	size_t i;

	(void)state;
	assert_non_null(v);
	for (i = 0; i < BLK_KEEP + 10; i++) {
		v[i] = blk_get(32);
		assert_non_null(v[i]);
	}
	for (i = 0; i < BLK_KEEP + 10; i++)
		blk_put(v[i]);
	assert_int_equal(blk_kept(), BLK_KEEP);
	free(v);
}

static void test_replay_answer(void **state)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
	struct http1_header h = { .name = head + 17, .name_len = 14, .value = head + 33,
				  .value_len = 1 };
	struct st_replay *rp;

	(void)state;
	rp = record_replay_new("http://b", head, sizeof(head) - 1, &h, 1, 2);
	assert_non_null(rp);
	assert_true(rp->pooled);
	assert_string_equal(rp->target, "http://b");
	assert_int_equal(rp->resp.head_len, sizeof(head) - 1);
	assert_int_equal(rp->resp.hdrs[0].name_len, 14);
	assert_memory_equal(rp->resp.hdrs[0].name, "Content-Length", 14);
	assert_true(rp->resp.hdrs[0].name >= rp->resp.head &&
		    rp->resp.hdrs[0].name < rp->resp.head + rp->resp.head_len);
	record_replay_free(rp);
	/* a body room past the block: plain memory, freed as before */
	rp = record_replay_new("http://b", head, sizeof(head) - 1, &h, 1, BLK_SIZE);
	assert_non_null(rp);
	assert_false(rp->pooled);
	memset(rp->resp.body, 'x', BLK_SIZE);
	record_replay_free(rp);
}

static void *free_other(void *p)
{
	record_free(p);
	return NULL;
}

/* a record with serverA's and serverB's answers that differ in one JSON field */
static void test_diff_free(void **state)
{
	static const char ha[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
	struct http1_header h = { .name = ha + 17, .name_len = 12, .value = ha + 31,
				  .value_len = 16 };
	struct st_record *r = record_new();
	struct st_diff *d;
	pthread_t th;
	size_t i, before;

	(void)state;
	assert_non_null(r);
	assert_int_equal(record_resp_set_head(r, ha, sizeof(ha) - 1, &h, 1, 7), 0);
	assert_int_equal(record_msg_body_append(&r->resp, "{\"a\":1}", 7, 1024), 0);
	r->resp.complete = true;
	r->status_code = 200;
	r->replay = record_replay_new("http://b", ha, sizeof(ha) - 1, &h, 1, 7);
	assert_non_null(r->replay);
	r->replay->status_code = 200;
	assert_int_equal(record_msg_body_append(&r->replay->resp, "{\"a\":2}", 7, 1024), 0);
	r->replay->resp.complete = true;
	d = diff_compare(r, NULL);
	assert_non_null(d);
	assert_true(d->pooled);
	assert_false(d->match);
	assert_int_equal(d->nfields, 1);
	assert_string_equal(d->fields[0].path, "$.a");
	/* what fields_sum puts outside the block, one at a time: the noise paths, then
	 * (below) an endpoint too long for the room. The sanitizers' count of allocated
	 * bytes: the blocks stay on this thread's list, so the drop is what lies outside
	 * them (a skipped walk drops nothing) */
	d->noise_paths = calloc(2, sizeof(char *));
	assert_non_null(d->noise_paths);
	for (i = 0; i < 2; i++) {
		d->noise_paths[i] = strdup("$.n");
		assert_non_null(d->noise_paths[i]);
	}
	d->nnoise = 2;
	r->diff = d;
	before = heap_bytes();
	record_diff_free(r->diff);
	if (before)
		assert_true(before - heap_bytes() >= 2 * sizeof(char *) + 2 * 4);
	d = r->diff = diff_compare(r, NULL);
	assert_non_null(d);
	assert_true(d->pooled);
	d->endpoint = malloc(400);
	assert_non_null(d->endpoint);
	memset(d->endpoint, 'e', 399);
	d->endpoint[399] = '\0';
	before = heap_bytes();
	record_free(r);
	if (before)
		assert_true(before - heap_bytes() >= 400);
	/* and on another thread (the blocks back to malloc) */
	r = record_new();
	assert_non_null(r);
	r->replay = record_replay_new("http://b", ha, sizeof(ha) - 1, &h, 1, 7);
	assert_non_null(r->replay);
	assert_int_equal(pthread_create(&th, NULL, free_other, r), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reuse_same_thread),
		cmocka_unit_test(test_other_thread_frees),
		cmocka_unit_test(test_keep_bound),
		cmocka_unit_test(test_replay_answer),
		cmocka_unit_test(test_diff_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
