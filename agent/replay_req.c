/* Replay request preparation; see replay_req.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "replay_req.h"
#include "urlsafe.h"
#include "util.h"

int replay_url_parse(const char *url, struct replay_url *u)
{
	const char *p, *hend, *slash;
	size_t hl;

	memset(u, 0, sizeof(*u));
	strcpy(u->port, "80");
	if (url_has_userinfo(url)) {
		char safe[256];

		/* the URL is printed below and copied into records as replay.target */
		pr_warn("replay: target %s: user:password@ is not supported\n",
			url_printable(url, safe, sizeof(safe)));
		return -EINVAL;
	}
	if (strncasecmp(url, "https://", 8) == 0) {
		u->tls = true;
		strcpy(u->port, "443");
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		pr_warn("replay: target %s: only http:// and https:// are supported\n", url);
		return -EINVAL;
	}
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(slash - p));
		if (!hend) {
			pr_warn("replay: target %s: bad ipv6 address\n", url);
			return -EINVAL;
		}
		hl = (size_t)(hend - p - 1);
		p++;
		hend++;
	} else {
		hend = memchr(p, ':', (size_t)(slash - p));
		if (!hend)
			hend = slash;
		hl = (size_t)(hend - p);
	}
	if (!hl || hl >= sizeof(u->host)) {
		pr_warn("replay: target %s: bad host\n", url);
		return -EINVAL;
	}
	memcpy(u->host, p, hl);
	u->host[hl] = '\0';
	if (*hend == ':') {
		size_t pl = (size_t)(slash - hend - 1);
		char *e;
		long v;

		if (!pl || pl >= sizeof(u->port)) {
			pr_warn("replay: target %s: bad port\n", url);
			return -EINVAL;
		}
		memcpy(u->port, hend + 1, pl);
		u->port[pl] = '\0';
		v = strtol(u->port, &e, 10);
		if (*e || v < 1 || v > 65535) {
			pr_warn("replay: target %s: bad port\n", url);
			return -EINVAL;
		}
	} else if (hend != slash) {
		pr_warn("replay: target %s: bad address\n", url);
		return -EINVAL;
	}
	u->prefix_len = strlen(slash);
	while (u->prefix_len && slash[u->prefix_len - 1] == '/')
		u->prefix_len--;
	if (u->prefix_len >= sizeof(u->prefix)) {
		pr_warn("replay: target %s: path too long\n", url);
		return -EINVAL;
	}
	memcpy(u->prefix, slash, u->prefix_len);
	u->prefix[u->prefix_len] = '\0';
	return 0;
}

static int replay_compile(regex_t *re, const char *pat, const char *opt)
{
	char msg[128];
	int err = regcomp(re, pat, REG_EXTENDED | REG_NOSUB);

	if (err) {
		regerror(err, re, msg, sizeof(msg));
		pr_warn("replay: %s '%s': %s\n", opt, pat, msg);
		return -EINVAL;
	}
	return 0;
}

int replay_rules_init(struct replay_rules *r, const struct replay_cfg *cfg)
{
	int i, err = 0;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < cfg->nheaders && i < REPLAY_MAX_HEADERS; i++) {
		const char *l = cfg->headers[i], *colon = strchr(l, ':');

		if (!colon || colon == l || strpbrk(l, "\r\n") || memchr(l, ' ', (size_t)(colon - l))) {
			pr_warn("replay: --replay-header '%s': want 'Name: value'\n", l);
			return -EINVAL;
		}
		r->hdrs[i].line = l;
		r->hdrs[i].name_len = (size_t)(colon - l);
		r->nhdrs++;
	}
	if (cfg->host && strpbrk(cfg->host, "\r\n")) {
		pr_warn("replay: --replay-host: bad value\n");
		return -EINVAL;
	}
	r->host = cfg->host;
	r->rewrite = cfg->host || r->nhdrs;
	for (i = 0; i < cfg->nallow_method && i < REPLAY_MAX_FILTERS; i++)
		r->allow_method[r->nallow_method++] = cfg->allow_method[i];
	r->sample_pct = cfg->sample_pct;
	for (i = 0; !err && i < cfg->nallow_url && i < REPLAY_MAX_FILTERS; i++) {
		err = replay_compile(&r->allow[i], cfg->allow_url[i], "--allow-url");
		if (!err)
			r->nallow++;
	}
	for (i = 0; !err && i < cfg->ndeny_url && i < REPLAY_MAX_FILTERS; i++) {
		err = replay_compile(&r->deny[i], cfg->deny_url[i], "--deny-url");
		if (!err)
			r->ndeny++;
	}
	if (err)
		replay_rules_free(r);
	return err;
}

