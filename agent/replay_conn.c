/* serverB connections of the replay engine: non-blocking connect with back-off, send
 * (head + body, resumable), read and parse the response, keep-alive reuse and retry. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "replay_int.h"

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

void replay_conn_close(struct replay *rp, struct replay_conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(rp->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		ST_SUB(rp, open_now, 1);
		c->t->nopen--;
	}
	c->fd = -1;
	c->state = RC_CLOSED;
	c->rlen = 0;
	c->nreq = 0;
	c->close_after = false;
}

static int replay_conn_events(struct replay *rp, struct replay_conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	return epoll_ctl(rp->epfd, EPOLL_CTL_MOD, c->fd, &e) ? -errno : 0;
}

/* The flow's request on c is finished (answered or failed): free the connection
 * for the next request and let the flow send its next one. */
static void replay_conn_release(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_flow *f = c->flow;

	c->it = NULL;
	c->flow = NULL;
	record_replay_free(c->res);
	c->res = NULL;
	ST_SUB(rp, in_flight, 1);
	if (c->fd >= 0 && !c->close_after && c->state == RC_BUSY) {
		c->state = RC_IDLE;
		c->idle_since = now;
		c->rlen = 0;
		replay_conn_events(rp, c, EPOLLIN);
	} else {
		replay_conn_close(rp, c);
	}
	if (f) {
		f->busy = false;
		replay_ready_push(f, false);
		replay_flow_maybe_free(rp, f);
	}
}

