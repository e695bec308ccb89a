/* `shadowtap report`: reads records (NDJSON files) and ranks the differences per
 * endpoint and field with the noise verdict; text table, JSON or one HTML page.
 * Owns: its counters (a fields_sum) for the length of one run. */
#ifndef ST_REPORT_H
#define ST_REPORT_H

#include "buf.h"

/* argv[0] is "report". Returns an exit code (0, 1 runtime, 2 usage). */
int report_main(int argc, char **argv);

/* Reads one NDJSON record line (len bytes, no newline needed) into s; lines that
 * are no compared record (summaries, records without diff.endpoint) are skipped.
 * 1 counted, 0 skipped, -EBADMSG when the line is no JSON object, -ENOMEM. */
struct fields_sum;
int report_read_line(struct fields_sum *s, const char *line, size_t len);

/* The ranked rows as text (all: noise and ignored rows too), JSON or HTML. */
int report_table(struct fields_sum *s, int all, struct buf *out);
int report_json(struct fields_sum *s, struct buf *out);
int report_html(struct fields_sum *s, const char *title, struct buf *out);

#endif
