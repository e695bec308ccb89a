/* serverB connections of the replay engine: non-blocking connect with back-off, send
 * (heads + bodies of every request in flight, resumable), read and parse responses in
 * order, keep-alive reuse, and settling each request when a connection breaks. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ownsock.h"
#include "replay_int.h"
#include "util.h"

#define REPLAY_IOV_ITEMS 16   /* pipelined requests written by one sendmsg */

static const char *replay_errno_str(int err)
{
	switch (err) {
	case ETIMEDOUT:
		return "timeout";
	case ECONNREFUSED:
		return "connection refused";
	case ECONNRESET:
	case EPIPE:
	case ECONNABORTED:
		return "connection reset";
	case EHOSTUNREACH:
	case ENETUNREACH:
		return "host unreachable";
	default:
		return "connection error";
	}
}

static int replay_conn_events(struct replay *rp, struct replay_conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	/* registered once: a request that is written whole leaves EPOLLIN as it was; a
	 * plain connection is registered after its first write (replay_send_early) */
	if (c->ev == ev)
		return 0;
	if (epoll_ctl(rp->epfd, c->ev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e))
		return -errno;
	c->ev = ev;
	return 0;
}

/* A connection pipelines only after it answered one request well: a serverB that
 * answers garbage or closes at once then fails one request at a time, each with
 * its own reason, instead of taking a pipeline of others down with it. */
bool replay_conn_can_take(const struct replay *rp, const struct replay_conn *c)
{
	return c->fd >= 0 && !c->no_more && c->nq < (c->nreq ? rp->conn_depth : 1);
}

/* Close the socket; the requests still on c must have been settled. */
static void replay_conn_close_fd(struct replay *rp, struct replay_conn *c)
{
	if (c->fd >= 0) {
		/* close() takes the fd out of the epoll set (it is never dup'ed): no
		 * EPOLL_CTL_DEL, one system call less per connection */
		replay_tls_free(&c->ssl, c->state == RC_IDLE);
		c->tls_read_wants_out = c->tls_write_wants_in = false;
		ownsock_release(c->fd);
		close(c->fd);
		ST_SUB(rp, open_now, 1);
		c->t->nopen--;
		if (c->state == RC_CONNECTING)
			c->t->nconnecting--;
	}
	c->fd = -1;
	c->state = RC_CLOSED;
	c->rlen = 0;
	c->nreq = 0;
	c->no_more = false;
	c->close_after = false;
	c->phase = RP_HEAD;
	record_replay_free(c->res);
	c->res = NULL;
}

void replay_conn_close(struct replay *rp, struct replay_conn *c)
{
	if (c->nq)
		replay_conn_abort(rp, c, "connection reset", 0);
	else
		replay_conn_close_fd(rp, c);
}

/* Take the head request off c; its flow may send again. */
static struct replay_item *replay_conn_pop(struct replay *rp, struct replay_conn *c)
{
	struct replay_item *it = c->qh;
	struct replay_flow *f = it->flow;

	c->qh = it->cnext;
	if (!c->qh)
		c->qt = NULL;
	if (c->snd == it) {
		c->snd = it->cnext;
		c->sent = 0;
	}
	it->cnext = NULL;
	if (c->nq-- == 2)
		rp->ndeep--;
	ST_SUB(rp, in_flight, 1);
	f->inflight--;
	if (f->full && f->inflight <= rp->flow_limit / 2)
		f->full = false;
	if (f->conn == c && f->inflight == 0)
		f->conn = NULL;
	return it;
}

/* After the head request is settled: go idle, wait for the next response, or close. */
static void replay_conn_next(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	c->phase = RP_HEAD;
	record_replay_free(c->res);
	c->res = NULL;
	if (c->close_after) {
		/* A connection that ends as its request asked (Connection: close, HTTP/1.0)
		 * is replaced, not added: its slot's open is given back, so traffic that
		 * closes after every request keeps as many connections busy as it needs
		 * instead of the floor plus 200 opens a second. A failing target gets
		 * nothing back (no answer came), so it is still probed one at a time. */
		if (c->nq == 0 && !c->t->down_err && c->t->open_tokens < REPLAY_OPEN_BURST)
			c->t->open_tokens += 1;
		replay_conn_abort(rp, c, "connection reset", now);
		return;
	}
	if (c->nq == 0) {
		c->state = RC_IDLE;
		c->idle_since = now;
		c->no_more = false;
		return;
	}
	/* each response gets the whole timeout from the moment it is the next one due */
	c->deadline = now + (uint64_t)rp->cfg.response_timeout_ms * 1000000ull;
}

