/* Redaction for recordings. A recording stores the request as the bytes that were
 * sent, so the redaction is done on those bytes: the header's name and line ending
 * stay, its value becomes "[REDACTED]" (or the token, in --redact-mode hash); the
 * --redact-json/-query/-pattern rules rewrite the request-target and the bodies as
 * in records, and the framing follows (Content-Length, one chunk). A replay of such
 * a recording sends the placeholders (see README, Reliability and safety).
 * Owns: nothing. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "pii.h"
#include "rec_redact.h"

static bool rec_redact_named(const char *const *redact, const char *name, size_t n)
{
	for (; *redact; redact++)
		if (strlen(*redact) == n && !strncasecmp(*redact, name, n))
			return true;
	return false;
}

/* The request-target of a request's start line through the PII query rules and
 * scanners; the rest of the line as it was. Returns changes made, or -ENOMEM. */
static int rec_redact_start_line(struct buf *out, const char *p, size_t ll, const struct pii_cfg *pii)
{
	const char *sp1 = memchr(p, ' ', ll), *sp2;
	struct buf t = { 0 };
	int k;

	if (!pii_cfg_rewrites(pii) || !sp1 || !(sp2 = memchr(sp1 + 1, ' ', (size_t)(p + ll - sp1 - 1))))
		return buf_append(out, p, ll) ? -ENOMEM : 0;
	k = pii_redact_target(pii, sp1 + 1, (size_t)(sp2 - sp1 - 1), &t);
	if (k > 0) {
		if (buf_append(out, p, (size_t)(sp1 + 1 - p)) || buf_append(out, t.data, t.len) ||
		    buf_append(out, sp2, (size_t)(p + ll - sp2)))
			k = -ENOMEM;
	} else if (k == 0 && buf_append(out, p, ll)) {
		k = -ENOMEM;
	}
	buf_free(&t);
	return k;
}

/* rec_redact_head, plus: the request-target's query and scanner rules (request heads,
 * when pii rewrites), header values as pii's mode says (a token in hash mode, as in
 * records), and Content-Length set to clen when clen >= 0 (a body made shorter or
 * longer by the redaction must still frame). */
