/* The replay engine's done callback for unit tests: it keeps the finished records,
 * in the order the engine hands them on, and lets the test wait for a count with a
 * deadline. Included by the replay tests that need nothing more of it. */
#ifndef ST_TEST_REPLAY_SINK_H
#define ST_TEST_REPLAY_SINK_H

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "record.h"

#ifndef REPLAY_SINK_MAX
#define REPLAY_SINK_MAX 4096
#endif

struct sink {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct st_record *recs[REPLAY_SINK_MAX];
	int n;
};

static void sink_done(void *ctx, struct st_record *rec)
{
	struct sink *k = ctx;

	pthread_mutex_lock(&k->mu);
	if (k->n < REPLAY_SINK_MAX)
		k->recs[k->n++] = rec;
	else
		record_free(rec);
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

/* the records handed on once n have come or ms have passed */
static int sink_wait(struct sink *k, int n, int ms)
{
	struct timespec ts;
	int got;

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
