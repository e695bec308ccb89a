/* Header redaction for recordings. A recording stores the request as the bytes that
 * were sent, so the redaction is done on those bytes: the header's name and line
 * ending stay, its value becomes "[REDACTED]". A replay of such a recording sends
 * the placeholder (see README, Reliability and safety). Owns: nothing. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "rec_redact.h"

static bool rec_redact_named(const char *const *redact, const char *name, size_t n)
{
	for (; *redact; redact++)
		if (strlen(*redact) == n && !strncasecmp(*redact, name, n))
			return true;
	return false;
}

int rec_redact_head(struct buf *out, const char *head, size_t len, const char *const *redact)
{
	const char *p = head, *end = head + len;
	bool first = true, dropping = false;
	int n = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl + 1 : end;        /* line end, after its \n */
		const char *colon, *v, *ve;
		size_t ll = (size_t)(le - p);

		if (first || (ll <= 2 && (p[0] == '\n' || p[0] == '\r'))) {
			/* start line, or the blank line ending the head: kept as is, and
			 * anything after the blank line is not a header */
			if (buf_append(out, p, ll))
				return -ENOMEM;
			if (!first) {
				if (buf_append(out, le, (size_t)(end - le)))
					return -ENOMEM;
				return n;
			}
			first = false;
			p = le;
			continue;
		}
		if (p[0] == ' ' || p[0] == '\t') {
			/* obs-fold continuation: part of the previous header's value */
			if (!dropping && buf_append(out, p, ll))
				return -ENOMEM;
			p = le;
			continue;
		}
		dropping = false;
		colon = memchr(p, ':', ll);
		if (!colon || !rec_redact_named(redact, p, (size_t)(colon - p))) {
			if (buf_append(out, p, ll))
				return -ENOMEM;
			p = le;
			continue;
		}
		for (v = colon + 1; v < le && (*v == ' ' || *v == '\t'); v++)
			;
		ve = nl ? nl : end;
		if (ve > v && ve[-1] == '\r' && nl)
			ve--;
		if (buf_append(out, p, (size_t)(v - p)) ||
		    buf_append(out, REC_REDACT_MASK, strlen(REC_REDACT_MASK)) ||
		    buf_append(out, ve, (size_t)(le - ve)))
			return -ENOMEM;
		dropping = true;
		n++;
		p = le;
	}
	return n;
}

/* where the head ends in raw request bytes: after "\r\n\r\n" or "\n\n" */
static size_t rec_redact_head_len(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3;
	}
	return n;
}

int rec_redact_record(const struct st_record *r, const char *const *redact,
		      struct rec_redacted *s, struct st_record *view)
{
	int kraw = 0, kreq = 0, kresp = 0;

	if (!redact || !*redact)
		return 0;
	buf_reset(&s->raw);
	buf_reset(&s->req);
	buf_reset(&s->resp);
	if (r->raw && r->raw_len) {
		size_t hl = rec_redact_head_len((const char *)r->raw, r->raw_len);

		kraw = rec_redact_head(&s->raw, (const char *)r->raw, hl, redact);
		if (kraw < 0 || buf_append(&s->raw, r->raw + hl, r->raw_len - hl))
			return -ENOMEM;
	}
	if (r->req.head && r->req.head_len &&
	    (kreq = rec_redact_head(&s->req, r->req.head, r->req.head_len, redact)) < 0)
		return -ENOMEM;
	if (r->resp.head && r->resp.head_len &&
	    (kresp = rec_redact_head(&s->resp, r->resp.head, r->resp.head_len, redact)) < 0)
		return -ENOMEM;
	if (!kraw && !kreq && !kresp)
		return 0;                 /* nothing to hide: r itself is written */
	/* the copy (several KiB) only for records that had something to hide */
	*view = *r;
	if (kraw) {
		view->raw = (uint8_t *)s->raw.data;
		view->raw_len = s->raw.len;
	}
	if (kreq) {
		view->req.head = s->req.data;
		view->req.head_len = s->req.len;
	}
	if (kresp) {
		view->resp.head = s->resp.data;
		view->resp.head_len = s->resp.len;
	}
	return 1;
}

void rec_redacted_free(struct rec_redacted *s)
{
	buf_free(&s->raw);
	buf_free(&s->req);
	buf_free(&s->resp);
}