void replay_conn_fail(struct replay *rp, struct replay_conn *c, const char *why, uint64_t now)
{
	/* a connection carries one flow's requests at a time (several only in session
	 * order), so there is one flow to wake */
	struct replay_flow *f = c->qh ? c->qh->flow : NULL;

	(void)now;
	while (c->qh)
		replay_item_fail(rp, replay_conn_pop(rp, c), why);
	replay_conn_close_fd(rp, c);
	if (f) {
		replay_ready_push(rp, f, false);
		replay_flow_maybe_free(rp, f);
	}
}

/* Nothing came back for it, but it may have reached serverB: only an idempotent
 * request is sent again, once (RFC 9110 9.2.2). A POST on a reused keep-alive
 * connection that serverB closed is failed too: it may have been processed. */
static bool replay_may_resend(const struct replay_item *it)
{
	return !it->retried && it->idempotent;
}

void replay_conn_abort(struct replay *rp, struct replay_conn *c, const char *why, uint64_t now)
{
	struct replay_item *list = NULL, *it, *snd = c->snd;
	struct replay_flow *f = c->qh ? c->qh->flow : NULL;
	bool got = c->phase == RP_BODY || c->rlen > 0 || (c->res && c->res->resp.wire_bytes);
	bool head = true, past_snd = false, written;
	size_t off = c->sent;

	(void)now;
	/* settle in order; the ones sent again are collected and put back last-first so
	 * each flow keeps capture order. Before snd every request was written whole,
	 * snd itself in part if off > 0, after it not at all. */
	while (c->qh) {
		if (c->qh == snd) {
			written = off > 0;
			past_snd = true;
		} else {
			written = !past_snd;
		}
		it = replay_conn_pop(rp, c);
		if ((head && got) || (written && !replay_may_resend(it))) {
			replay_item_fail(rp, it, why);
		} else {
			if (written) {
				it->retried = 1;
				ST_ADD(rp, retries, 1);
			}
			it->cnext = list;
			list = it;
		}
		head = false;
	}
	replay_conn_close_fd(rp, c);
	while ((it = list)) {
		list = it->cnext;
		it->cnext = NULL;
		replay_requeue(rp, it);
	}
	if (f) {
		replay_ready_push(rp, f, true);
		replay_flow_maybe_free(rp, f);
	}
}

void replay_backoff(struct replay_target *t, const char *why, uint64_t now)
{
	t->down_err = why;
	/* one step per attempt round: the pool's parallel connects fail together */
	if (now < t->retry_at)
		return;
	t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : REPLAY_BACKOFF_MIN_MS;
	if (t->backoff_ms > REPLAY_BACKOFF_MAX_MS)
		t->backoff_ms = REPLAY_BACKOFF_MAX_MS;
	t->retry_at = now + (uint64_t)t->backoff_ms * 1000000ull;
}