static int rec_redact_head_pii(struct buf *out, const char *head, size_t len, const char *const *redact,
			       const struct pii_cfg *pii, bool request, long long clen)
{
	const char *p = head, *end = head + len;
	bool first = true, dropping = false;
	int n = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl + 1 : end;        /* line end, after its \n */
		const char *colon, *v, *ve;
		size_t ll = (size_t)(le - p);
		bool is_clen;

		if (first || (ll <= 2 && (p[0] == '\n' || p[0] == '\r'))) {
			/* start line, or the blank line ending the head: kept as is, and
			 * anything after the blank line is not a header */
			if (first && request) {
				int k = rec_redact_start_line(out, p, ll, pii);

				if (k < 0)
					return k;
				n += k;
			} else if (buf_append(out, p, ll)) {
				return -ENOMEM;
			}
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
		is_clen = colon && clen >= 0 && colon - p == 14 && !strncasecmp(p, "content-length", 14);
		if (!colon || (!is_clen && (!redact || !rec_redact_named(redact, p, (size_t)(colon - p))))) {
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
		if (buf_append(out, p, (size_t)(v - p)))
			return -ENOMEM;
		if (is_clen) {
			if (buf_printf(out, "%lld", clen))
				return -ENOMEM;
		} else {
			char tok[PII_TOKEN_LEN + 1];
			size_t tl = pii ? pii_replacement(pii->mode, &pii->key, v, (size_t)(ve - v), tok) : 0;

			if (pii ? buf_append(out, tok, tl) : buf_append(out, REC_REDACT_MASK, strlen(REC_REDACT_MASK)))
				return -ENOMEM;
		}
		if (buf_append(out, ve, (size_t)(le - ve)))
			return -ENOMEM;
		dropping = true;
		n++;
		p = le;
	}
	return n;
}

int rec_redact_head(struct buf *out, const char *head, size_t len, const char *const *redact)
{
	return rec_redact_head_pii(out, head, len, redact, NULL, false, -1);
}

/* Text as records judge it: no control bytes but tab, CR and LF, no NUL; the PII
 * rules are text rules, and a binary body rewritten by them would be corrupted. */
static bool rec_redact_is_text(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') || p[i] == 0x7f)
			return false;
	return true;
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

/* One body through the PII rules into out. 1 when it changed, 0 when not, -ENOMEM. */
static int rec_redact_body(const struct pii_cfg *pii, const uint8_t *b, size_t n,
			   const struct pii_lit *lits, size_t nlits, struct buf *out)
{
	int k;

	buf_reset(out);
	if (!n || !rec_redact_is_text(b, n))
		return 0;
	k = pii_redact_text_lits(pii, (const char *)b, n, lits, nlits, out);
	return k < 0 ? k : k > 0;
}

int rec_redact_record_pii(const struct st_record *r, const char *const *redact, const struct pii_cfg *pii,
			  struct rec_redacted *s, struct st_record *view)
{
	bool rw = pii_cfg_rewrites(pii), raw_drop = false, redacting = redact && *redact;
	int kraw = 0, kreq = 0, kresp = 0, kqb = 0, ksb = 0, krb = 0;
	long long req_clen = -1, resp_clen = -1;
	struct pii_lit lits[8];
	size_t nl = 0;

	if (!redacting && !rw)
		return 0;
	if (!redacting)
		redact = NULL;
	buf_reset(&s->raw);
	buf_reset(&s->req);
	buf_reset(&s->resp);
	if (rw) {
		/* a redacted query value the server echoes is scrubbed from bodies too */
		if (r->target)
			nl = pii_query_values(pii, r->target, r->target_len, lits, 8);
		if ((kqb = rec_redact_body(pii, r->req.body, r->req.body_stored, lits, nl, &s->reqb)) < 0 ||
		    (ksb = rec_redact_body(pii, r->resp.body, r->resp.body_stored, lits, nl, &s->respb)) < 0)
			return -ENOMEM;
		/* a whole body that changed length frames with its new length */
		if (kqb && r->req.body_stored == r->req.body_bytes && !r->req.chunked)
			req_clen = (long long)s->reqb.len;
		if (ksb && r->resp.body_stored == r->resp.body_bytes && !r->resp.chunked)
			resp_clen = (long long)s->respb.len;
	}
	if (r->raw && r->raw_len) {
		size_t hl = rec_redact_head_len((const char *)r->raw, r->raw_len);
		const uint8_t *rb = r->raw + hl;
		size_t rbl = r->raw_len - hl;
		long long clen = -1;

		/* the body as sent: with Content-Length it is the stored bytes after the
		 * head; chunked, it is redacted decoded and sent again as one chunk, which
		 * needs the whole decoded body (cut by --body-limit: the exact bytes are
		 * not kept, the recording falls back to head + stored body) */
		if (rw && !r->req.chunked) {
			krb = rec_redact_body(pii, rb, rbl, lits, nl, &s->rawb);
			if (krb < 0)
				return -ENOMEM;
			if (krb)
				clen = (long long)s->rawb.len;
		} else if (rw && r->req.chunked && kqb) {
			if (r->req.body_stored == r->req.body_bytes) {
				buf_reset(&s->rawb);
				if (buf_printf(&s->rawb, "%zx\r\n", s->reqb.len) ||
				    buf_append(&s->rawb, s->reqb.data, s->reqb.len) ||
				    buf_append(&s->rawb, "\r\n0\r\n\r\n", 7))
					return -ENOMEM;
				krb = 1;
			} else {
				raw_drop = true;
			}
		}
		if (!raw_drop) {
			kraw = rec_redact_head_pii(&s->raw, (const char *)r->raw, hl, redact, pii, true, clen);
			if (kraw < 0 || (krb ? buf_append(&s->raw, s->rawb.data, s->rawb.len) : buf_append(&s->raw, rb, rbl)))
				return -ENOMEM;
		}
	}
	if (r->req.head && r->req.head_len &&
	    (kreq = rec_redact_head_pii(&s->req, r->req.head, r->req.head_len, redact, pii, true, req_clen)) < 0)
		return -ENOMEM;
	if (r->resp.head && r->resp.head_len &&
	    (kresp = rec_redact_head_pii(&s->resp, r->resp.head, r->resp.head_len, redact, pii, false, resp_clen)) < 0)
		return -ENOMEM;
	if (!kraw && !krb && !raw_drop && !kreq && !kresp && !kqb && !ksb)
		return 0;                 /* nothing to hide: r itself is written */
	/* the copy (several KiB) only for records that had something to hide */
	*view = *r;
	if (raw_drop) {
		view->raw = NULL;
		view->raw_len = 0;
	} else if (kraw || krb) {
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
	if (kqb) {
		view->req.body = (uint8_t *)s->reqb.data;
		view->req.body_stored = s->reqb.len;
		if (r->req.body_stored == r->req.body_bytes)
			view->req.body_bytes = s->reqb.len;
	}
	if (ksb) {
		view->resp.body = (uint8_t *)s->respb.data;
		view->resp.body_stored = s->respb.len;
		if (r->resp.body_stored == r->resp.body_bytes)
			view->resp.body_bytes = s->respb.len;
	}
	return 1;
}

int rec_redact_record(const struct st_record *r, const char *const *redact,
		      struct rec_redacted *s, struct st_record *view)
{
	return rec_redact_record_pii(r, redact, NULL, s, view);
}

void rec_redacted_free(struct rec_redacted *s)
{
	buf_free(&s->raw);
	buf_free(&s->req);
	buf_free(&s->resp);
	buf_free(&s->reqb);
	buf_free(&s->respb);
	buf_free(&s->rawb);
}
