/* The replay engine against a real socket server on 127.0.0.1 running in a thread
 * of this test: byte-exact requests, rewrites, order per flow, pool size, errors,
 * queue-full drops, skips. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "record.h"
#include "replay.h"
#define REPLAY_SINK_MAX 2048   /* records a test keeps; more are freed */
#include "replay_sink.h"

/* ---- the test server ---- */

#define SRV_MAX_CONN 64
#define SRV_MAX_LOG  2048
#define BIG_BODY     (300 * 1024)

struct srv_req {
	int conn;
	size_t len;
	char data[1024];
};

struct srv_conn {
	int fd;
	int stalled;         /* a request was left unanswered: answer nothing after it */
	char in[8192];
	size_t len;
};

struct srv {
	int lfd, efd;
	uint16_t port;
	pthread_t thr;
	pthread_mutex_t mu;
	int accepts, open, peak_open;
	struct srv_req log[SRV_MAX_LOG];
	int nlog;
	struct srv_conn c[SRV_MAX_CONN];
};

/* The server thread keeps counting while a test reads: read under its lock. */
static int srv_get(struct srv *s, const int *field)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = *field;
	pthread_mutex_unlock(&s->mu);
	return v;
}

/* End of one request in buf (Content-Length or chunked), or 0 if incomplete. */
static size_t srv_req_end(const char *buf, size_t len)
{
	const char *e = memmem(buf, len, "\r\n\r\n", 4), *cl;
	size_t head, n;

	if (!e)
		return 0;
	head = (size_t)(e - buf) + 4;
	cl = memmem(buf, head, "\r\nContent-Length:", 17);
	if (!cl)
		cl = memmem(buf, head, "\r\ncontent-length:", 17);
	if (cl) {
		n = strtoul(cl + 17, NULL, 10);
		return len >= head + n ? head + n : 0;
	}
	if (memmem(buf, head, "Transfer-Encoding: chunked", 26)) {
		e = memmem(buf + head, len - head, "\r\n0\r\n\r\n", 7);
		if (!e && len - head >= 5 && memcmp(buf + head, "0\r\n\r\n", 5) == 0)
			return head + 5;
		return e ? (size_t)(e - buf) + 7 : 0;
	}
	return head;
}

