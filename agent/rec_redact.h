/* Header redaction for recordings: the same list as records (record_redact_default
 * plus --redact-header) applied to the bytes a recording stores. Owns: nothing. */
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
};
int rec_redact_record(const struct st_record *r, const char *const *redact,
		      struct rec_redacted *scratch, struct st_record *view);
void rec_redacted_free(struct rec_redacted *s);

#endif
