/* The replay engine's done callback for unit tests: it keeps the finished records,
 * in the order the engine hands them on, and lets the test wait for a count with a
 * deadline. Shared by the replay tests; what one of them needs more is an option
 * here, set before the #include:
 *   REPLAY_SINK_MAX      records kept (more are freed on arrival)
 *   REPLAY_SINK_SLACK_MS added to every wait's deadline (test_replay_tls: its
 *                        waits have had a second more since it was written)
 * and the submitter fields: a test that sets submitter/submitting around its
 * replay_submit calls reads in_submit, the records handed on synchronously inside
 * them (refused, never blocked). */
#ifndef ST_TEST_REPLAY_SINK_H
#define ST_TEST_REPLAY_SINK_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"

#ifndef REPLAY_SINK_MAX
#define REPLAY_SINK_MAX 4096
#endif
#ifndef REPLAY_SINK_SLACK_MS
#define REPLAY_SINK_SLACK_MS 0
#endif

struct sink {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct st_record *recs[REPLAY_SINK_MAX];
	int n;
	int in_submit;       /* done called while replay_submit was running on this thread */
	pthread_t submitter;
	int submitting;
};

static void sink_done(void *ctx, struct st_record *rec)
{
	struct sink *k = ctx;

	pthread_mutex_lock(&k->mu);
	if (k->submitting && pthread_equal(pthread_self(), k->submitter))
		k->in_submit++;
	if (k->n < REPLAY_SINK_MAX)
		k->recs[k->n++] = rec;
	else
		record_free(rec);
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

/* the records handed on once n have come or ms (+ REPLAY_SINK_SLACK_MS) have passed */
static int sink_wait(struct sink *k, int n, int ms)
{
	struct timespec ts;
	int got;

	ms += REPLAY_SINK_SLACK_MS;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->mu);
	while (k->n < n)
		if (pthread_cond_timedwait(&k->cv, &k->mu, &ts))
			break;
	got = k->n;
	pthread_mutex_unlock(&k->mu);
	return got;
}

/* A record for the engine to replay: flow, index, HTTP/1.1, serverA's 200, and a
 * copy of raw (len bytes) as its raw request. (cmocka.h comes before this header.) */
static inline struct st_record *sink_rec(uint64_t flow, uint32_t idx, const char *raw,
					 size_t len)
{
	struct st_record *r = record_new();

	assert_non_null(r);
	r->flow_id = flow;
	r->index = idx;
	r->http_minor = 1;
	r->status_code = 200;
	r->raw_len = len;
	r->raw = malloc(len);
	assert_non_null(r->raw);
	memcpy(r->raw, raw, len);
	return r;
}

static void sink_init(struct sink *k)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
}

static void sink_free(struct sink *k)
{
	int i;

	for (i = 0; i < k->n; i++)
		record_free(k->recs[i]);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
}

#endif
