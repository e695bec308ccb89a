/* Redaction for recordings: the same header list as records (record_redact_default
 * plus --redact-header) and the same --redact-* PII rules, applied to the bytes a
 * recording stores. Owns: nothing. */
#ifndef ST_REC_REDACT_H
#define ST_REC_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "record.h"

#define REC_REDACT_MASK "[REDACTED]"

/* Appends head (start line + header lines, up to and including the blank line if
 * present) with the value of every header named in redact (case-insensitive,
 * NULL-terminated) replaced by REC_REDACT_MASK; continuation lines of such a header
 * are dropped. Returns the number of values replaced, or -ENOMEM. */
int rec_redact_head(struct buf *out, const char *head, size_t len, const char *const *redact);

/* A view of r whose raw request, request head and response head are redacted
 * copies held in the three buffers (the rest points into r): what the recording
 * encoders read. 1 when view was filled, 0 when nothing matched (encode r itself,
 * view untouched), or -ENOMEM. */
struct rec_redacted {
	struct buf raw, req, resp;
	struct buf reqb, respb, rawb;    /* bodies through the PII rules */
};
int rec_redact_record(const struct st_record *r, const char *const *redact,
		      struct rec_redacted *scratch, struct st_record *view);
/* The same with the --redact-* rules of pii too (NULL: headers only): the request
 * target's query and scanner rules, both bodies (text only) through the JSON paths
 * and scanners, the secret query values scrubbed wherever the server echoes them,
 * and header values as pii's mode says. A body that changed length gets its
 * Content-Length (or one chunk); a chunked request body cut by --body-limit cannot
 * be re-framed, so view->raw is dropped and the head + stored body are written. */
struct pii_cfg;
int rec_redact_record_pii(const struct st_record *r, const char *const *redact, const struct pii_cfg *pii,
			  struct rec_redacted *scratch, struct st_record *view);
void rec_redacted_free(struct rec_redacted *s);

#endif
