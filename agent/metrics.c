/* The metrics server is deliberately small: one thread, one epoll set, every client
 * connection bounded in bytes (request head), time (timeout_ms from accept to the
 * last byte sent) and number (max_conns). A scrape is answered with Connection: close,
 * so no state survives a response. The exposition is rendered at most once per
 * RENDER_CACHE_MS and shared by every scrape in that window: a flood of scrapes costs
 * the agent one render, not one per request. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define REQ_MAX          4096
#define RENDER_CACHE_MS  50

const double metrics_hist_bounds[METRICS_HIST_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void metrics_hist_observe_ns(struct metrics_hist *h, uint64_t ns)
{
	double s = (double)ns / 1e9;
	int i = 0;

	while (i < METRICS_HIST_BUCKETS && s > metrics_hist_bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

/* ---- exposition ---- */

void metrics_family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct buf *b, const char *name, const char *labels, uint64_t v)
{
	if (labels && *labels)
		buf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void metrics_sample_f(struct buf *b, const char *name, const char *labels, double v)
{
	if (labels && *labels)
		buf_printf(b, "%s{%s} %.17g\n", name, labels, v);
	else
		buf_printf(b, "%s %.17g\n", name, v);
}

void metrics_counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
	metrics_family(b, name, "counter", help);
	metrics_sample(b, name, NULL, v);
}

void metrics_gauge(struct buf *b, const char *name, const char *help, double v)
{
	metrics_family(b, name, "gauge", help);
	metrics_sample_f(b, name, NULL, v);
}

void metrics_histogram(struct buf *b, const char *name, const char *help,
		       const struct metrics_hist *h)
{
	uint64_t cum = 0;
	int i;

	metrics_family(b, name, "histogram", help);
	for (i = 0; i <= METRICS_HIST_BUCKETS; i++) {
		cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		if (i < METRICS_HIST_BUCKETS)
			buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_hist_bounds[i],
				   (unsigned long long)cum);
		else
			buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	}
	buf_printf(b, "%s_sum %.9f\n%s_count %llu\n", name,
		   (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9,
		   name, (unsigned long long)cum);
}

/* ---- server ---- */

struct mconn {
	int fd;                          /* -1: free slot */
	uint64_t deadline_ms;
	size_t req_len;
	char req[REQ_MAX];
	struct buf out;                  /* response being sent */
	size_t sent;
};

struct metrics {
	struct metrics_cfg cfg;
	int lfd, efd, stopfd, port;
	pthread_t thread;
	struct mconn *conns;
	int nconns;
	struct buf cache;                /* last rendered exposition */
	uint64_t cache_ms;
	_Atomic uint64_t st_requests, st_bad, st_timeouts, st_refused, st_renders;
};

int metrics_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *len)
{
	const char *colon;
	char host[64], *end;
	unsigned long port;
	size_t hl;

	if (!s || !*s)
		return -EINVAL;
	colon = strrchr(s, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535 || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	}
	{
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (hl == 0)
			a->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		*len = sizeof(*a);
	}
	return 0;
}

static void mconn_close(struct metrics *m, struct mconn *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	c->req_len = 0;
	c->sent = 0;
	buf_free(&c->out);
	m->nconns--;
}

static void respond(struct mconn *c, int code, const char *reason, const char *ctype,
		    const char *body, size_t blen, int head_only)
{
	buf_reset(&c->out);
	buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		   "Connection: close\r\n\r\n", code, reason, ctype, blen);
	if (!head_only)
		buf_append(&c->out, body, blen);
	c->sent = 0;
}

static const char *render_cached(struct metrics *m, size_t *len)
{
	uint64_t t = st_mono_ms();

	if (!m->cache_ms || t - m->cache_ms >= RENDER_CACHE_MS || !m->cache.len) {
		buf_reset(&m->cache);
		m->cfg.render(m->cfg.ctx, &m->cache);
		m->cache_ms = t;
		atomic_fetch_add_explicit(&m->st_renders, 1, memory_order_relaxed);
	}
	*len = m->cache.len;
	return m->cache.data ? m->cache.data : "";
}

