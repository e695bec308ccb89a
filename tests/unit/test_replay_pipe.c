/* The replay engine's adaptive pool and --replay-order against a small threaded
 * server on 127.0.0.1 that answers each request after a delay, in order, and can
 * close a connection at its Nth request without answering (mid-pipeline). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
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
#include "replay_sink.h"

#define PS_MAX_LOG  4096
#define PS_MAX_CONN 256

struct ps_entry {
	int conn, flow, seq;
	char method[8];
	int outstanding;      /* requests of this connection read but not answered yet */
};

struct ps {
	int lfd;
	uint16_t port;
	int delay_ms, close_at;
	int close_each;       /* answer with Connection: close and close (atomic) */
	pthread_t thr;
	pthread_mutex_t mu;
	int stop;
	int accepts, open, peak_open;
	int fds[PS_MAX_CONN];
	struct ps_entry log[PS_MAX_LOG];
	int nlog;
};

struct ps_conn {
	struct ps *s;
	int fd, id;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One connection: requests are answered in order, each delay_ms after it was read
 * (so pipelined ones overlap); at close_at the connection closes unanswered. */
static void *ps_conn_thread(void *arg)
{
	struct ps_conn *pc = arg;
	struct ps *s = pc->s;
	char buf[65536];
	size_t len = 0;
	uint64_t due[256];
	int nreq = 0, head = 0, tail = 0;
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	static const char resp_close[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
					 "Content-Length: 2\r\n\r\nok";

	for (;;) {
		struct pollfd p = { .fd = pc->fd, .events = POLLIN };
		int wait = -1;
		char *e;

		if (head != tail) {
			int64_t d = (int64_t)(due[head % 256] - now_ms());

			wait = d > 0 ? (int)d : 0;
		}
		if (poll(&p, 1, wait > 200 || wait < 0 ? 200 : wait) < 0)
			break;
		if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE))
			break;
		while (head != tail && due[head % 256] <= now_ms()) {
			if (__atomic_load_n(&s->close_each, __ATOMIC_ACQUIRE)) {
				if (write(pc->fd, resp_close, sizeof(resp_close) - 1) < 0)
					goto out;
				goto out;
			}
			if (write(pc->fd, resp, sizeof(resp) - 1) < 0)
				goto out;
			head++;
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		{
			ssize_t r = read(pc->fd, buf + len, sizeof(buf) - len);

			if (r <= 0)
				break;
			len += (size_t)r;
		}
		while ((e = memmem(buf, len, "\r\n\r\n", 4))) {
			size_t end = (size_t)(e - buf) + 4, cl = 0;
			const char *h = memmem(buf, end, "Content-Length: ", 16), *x;
			struct ps_entry *l;

			if (h)
				cl = strtoul(h + 16, NULL, 10);
			if (len < end + cl)
				break;
			nreq++;
			pthread_mutex_lock(&s->mu);
			if (s->nlog < PS_MAX_LOG) {
				l = &s->log[s->nlog++];
				l->conn = pc->id;
				l->outstanding = tail - head;
				sscanf(buf, "%7s", l->method);
				x = memmem(buf, end, "X-Seq: ", 7);
				if (!x || sscanf(x + 7, "%d %d", &l->flow, &l->seq) != 2)
					l->flow = l->seq = -1;
			}
			pthread_mutex_unlock(&s->mu);
			memmove(buf, buf + end + cl, len - end - cl);
			len -= end + cl;
			if (s->close_at && nreq == s->close_at)
				goto out;
			due[tail++ % 256] = now_ms() + (uint64_t)s->delay_ms;
		}
	}
out:
	pthread_mutex_lock(&s->mu);
	s->open--;
	pthread_mutex_unlock(&s->mu);
	close(pc->fd);
	free(pc);
	return NULL;
}

static void *ps_accept_thread(void *arg)
{
	struct ps *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		struct ps_conn *pc;
		pthread_t t;
		int fd;

		if (poll(&p, 1, 100) <= 0)
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pc = calloc(1, sizeof(*pc));
		assert_non_null(pc);
		pc->s = s;
		pc->fd = fd;
		pthread_mutex_lock(&s->mu);
		pc->id = s->accepts++;
		s->open++;
		if (s->open > s->peak_open)
			s->peak_open = s->open;
		pthread_mutex_unlock(&s->mu);
		assert_int_equal(pthread_create(&t, NULL, ps_conn_thread, pc), 0);
		pthread_detach(t);
	}
	return NULL;
}