void replay_rules_free(struct replay_rules *r)
{
	int i;

	for (i = 0; i < r->nallow; i++)
		regfree(&r->allow[i]);
	for (i = 0; i < r->ndeny; i++)
		regfree(&r->deny[i]);
	r->nallow = r->ndeny = 0;
}

const char *replay_rec_unreplayable(const struct st_record *rec)
{
	if (!rec->raw || !rec->raw_len)
		return (rec->cap_flags & ST_CAP_REPLAY_TRUNC) ? "request not captured whole" :
								 "no raw request";
	if (rec->http_minor < 0)
		return "http/0.9";
	if (rec->cap_flags & ST_CAP_UPGRADED)
		return "upgrade";
	return NULL;
}

bool replay_rules_sampled_out(const struct replay_rules *r, uint64_t flow_id)
{
	return r->sample_pct < 100 && (double)(st_mix64(flow_id) % 10000) >= r->sample_pct * 100;
}

static bool replay_allowed(const struct replay_rules *r, const struct http1_request *req)
{
	char stack[2048], *s = stack;
	bool ok = true;
	int i;

	if (r->nallow_method) {
		ok = false;
		for (i = 0; i < r->nallow_method; i++)
			if (strlen(r->allow_method[i]) == req->method_len &&
			    strncasecmp(r->allow_method[i], req->method, req->method_len) == 0)
				ok = true;
		if (!ok)
			return false;
	}
	if (!r->nallow && !r->ndeny)
		return true;
	/* regexec wants a C string; the request-target is rarely longer than this */
	if (req->target_len >= sizeof(stack)) {
		s = malloc(req->target_len + 1);
		if (!s)
			return false;
	}
	memcpy(s, req->target, req->target_len);
	s[req->target_len] = '\0';
	if (r->nallow) {
		ok = false;
		for (i = 0; i < r->nallow && !ok; i++)
			ok = regexec(&r->allow[i], s, 0, NULL, 0) == 0;
	}
	for (i = 0; ok && i < r->ndeny; i++)
		if (regexec(&r->deny[i], s, 0, NULL, 0) == 0)
			ok = false;
	if (s != stack)
		free(s);
	return ok;
}

static void replay_nop_cb(void *ctx, const char *data, size_t len)
{
}