/* A whole request head is in c->req: decide the response. */
static void handle(struct metrics *m, struct mconn *c)
{
	char method[8], path[256];
	int head = 0, n = 0;
	const char *why;
	size_t len;

	atomic_fetch_add_explicit(&m->st_requests, 1, memory_order_relaxed);
	if (sscanf(c->req, "%7[A-Z] %255[^ \r\n] HTTP/1.%*1[01]%n", method, path, &n) != 2 || !n ||
	    (c->req[n] != '\r' && c->req[n] != '\n')) {
		atomic_fetch_add_explicit(&m->st_bad, 1, memory_order_relaxed);
		respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12, 0);
		return;
	}
	if (!strcmp(method, "HEAD"))
		head = 1;
	else if (strcmp(method, "GET")) {
		respond(c, 405, "Method Not Allowed", "text/plain", "GET or HEAD\n", 12, 0);
		return;
	}
	path[strcspn(path, "?")] = '\0';
	if (!strcmp(path, "/metrics")) {
		const char *body = render_cached(m, &len);

		respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len, head);
	} else if (!strcmp(path, "/healthz")) {
		respond(c, 200, "OK", "text/plain", "ok\n", 3, head);
	} else if (!strcmp(path, "/readyz")) {
		why = m->cfg.ready ? m->cfg.ready(m->cfg.ctx) : NULL;
		if (!why) {
			respond(c, 200, "OK", "text/plain", "ready\n", 6, head);
		} else {
			char msg[256];
			int k = snprintf(msg, sizeof(msg), "not ready: %s\n", why);

			if (k < 0 || k >= (int)sizeof(msg))
				k = (int)sizeof(msg) - 1;
			respond(c, 503, "Service Unavailable", "text/plain", msg, (size_t)k, head);
		}
	} else {
		respond(c, 404, "Not Found", "text/plain", "not found\n", 10, head);
	}
}

static void on_readable(struct metrics *m, struct mconn *c)
{
	for (;;) {
		ssize_t r;

		if (c->out.len)
			return;           /* answered; ignore whatever else arrives */
		if (c->req_len >= REQ_MAX - 1) {
			atomic_fetch_add_explicit(&m->st_bad, 1, memory_order_relaxed);
			respond(c, 431, "Request Header Fields Too Large", "text/plain", "too large\n", 10, 0);
			return;
		}
		r = read(c->fd, c->req + c->req_len, REQ_MAX - 1 - c->req_len);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			mconn_close(m, c);
			return;
		}
		c->req_len += (size_t)r;
		c->req[c->req_len] = '\0';
		if (memchr(c->req, '\0', c->req_len)) {
			atomic_fetch_add_explicit(&m->st_bad, 1, memory_order_relaxed);
			respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12, 0);
			return;
		}
		if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
			handle(m, c);
			return;
		}
	}
}

static void on_writable(struct metrics *m, struct mconn *c)
{
	while (c->sent < c->out.len) {
		ssize_t w = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct epoll_event ev = { .events = EPOLLOUT | EPOLLRDHUP,
						  .data.u64 = (uint64_t)(c - m->conns) };

			epoll_ctl(m->efd, EPOLL_CTL_MOD, c->fd, &ev);   /* wait until it drains */
			return;
		}
		if (w <= 0) {
			mconn_close(m, c);
			return;
		}
		c->sent += (size_t)w;
	}
	shutdown(c->fd, SHUT_WR);
	mconn_close(m, c);
}

static void on_accept(struct metrics *m)
{
	for (;;) {
		int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		int i;

		if (fd < 0)
			return;
		if (m->nconns >= m->cfg.max_conns) {
			atomic_fetch_add_explicit(&m->st_refused, 1, memory_order_relaxed);
			close(fd);
			continue;
		}
		for (i = 0; i < m->cfg.max_conns && m->conns[i].fd >= 0; i++)
			;
		m->conns[i].fd = fd;
		m->conns[i].deadline_ms = st_mono_ms() + (uint64_t)m->cfg.timeout_ms;
		m->conns[i].req_len = 0;
		m->nconns++;
		ev.data.u64 = (uint64_t)i;
		if (epoll_ctl(m->efd, EPOLL_CTL_ADD, fd, &ev) < 0)
			mconn_close(m, &m->conns[i]);
	}
}

#define EV_LISTEN (~0ull)
#define EV_STOP   (~0ull - 1)