static struct ps *ps_start(int delay_ms, int close_at)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct ps *s = calloc(1, sizeof(*s));
	int one = 1;

	assert_non_null(s);
	s->delay_ms = delay_ms;
	s->close_at = close_at;
	pthread_mutex_init(&s->mu, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 512), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thr, NULL, ps_accept_thread, s), 0);
	return s;
}

static int ps_get(struct ps *s, const int *field)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = *field;
	pthread_mutex_unlock(&s->mu);
	return v;
}

static void ps_stop(struct ps *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(s->thr, NULL);
	/* connection threads notice stop within 200 ms */
	while (ps_get(s, &s->open) > 0)
		usleep(10000);
	close(s->lfd);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---- records ---- */

static struct st_record *mkreq_c(int flow, int seq, bool post, bool close)
{
	char raw[256];
	int n;

	if (post)
		n = snprintf(raw, sizeof(raw), "POST /p/%d/%d HTTP/1.1\r\nHost: h\r\nX-Seq: %d %d\r\n"
			     "%sContent-Length: 4\r\n\r\nbody", flow, seq, flow, seq,
			     close ? "Connection: close\r\n" : "");
	else
		n = snprintf(raw, sizeof(raw), "GET /g/%d/%d HTTP/1.1\r\nHost: h\r\nX-Seq: %d %d\r\n\r\n",
			     flow, seq, flow, seq);
	return sink_rec((uint64_t)flow + 1000, (uint32_t)seq, raw, (size_t)n);
}

static struct st_record *mkreq(int flow, int seq, bool post)
{
	return mkreq_c(flow, seq, post, false);
}

static char url[64];
static int gather_us = -1;   /* --replay-gather for the next start(), -1: the default */

static struct replay *start(struct sink *k, struct ps *s, int order, int floor, int max)
{
	struct replay_cfg cfg;
	struct replay *rp = NULL;

	replay_cfg_default(&cfg);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", s->port);
	cfg.targets[0] = url;
	cfg.ntargets = 1;
	cfg.order = order;
	cfg.connections = floor;
	cfg.connections_max = max;
	cfg.pipeline = 8;
	cfg.response_timeout_ms = 3000;
	if (gather_us >= 0)
		cfg.gather_us = gather_us;
	sink_init(k);
	assert_int_equal(replay_start(&rp, &cfg, sink_done, k), 0);
	return rp;
}

/* a counter from replay_print_stats, as --stats prints it */
static long stat_of(struct replay *rp, const char *key)
{
	char *buf = NULL, *p, pat[64];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	long v = -1;

	replay_print_stats(rp, f);
	fclose(f);
	snprintf(pat, sizeof(pat), " %s=", key);
	p = strstr(buf, pat);
	if (p)
		v = strtol(p + strlen(pat), NULL, 10);
	free(buf);
	return v;
}

/* first arrivals of each flow's requests are in sequence order; *dups counts the
 * requests serverB saw more than once, *post_dups the POSTs among them */
static void check_log(struct ps *s, int nflows, int per_flow, bool ordered, int *dups, int *post_dups)
{
	int seen[64][64] = { { 0 } }, last[64], i;

	*dups = *post_dups = 0;
	for (i = 0; i < nflows; i++)
		last[i] = -1;
	for (i = 0; i < s->nlog; i++) {
		struct ps_entry *l = &s->log[i];

		assert_true(l->flow >= 0 && l->flow < nflows && l->seq >= 0 && l->seq < per_flow);
		if (seen[l->flow][l->seq]++) {
			(*dups)++;
			if (strcmp(l->method, "POST") == 0)
				(*post_dups)++;
			continue;
		}
		if (ordered)
			assert_true(l->seq > last[l->flow]);
		last[l->flow] = l->seq;
	}
}

/* session order: one flow's requests go out pipelined on one connection, in order */
static void test_session_pipelines(void **state)
{
	struct ps *s = ps_start(20, 0);
	struct replay *rp;
	struct sink k;
	int i, dups, pdups, max_out = 0;

	(void)state;
	rp = start(&k, s, REPLAY_ORDER_SESSION, 1, 16);
	for (i = 0; i < 30; i++)
		replay_submit(rp, mkreq(0, i, i % 7 == 3));
	assert_int_equal(sink_wait(&k, 30, 10000), 30);
	replay_stop(rp);
	for (i = 0; i < k.n; i++) {
		assert_non_null(k.recs[i]->replay);
		assert_null(k.recs[i]->replay->error);
		assert_int_equal(k.recs[i]->replay->status_code, 200);
	}
	pthread_mutex_lock(&s->mu);
	assert_int_equal(s->nlog, 30);
	check_log(s, 1, 30, true, &dups, &pdups);
	for (i = 0; i < s->nlog; i++)
		if (s->log[i].outstanding > max_out)
			max_out = s->log[i].outstanding;
	pthread_mutex_unlock(&s->mu);
	assert_int_equal(dups, 0);
	assert_true(max_out >= 1);                   /* really pipelined */
	assert_true(max_out < 8);                    /* bounded by --replay-pipeline */
	assert_int_equal(ps_get(s, &s->accepts), 1); /* on one connection */
	replay_free(rp);
	sink_free(&k);
	ps_stop(s);
}

/* --replay-gather on (a long pause, so every pipelined write is followed by one) and
 * off: the same requests are replayed, answered, in order, each once. (Its timing is
 * not asserted here: this serverB's answers already take ~40 ms each way, Nagle
 * against delayed ACKs, so replay.duration does not show a 20 ms pause.) */
static void test_gather_pause(void **state)
{
	int settings[] = { 20000, 0 }, j, i, dups, pdups;

	(void)state;
	for (j = 0; j < 2; j++) {
		struct ps *s = ps_start(0, 0);
		struct replay *rp;
		struct sink k;

		gather_us = settings[j];
		rp = start(&k, s, REPLAY_ORDER_SESSION, 1, 16);
		gather_us = -1;
		for (i = 0; i < 24; i++)
			replay_submit(rp, mkreq(0, i, false));
		assert_int_equal(sink_wait(&k, 24, 10000), 24);
		replay_stop(rp);
		for (i = 0; i < k.n; i++) {
			assert_non_null(k.recs[i]->replay);
			assert_null(k.recs[i]->replay->error);
			assert_int_equal(k.recs[i]->replay->status_code, 200);
		}
		pthread_mutex_lock(&s->mu);
		assert_int_equal(s->nlog, 24);
		check_log(s, 1, 24, true, &dups, &pdups);
		pthread_mutex_unlock(&s->mu);
		assert_int_equal(dups, 0);
		replay_free(rp);
		sink_free(&k);
		ps_stop(s);
	}
}

/* serverB closes each connection at its 3rd request, unanswered, with more pipelined
 * behind it: each request gets one result; GETs with nothing back are sent again
 * (counted), POSTs never. */
static void test_close_mid_pipeline(void **state)
{
	int orders[] = { REPLAY_ORDER_SESSION, REPLAY_ORDER_SESSION_PARALLEL, REPLAY_ORDER_REQUEST };
	int o;

	(void)state;
	for (o = 0; o < 3; o++) {
		struct ps *s = ps_start(5, 3);
		struct replay *rp;
		struct sink k;
		int i, f, dups, pdups, ok = 0, failed = 0;

		rp = start(&k, s, orders[o], 1, 8);
		for (i = 0; i < 20; i++)
			for (f = 0; f < 4; f++)
				replay_submit(rp, mkreq(f, i, i % 4 == 1));
		assert_int_equal(sink_wait(&k, 80, 20000), 80);
		for (i = 0; i < k.n; i++) {
			assert_non_null(k.recs[i]->replay);
			if (k.recs[i]->replay->error)
				failed++;
			else
				ok++;
		}
		assert_int_equal(ok + failed, 80);
		assert_true(failed > 0);
		assert_true(ok > 0);
		pthread_mutex_lock(&s->mu);
		check_log(s, 4, 20, orders[o] == REPLAY_ORDER_SESSION, &dups, &pdups);
		pthread_mutex_unlock(&s->mu);
		assert_int_equal(pdups, 0);
		assert_true(dups <= stat_of(rp, "retries"));
		replay_stop(rp);
		replay_free(rp);
		sink_free(&k);
		ps_stop(s);
	}
}

/* request order: the pool grows past the floor with demand, never past the max, and
 * shrinks back when idle */
static void test_pool_grows_and_shrinks(void **state)
{
	struct ps *s = ps_start(50, 0);
	struct replay *rp;
	struct sink k;
	int i;

	(void)state;
	rp = start(&k, s, REPLAY_ORDER_REQUEST, 2, 10);
	for (i = 0; i < 200; i++)
		replay_submit(rp, mkreq(i % 4, i / 4, false));
	assert_int_equal(sink_wait(&k, 200, 20000), 200);
	for (i = 0; i < k.n; i++)
		assert_null(k.recs[i]->replay->error);
	assert_true(ps_get(s, &s->peak_open) > 2);
	assert_true(ps_get(s, &s->peak_open) <= 10);
	assert_true(stat_of(rp, "peak_open") <= 10);
	assert_true(stat_of(rp, "peak_open") > 2);
	usleep(2500 * 1000);   /* past REPLAY_SHRINK_MS and the 100 ms loop bound */
	assert_true(stat_of(rp, "open") <= 2);
	replay_stop(rp);
	replay_free(rp);
	sink_free(&k);
	ps_stop(s);
}

/* session-parallel: a flow's requests overlap over several connections, sent in order */
static void test_session_parallel(void **state)
{
	struct ps *s = ps_start(30, 0);
	struct replay *rp;
	struct sink k;
	int i, dups, pdups;

	(void)state;
	rp = start(&k, s, REPLAY_ORDER_SESSION_PARALLEL, 1, 16);
	for (i = 0; i < 40; i++)
		replay_submit(rp, mkreq(0, i, false));
	assert_int_equal(sink_wait(&k, 40, 10000), 40);
	replay_stop(rp);
	for (i = 0; i < k.n; i++)
		assert_null(k.recs[i]->replay->error);
	pthread_mutex_lock(&s->mu);
	/* sent in order, but over several connections: serverB (here one thread per
	 * connection) may take overlapping ones in any order, so no order assertion */
	check_log(s, 1, 40, false, &dups, &pdups);
	pthread_mutex_unlock(&s->mu);
	assert_int_equal(dups, 0);
	assert_true(ps_get(s, &s->accepts) > 1);
	assert_true(ps_get(s, &s->peak_open) <= 8);  /* --replay-pipeline bounds the flow */
	replay_free(rp);
	sink_free(&k);
	ps_stop(s);
}

/* POSTs with Connection: close, answered with Connection: close: every request needs
 * a new connection. Each connection that ends as its request asked gives its open back
 * (replay_conn_next), so the pool keeps as many busy as there are client connections.
 * Without that refund, opens above the floor cost a token each (16 at once, then 200
 * a second), and with 30 ms answers at most floor + 16 + ~6 connections are open at
 * once (the tokens of the first burst plus 200/s x 30 ms): peak_open stays near 24. */
static void test_close_refunds_open(void **state)
{
	struct ps *s = ps_start(30, 0);
	struct replay *rp;
	struct sink k;
	int i, f, dups, pdups;
	const int nflows = 48, per_flow = 12;

	(void)state;
	__atomic_store_n(&s->close_each, 1, __ATOMIC_RELEASE);
	rp = start(&k, s, REPLAY_ORDER_SESSION, 2, 64);
	for (i = 0; i < per_flow; i++)
		for (f = 0; f < nflows; f++)
			replay_submit(rp, mkreq_c(f, i, true, true));
	assert_int_equal(sink_wait(&k, nflows * per_flow, 20000), nflows * per_flow);
	replay_stop(rp);
	for (i = 0; i < k.n; i++) {
		assert_non_null(k.recs[i]->replay);
		assert_null(k.recs[i]->replay->error);
	}
	pthread_mutex_lock(&s->mu);
	check_log(s, nflows, per_flow, true, &dups, &pdups);
	pthread_mutex_unlock(&s->mu);
	assert_int_equal(dups, 0);
	assert_int_equal(ps_get(s, &s->accepts), nflows * per_flow);  /* one per POST */
	fprintf(stderr, "close_refunds_open: peak_open agent %ld serverB %d (floor 2, burst 16)\n",
		stat_of(rp, "peak_open"), ps_get(s, &s->peak_open));
	/* one connection per client connection at once, well past floor + burst */
	assert_true(stat_of(rp, "peak_open") >= 36);
	assert_true(stat_of(rp, "peak_open") <= nflows);
	replay_free(rp);
	sink_free(&k);
	ps_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_pipelines),
		cmocka_unit_test(test_gather_pause),
		cmocka_unit_test(test_close_mid_pipeline),
		cmocka_unit_test(test_pool_grows_and_shrinks),
		cmocka_unit_test(test_session_parallel),
		cmocka_unit_test(test_close_refunds_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
