// SPDX-License-Identifier: MIT
/*
 * replay_bare: a bare replay client, for measuring what the network part of replaying
 * the bench's mixes costs on this box.
 *
 * It does only what any replaying tool must do for each request serverA served: write
 * the request on a kept-alive connection to serverB and read serverB's answer to its
 * end. Nothing is captured, parsed beyond the answer's framing, recorded or compared.
 * Like the agent in `session` order it keeps one connection per client connection
 * (-conns, the bench's 32) with up to -pipeline requests in flight, and writes every
 * request a connection is owed in a pass with one write(). Its CPU per request
 * (getrusage over its life, status reads excepted, / requests) is the kernel's work
 * for a replay: TCP transmit, serverB's receive (run in the sender's softirq on
 * veth), the ACKs, reads, epoll and wake-ups. That work depends mostly on how many
 * requests share a write (each write also wakes serverB), which the JSON reports
 * (writes, reads): it is a reference to compare the agent with at the same
 * requests per write, not a lower bound at every rate.
 *
 * -mix post: each owed POST (the loadgen's: Connection: close, a body of 1-256 KiB,
 * log-uniform) goes out on a new connection, as the agent replays that mix: connect,
 * write head and body, read the answer, close; up to -conns at once (default 64).
 *
 * Pacing is the loadgen's follow mode: every -every ms (default 1, so requests go out
 * about as they are served, as the agent sends them; a coarser period makes larger
 * writes and a lower figure) it reads serverA's stub_status request count and owes
 * serverB as many requests as serverA served since the start, its own status reads
 * taken off. The CPU of those reads (measured on the thread) is not counted.
 * SIGINT/SIGTERM: read the count once more, send what is owed, wait for the answers
 * (at most 30 s), print one JSON object and exit.
 *
 *	replay_bare -b IP:PORT -follow IP:PORT [-mix get|post] [-conns N] [-pipeline N]
 *	             [-every MS] [-pause-us US]
 *
 * -pause-us (default 1000, 0 = off) is the agent's wake-up policy for GETs
 * (--replay-gather, replay.c): while some connection has two or more requests in
 * flight, sleep that long after a wait that returned events, so one wake-up takes
 * many answers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RBUF (256 * 1024)
#define MAXCONNS 1024

struct conn {
	int fd;			/* -1: a free POST slot */
	size_t woff, wlen;	/* POST: bytes of head + body written / to write */
	size_t blen, boff;	/* POST: body length, offset in the body buffer */
	char head[256];
	size_t hlen;
	unsigned inflight;	/* written, not yet answered */
	unsigned owed;		/* assigned in this pass, not yet written */
	size_t have;		/* bytes in rb */
	char *rb;
};

static volatile sig_atomic_t stop_req;
static void on_signal(int sig) { (void)sig; stop_req = 1; }

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, colon - s);
	host[colon - s] = 0;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* as the agent's replay connections (replay_conn.c) */
static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int dial(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa))) {
		close(fd);
		return -1;
	}
	set_nodelay(fd);
	return fd;
}

/*
 * One answer's length if rb[0..n) holds all of it, 0 if not yet, -1 if it cannot be
 * framed (no Content-Length and not chunked: nginx never answers the mix so).
 */
static long answer_len(const char *rb, size_t n)
{
	const char *end = memmem(rb, n, "\r\n\r\n", 4), *p, *line;
	size_t head, pos;

	if (!end)
		return 0;
	head = (size_t)(end - rb) + 4;
	for (line = rb; line < end; line = p + 2) {
		p = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (!p)
			break;
		if ((size_t)(p - line) > 15 && !strncasecmp(line, "content-length:", 15)) {
			size_t len = strtoul(line + 15, NULL, 10);
			return head + len <= n ? (long)(head + len) : 0;
		}
		if ((size_t)(p - line) > 18 && !strncasecmp(line, "transfer-encoding:", 18) &&
		    memmem(line, (size_t)(p - line), "chunked", 7)) {
			/* chunk-size CRLF data CRLF ... 0 CRLF CRLF (nginx sends no trailers) */
			for (pos = head;;) {
				const char *crlf = memmem(rb + pos, n - pos, "\r\n", 2);
				size_t sz;

				if (!crlf)
					return 0;
				sz = strtoul(rb + pos, NULL, 16);
				pos = (size_t)(crlf - rb) + 2;
				if (sz == 0)
					return pos + 2 <= n ? (long)(pos + 2) : 0;
				pos += sz + 2;
				if (pos > n)
					return 0;
			}
		}
	}
	return -1;
}