/* What replay_req_prepare decides once the head of raw (hl bytes) is parsed into q. */
static int replay_req_check(const struct replay_rules *r, const uint8_t *raw, size_t len,
			    int hl, struct replay_req *q, const char **why)
{
	const struct http1_header *up, *conn;
	struct http1_request *req = &q->req;
	struct http1_body body;
	uint64_t cl = 0;
	int framing;
	ssize_t n;

	*why = "malformed request";
	if (req->minor_version < 0) {
		*why = "http/0.9";
		return REPLAY_UNREPLAYABLE;
	}
	if (req->method_len == 7 && strncasecmp(req->method, "CONNECT", 7) == 0) {
		*why = "connect";
		return REPLAY_UNREPLAYABLE;
	}
	up = http1_find_header(q->hdrs, req->num_headers, "upgrade");
	conn = http1_find_header(q->hdrs, req->num_headers, "connection");
	if (up && conn && http1_has_token(conn->value, conn->value_len, "upgrade")) {
		*why = "upgrade";
		return REPLAY_UNREPLAYABLE;
	}
	q->head_len = (size_t)hl;
	q->end = (size_t)hl;
	framing = http1_request_framing(req, &cl);
	if (framing == HTTP1_BODY_LENGTH) {
		if (len - (size_t)hl < cl) {
			*why = "incomplete request";
			return REPLAY_UNREPLAYABLE;
		}
		q->end += cl;
	} else if (framing == HTTP1_BODY_CHUNKED) {
		memset(&body, 0, sizeof(body));
		http1_body_init(&body, framing, 0);
		n = http1_body_feed(&body, (const char *)raw + hl, len - (size_t)hl, replay_nop_cb,
				    NULL);
		if (n < 0)
			return REPLAY_UNREPLAYABLE;
		if (!body.done) {
			*why = "incomplete request";
			return REPLAY_UNREPLAYABLE;
		}
		q->end += (size_t)n;
	} else if (framing != HTTP1_BODY_NONE) {
		return REPLAY_UNREPLAYABLE;
	}
	if (!replay_allowed(r, req)) {
		*why = "filtered";
		return REPLAY_FILTERED;
	}
	/* no snprintf per request (issue 19): a method is a token, so a byte copy cut at
	 * 15 bytes gives the same string */
	q->method_len = req->method_len < sizeof(q->method) ? req->method_len : sizeof(q->method) - 1;
	memcpy(q->method, req->method, q->method_len);
	q->method[q->method_len] = '\0';
	*why = NULL;
	return REPLAY_SEND;
}

int replay_req_prepare(const struct replay_rules *r, const uint8_t *raw, size_t len,
		       struct replay_req *q, const char **why)
{
	int hl = http1_parse_request((const char *)raw, len, &q->req, q->hdrs, ST_MAX_HEADERS);

	*why = hl == HTTP1_NEED_MORE ? "incomplete request" : "malformed request";
	if (hl < 0)
		return REPLAY_UNREPLAYABLE;
	return replay_req_check(r, raw, len, hl, q, why);
}

/* Is [p, p + n) inside the record's head copy? */
static bool replay_in_head(const struct st_msg *m, const char *p, size_t n)
{
	uintptr_t h = (uintptr_t)m->head, x = (uintptr_t)p;

	return x >= h && x - h <= m->head_len && n <= m->head_len - (x - h);
}

/* The capture parsed this head already (exchange.c: rec->req.head is a copy of the
 * first head_len bytes of rec->raw, its hdrs and rec->method/target point into that
 * copy): the same parse, moved onto raw, instead of a second one per replayed request
 * (issue 19). Anything that is not exactly that (no copy, bytes that differ, headers
 * past the limit, a malformed or HTTP/0.9 request, a pointer outside the copy) says
 * false, and the caller parses raw itself. */
static bool replay_req_from_rec(const struct st_record *rec, struct replay_req *q)
{
	const struct st_msg *m = &rec->req;
	const char *raw = (const char *)rec->raw;
	struct http1_request *req = &q->req;
	size_t i;

	if (!m->head || !raw || !m->head_len || m->head_len > rec->raw_len ||
	    m->head_len > INT_MAX || m->nhdrs > ST_MAX_HEADERS || (m->nhdrs && !m->hdrs) ||
	    (rec->cap_flags & (ST_CAP_HEADERS_OVER | ST_CAP_MALFORMED)) || rec->http_minor < 0 ||
	    !rec->method || !rec->target || !replay_in_head(m, rec->method, rec->method_len) ||
	    !replay_in_head(m, rec->target, rec->target_len) ||
	    memcmp(raw, m->head, m->head_len) != 0)
		return false;
	for (i = 0; i < m->nhdrs; i++) {
		const struct http1_header *h = &m->hdrs[i];

		if (!replay_in_head(m, h->name, h->name_len) ||
		    !replay_in_head(m, h->value, h->value_len))
			return false;
		q->hdrs[i].name = raw + (h->name - m->head);
		q->hdrs[i].name_len = h->name_len;
		q->hdrs[i].value = raw + (h->value - m->head);
		q->hdrs[i].value_len = h->value_len;
	}
	memset(req, 0, sizeof(*req));
	req->method = raw + (rec->method - m->head);
	req->method_len = rec->method_len;
	req->target = raw + (rec->target - m->head);
	req->target_len = rec->target_len;
	req->minor_version = rec->http_minor;
	req->headers = q->hdrs;
	req->num_headers = m->nhdrs;
	return true;
}