static int replay_connect(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_target *t = c->t;
	struct epoll_event e = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
	int fd, one = 1, err;

	(void)rp;
	fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* a plain connection's reads carry the kernel's receive time of serverB's bytes
	 * (replay_recv), so replay.duration ends where the answer arrived, not where
	 * the thread read it after --replay-gather's pause. TLS reads go through
	 * OpenSSL, which has no cmsg to give: they keep the thread's clock. Refused
	 * (never seen): no cmsg comes and the thread's clock is used as well. */
	if (!t->tls)
		setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	/* never captured: serverB on a captured port would get every replay again */
	ownsock_prepare(fd, (struct sockaddr *)&t->addr, t->alen);
	if (connect(fd, (struct sockaddr *)&t->addr, t->alen) < 0 && errno != EINPROGRESS) {
		err = -errno;
		ownsock_release(fd);
		close(fd);
		return err;
	}
	/* https:// registers now (its handshake is driven by events); a plain
	 * connection's first write is tried at the end of this pass, before it is
	 * registered (replay_send_early) */
	if (t->tls && epoll_ctl(rp->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		err = -errno;
		ownsock_release(fd);
		close(fd);
		return err;
	}
	c->fd = fd;
	c->ev = t->tls ? e.events : 0;
	c->state = RC_CONNECTING;
	c->deadline = now + (uint64_t)rp->cfg.connect_timeout_ms * 1000000ull;
	c->rlen = 0;
	c->nreq = 0;
	c->close_after = false;
	c->phase = RP_HEAD;
	if (c->used)
		ST_ADD(rp, reconnects, 1);
	c->used = true;
	t->nopen++;
	t->nconnecting++;
	/* only this thread changes open_now, so the peak needs no compare-exchange */
	if (ST_ADD(rp, open_now, 1) + 1 > ST_GET(rp, open_peak))
		__atomic_store_n(&rp->st.open_peak, ST_GET(rp, open_now), __ATOMIC_RELAXED);
	return 0;
}

/* c's connect (and TLS handshake) completed. */
static void replay_opened(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_item *it;

	ST_ADD(rp, opened, 1);
	c->t->nconnecting--;
	c->t->backoff_ms = 0;
	c->t->down_err = NULL;
	c->state = c->nq ? RC_BUSY : RC_IDLE;
	c->idle_since = now;
	/* the response clock starts when the request can be sent */
	for (it = c->qh; it; it = it->cnext)
		it->t_sent = now;
	c->t_start = now;
	c->deadline = now + (uint64_t)rp->cfg.response_timeout_ms * 1000000ull;
}

void replay_connected(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr) {
		const char *why = replay_errno_str(soerr);

		ST_ADD(rp, connect_failures, 1);
		replay_backoff(c->t, why, now);
		replay_conn_fail(rp, c, why, now);
		return;
	}
	if (c->t->tls) {
		/* https://: the connection is open once the handshake is done; the
		 * connect timeout covers both */
		const char *why = NULL;
		uint32_t ev = 0;
		int r = replay_tls_handshake(c->t->tls, &c->ssl, c->fd, &ev, &why);

		if (r == 0) {
			replay_conn_events(rp, c, ev);
			return;
		}
		if (r < 0) {
			ST_ADD(rp, connect_failures, 1);
			replay_backoff(c->t, why, now);
			replay_conn_fail(rp, c, why, now);
			return;
		}
	}
	replay_opened(rp, c, now);
	if (c->snd)
		replay_send(rp, c, now);
	else
		replay_conn_events(rp, c, EPOLLIN);
}

static void replay_body_cb(void *ctx, const char *data, size_t len)
{
	struct replay_conn *c = ctx;

	/* a refused allocation still counts the bytes in body_bytes: the diff then sees
	 * a cut body, which is what it is */
	if (c->res)
		(void)record_msg_body_append(&c->res->resp, data, len, c->body_limit);
}

/* The head request's response is complete: hand the record on. at is when its last
 * byte arrived (replay_recv: the kernel's receive time of the read that brought it,
 * or now where there is none). */
static void replay_complete(struct replay *rp, struct replay_conn *c, uint64_t now,
			    uint64_t at)
{
	struct replay_item *it = c->qh;
	struct st_record *rec = it->rec;
	struct replay_flow *f = it->flow;
	struct st_diff *d;

	/* answered before the whole request went out (e.g. 413): the stream is out of step */
	if (c->snd == it)
		c->close_after = true;
	/* before the request was written it cannot be: a clock step between the two
	 * clocks' readings, or the pass's clock (no receive time) taken before the
	 * write earlier in this pass; the clock now then */
	if (at < it->t_sent)
		at = st_mono_ns();
	c->res->duration_ns = at - it->t_sent;
	c->res->resp.complete = true;
	c->res->resp.ts_last_ns = at;
	record_replay_free(rec->replay);
	rec->replay = c->res;
	c->res = NULL;
	ST_ADD(rp, succeeded, 1);
	d = diff_compare(rec, &rp->dcfg);
	if (d) {
		record_diff_free(rec->diff);
		rec->diff = d;
		if (d->match)
			ST_ADD(rp, diff_match, 1);
		else
			ST_ADD(rp, diff_mismatch, 1);
	}
	replay_conn_pop(rp, c);
	replay_item_done(rp, it);
	c->nreq++;
	/* settling the rest of c may free flows: keep f */
	f->pinned++;
	replay_conn_next(rp, c, now);
	f->pinned--;
	replay_ready_push(rp, f, false);
	replay_flow_maybe_free(rp, f);
}