static void srv_write(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;
	ssize_t w;

	while (off < n) {
		w = write(fd, s + off, n - off);
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static void srv_close(struct srv *s, struct srv_conn *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
	pthread_mutex_lock(&s->mu);
	s->open--;
	pthread_mutex_unlock(&s->mu);
}

/* Answer by path; returns 1 if the connection must be closed. */
static int srv_answer(struct srv *s, struct srv_conn *c, const char *req, size_t len)
{
	const char *path = memchr(req, ' ', len);
	char out[512];

	if (!path)
		return 1;
	path++;
	if (strncmp(path, "/slow", 5) == 0) {
		/* never answers, and like any HTTP/1.1 server answers nothing pipelined
		 * behind it either (responses go in request order) */
		c->stalled = 1;
		return 0;
	}
	if (strncmp(path, "/garbage", 8) == 0) {
		srv_write(c->fd, "this is not http at all\r\n\r\n");
		return 1;
	}
	if (strncmp(path, "/manyheaders", 12) == 0 || strncmp(path, "/longheader", 11) == 0) {
		/* a head over 64 KiB: 6,000 header lines, or one 70,000-byte line */
		char *h = malloc(80000);
		size_t n = (size_t)sprintf(h, "HTTP/1.1 200 OK\r\n");
		int i;

		if (path[1] == 'm') {
			for (i = 0; i < 6000; i++)
				n += (size_t)sprintf(h + n, "X-H%d: v\r\n", i);
		} else {
			n += (size_t)sprintf(h + n, "X-Long: ");
			memset(h + n, 'L', 70000);
			n += 70000;
			n += (size_t)sprintf(h + n, "\r\n");
		}
		sprintf(h + n, "Content-Length: 2\r\n\r\nok");
		srv_write(c->fd, h);
		free(h);
		return 1;
	}
	if (strncmp(path, "/chunked", 8) == 0) {
		srv_write(c->fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			  "Content-Type: text/plain\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nT: 1\r\n\r\n");
		return 0;
	}
	if (strncmp(path, "/close", 6) == 0) {
		srv_write(c->fd, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited");
		return 1;
	}
	if (strncmp(path, "/big", 4) == 0) {
		char *big = malloc(BIG_BODY + 128);
		int h = snprintf(big, 128, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_BODY);

		memset(big + h, 'b', BIG_BODY);
		big[h + BIG_BODY] = '\0';
		srv_write(c->fd, big);
		free(big);
		return 0;
	}
	if (strncmp(req, "HEAD ", 5) == 0) {
		srv_write(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
		return 0;
	}
	if (strncmp(path, "/continue", 9) == 0) {
		srv_write(c->fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
		return 0;
	}
	snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		 "Content-Length: 2\r\n\r\nok");
	srv_write(c->fd, out);
	return 0;
}

static void *srv_thread(void *arg)
{
	struct srv *s = arg;
	struct pollfd p[SRV_MAX_CONN + 2];
	int map[SRV_MAX_CONN + 2];
	int i, n, k;

	for (;;) {
		n = 0;
		p[n].fd = s->efd;
		p[n++].events = POLLIN;
		p[n].fd = s->lfd;
		p[n++].events = POLLIN;
		for (i = 0; i < SRV_MAX_CONN; i++)
			if (s->c[i].fd >= 0) {
				map[n] = i;
				p[n].fd = s->c[i].fd;
				p[n++].events = POLLIN;
			}
		if (poll(p, (nfds_t)n, 1000) < 0)
			continue;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd = accept(s->lfd, NULL, NULL);

			for (i = 0; fd >= 0 && i < SRV_MAX_CONN && s->c[i].fd >= 0; i++)
				;
			if (fd >= 0 && i < SRV_MAX_CONN) {
				s->c[i].fd = fd;
				s->c[i].len = 0;
				s->c[i].stalled = 0;
				pthread_mutex_lock(&s->mu);
				s->accepts++;
				s->open++;
				if (s->open > s->peak_open)
					s->peak_open = s->open;
				pthread_mutex_unlock(&s->mu);
			} else if (fd >= 0) {
				close(fd);
			}
		}
		for (k = 2; k < n; k++) {
			struct srv_conn *c = &s->c[map[k]];
			ssize_t r;
			size_t end;

			if (!p[k].revents)
				continue;
			r = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
			if (r <= 0) {
				srv_close(s, c);
				continue;
			}
			c->len += (size_t)r;
			while ((end = srv_req_end(c->in, c->len))) {
				int close_it;

				pthread_mutex_lock(&s->mu);
				if (s->nlog < SRV_MAX_LOG) {
					struct srv_req *l = &s->log[s->nlog++];

					l->conn = c->fd;
					l->len = end < sizeof(l->data) ? end : sizeof(l->data);
					memcpy(l->data, c->in, l->len);
				}
				pthread_mutex_unlock(&s->mu);
				close_it = c->stalled ? 0 : srv_answer(s, c, c->in, end);
				memmove(c->in, c->in + end, c->len - end);
				c->len -= end;
				if (close_it) {
					srv_close(s, c);
					break;
				}
			}
		}
	}
	for (i = 0; i < SRV_MAX_CONN; i++)
		if (s->c[i].fd >= 0)
			close(s->c[i].fd);
	return NULL;
}

static struct srv *srv_start(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct srv *s = calloc(1, sizeof(*s));
	int i, one = 1;

	assert_non_null(s);
	for (i = 0; i < SRV_MAX_CONN; i++)
		s->c[i].fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->lfd >= 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 128), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	s->efd = eventfd(0, 0);
	assert_int_equal(pthread_create(&s->thr, NULL, srv_thread, s), 0);
	return s;
}

static void srv_stop(struct srv *s)
{
	eventfd_write(s->efd, 1);
	pthread_join(s->thr, NULL);
	close(s->lfd);
	close(s->efd);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---- records (the done callback is replay_sink.h's) ---- */

static struct st_record *mkrec(uint64_t flow, uint32_t idx, const char *raw)
{
	return sink_rec(flow, idx, raw, strlen(raw));
}

static struct st_record *find(struct sink *k, uint64_t flow, uint32_t idx)
{
	int i;

	for (i = 0; i < k->n; i++)
		if (k->recs[i]->flow_id == flow && k->recs[i]->index == idx)
			return k->recs[i];
	fail_msg("record %llu/%u not done", (unsigned long long)flow, idx);
	return NULL;
}

static char url_buf[8][64];

static void cfg_for(struct replay_cfg *cfg, uint16_t port, int slot)
{
	replay_cfg_default(cfg);
	snprintf(url_buf[slot], sizeof(url_buf[slot]), "http://127.0.0.1:%u", port);
	cfg->targets[0] = url_buf[slot];
	cfg->ntargets = 1;
	cfg->connect_timeout_ms = 500;
	cfg->response_timeout_ms = 400;
}

static const char *const raws[] = {
	"GET /ok/a?x=1 HTTP/1.1\r\nhOsT: example.com\r\nX-Odd:   spaced  \r\nAccept: */*\r\n\r\n",
	"POST /ok/post HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\nhello world",
	"POST /ok/chunk HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
	"GET /chunked HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"HEAD /ok/head HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"POST /continue HTTP/1.1\r\nHost: e\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
	"GET /close HTTP/1.0\r\n\r\n",
};

static void test_byte_exact(void **state)
{
	struct srv *s = srv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	size_t i, n = sizeof(raws) / sizeof(raws[0]);
	struct st_record *r;

	sink_init(&k);
	cfg_for(&cfg, s->port, 0);
	cfg.connections = 2;
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	for (i = 0; i < n; i++)
		replay_submit(rp, mkrec(7, (uint32_t)i, raws[i]));
	assert_int_equal(sink_wait(&k, (int)n, 5000), (int)n);
	replay_stop(rp);

	/* one flow: received in order, byte for byte */
	assert_int_equal(s->nlog, (int)n);
	for (i = 0; i < n; i++) {
		assert_int_equal(s->log[i].len, strlen(raws[i]));
		assert_memory_equal(s->log[i].data, raws[i], strlen(raws[i]));
	}
	for (i = 0; i < n; i++) {
		r = find(&k, 7, (uint32_t)i);
		assert_null(r->replay_skip);
		assert_non_null(r->replay);
		if (r->replay->error)
			fail_msg("request %zu: %s", i, r->replay->error);
		assert_non_null(r->diff);
	}
	r = find(&k, 7, 3);
	assert_int_equal(r->replay->status_code, 200);
	assert_int_equal(r->replay->resp.body_stored, 7);
	assert_memory_equal(r->replay->resp.body, "abcdefg", 7);
	assert_true(r->replay->resp.chunked);
	r = find(&k, 7, 4);      /* HEAD: no body despite Content-Length */
	assert_int_equal(r->replay->resp.body_bytes, 0);
	r = find(&k, 7, 5);      /* interim 100 skipped */
	assert_int_equal(r->replay->status_code, 201);
	r = find(&k, 7, 6);      /* close-delimited */
	assert_int_equal(r->replay->resp.body_stored, 15);
	assert_memory_equal(r->replay->resp.body, "close-delimited", 15);
	assert_true(srv_get(s, &s->accepts) <= 2);
	replay_print_stats(rp, stderr);
	replay_free(rp);
	sink_free(&k);
	srv_stop(s);
}

/* A body past the body limit is read to its end: stored up to the limit, counted
 * whole, and the connection stays usable for the next request. */
static void test_big_body(void **state)
{
	struct srv *s = srv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	struct st_record *r;

	sink_init(&k);
	cfg_for(&cfg, s->port, 0);
	cfg.connections = 1;
	cfg.body_limit = 1000;
	cfg.response_timeout_ms = 3000;
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	replay_submit(rp, mkrec(3, 0, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n"));
	replay_submit(rp, mkrec(3, 1, "GET /ok/next HTTP/1.1\r\nHost: h\r\n\r\n"));
	assert_int_equal(sink_wait(&k, 2, 5000), 2);
	replay_stop(rp);
	r = find(&k, 3, 0);
	assert_null(r->replay->error);
	assert_int_equal(r->replay->resp.body_stored, 1000);
	assert_int_equal(r->replay->resp.body_bytes, BIG_BODY);
	r = find(&k, 3, 1);
	assert_null(r->replay->error);
	assert_int_equal(r->replay->resp.body_stored, 2);
	assert_int_equal(srv_get(s, &s->accepts), 1);
	replay_free(rp);
	sink_free(&k);
	srv_stop(s);
}

static void test_rewrite(void **state)
{
	static const char *const want =
		"GET /pre/ok/a?x=1 HTTP/1.1\r\nhOsT: shadow.test\r\nX-Odd:   spaced  \r\n"
		"accept: text/plain\r\nX-Shadow: 1\r\n\r\n";
	static const char *const want_body =
		"POST /pre/ok/post HTTP/1.1\r\nHost: shadow.test\r\nContent-Length: 11\r\n"
		"accept: text/plain\r\nX-Shadow: 1\r\n\r\nhello world";
	struct srv *s = srv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	char url[64];

	sink_init(&k);
	cfg_for(&cfg, s->port, 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/pre/", s->port);
	cfg.targets[0] = url;
	cfg.host = "shadow.test";
	cfg.headers[0] = "accept: text/plain";
	cfg.headers[1] = "X-Shadow: 1";
	cfg.nheaders = 2;
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	replay_submit(rp, mkrec(1, 0, raws[0]));
	replay_submit(rp, mkrec(1, 1, raws[1]));
	assert_int_equal(sink_wait(&k, 2, 5000), 2);
	replay_stop(rp);
	assert_int_equal(s->nlog, 2);
	assert_int_equal(s->log[0].len, strlen(want));
	assert_memory_equal(s->log[0].data, want, strlen(want));
	assert_int_equal(s->log[1].len, strlen(want_body));
	assert_memory_equal(s->log[1].data, want_body, strlen(want_body));
	replay_free(rp);
	sink_free(&k);
	srv_stop(s);
}

#define NFLOWS 20
#define PER_FLOW 25

static void test_order_and_pool(void **state)
{
	struct srv *s = srv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	int f, i, last[NFLOWS], total = NFLOWS * PER_FLOW;
	char raw[160];

	sink_init(&k);
	cfg_for(&cfg, s->port, 2);
	cfg.connections = 4;
	cfg.connections_max = 4;     /* a fixed pool: the assertions below are about it */
	cfg.response_timeout_ms = 3000;
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	for (i = 0; i < PER_FLOW; i++)
		for (f = 0; f < NFLOWS; f++) {
			snprintf(raw, sizeof(raw), "GET /ok/%d HTTP/1.1\r\nHost: h\r\nX-Seq: %d %d\r\n\r\n",
				 f, f, i);
			replay_submit(rp, mkrec((uint64_t)f + 100, (uint32_t)i, raw));
		}
	assert_int_equal(sink_wait(&k, total, 10000), total);
	replay_stop(rp);

	assert_int_equal(s->nlog, total);
	for (f = 0; f < NFLOWS; f++)
		last[f] = -1;
	for (i = 0; i < s->nlog; i++) {
		const char *x = memmem(s->log[i].data, s->log[i].len, "X-Seq: ", 7);
		int ff, seq;

		assert_non_null(x);
		assert_int_equal(sscanf(x + 7, "%d %d", &ff, &seq), 2);
		assert_int_equal(seq, last[ff] + 1);   /* in order, exactly once */
		last[ff] = seq;
	}
	for (i = 0; i < k.n; i++) {
		assert_non_null(k.recs[i]->replay);
		assert_null(k.recs[i]->replay->error);
		assert_int_equal(k.recs[i]->replay->status_code, 200);
		assert_true(k.recs[i]->diff != NULL);
	}
	assert_true(srv_get(s, &s->accepts) <= 4);
	assert_true(srv_get(s, &s->peak_open) <= 4);
	replay_free(rp);
	sink_free(&k);
	srv_stop(s);
}

static void test_errors(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct srv *s = srv_start();
	struct replay_cfg cfg, cfg2;
	struct replay *rp = NULL, *rp2 = NULL;
	struct sink k, k2;
	struct st_record *r;
	int fd;

	sink_init(&k);
	sink_init(&k2);
	cfg_for(&cfg, s->port, 3);
	cfg.connections = 2;
	cfg.response_timeout_ms = 300;
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	replay_submit(rp, mkrec(1, 0, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"));
	replay_submit(rp, mkrec(1, 1, "GET /ok/after-timeout HTTP/1.1\r\nHost: h\r\n\r\n"));
	replay_submit(rp, mkrec(2, 0, "GET /garbage HTTP/1.1\r\nHost: h\r\n\r\n"));
	replay_submit(rp, mkrec(2, 1, "GET /ok/after-garbage HTTP/1.1\r\nHost: h\r\n\r\n"));
	replay_submit(rp, mkrec(3, 0, "GET /manyheaders HTTP/1.1\r\nHost: h\r\n\r\n"));
	replay_submit(rp, mkrec(4, 0, "GET /longheader HTTP/1.1\r\nHost: h\r\n\r\n"));
	assert_int_equal(sink_wait(&k, 6, 5000), 6);
	replay_stop(rp);
	r = find(&k, 1, 0);
	assert_non_null(r->replay);
	assert_string_equal(r->replay->error, "timeout");
	r = find(&k, 1, 1);
	assert_null(r->replay->error);
	r = find(&k, 2, 0);
	assert_string_equal(r->replay->error, "malformed response");
	assert_null(r->diff);
	r = find(&k, 2, 1);
	assert_null(r->replay->error);
	/* a head past 64 KiB says so, not just "malformed" */
	assert_string_equal(find(&k, 3, 0)->replay->error, "response head too large");
	assert_string_equal(find(&k, 4, 0)->replay->error, "response head too large");
	replay_free(rp);

	/* a closed port */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd);
	cfg_for(&cfg2, ntohs(a.sin_port), 4);
	assert_int_equal(replay_start(&rp2, &cfg2, sink_done, &k2), 0);
	replay_submit(rp2, mkrec(1, 0, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
	replay_submit(rp2, mkrec(2, 0, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
	replay_submit(rp2, mkrec(3, 0, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
	assert_int_equal(sink_wait(&k2, 3, 3000), 3);
	replay_stop(rp2);
	for (fd = 0; fd < 3; fd++) {
		assert_non_null(k2.recs[fd]->replay);
		assert_string_equal(k2.recs[fd]->replay->error, "connection refused");
	}
	{
		/* the refusal comes back to the first write tried right after connect
		 * (replay_send_early): still a connect failure, never an open connection */
		struct replay_stats st;

		replay_get_stats(rp2, &st);
		assert_int_equal(st.f_refused, 3);
		assert_true(st.connect_failures >= 1);
		assert_int_equal(st.opened, 0);
		assert_int_equal(st.open_now, 0);
	}
	replay_free(rp2);
	sink_free(&k);
	sink_free(&k2);
	srv_stop(s);
}

static void test_queue_full(void **state)
{
	struct srv *s = srv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	int i, full = 0, timeout = 0;

	sink_init(&k);
	cfg_for(&cfg, s->port, 5);
	cfg.connections = 1;
	cfg.connections_max = 1;
	cfg.queue_cap = 3;
	cfg.response_timeout_ms = 300;
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	k.submitter = pthread_self();
	k.submitting = 1;
	for (i = 0; i < 20; i++)
		replay_submit(rp, mkrec((uint64_t)i, 0, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"));
	k.submitting = 0;
	assert_int_equal(sink_wait(&k, 20, 10000), 20);
	replay_stop(rp);
	for (i = 0; i < k.n; i++) {
		assert_non_null(k.recs[i]->replay);
		assert_non_null(k.recs[i]->replay->error);
		if (strcmp(k.recs[i]->replay->error, "dropped: queue full") == 0)
			full++;
		else if (strcmp(k.recs[i]->replay->error, "timeout") == 0)
			timeout++;
	}
	assert_true(full >= 16);            /* at most queue_cap (+1 taken) can wait */
	assert_int_equal(full + timeout, 20);
	assert_int_equal(k.in_submit, full); /* refused synchronously, never blocked */
	assert_true(srv_get(s, &s->accepts) <= timeout);  /* a timed-out connection is not reused */
	replay_free(rp);
	sink_free(&k);
	srv_stop(s);
}

static void test_skips(void **state)
{
	struct srv *s = srv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	struct st_record *r;
	uint64_t kept;
	int i, sampled = 0;

	sink_init(&k);
	cfg_for(&cfg, s->port, 6);
	cfg.deny_url[0] = "^/private";
	cfg.ndeny_url = 1;
	cfg.allow_method[0] = "GET";
	cfg.nallow_method = 1;
	cfg.sample_pct = 50;
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);

	r = mkrec(1, 0, "GET / HTTP/1.1\r\n\r\n");
	free(r->raw);
	r->raw = NULL;
	r->raw_len = 0;
	replay_submit(rp, r);
	for (i = 0; i < 200; i++)
		replay_submit(rp, mkrec((uint64_t)i + 10, 0, "GET /private/x HTTP/1.1\r\nHost: h\r\n\r\n"));
	assert_int_equal(sink_wait(&k, 201, 5000), 201);
	/* The next three need a flow that sampling keeps, or they would all read
	 * "sampled out": take one of the /private flows that was filtered, not sampled. */
	for (i = 0; i < 200 && strcmp(find(&k, (uint64_t)i + 10, 0)->replay_skip, "filtered"); i++)
		;
	assert_true(i < 200);
	kept = (uint64_t)i + 10;
	replay_submit(rp, mkrec(kept, 1, "GET /x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"));
	replay_submit(rp, mkrec(kept, 2, "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
	replay_submit(rp, mkrec(kept, 3, "GET /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort"));
	assert_int_equal(sink_wait(&k, 204, 5000), 204);
	replay_stop(rp);

	assert_string_equal(find(&k, 1, 0)->replay_skip, "no raw request");
	for (i = 0; i < 200; i++) {
		r = find(&k, (uint64_t)i + 10, 0);
		assert_null(r->replay);
		assert_non_null(r->replay_skip);
		if (strcmp(r->replay_skip, "sampled out") == 0)
			sampled++;
		else
			assert_string_equal(r->replay_skip, "filtered");
	}
	/* about half of the connections, deterministically by flow id */
	assert_true(sampled > 60 && sampled < 140);
	assert_string_equal(find(&k, kept, 1)->replay_skip, "upgrade");
	assert_string_equal(find(&k, kept, 2)->replay_skip, "filtered");
	assert_string_equal(find(&k, kept, 3)->replay_skip, "incomplete request");
	assert_int_equal(s->nlog, 0);
	replay_free(rp);
	sink_free(&k);
	srv_stop(s);
}

static void test_rate(void **state)
{
	struct srv *s = srv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	struct timespec t0, t1;
	double el;
	int i;

	sink_init(&k);
	cfg_for(&cfg, s->port, 7);
	cfg.rate = 50;   /* burst 5, then one every 20 ms */
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 25; i++)
		replay_submit(rp, mkrec((uint64_t)i, 0, "GET /ok/rate HTTP/1.1\r\nHost: h\r\n\r\n"));
	assert_int_equal(sink_wait(&k, 25, 5000), 25);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	replay_stop(rp);
	el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(el >= 0.35);             /* 20 requests past the burst at 50/s */
	for (i = 0; i < k.n; i++)
		assert_null(k.recs[i]->replay->error);
	assert_int_equal(s->nlog, 25);
	replay_free(rp);
	sink_free(&k);
	srv_stop(s);
}

static void test_bad_cfg(void **state)
{
	struct replay_cfg cfg;
	struct replay *rp = NULL;

	replay_cfg_default(&cfg);
	cfg.targets[0] = "ftp://127.0.0.1:81";
	cfg.ntargets = 1;
	assert_int_not_equal(replay_start(&rp, &cfg, sink_done, NULL), 0);
	/* https:// with a CA file that cannot be loaded */
	cfg.targets[0] = "https://127.0.0.1:81";
	cfg.tls_ca = "/nonexistent/ca.pem";
	assert_int_not_equal(replay_start(&rp, &cfg, sink_done, NULL), 0);
	cfg.tls_ca = NULL;
	cfg.targets[0] = "http://127.0.0.1:99999";
	assert_int_not_equal(replay_start(&rp, &cfg, sink_done, NULL), 0);
	cfg.targets[0] = "http://127.0.0.1:81";
	cfg.deny_url[0] = "([";
	cfg.ndeny_url = 1;
	assert_int_not_equal(replay_start(&rp, &cfg, sink_done, NULL), 0);
	cfg.ndeny_url = 0;
	cfg.headers[0] = "no colon";
	cfg.nheaders = 1;
	assert_int_not_equal(replay_start(&rp, &cfg, sink_done, NULL), 0);
	assert_null(rp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_exact),
		cmocka_unit_test(test_big_body),
		cmocka_unit_test(test_rewrite),
		cmocka_unit_test(test_order_and_pool),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_skips),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_bad_cfg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