/*
 * serverA's request counter: third field of the third line of stub_status, read on one
 * kept-alive connection (reopened when it fails), so a fine -every costs little.
 */
static int status_read(const struct sockaddr_in *sa, long long *out)
{
	static const char req[] = "GET /status HTTP/1.1\r\nHost: status\r\n\r\n";
	static int fd = -1;
	char buf[4096];
	size_t n = 0;
	ssize_t r;
	long len = 0;
	const char *p;
	long long a, b, c;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (fd < 0 && (fd = dial(sa)) < 0)
			return -1;
		n = 0;
		if (write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1) {
			while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) {
				n += (size_t)r;
				if ((len = answer_len(buf, n)) != 0)
					break;
			}
		}
		if (len > 0)
			break;
		close(fd); /* closed by the server or unframed: once more on a new one */
		fd = -1;
	}
	if (len <= 0)
		return -1;
	buf[len] = 0;
	p = strstr(buf, "requests\n");
	if (!p || sscanf(p + 9, "%lld %lld %lld", &a, &b, &c) != 3)
		return -1;
	*out = c;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* serverA's count, turned into requests owed to serverB (as loadgen's follow mode) */
struct follower {
	struct sockaddr_in sa;
	long long base, polls, errs, followed;
	double cpu_s; /* this thread's CPU in status reads: not the replay's, taken off */
};

static double thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void follow_poll(struct follower *f)
{
	long long cur;
	double t0 = thread_cpu_s();
	int err = status_read(&f->sa, &cur);

	f->cpu_s += thread_cpu_s() - t0;
	if (err) {
		f->errs++;
		return;
	}
	f->polls++; /* each read counts itself on serverA */
	if (cur - f->base - (f->polls - 1) > f->followed)
		f->followed = cur - f->base - (f->polls - 1);
}

struct counts {
	long long sent, ok, writes, reads, connects, bytes_out;
};

/* GET: a read on connection x; -1 when the run must stop */
static int get_readable(struct conn *x, struct counts *n)
{
	ssize_t r = read(x->fd, x->rb + x->have, RBUF - x->have);
	long len;

	n->reads++;
	if (r <= 0) {
		fprintf(stderr, "replay_bare: serverB closed a connection (%s)\n",
			r < 0 ? strerror(errno) : "EOF");
		return -1;
	}
	x->have += (size_t)r;
	while (x->have && (len = answer_len(x->rb, x->have)) != 0) {
		if (len < 0) {
			fprintf(stderr, "replay_bare: an answer without framing\n");
			return -1;
		}
		n->ok++;
		x->inflight--;
		x->have -= (size_t)len;
		if (x->have)
			memmove(x->rb, x->rb + len, x->have);
	}
	return 0;
}

/* GET: owed requests over the connections with room, round robin; then one write per
 * connection for all it got in this pass */
/* some connection has two or more requests written and not answered */
static int any_deep(const struct conn *c, unsigned nconns)
{
	unsigned i;

	for (i = 0; i < nconns; i++)
		if (c[i].fd >= 0 && c[i].inflight >= 2)
			return 1;
	return 0;
}