/* The head request fails and the connection goes (its stream is out of step). */
void replay_conn_broken(struct replay *rp, struct replay_conn *c, const char *why,
			       uint64_t now)
{
	/* the head's answer had started: it fails, the others are settled by the rules */
	c->phase = RP_BODY;
	replay_conn_abort(rp, c, why, now);
}

/* The record an answer completes is cold when the answer comes: it was built on the
 * capture thread's core, and replay_complete's first touches of it (rec->replay,
 * rec->diff) were a cache miss each (2.5% of this thread's samples). Its struct is
 * fetched while the read and the response head's parse run. */
static void replay_prefetch_rec(const struct st_record *rec)
{
	const char *p = (const char *)rec;
	size_t off;

	for (off = 0; off < sizeof(*rec); off += 64)
		__builtin_prefetch(p + off);
}

/* Parse what is in the read buffer, answering the requests in flight in order; at is
 * when the last read's bytes arrived (replay_recv), the time of every answer it
 * completes. Returns 0 when more bytes are needed, or a negative value when c was
 * closed. */
static int replay_parse(struct replay *rp, struct replay_conn *c, uint64_t now, uint64_t at)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	const struct http1_header *h;
	uint64_t cl = 0;
	int fr;
	size_t used = 0;
	ssize_t n;
	int r;

	for (;;) {
		if (!c->qh) {
			if (used < c->rlen) {
				/* bytes nobody asked for: the stream is out of step */
				replay_conn_close(rp, c);
				return -1;
			}
			break;
		}
		if (c->phase == RP_HEAD) {
			if (used == c->rlen)
				break;
			/* the next answer in this buffer is for the next request */
			if (c->qh->cnext)
				__builtin_prefetch(c->qh->cnext);
			replay_prefetch_rec(c->qh->rec);
			r = http1_parse_response(c->rbuf + used, c->rlen - used, &resp, hdrs, ST_MAX_HEADERS);
			if (r == HTTP1_NEED_MORE) {
				if (c->rlen - used >= REPLAY_HEAD_MAX) {
					replay_conn_broken(rp, c, REPLAY_E_HEAD_TOO_LARGE, now);
					return -1;
				}
				break;
			}
			if (r < 0) {
				replay_conn_broken(rp, c, "malformed response", now);
				return -1;
			}
			if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
				used += (size_t)r;   /* interim response (100 Continue, 103) */
				continue;
			}
			fr = http1_response_framing(&resp, c->qh->method, c->qh->method_len, &cl);
			if (!c->res) {
				/* the answer, its head and a Content-Length body in one
				 * allocation; the target URL is the configuration's string */
				size_t room = fr == HTTP1_BODY_LENGTH ?
					(cl < c->body_limit ? (size_t)cl : c->body_limit) : 0;

				c->res = record_replay_new(c->t->url, c->rbuf + used, (size_t)r, hdrs,
							   resp.num_headers, room);
				if (!c->res) {
					replay_conn_broken(rp, c, "dropped: memory limit", now);
					return -1;
				}
			} else if (record_msg_set_head(&c->res->resp, c->rbuf + used, (size_t)r, hdrs,
						       resp.num_headers)) {
				replay_conn_broken(rp, c, "dropped: memory limit", now);
				return -1;
			}
			c->res->status_code = resp.status;
			c->res->resp.ts_first_ns = at;
			c->framing = fr;
			if (c->framing == HTTP1_BODY_TUNNEL) {
				replay_conn_broken(rp, c, "unexpected protocol switch", now);
				return -1;
			}
			if (c->framing < 0) {
				replay_conn_broken(rp, c, "malformed response", now);
				return -1;
			}
			h = http1_find_header(hdrs, resp.num_headers, "connection");
			if (h && http1_has_token(h->value, h->value_len, "close"))
				c->close_after = true;
			if (resp.minor_version == 0 &&
			    !(h && http1_has_token(h->value, h->value_len, "keep-alive")))
				c->close_after = true;
			if (c->framing == HTTP1_BODY_CLOSE)
				c->close_after = true;
			if (c->close_after)
				c->no_more = true;
			c->res->resp.chunked = c->framing == HTTP1_BODY_CHUNKED;
			c->res->resp.wire_bytes = (uint64_t)r;
			memset(&c->body, 0, sizeof(c->body));
			http1_body_init(&c->body, c->framing, cl);
			used += (size_t)r;
			c->phase = RP_BODY;
		}
		if (c->framing == HTTP1_BODY_NONE ||
		    (c->framing == HTTP1_BODY_LENGTH && cl == 0 && c->body.data_bytes == 0 &&
		     c->body.remaining == 0))
			c->body.done = 1;
		if (!c->body.done && used < c->rlen) {
			n = http1_body_feed(&c->body, c->rbuf + used, c->rlen - used, replay_body_cb, c);
			if (n < 0) {
				replay_conn_broken(rp, c, "malformed response", now);
				return -1;
			}
			used += (size_t)n;
			c->res->resp.wire_bytes += (uint64_t)n;
		}
		if (!c->body.done)
			break;
		if (c->close_after && used < c->rlen) {
			/* serverB said it closes, yet sent more: nobody asked for it */
			c->rlen = used;
		}
		replay_complete(rp, c, now, at);
		if (c->fd < 0)
			return -1;
	}
	if (used) {
		memmove(c->rbuf, c->rbuf + used, c->rlen - used);
		c->rlen -= used;
	}
	return 0;
}