void replay_conn_fail(struct replay *rp, struct replay_conn *c, const char *why, uint64_t now)
{
	struct replay_item *it = c->it;

	c->close_after = true;
	if (it)
		replay_item_fail(rp, it, why);
	replay_conn_release(rp, c, now);
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

int replay_send(struct replay *rp, struct replay_conn *c, uint64_t now);

static int replay_connect(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_target *t = c->t;
	struct epoll_event e = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
	int fd, one = 1, err;

	fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&t->addr, t->alen) < 0 && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	if (epoll_ctl(rp->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	c->fd = fd;
	c->state = RC_CONNECTING;
	c->deadline = now + (uint64_t)rp->cfg.connect_timeout_ms * 1000000ull;
	c->rlen = 0;
	c->nreq = 0;
	c->close_after = false;
	if (c->used)
		ST_ADD(rp, reconnects, 1);
	c->used = true;
	t->nopen++;
	/* only this thread changes open_now, so the peak needs no compare-exchange */
	if (ST_ADD(rp, open_now, 1) + 1 > ST_GET(rp, open_peak))
		__atomic_store_n(&rp->st.open_peak, ST_GET(rp, open_now), __ATOMIC_RELAXED);
	return 0;
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
	ST_ADD(rp, opened, 1);
	c->t->backoff_ms = 0;
	c->t->down_err = NULL;
	c->state = RC_BUSY;
	/* the response clock starts when the request can be sent */
	c->t_start = now;
	c->deadline = now + (uint64_t)rp->cfg.response_timeout_ms * 1000000ull;
	replay_send(rp, c, now);
}

static void replay_body_cb(void *ctx, const char *data, size_t len)
{
	struct replay_conn *c = ctx;

	/* a refused allocation still counts the bytes in body_bytes: the diff then sees
	 * a cut body, which is what it is */
	if (c->res)
		(void)record_msg_body_append(&c->res->resp, data, len, c->body_limit);
}

static void replay_complete(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_item *it = c->it;
	struct st_record *rec = it->rec;
	struct st_diff *d;

	/* answered before the whole request went out (e.g. 413): the stream is out of step */
	if (c->sent < it->head.len + it->body_len)
		c->close_after = true;
	c->res->duration_ns = now - c->t_start;
	c->res->resp.complete = true;
	c->res->resp.ts_last_ns = now;
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
	c->it = NULL;
	replay_item_done(rp, it);
	c->nreq++;
	replay_conn_release(rp, c, now);
}

/* Parse what is in the read buffer. Returns 1 when the response completed, 0 when
 * more bytes are needed, or a negative value after failing the request. */
static int replay_parse(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	const struct http1_header *h;
	uint64_t cl = 0;
	size_t used = 0;
	ssize_t n;
	int r;

	for (;;) {
		if (c->phase == RP_HEAD) {
			r = http1_parse_response(c->rbuf + used, c->rlen - used, &resp, hdrs, ST_MAX_HEADERS);
			if (r == HTTP1_NEED_MORE) {
				if (c->rlen - used >= REPLAY_HEAD_MAX) {
					replay_conn_fail(rp, c, "malformed response", now);
					return -1;
				}
				break;
			}
			if (r < 0) {
				replay_conn_fail(rp, c, "malformed response", now);
				return -1;
			}
			if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
				used += (size_t)r;   /* interim response (100 Continue, 103) */
				continue;
			}
			if (record_msg_set_head(&c->res->resp, c->rbuf + used, (size_t)r, hdrs,
						resp.num_headers)) {
				replay_conn_fail(rp, c, "dropped: memory limit", now);
				return -1;
			}
			c->res->status_code = resp.status;
			c->res->resp.ts_first_ns = now;
			c->framing = http1_response_framing(&resp, c->it->method, strlen(c->it->method), &cl);
			if (c->framing == HTTP1_BODY_TUNNEL) {
				replay_conn_fail(rp, c, "unexpected protocol switch", now);
				return -1;
			}
			if (c->framing < 0) {
				replay_conn_fail(rp, c, "malformed response", now);
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
				replay_conn_fail(rp, c, "malformed response", now);
				return -1;
			}
			used += (size_t)n;
			c->res->resp.wire_bytes += (uint64_t)n;
		}
		if (!c->body.done)
			break;
		if (used < c->rlen)
			c->close_after = true;   /* bytes nobody asked for: the stream is out of step */
		c->rlen = 0;
		replay_complete(rp, c, now);
		return 1;
	}
	if (used) {
		memmove(c->rbuf, c->rbuf + used, c->rlen - used);
		c->rlen -= used;
	}
	return 0;
}

static void replay_eof(struct replay *rp, struct replay_conn *c, int err, uint64_t now)
{
	struct replay_item *it = c->it;
	bool nothing = c->phase == RP_HEAD && c->rlen == 0 && c->res &&
		       c->res->resp.wire_bytes == 0;
	struct replay_flow *f;

	if (!it) {
		replay_conn_close(rp, c);
		return;
	}
	if (c->phase == RP_BODY && !err && http1_body_eof(&c->body) == 0) {
		c->close_after = true;
		replay_complete(rp, c, now);
		return;
	}
	if (nothing && c->nreq > 0 && !it->retried) {
		/* the server closed an idle keep-alive connection as we sent: retry once */
		ST_ADD(rp, retries, 1);
		it->retried = 1;
		f = c->flow;
		c->it = NULL;
		c->close_after = true;
		it->fnext = f->head;
		f->head = it;
		if (!f->tail)
			f->tail = it;
		replay_age_push_front(f->t, it);
		ST_ADD(rp, queued, 1);
		c->flow = NULL;
		replay_conn_release(rp, c, now);
		f->busy = false;
		replay_ready_push(f, true);
		return;
	}
	if (c->phase == RP_HEAD && c->rlen > 0)
		replay_conn_fail(rp, c, "malformed response", now);
	else
		replay_conn_fail(rp, c, err ? replay_errno_str(err) : "connection reset", now);
}

void replay_readable(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	ssize_t n;
	char *p;

	for (;;) {
		if (c->rcap - c->rlen < REPLAY_READ_CHUNK / 2) {
			size_t cap = c->rcap ? c->rcap * 2 : REPLAY_READ_CHUNK;

			if (cap > REPLAY_HEAD_MAX + REPLAY_READ_CHUNK)
				cap = REPLAY_HEAD_MAX + REPLAY_READ_CHUNK;
			if (cap <= c->rcap) {
				/* replay_parse ran after every read and consumes body bytes, so
				 * a full buffer is a head past REPLAY_HEAD_MAX */
				replay_conn_fail(rp, c, "malformed response", now);
				return;
			}
			p = realloc(c->rbuf, cap);
			if (!p) {
				replay_conn_fail(rp, c, "dropped: memory limit", now);
				return;
			}
			c->rbuf = p;
			c->rcap = cap;
		}
		n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (c->state == RC_IDLE) {
			/* an idle connection is closed or sent bytes nobody asked for */
			replay_conn_close(rp, c);
			return;
		}
		if (n <= 0) {
			replay_eof(rp, c, n < 0 ? errno : 0, now);
			return;
		}
		c->rlen += (size_t)n;
		if (replay_parse(rp, c, now) != 0)
			return;
	}
}

int replay_send(struct replay *rp, struct replay_conn *c, uint64_t now)
{
	struct replay_item *it = c->it;
	size_t hl = it->head.len, total = hl + it->body_len;
	struct msghdr msg = { 0 };
	struct iovec iov[2];
	int niov;
	ssize_t n;

	while (c->sent < total) {
		niov = 0;
		if (c->sent < hl) {
			iov[niov].iov_base = it->head.data + c->sent;
			iov[niov++].iov_len = hl - c->sent;
			iov[niov].iov_base = (void *)it->body;
			iov[niov++].iov_len = it->body_len;
		} else {
			iov[niov].iov_base = (void *)(it->body + (c->sent - hl));
			iov[niov++].iov_len = total - c->sent;
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)niov;
		/* MSG_NOSIGNAL: a serverB that went away must not SIGPIPE the agent */
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return replay_conn_events(rp, c, EPOLLIN | EPOLLOUT);
		if (n < 0) {
			int err = errno;

			/* a reused connection the server already closed: same as EOF */
			replay_eof(rp, c, c->nreq > 0 && c->sent == 0 ? 0 : err, now);
			return -err;
		}
		c->sent += (size_t)n;
	}
	return replay_conn_events(rp, c, EPOLLIN);
}

void replay_assign(struct replay *rp, struct replay_conn *c, struct replay_item *it,
			  uint64_t now)
{
	struct replay_flow *f = it->flow;
	int err;

	ST_SUB(rp, queued, 1);
	ST_ADD(rp, in_flight, 1);
	if (!it->retried)
		ST_ADD(rp, replayed, 1);
	f->busy = true;
	f->last = c;
	c->it = it;
	c->flow = f;
	c->sent = 0;
	c->phase = RP_HEAD;
	c->rlen = 0;
	c->t_start = now;
	c->deadline = now + (uint64_t)rp->cfg.response_timeout_ms * 1000000ull;
	c->res = calloc(1, sizeof(*c->res));
	if (c->res)
		c->res->target = strdup(c->t->url);
	if (!c->res || !c->res->target) {
		replay_conn_fail(rp, c, "dropped: memory limit", now);
		return;
	}
	c->body_limit = rp->cfg.body_limit;
	if (c->state == RC_CLOSED) {
		err = replay_connect(rp, c, now);
		if (err) {
			const char *why = replay_errno_str(-err);

			ST_ADD(rp, connect_failures, 1);
			replay_backoff(c->t, why, now);
			replay_conn_fail(rp, c, why, now);
		}
		return;
	}
	c->state = RC_BUSY;
	replay_send(rp, c, now);
}