static void *metrics_main(void *arg)
{
	struct metrics *m = arg;
	struct epoll_event evs[64];
	uint64_t next_sweep = st_mono_ms() + 250;

	for (;;) {
		int n = epoll_wait(m->efd, evs, 64, 250), i;
		uint64_t t;

		for (i = 0; i < n; i++) {
			uint64_t k = evs[i].data.u64;
			struct mconn *c;

			if (k == EV_STOP)
				return NULL;
			if (k == EV_LISTEN) {
				on_accept(m);
				continue;
			}
			c = &m->conns[k];
			if (c->fd < 0)
				continue;
			if (!c->out.len && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				on_readable(m, c);
			if (c->fd >= 0 && c->out.len)
				on_writable(m, c);
		}
		t = st_mono_ms();
		if (t >= next_sweep) {
			next_sweep = t + 250;
			for (i = 0; i < m->cfg.max_conns; i++)
				if (m->conns[i].fd >= 0 && t >= m->conns[i].deadline_ms) {
					atomic_fetch_add_explicit(&m->st_timeouts, 1, memory_order_relaxed);
					mconn_close(m, &m->conns[i]);
				}
		}
	}
}

int metrics_start(struct metrics **out, const struct metrics_cfg *cfg)
{
	struct sockaddr_storage ss;
	struct epoll_event ev = { .events = EPOLLIN };
	struct metrics *m;
	unsigned alen;
	int one = 1, err, i;

	*out = NULL;
	if (metrics_parse_addr(cfg->listen, &ss, &alen)) {
		pr_warn("metrics: bad listen address '%s' (want ADDR:PORT, [V6]:PORT or :PORT)\n", cfg->listen);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	if (m->cfg.max_conns <= 0)
		m->cfg.max_conns = 1024;
	if (m->cfg.timeout_ms <= 0)
		m->cfg.timeout_ms = 5000;
	m->lfd = m->efd = m->stopfd = -1;
	m->conns = calloc((size_t)m->cfg.max_conns, sizeof(*m->conns));
	if (!m->conns) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < m->cfg.max_conns; i++)
		m->conns[i].fd = -1;
	m->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->lfd < 0) {
		err = -errno;
		goto fail;
	}
	setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(m->lfd, (struct sockaddr *)&ss, alen) < 0 || listen(m->lfd, 1024) < 0) {
		err = -errno;
		pr_warn("metrics: cannot listen on %s: %s\n", cfg->listen, strerror(errno));
		goto fail;
	}
	{
		struct sockaddr_storage b;
		socklen_t bl = sizeof(b);

		getsockname(m->lfd, (struct sockaddr *)&b, &bl);
		m->port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
							: ((struct sockaddr_in *)&b)->sin_port);
	}
	m->efd = epoll_create1(EPOLL_CLOEXEC);
	m->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->efd < 0 || m->stopfd < 0) {
		err = -errno;
		goto fail;
	}
	ev.data.u64 = EV_LISTEN;
	epoll_ctl(m->efd, EPOLL_CTL_ADD, m->lfd, &ev);
	ev.data.u64 = EV_STOP;
	epoll_ctl(m->efd, EPOLL_CTL_ADD, m->stopfd, &ev);
	err = -pthread_create(&m->thread, NULL, metrics_main, m);
	if (err)
		goto fail;
	*out = m;
	return 0;
fail:
	if (m->lfd >= 0)
		close(m->lfd);
	if (m->efd >= 0)
		close(m->efd);
	if (m->stopfd >= 0)
		close(m->stopfd);
	free(m->conns);
	free(m);
	return err;
}

int metrics_port(const struct metrics *m)
{
	return m ? m->port : 0;
}

void metrics_get_stats(struct metrics *m, struct metrics_stats *st)
{
	st->requests = atomic_load(&m->st_requests);
	st->bad_requests = atomic_load(&m->st_bad);
	st->timeouts = atomic_load(&m->st_timeouts);
	st->refused_conns = atomic_load(&m->st_refused);
	st->renders = atomic_load(&m->st_renders);
}

void metrics_stop(struct metrics *m)
{
	uint64_t one = 1;
	int i;

	if (!m)
		return;
	if (write(m->stopfd, &one, sizeof(one)) != sizeof(one))
		pr_warn("metrics: cannot wake the metrics thread: %s\n", strerror(errno));
	pthread_join(m->thread, NULL);
	for (i = 0; i < m->cfg.max_conns; i++)
		mconn_close(m, &m->conns[i]);
	close(m->lfd);
	close(m->efd);
	close(m->stopfd);
	buf_free(&m->cache);
	free(m->conns);
	free(m);
}