static void replay_eof(struct replay *rp, struct replay_conn *c, int err, uint64_t now)
{
	if (!c->qh) {
		replay_conn_close_fd(rp, c);
		return;
	}
	if (c->phase == RP_BODY && !err && http1_body_eof(&c->body) == 0) {
		/* a close-delimited body ended: the head is answered, the rest settled */
		c->close_after = true;
		c->rlen = 0;
		/* it ends with serverB's FIN, which carries no receive time */
		replay_complete(rp, c, now, now);
		return;
	}
	if (c->phase == RP_HEAD && c->rlen > 0)
		replay_conn_broken(rp, c, "malformed response", now);
	else
		replay_conn_abort(rp, c, err ? replay_errno_str(err) : "connection reset", now);
}

/* https://: poll for what OpenSSL's read waits for. EPOLLOUT only while it must
 * write (level-triggered writability would otherwise wake the loop for nothing),
 * EPOLLIN always (serverB's bytes), EPOLLOUT also while requests wait to be sent. */
static void replay_tls_read_wait(struct replay *rp, struct replay_conn *c)
{
	bool out = replay_tls_wants(c->ssl) == EPOLLOUT;

	if (out == c->tls_read_wants_out)
		return;
	c->tls_read_wants_out = out;
	if (!c->tls_write_wants_in)
		replay_conn_events(rp, c, EPOLLIN | (out || c->snd ? EPOLLOUT : 0));
}

/* One read of a plain connection, with the kernel's receive time (SO_TIMESTAMPNS, set
 * at connect) in *at on this thread's clock. TCP's recvmsg reports the time of the
 * last socket buffer it copied from (tcp_recvmsg_locked keeps the last has_rxtstamp
 * skb's; segments coalesced in the receive queue keep the latest one's): the arrival
 * of the read's last segment, at or after the arrival of every byte the read returns
 * (TCP delivers in order) and before the read. An answer whose last byte ends that
 * segment gets its exact arrival; one completed earlier in the same read gets this
 * upper bound. The kernel's clock is CLOCK_REALTIME, the thread's CLOCK_MONOTONIC:
 * how long ago the segment came is taken on the first and moved to the second,
 * both read back to back after the read (two vDSO calls). No time in the read
 * (data-less, a socket without the option): *at keeps the caller's now. */
