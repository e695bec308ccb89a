/* A Content-Length request body kept for replay is one copy: the record's decoded
 * body is a view into its raw request (issue 19). These check that the view shows the
 * same bytes a copy would, that the body limit still cuts it, and that when raw goes
 * (a gap in the body) the record keeps its own copy of what it had. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "exchange.h"
#include "record.h"

#define MAXREC 8

struct fixture {
	struct st_record *r[MAXREC];
	int n;
	struct exchange *x;
	struct reasm_flow f;
};

static void collect(void *ctx, struct st_record *r)
{
	struct fixture *fx = ctx;

	assert_true(fx->n < MAXREC);
	fx->r[fx->n++] = r;
}

static int open_fixture(void **state, int keep_raw, size_t replay_max)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct exchange_cfg cfg;

	exchange_cfg_default(&cfg);
	cfg.keep_raw = keep_raw;
	if (replay_max)
		cfg.replay_max = replay_max;
	cfg.body_limit = 8;
	fx->x = exchange_new(&cfg, collect, fx);
	fx->f.key.family = 4;
	fx->f.key.cport = 40000;
	fx->f.key.sport = 80;
	fx->f.flow_id = 77;
	assert_int_equal(exchange_reasm_ops.open(fx->x, &fx->f), 0);
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return open_fixture(state, 1, 0);
}

static int setup_no_raw(void **state)
{
	return open_fixture(state, 0, 0);
}

static int setup_small_replay(void **state)
{
	return open_fixture(state, 1, 64);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	struct exchange_stats st;
	int i;

	if (fx->f.user)
		exchange_reasm_ops.close(fx->x, &fx->f, REASM_CLOSE_SHUTDOWN);
	/* whatever was viewed or copied, the held bytes come back to zero */
	exchange_get_stats(fx->x, &st);
	assert_int_equal(st.held_bytes, 0);
	for (i = 0; i < fx->n; i++)
		record_free(fx->r[i]);
	exchange_free(fx->x);
	free(fx);
	return 0;
}

static void send_dir(struct fixture *fx, int dir, const char *s)
{
	static uint64_t clk = 1000;

	exchange_reasm_ops.data(fx->x, &fx->f, dir, (const uint8_t *)s, strlen(s), clk += 1000);
}

static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void test_view_is_raw(void **state)
{
	struct fixture *fx = *state;
	const char *head = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n";
	struct st_record *r;

	send_dir(fx, REASM_C2S, head);
	send_dir(fx, REASM_C2S, "abc");
	send_dir(fx, REASM_C2S, "def");
	send_dir(fx, REASM_S2C, resp);
	assert_int_equal(fx->n, 1);
	r = fx->r[0];
	assert_true(r->req.body_borrowed);
	assert_int_equal(r->req.body_cap, 0);
	assert_ptr_equal(r->req.body, r->raw + strlen(head));
	assert_int_equal(r->req.body_stored, 6);
	assert_int_equal(r->req.body_bytes, 6);
	assert_memory_equal(r->req.body, "abcdef", 6);
	assert_int_equal(r->raw_len, strlen(head) + 6);
	assert_false(r->cap_flags & (ST_CAP_TRUNCATED | ST_CAP_INCOMPLETE));
}

static void test_view_cut_at_limit(void **state)
{
	struct fixture *fx = *state;
	struct st_record *r;

	send_dir(fx, REASM_C2S, "POST /p HTTP/1.1\r\nContent-Length: 12\r\n\r\n0123456789AB");
	send_dir(fx, REASM_S2C, resp);
	assert_int_equal(fx->n, 1);
	r = fx->r[0];
	assert_true(r->req.body_borrowed);
	assert_int_equal(r->req.body_stored, 8);         /* body_limit */
	assert_int_equal(r->req.body_bytes, 12);
	assert_memory_equal(r->req.body, "01234567", 8);
	assert_true(r->cap_flags & ST_CAP_TRUNCATED);
	/* the replay still has every byte */
	assert_memory_equal(r->raw + r->raw_len - 12, "0123456789AB", 12);
}

static void test_gap_owns_copy(void **state)
{
	struct fixture *fx = *state;
	struct st_record *r;

	send_dir(fx, REASM_C2S, "POST /p HTTP/1.1\r\nContent-Length: 7\r\n\r\nab");
	exchange_reasm_ops.gap(fx->x, &fx->f, REASM_C2S, 3);
	send_dir(fx, REASM_C2S, "yz");
	send_dir(fx, REASM_S2C, resp);
	assert_int_equal(fx->n, 1);
	r = fx->r[0];
	/* raw no longer matches the wire and is gone; the body is the record's own
	 * (x_raw_unborrow: its copy charged to held bytes, which teardown finds back at
	 * 0; with the copy left uncharged this case fails there) */
	assert_null(r->raw);
	assert_true(r->cap_flags & ST_CAP_GAP);
	assert_false(r->req.body_borrowed);
	assert_int_equal(r->req.body_bytes, 7);
	assert_int_equal(r->req.body_stored, 4);
	assert_memory_equal(r->req.body, "abyz", 4);
}

static void test_chunked_is_copied(void **state)
{
	struct fixture *fx = *state;
	struct st_record *r;

	send_dir(fx, REASM_C2S, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
	send_dir(fx, REASM_S2C, resp);
	assert_int_equal(fx->n, 1);
	r = fx->r[0];
	/* decoded bytes differ from the wire's: a view cannot serve */
	assert_false(r->req.body_borrowed);
	assert_int_equal(r->req.body_stored, 3);
	assert_memory_equal(r->req.body, "abc", 3);
}

static void test_no_raw_is_copied(void **state)
{
	struct fixture *fx = *state;
	struct st_record *r;

	send_dir(fx, REASM_C2S, "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
	send_dir(fx, REASM_S2C, resp);
	assert_int_equal(fx->n, 1);
	r = fx->r[0];
	assert_null(r->raw);
	assert_false(r->req.body_borrowed);
	assert_memory_equal(r->req.body, "abc", 3);
}

/* raw would pass --replay-max (64 here): it goes (x_raw_append drops it as a gap
 * does), the record is not replayed and keeps its own copy of the body; teardown
 * finds held bytes back at 0 */
static void test_past_replay_max(void **state)
{
	struct fixture *fx = *state;
	struct exchange_stats st;
	struct st_record *r;

	send_dir(fx, REASM_C2S, "POST /p HTTP/1.1\r\nContent-Length: 40\r\n\r\n");
	send_dir(fx, REASM_C2S, "0123456789abcdefghij");
	send_dir(fx, REASM_C2S, "KLMNOPQRSTUVWXYZ!@#$");
	send_dir(fx, REASM_S2C, resp);
	assert_int_equal(fx->n, 1);
	r = fx->r[0];
	assert_null(r->raw);
	assert_true(r->cap_flags & ST_CAP_REPLAY_TRUNC);
	assert_false(r->req.body_borrowed);
	assert_int_equal(r->req.body_bytes, 40);
	assert_int_equal(r->req.body_stored, 8);
	assert_memory_equal(r->req.body, "01234567", 8);
	exchange_get_stats(fx->x, &st);
	assert_int_equal(st.raw_truncated, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_view_is_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_cut_at_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gap_owns_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunked_is_copied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_raw_is_copied, setup_no_raw, teardown),
		cmocka_unit_test_setup_teardown(test_past_replay_max, setup_small_replay, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
