/* The replay byte budget (--replay-max-bytes) that --workers N engines share: one
 * engine may hold more than its 1/N of it while the others hold nothing, and all of
 * them together never hold more than it. The target is a listening socket that never
 * accepts, so every request sent stays in flight (held) until the test stops. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "record.h"
#include "replay.h"
#include "mute_listener.h"

#define BODY    (96 * 1024)
#define BUDGET  (1024 * 1024)

struct sink {
	pthread_mutex_t mu;
	int n, refused;
};

/* Called synchronously from replay_submit for a refused record, from the replay
 * thread (or replay_stop) for the rest. */
static void sink_done(void *ctx, struct st_record *rec)
{
	struct sink *k = ctx;

	pthread_mutex_lock(&k->mu);
	k->n++;
	if (rec->replay && rec->replay->error && !strcmp(rec->replay->error, "dropped: memory limit"))
		k->refused++;
	pthread_mutex_unlock(&k->mu);
	record_free(rec);
}

static int sink_refused(struct sink *k)
{
	int v;

	pthread_mutex_lock(&k->mu);
	v = k->refused;
	pthread_mutex_unlock(&k->mu);
	return v;
}

static struct st_record *mkpost(uint64_t flow)
{
	struct st_record *r = record_new();
	int h;

	assert_non_null(r);
	r->flow_id = flow;
	r->http_minor = 1;
	r->status_code = 200;
	r->raw = malloc(BODY + 128);
	assert_non_null(r->raw);
	h = snprintf((char *)r->raw, 128, "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", BODY);
	memset(r->raw + h, 'x', BODY);
	r->raw_len = (size_t)h + BODY;
	r->raw_cap = BODY + 128;
	return r;
}

static uint64_t held(struct replay *rp)
{
	struct replay_stats st;

	replay_get_stats(rp, &st);
	return st.held_bytes;
}

/* Two engines on one budget of BUDGET bytes (as pipeline.c sets them up with
 * --workers 2), both replaying to the listener on port. */
static void start_two(struct replay **ra, struct sink *ka, struct replay **rb, struct sink *kb,
		      uint16_t port, uint64_t *shared)
{
	static char url[64];
	struct replay_cfg cfg;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
	replay_cfg_default(&cfg);
	cfg.targets[0] = url;
	cfg.ntargets = 1;
	cfg.connect_timeout_ms = 5000;
	cfg.response_timeout_ms = 5000;
	cfg.max_inflight_bytes = BUDGET;
	cfg.shared_held = shared;
	assert_int_equal(replay_start(ra, &cfg, sink_done, ka), 0);
	assert_int_equal(replay_start(rb, &cfg, sink_done, kb), 0);
}

static void test_shared_budget(void **state)
{
	uint64_t shared = 0, ha, hb, one;
	struct replay *ra = NULL, *rb = NULL;
	struct sink ka = { .mu = PTHREAD_MUTEX_INITIALIZER }, kb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	uint16_t port;
	int lfd = mute_listener(&port), i, na = 0;

	(void)state;
	start_two(&ra, &ka, &rb, &kb, port, &shared);

	/* one engine takes records until the budget refuses one: past half of it */
	for (i = 0; i < 64 && !sink_refused(&ka); i++) {
		replay_submit(ra, mkpost((uint64_t)i));
		na++;
	}
	assert_int_equal(sink_refused(&ka), 1);
	ha = held(ra);
	one = ha / (uint64_t)(na - 1);         /* what one record is charged */
	assert_true(one > BODY && one < BODY + 8192);
	assert_true(ha > BUDGET / 2);          /* a fixed half would have refused earlier */
	assert_true(ha <= BUDGET && ha + one > BUDGET);
	assert_int_equal(held(rb), 0);
	assert_int_equal(__atomic_load_n(&shared, __ATOMIC_RELAXED), ha);

	/* the other engine finds the budget the first left: none, so its record is refused */
	replay_submit(rb, mkpost(1000));
	assert_int_equal(sink_refused(&kb), 1);
	hb = held(rb);
	assert_int_equal(hb, 0);
	assert_true(ha + hb <= BUDGET);

	replay_stop_by(ra, 0);
	replay_stop_by(rb, 0);
	replay_stop(ra);
	replay_stop(rb);
	assert_int_equal(ka.n, na);            /* every record came back, once */
	assert_int_equal(kb.n, 1);
	assert_int_equal(__atomic_load_n(&shared, __ATOMIC_RELAXED), 0);           /* every charge refunded */
	replay_free(ra);
	replay_free(rb);
	close(lfd);
}

/* The budget's room freed by one engine is the other's: refunds go to the shared count. */
static void test_shared_refund(void **state)
{
	uint64_t shared = 0;
	struct replay *ra = NULL, *rb = NULL;
	struct sink ka = { .mu = PTHREAD_MUTEX_INITIALIZER }, kb = { .mu = PTHREAD_MUTEX_INITIALIZER };
	uint16_t port;
	int lfd = mute_listener(&port), i;

	(void)state;
	start_two(&ra, &ka, &rb, &kb, port, &shared);
	for (i = 0; i < 64 && !sink_refused(&ka); i++)
		replay_submit(ra, mkpost((uint64_t)i));
	assert_int_equal(sink_refused(&ka), 1);
	/* engine a gives everything back (its requests fail at the stop) */
	replay_stop_by(ra, 0);
	replay_stop(ra);
	assert_int_equal(held(ra), 0);
	assert_int_equal(__atomic_load_n(&shared, __ATOMIC_RELAXED), 0);
	/* and engine b may now hold past half */
	for (i = 0; i < 64 && !sink_refused(&kb); i++)
		replay_submit(rb, mkpost((uint64_t)(1000 + i)));
	assert_int_equal(sink_refused(&kb), 1);
	assert_true(held(rb) > BUDGET / 2 && held(rb) <= BUDGET);
	replay_stop_by(rb, 0);
	replay_stop(rb);
	assert_int_equal(__atomic_load_n(&shared, __ATOMIC_RELAXED), 0);
	replay_free(ra);
	replay_free(rb);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_budget),
		cmocka_unit_test(test_shared_refund),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