static ssize_t replay_recv(struct replay_conn *c, char *buf, size_t len, uint64_t *at)
{
	union {
		char b[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			      .msg_controllen = sizeof(ctl.b) };
	struct cmsghdr *cm;
	struct timespec ts, rt;
	uint64_t mono;
	int64_t age;
	ssize_t n;

	n = recvmsg(c->fd, &msg, 0);
	if (n <= 0)
		return n;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS ||
		    cm->cmsg_len < CMSG_LEN(sizeof(ts)))
			continue;
		memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
		clock_gettime(CLOCK_REALTIME, &rt);
		mono = st_mono_ns();
		age = (int64_t)(rt.tv_sec - ts.tv_sec) * 1000000000ll + (rt.tv_nsec - ts.tv_nsec);
		/* a negative age (the real clock stepped back): now */
		*at = age > 0 && (uint64_t)age < mono ? mono - (uint64_t)age : mono;
		break;
	}
	return n;
}

void replay_readable(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	uint64_t at;
	size_t room;
	ssize_t n;
	char *p;

	/* serverA's answer, which the diff reads once this one is in (diff.h) */
	if (c->qh && c->qh->rec) {
		diff_prefetch_msg(c->qh->rec);
		replay_prefetch_rec(c->qh->rec);
	}
	for (;;) {
		if (c->rcap - c->rlen < REPLAY_READ_CHUNK / 2) {
			size_t cap = c->rcap ? c->rcap * 2 : REPLAY_READ_CHUNK;

			if (cap > REPLAY_HEAD_MAX + REPLAY_READ_CHUNK)
				cap = REPLAY_HEAD_MAX + REPLAY_READ_CHUNK;
			if (cap <= c->rcap) {
				/* replay_parse ran after every read and consumes body bytes, so
				 * a full buffer is a head past REPLAY_HEAD_MAX */
				replay_conn_broken(rp, c, REPLAY_E_HEAD_TOO_LARGE, now);
				return;
			}
			p = realloc(c->rbuf, cap);
			if (!p) {
				replay_conn_broken(rp, c, "dropped: memory limit", now);
				return;
			}
			c->rbuf = p;
			c->rcap = cap;
		}
		room = c->rcap - c->rlen;
		at = now;
		n = c->ssl ? replay_tls_read(c->ssl, c->rbuf + c->rlen, room)
			   : replay_recv(c, c->rbuf + c->rlen, room, &at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->ssl)
				replay_tls_read_wait(rp, c);
			return;
		}
		if (c->state == RC_IDLE) {
			/* an idle connection is closed or sent bytes nobody asked for */
			replay_conn_close_fd(rp, c);
			return;
		}
		if (n <= 0) {
			replay_eof(rp, c, n < 0 ? errno : 0, now);
			return;
		}
		c->rlen += (size_t)n;
		if (c->qh && c->qh->rec)
			diff_prefetch(c->qh->rec);
		if (replay_parse(rp, c, now, at) != 0)
			return;
		/* a read that left room took all the socket had: the next read would
		 * only say EAGAIN. The fd is level-triggered, so bytes (or a FIN) that
		 * come later wake the loop again. OpenSSL may hold decrypted bytes the
		 * socket no longer shows: TLS reads on until it says it wants more. */
		if (!c->ssl && (size_t)n < room)
			return;
	}
}

/* The unsent rest of c->snd, then whole requests queued behind it. */
static int replay_iov_fill(const struct replay_conn *c, struct iovec *iov)
{
	const struct replay_item *it;
	size_t off = c->sent, hl;
	int niov = 0;

	for (it = c->snd; it && niov < 2 * REPLAY_IOV_ITEMS; it = it->cnext) {
		hl = it->head.len;
		if (off < hl) {
			iov[niov].iov_base = it->head.data + off;
			iov[niov++].iov_len = hl - off;
			off = hl;
		}
		if (it->body_len > off - hl) {
			iov[niov].iov_base = (void *)(it->body + (off - hl));
			iov[niov++].iov_len = it->body_len - (off - hl);
		}
		off = 0;
	}
	return niov;
}