static int get_send(struct conn *c, unsigned nconns, unsigned pipeline, unsigned *rr,
		    long long owed, const char *reqs, size_t reqlen, struct counts *n)
{
	unsigned i;

	while (owed > 0) {
		long long before = owed;

		for (i = 0; owed > 0 && i < nconns; i++) {
			struct conn *x = &c[(*rr + i) % nconns];

			if (x->inflight + x->owed < pipeline) {
				x->owed++;
				owed--;
			}
		}
		if (owed == before)
			break; /* every pipeline full: the rest waits for answers */
	}
	(*rr)++;
	for (i = 0; i < nconns; i++) {
		struct conn *x = &c[i];
		size_t len = x->owed * reqlen, off = 0;

		while (off < len) {
			ssize_t w = write(x->fd, reqs + off, len - off);

			n->writes++;
			if (w < 0) {
				fprintf(stderr, "replay_bare: write: %s\n", strerror(errno));
				return -1;
			}
			off += (size_t)w;
		}
		n->sent += x->owed;
		x->inflight += x->owed;
		x->owed = 0;
	}
	return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

#define BODY_MIN 1024
#define BODY_MAX (256 * 1024)

/* POST: write what is left of head + body; 0 when all is out, 1 to wait, -1 on error */
static int post_write(struct conn *x, const char *body, struct counts *n)
{
	while (x->woff < x->wlen) {
		struct iovec iov[2];
		int cnt = 0;
		ssize_t w;

		if (x->woff < x->hlen) {
			iov[cnt].iov_base = x->head + x->woff;
			iov[cnt++].iov_len = x->hlen - x->woff;
			iov[cnt].iov_base = (char *)body + x->boff;
			iov[cnt++].iov_len = x->blen;
		} else {
			iov[cnt].iov_base = (char *)body + x->boff + (x->woff - x->hlen);
			iov[cnt++].iov_len = x->wlen - x->woff;
		}
		w = writev(x->fd, iov, cnt);
		n->writes++;
		if (w < 0)
			return errno == EAGAIN || errno == EINPROGRESS || errno == ENOTCONN ? 1 : -1;
		x->woff += (size_t)w;
	}
	return 0;
}

/* POST: start one on free slot x (new connection, first write at once as the agent's
 * replay_send_early does); -1 on error */
static int post_start(int ep, struct conn *x, uint32_t id, const struct sockaddr_in *sa,
		      const char *host, const char *body, struct counts *n)
{
	struct epoll_event ev;
	double lo = log(BODY_MIN), hi = log(BODY_MAX);
	int r;

	x->blen = (size_t)exp(lo + (hi - lo) * ((rng_next() >> 11) * (1.0 / 9007199254740992.0)));
	if (x->blen < BODY_MIN)
		x->blen = BODY_MIN;
	if (x->blen > BODY_MAX)
		x->blen = BODY_MAX;
	x->boff = (size_t)(rng_next() % (BODY_MAX - x->blen + 1));
	x->hlen = (size_t)snprintf(x->head, sizeof(x->head),
		"POST /upload?w=1&k=%llu HTTP/1.1\r\nHost: %s\r\nUser-Agent: st-loadgen\r\n"
		"Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n"
		"Connection: close\r\n\r\n", (unsigned long long)n->sent, host, x->blen);
	x->wlen = x->hlen + x->blen;
	x->woff = 0;
	x->have = 0;
	x->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (x->fd < 0)
		return -1;
	set_nodelay(x->fd);
	n->connects++;
	if (connect(x->fd, (const struct sockaddr *)sa, sizeof(*sa)) && errno != EINPROGRESS) {
		fprintf(stderr, "replay_bare: connect: %s\n", strerror(errno));
		return -1;
	}
	n->sent++;
	n->bytes_out += (long long)x->blen;
	r = post_write(x, body, n);
	if (r < 0) {
		fprintf(stderr, "replay_bare: write: %s\n", strerror(errno));
		return -1;
	}
	ev.events = r ? EPOLLOUT : EPOLLIN;
	ev.data.u32 = id;
	return epoll_ctl(ep, EPOLL_CTL_ADD, x->fd, &ev);
}

/* POST: an event on slot x; 1 when its answer is complete (slot freed, fd -1), -1 on error */
static int post_event(int ep, struct conn *x, uint32_t id, const char *body, struct counts *n)
{
	struct epoll_event ev;
	ssize_t r;
	long len;

	if (x->woff < x->wlen) {
		int w = post_write(x, body, n);

		if (w < 0) {
			fprintf(stderr, "replay_bare: write: %s\n", strerror(errno));
			return -1;
		}
		if (w == 0) {
			ev.events = EPOLLIN;
			ev.data.u32 = id;
			epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
		}
		return 0;
	}
	r = read(x->fd, x->rb + x->have, RBUF - x->have);
	n->reads++;
	if (r < 0 && errno == EAGAIN)
		return 0;
	if (r <= 0) {
		fprintf(stderr, "replay_bare: serverB closed before its answer\n");
		return -1;
	}
	x->have += (size_t)r;
	len = answer_len(x->rb, x->have);
	if (len < 0) {
		fprintf(stderr, "replay_bare: an answer without framing\n");
		return -1;
	}
	if (len == 0)
		return 0;
	close(x->fd); /* Connection: close; close() also leaves the epoll set */
	x->fd = -1;
	n->ok++;
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in bsa;
	struct follower f = {0};
	const char *b = NULL, *follow = NULL, *mix = "get";
	unsigned nconns = 0, pipeline = 16, every_ms = 1, pause_us = 1000, i, rr = 0;
	static struct conn c[MAXCONNS];
	struct counts n = {0};
	char *reqs = NULL, *body = NULL;
	size_t reqlen = 0;
	int ep, tfd, final = 0, bad = 0, post;
	double t_final = 0;
	struct itimerspec its = {0};
	struct epoll_event ev, evs[64];
	struct rusage ru;

	for (i = 1; i + 1 < (unsigned)argc; i += 2) {
		if (!strcmp(argv[i], "-b"))
			b = argv[i + 1];
		else if (!strcmp(argv[i], "-follow"))
			follow = argv[i + 1];
		else if (!strcmp(argv[i], "-mix"))
			mix = argv[i + 1];
		else if (!strcmp(argv[i], "-conns"))
			nconns = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-pipeline"))
			pipeline = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-every"))
			every_ms = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-pause-us"))
			pause_us = (unsigned)atoi(argv[i + 1]);
		else
			break;
	}
	post = !strcmp(mix, "post");
	if (!nconns)
		nconns = post ? 64 : 32; /* the loadgen's connections (GET) / workers (POST) */
	if (i != (unsigned)argc || !b || !follow || parse_addr(b, &bsa) || parse_addr(follow, &f.sa) ||
	    (!post && strcmp(mix, "get")) || nconns > MAXCONNS || !pipeline || pipeline > 256 ||
	    !every_ms || pause_us > 100000) {
		fprintf(stderr, "usage: replay_bare -b IP:PORT -follow IP:PORT [-mix get|post] "
			"[-conns 1..%d] [-pipeline 1..256] [-every MS] [-pause-us 0..100000]\n", MAXCONNS);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (post) {
		body = malloc(BODY_MAX);
		if (!body)
			return 1;
		for (i = 0; i < BODY_MAX; i += 8) {
			uint64_t v = rng_next();

			memcpy(body + i, &v, 8);
		}
	} else {
		/* the bench GET mix's request (deploy/bench/loadgen), one id for all: the
		 * client's user space does no formatting per request */
		static const char one[] = "GET /api/items/4242?w=7&q=bench HTTP/1.1\r\nHost: %s\r\n"
			"User-Agent: st-loadgen\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n\r\n";
		char tmp[512];

		reqlen = (size_t)snprintf(tmp, sizeof(tmp), one, b);
		reqs = malloc(reqlen * pipeline);
		if (!reqs)
			return 1;
		for (i = 0; i < pipeline; i++)
			memcpy(reqs + i * reqlen, tmp, reqlen);
	}
	for (i = 0; i < nconns; i++) {
		c[i].fd = -1;
		c[i].rb = malloc(RBUF);
		if (!c[i].rb)
			return 1;
		if (post)
			continue;
		c[i].fd = dial(&bsa);
		if (c[i].fd < 0) {
			fprintf(stderr, "replay_bare: connect %s: %s\n", b, strerror(errno));
			return 1;
		}
		ev.events = EPOLLIN;
		ev.data.u32 = i;
		epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
	}
	if (status_read(&f.sa, &f.base)) {
		fprintf(stderr, "replay_bare: cannot read stub_status at %s\n", follow);
		return 1;
	}
	f.polls = 1;
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	its.it_interval.tv_nsec = its.it_value.tv_nsec = (long)every_ms * 1000000L;
	timerfd_settime(tfd, 0, &its, NULL);
	ev.events = EPOLLIN;
	ev.data.u32 = UINT32_MAX;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	fprintf(stderr, "replay_bare: following %s\n", follow);

	for (;;) {
		int nev = epoll_wait(ep, evs, 64, 100), k;

		if (stop_req && !final) {
			follow_poll(&f); /* the final count; then only what is owed is sent */
			final = 1;
			t_final = now_s();
		}
		for (k = 0; k < nev; k++) {
			uint32_t id = evs[k].data.u32;

			if (id == UINT32_MAX) {
				uint64_t ticks;

				if (read(tfd, &ticks, sizeof(ticks)) < 0) { /* spurious */ }
				if (!final)
					follow_poll(&f);
				continue;
			}
			if (!post) {
				if (get_readable(&c[id], &n)) {
					bad = 1;
					goto out;
				}
				continue;
			}
			if (post_event(ep, &c[id], id, body, &n) < 0) {
				bad = 1;
				goto out;
			}
		}
		if (!post) {
			if (get_send(c, nconns, pipeline, &rr, f.followed - n.sent, reqs, reqlen, &n)) {
				bad = 1;
				goto out;
			}
		} else {
			for (i = 0; i < nconns && n.sent < f.followed; i++) {
				if (c[i].fd >= 0)
					continue;
				if (post_start(ep, &c[i], i, &bsa, b, body, &n)) {
					bad = 1;
					goto out;
				}
			}
		}
		if (final && (n.ok >= f.followed || now_s() - t_final > 30))
			break;
		/* the agent's wake-up policy (replay.c, --replay-gather since session 8):
		 * while some connection carries two or more GETs, pause before the next wait
		 * so one wake-up takes many answers */
		if (!post && pause_us && nev > 0 && nev < 64 && !final && any_deep(c, nconns)) {
			struct timespec ts = {0, (long)pause_us * 1000};

			nanosleep(&ts, NULL);
		}
	}
out:
	getrusage(RUSAGE_SELF, &ru);
	{
		double us = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
		double sy = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;

		/* cpu_s: the process's user + sys without the status reads (poll_cpu_s) */
		printf("{\"mix\":\"%s\",\"followed\":%lld,\"follow_polls\":%lld,\"follow_errors\":%lld,"
		       "\"sent\":%lld,\"ok\":%lld,\"conns\":%u,\"pipeline\":%u,\"writes\":%lld,"
		       "\"reads\":%lld,\"connects\":%lld,\"mb_out\":%.6f,\"user_s\":%.6f,\"sys_s\":%.6f,"
		       "\"poll_cpu_s\":%.6f,\"cpu_s\":%.6f}\n",
		       post ? "post" : "get", f.followed, f.polls, f.errs, n.sent, n.ok, nconns,
		       post ? 1 : pipeline, n.writes, n.reads, n.connects, n.bytes_out / 1e6, us, sy,
		       f.cpu_s, us + sy - f.cpu_s);
	}
	return bad;
}