int replay_req_prepare_rec(const struct replay_rules *r, const struct st_record *rec,
			   struct replay_req *q, const char **why)
{
	if (replay_req_from_rec(rec, q))
		return replay_req_check(r, rec->raw, rec->raw_len, (int)rec->req.head_len, q, why);
	return replay_req_prepare(r, rec->raw, rec->raw_len, q, why);
}

static bool replay_name_is(const struct http1_header *h, const char *name, size_t len)
{
	return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}

int replay_req_rewrite(const struct replay_rules *r, const char *prefix, size_t prefix_len,
		       const struct replay_req *q, const uint8_t *raw, struct buf *b)
{
	const struct http1_request *req = &q->req;
	const char *end = (const char *)raw + q->head_len, *blank, *line_end;
	bool done_hdr[REPLAY_MAX_HEADERS] = { 0 }, host_done = false;
	size_t i, blank_len;
	int k, err = 0;

	blank_len = q->head_len >= 2 && end[-2] == '\r' ? 2 : 1;
	blank = end - blank_len;
	line_end = req->num_headers ? req->headers[0].name : blank;
	if (prefix_len && req->target_len && req->target[0] == '/') {
		err |= buf_append(b, req->method, (size_t)(req->target - req->method));
		err |= buf_append(b, prefix, prefix_len);
		err |= buf_append(b, req->target, (size_t)(line_end - req->target));
	} else {
		err |= buf_append(b, req->method, (size_t)(line_end - req->method));
	}
	for (i = 0; i < req->num_headers; i++) {
		const struct http1_header *h = &req->headers[i];
		const char *next = i + 1 < req->num_headers ? req->headers[i + 1].name : blank;
		bool replaced = false;

		if (r->host && replay_name_is(h, "host", 4)) {
			if (!host_done) {
				err |= buf_append(b, h->name, h->name_len);
				err |= buf_printf(b, ": %s\r\n", r->host);
			}
			host_done = true;
			continue;
		}
		for (k = 0; k < r->nhdrs && !replaced; k++) {
			if (!replay_name_is(h, r->hdrs[k].line, r->hdrs[k].name_len))
				continue;
			if (!done_hdr[k]) {
				err |= buf_printf(b, "%s\r\n", r->hdrs[k].line);
				done_hdr[k] = true;
			}
			replaced = true;
		}
		if (!replaced)
			err |= buf_append(b, h->name, (size_t)(next - h->name));
	}
	if (r->host && !host_done)
		err |= buf_printf(b, "Host: %s\r\n", r->host);
	for (k = 0; k < r->nhdrs; k++)
		if (!done_hdr[k])
			err |= buf_printf(b, "%s\r\n", r->hdrs[k].line);
	err |= buf_append(b, blank, blank_len);
	return err ? -ENOMEM : 0;
}

bool replay_req_idempotent(const char *method)
{
	static const char *const m[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE" };
	size_t i;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (strcmp(method, m[i]) == 0)
			return true;
	return false;
}

bool replay_req_closes(const struct replay_req *q)
{
	const struct http1_header *h = http1_find_header(q->hdrs, q->req.num_headers, "connection");

	if (h && http1_has_token(h->value, h->value_len, "close"))
		return true;
	return q->req.minor_version == 0 &&
	       !(h && http1_has_token(h->value, h->value_len, "keep-alive"));
}