/* Move snd over n bytes that were written at t (the clock just before the write): a
 * request whose first byte was among them was sent at t, where replay.duration starts
 * (the pass that put it on c took its clock before the pass's work and its writes at
 * its end, up to ms later on a busy machine). */
static void replay_advance(struct replay_conn *c, size_t n, uint64_t t)
{
	while (n > 0 && c->snd) {
		size_t left = c->snd->head.len + c->snd->body_len - c->sent;

		if (c->sent == 0)
			c->snd->t_sent = t;
		if (n < left) {
			c->sent += n;
			n = 0;
		} else {
			n -= left;
			c->snd = c->snd->cnext;
			c->sent = 0;
		}
	}
}

int replay_send(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct iovec iov[2 * REPLAY_IOV_ITEMS];
	struct msghdr msg = { 0 };
	uint64_t t;
	ssize_t n;
	int niov;

	while (c->snd) {
		niov = replay_iov_fill(c, iov);
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)niov;
		t = st_mono_ns();
		/* MSG_NOSIGNAL: a serverB that went away must not SIGPIPE the agent */
		n = c->ssl ? replay_tls_writev(c->ssl, iov, niov) : sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* a TLS write waiting for serverB's handshake flight polls for
			 * EPOLLIN only: the socket is writable, EPOLLOUT would spin */
			c->tls_write_wants_in = c->ssl && replay_tls_wants(c->ssl) == EPOLLIN;
			if (c->tls_write_wants_in)
				return replay_conn_events(rp, c, EPOLLIN);
			return replay_conn_events(rp, c, EPOLLIN | EPOLLOUT);
		}
		c->tls_write_wants_in = false;
		if (n < 0) {
			int err = errno;

			/* nothing of the head's answer came: the rules decide what is resent */
			replay_eof(rp, c, err, now);
			return -err;
		}
		replay_advance(c, (size_t)n, t);
	}
	/* written whole: a session-parallel flow may send its next request */
	if (c->qt)
		replay_ready_push(rp, c->qt->flow, false);
	return replay_conn_events(rp, c, EPOLLIN | (c->tls_read_wants_out ? EPOLLOUT : 0));
}

static void replay_flush_mark(struct replay *rp, struct replay_conn *c)
{
	if (c->flushq)
		return;
	c->flushq = true;
	c->flnext = NULL;
	if (rp->flush_tail)
		rp->flush_tail->flnext = c;
	else
		rp->flush = c;
	rp->flush_tail = c;
}

/* A plain connection whose connect() is under way and not yet in the epoll set:
 * try its first write now. Over a short path (veth, loopback) the handshake is
 * usually done by the time connect() returns, and this saves the wake-up for
 * EPOLLOUT, the SO_ERROR query and an EPOLL_CTL_MOD per connection (the POST mix
 * opens one per request). Still connecting (EAGAIN): registered for EPOLLOUT as
 * before. A connect that failed says so here, and counts as a connect failure. */
static void replay_send_early(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct iovec iov[2 * REPLAY_IOV_ITEMS];
	struct msghdr msg = { 0 };
	uint64_t t;
	ssize_t n;
	int err;

	if (!c->snd) {
		err = replay_conn_events(rp, c, EPOLLOUT | EPOLLIN);
		goto out;
	}
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)replay_iov_fill(c, iov);
	t = st_mono_ns();
	do
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		err = errno == EAGAIN || errno == EWOULDBLOCK ?
			replay_conn_events(rp, c, EPOLLOUT | EPOLLIN) : -errno;
		goto out;
	}
	replay_opened(rp, c, now);
	replay_advance(c, (size_t)n, t);
	/* the rest (EAGAIN: EPOLLOUT), then EPOLLIN for the answers */
	replay_send(rp, c, now);
	return;
out:
	if (err) {
		const char *why = replay_errno_str(-err);

		ST_ADD(rp, connect_failures, 1);
		replay_backoff(c->t, why, now);
		replay_conn_fail(rp, c, why, now);
	}
}

