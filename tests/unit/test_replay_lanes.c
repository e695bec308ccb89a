/* A worker's second replay engine (pipeline_replay_for): while the first engine
 * holds a backlog, a request that is its connection's only one (the first, and it
 * closes the connection) goes to whichever engine holds less; any other request,
 * and every request while there is no backlog, stays on the first, so no client
 * connection's requests are split between the two threads. The target is a
 * listening socket that never accepts: every request sent stays held. */
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
#include <unistd.h>
#include <cmocka.h>

#include "pipeline.h"
#include "record.h"
#include "replay.h"
#include "mute_listener.h"

#define BODY    (64 * 1024)
#define BUDGET  (16u << 20)      /* a backlog from 1 MiB (1/16) */

static int ndone;

static void sink_done(void *ctx, struct st_record *rec)
{
	(void)ctx;
	__atomic_fetch_add(&ndone, 1, __ATOMIC_RELAXED);
	record_free(rec);
}

/* conn: the Connection header's value, or NULL for none */
static struct st_record *mkpost(uint64_t flow, uint32_t index, int minor, const char *conn)
{
	static struct http1_header hdr[64];
	static int nh;
	struct st_record *r = record_new();
	int h;

	assert_non_null(r);
	r->flow_id = flow;
	r->index = index;
	r->http_minor = minor;
	r->status_code = 200;
	if (conn) {
		struct http1_header *x = &hdr[nh++ % 64];

		x->name = "Connection";
		x->name_len = 10;
		x->value = conn;
		x->value_len = strlen(conn);
		r->req.hdrs = x;     /* not freed with the record: it has no head */
		r->req.nhdrs = 1;
	}
	r->raw = malloc(BODY + 160);
	assert_non_null(r->raw);
	h = snprintf((char *)r->raw, 160, "POST /b HTTP/1.%d\r\nHost: h\r\n%s%s%sContent-Length: %d\r\n\r\n",
		     minor, conn ? "Connection: " : "", conn ? conn : "", conn ? "\r\n" : "", BODY);
	memset(r->raw + h, 'x', BODY);
	r->raw_len = (size_t)h + BODY;
	r->raw_cap = BODY + 160;
	return r;
}

/* Where r goes; submitted there, as on_record does. */
static struct replay *route(struct worker *w, struct st_record *r)
{
	struct replay *to = pipeline_replay_for(w, r);

	replay_submit(to, r);
	return to;
}

static void test_second_engine(void **state)
{
	static char url[64];
	struct worker w = { 0 };
	struct replay_cfg cfg;
	uint64_t shared = 0, flow = 1;
	uint16_t port;
	int lfd = mute_listener(&port), i, n = 0;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
	replay_cfg_default(&cfg);
	cfg.targets[0] = url;
	cfg.ntargets = 1;
	cfg.connect_timeout_ms = 5000;
	cfg.response_timeout_ms = 5000;
	cfg.max_inflight_bytes = BUDGET;
	cfg.shared_held = &shared;
	assert_int_equal(replay_start(&w.replay, &cfg, sink_done, NULL), 0);
	assert_int_equal(replay_start(&w.replay2, &cfg, sink_done, NULL), 0);

	/* no backlog: even a whole-connection request stays on the first engine */
	for (i = 0; i < 8; i++, n++)
		assert_ptr_equal(route(&w, mkpost(flow++, 0, 1, "close")), w.replay);
	assert_false(replay_backlogged(w.replay));
	/* keep-alive requests build the backlog, all on the first engine */
	while (!replay_backlogged(w.replay)) {
		assert_ptr_equal(route(&w, mkpost(flow++, 0, 1, NULL)), w.replay);
		assert_true(++n < 64);
	}
	assert_true(replay_held_own(w.replay) >= BUDGET / 16);
	assert_int_equal(replay_held_own(w.replay2), 0);

	/* backlog: the connection's only request may move, others may not */
	assert_ptr_equal(route(&w, mkpost(flow++, 0, 1, "close")), w.replay2);
	assert_ptr_equal(route(&w, mkpost(flow++, 0, 0, NULL)), w.replay2);          /* 1.0 */
	assert_ptr_equal(route(&w, mkpost(flow++, 0, 1, "Keep-Alive, close")), w.replay2);
	assert_ptr_equal(route(&w, mkpost(flow++, 0, 1, NULL)), w.replay);           /* keep-alive */
	assert_ptr_equal(route(&w, mkpost(flow++, 0, 0, "keep-alive")), w.replay);
	assert_ptr_equal(route(&w, mkpost(flow++, 0, 1, "upgrade")), w.replay);
	assert_ptr_equal(route(&w, mkpost(flow++, 3, 1, "close")), w.replay);        /* not the first */
	n += 7;
	/* whole-connection requests go to the engine that holds less, so the
	 * second catches up with the first and the two then share them */
	{
		int to2 = 3, to1 = 0;

		for (i = 0; i < 40; i++, n++) {
			if (route(&w, mkpost(flow++, 0, 1, "close")) == w.replay2)
				to2++;
			else
				to1++;
		}
		assert_true(to1 > 0 && to2 > to1);
		assert_true(replay_held_own(w.replay2) <= replay_held_own(w.replay) + BODY + 4096);
	}
	assert_int_equal(__atomic_load_n(&shared, __ATOMIC_RELAXED),
			 replay_held_own(w.replay) + replay_held_own(w.replay2));

	replay_stop_by(w.replay, 0);
	replay_stop_by(w.replay2, 0);
	replay_stop(w.replay);
	replay_stop(w.replay2);
	assert_int_equal(__atomic_load_n(&ndone, __ATOMIC_RELAXED), n);
	assert_int_equal(__atomic_load_n(&shared, __ATOMIC_RELAXED), 0);
	replay_free(w.replay);
	replay_free(w.replay2);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_second_engine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