void replay_assign(struct replay *rp, struct replay_conn *c, struct replay_item *it,
		   uint64_t now)
{
	struct replay_flow *f = it->flow;
	bool was_sending = c->snd != NULL;
	int err;

	ST_SUB(rp, queued, 1);
	ST_ADD(rp, in_flight, 1);
	if (!it->retried)
		ST_ADD(rp, replayed, 1);
	f->inflight++;
	/* A session-order flow at its --replay-pipeline limit would otherwise get one
	 * request written per answer that comes back (a sendmsg, and a wake-up of
	 * serverB, each); held until half of its pipeline is answered, the requests
	 * behind it go out together, in one write */
	if (f->inflight >= rp->flow_limit && rp->cfg.order == REPLAY_ORDER_SESSION)
		f->full = true;
	f->last = c;
	if (rp->cfg.order == REPLAY_ORDER_SESSION)
		f->conn = c;
	it->t_sent = now;
	it->cnext = NULL;
	if (c->qt)
		c->qt->cnext = it;
	else
		c->qh = it;
	c->qt = it;
	if (++c->nq == 2)
		rp->ndeep++;
	if (!c->snd) {
		c->snd = it;
		c->sent = 0;
	}
	if (it->closes)
		c->no_more = true;
	c->body_limit = rp->cfg.body_limit;
	if (c->state == RC_CLOSED) {
		if (c - c->t->conns >= c->t->hi)
			c->t->hi = (int)(c - c->t->conns) + 1;
		err = replay_connect(rp, c, now);
		if (err) {
			const char *why = replay_errno_str(-err);

			ST_ADD(rp, connect_failures, 1);
			replay_backoff(c->t, why, now);
			replay_conn_fail(rp, c, why, now);
			return;
		}
		if (!c->ev)
			replay_flush_mark(rp, c);
		return;
	}
	if (c->state == RC_CONNECTING)
		return;
	if (c->state == RC_IDLE) {
		c->state = RC_BUSY;
		c->t_start = now;
		c->deadline = now + (uint64_t)rp->cfg.response_timeout_ms * 1000000ull;
		c->rlen = 0;
		c->phase = RP_HEAD;
	}
	/* behind a write that is waiting for EPOLLOUT (or for the end of this pass),
	 * this one goes out with it */
	if (was_sending)
		return;
	/* session-parallel: a flow's next request waits until this one is written
	 * whole, so deferring the write would hold the flow back a whole pass */
	if (rp->cfg.order == REPLAY_ORDER_SESSION_PARALLEL) {
		replay_send(rp, c, now);
		return;
	}
	/* the requests a pass assigns to c (a client's pipelined batch, ~10 per flow at
	 * the maximum rate) go out in one sendmsg at its end: one TCP segment, and one
	 * run of serverB's receive path in this thread's softirq, instead of one each */
	replay_flush_mark(rp, c);
}

void replay_send_pending(struct replay *rp, uint64_t now)
{
	struct replay_conn *c;
	struct replay_item *snd;
	size_t sent;

	rp->pass_sent = 0;
	while ((c = rp->flush)) {
		rp->flush = c->flnext;
		if (!rp->flush)
			rp->flush_tail = NULL;
		c->flnext = NULL;
		c->flushq = false;
		snd = c->snd;
		sent = c->sent;
		/* a plain connection still connecting, not yet in the epoll set: its
		 * first write is tried now. Closed (settled) or connecting with EPOLLOUT
		 * awaited: nothing to write now, replay_connected writes what a new
		 * connection carries */
		if (c->fd >= 0 && c->state == RC_CONNECTING && !c->ev)
			replay_send_early(rp, c, now);
		else if (c->fd >= 0 && c->state == RC_BUSY && c->snd)
			replay_send(rp, c, now);
		/* the gather pause follows a pass that wrote (answers to come): a
		 * connection counts when bytes went out, not when its connect is still
		 * under way (EAGAIN) or it had nothing to write */
		if (c->snd != snd || c->sent != sent)
			rp->pass_sent++;
	}
}
