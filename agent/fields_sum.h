/* Per-endpoint, per-field difference counters with the noise verdict, the periodic
 * summary documents, and which requests get a noise answer (--replay-baseline,
 * --noise-probe). Owns: the counter tables (bounded) and its lock. */
#ifndef ST_FIELDS_SUM_H
#define ST_FIELDS_SUM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "record.h"

#define FSUM_MAX_PATTERNS 32
#define FSUM_MAX_ENDPOINTS 256        /* more are counted under "(other)" */
#define FSUM_MAX_FIELDS 64            /* per endpoint; more are counted, not named */

struct fields_sum_cfg {
	const char *endpoints[FSUM_MAX_PATTERNS];   /* --endpoint 'GET /api/user/ *' */
	int nendpoints;
	const char *ignore[FSUM_MAX_PATTERNS];      /* --diff-ignore 'ENDPOINT PATH' */
	int nignore;
	double rel_pct, abs_pct;         /* Diffy's thresholds in percent (20, 0.03) */
	uint32_t interval_s;             /* --diff-summary-interval, default 60 */
	const char *baseline;            /* --replay-baseline URL */
	double probe_pct;                /* --noise-probe, 0..100 */
	const char *probe_methods[16];   /* --noise-probe-method; none = GET, HEAD, OPTIONS */
	int nprobe_methods;
	const char *const *hdr_ignore;   /* headers the noise comparison skips, as the diff does */
};

struct fields_sum;

void fields_sum_cfg_default(struct fields_sum_cfg *cfg);
/* NULL on allocation failure. */
struct fields_sum *fields_sum_new(const struct fields_sum_cfg *cfg);
void fields_sum_free(struct fields_sum *s);      /* accepts NULL */

/* Should this replayed record get a noise answer? Baseline: every request serverB
 * answered. Probe: a deterministic probe_pct sample of those with a safe method. */
bool fields_sum_want_noise(const struct fields_sum_cfg *cfg, const struct st_record *r);

/* Around the noise replay, which fills record->replay and ->diff like the first:
 * hold moves the first replay's results aside, unhold moves the noise answer to
 * record->noise and puts them back. */
void fields_sum_hold(struct st_record *r);
void fields_sum_unhold(struct st_record *r);

/* The thread that encodes the record (pipeline.c: the producing thread, or the output
 * thread for a large replayed record), once per record before it is encoded: names the
 * endpoint, compares the noise answer (if any), marks noisy and ignored fields, and
 * counts under s->lock (several threads may call it). */
int fields_sum_observe(struct fields_sum *s, struct st_record *r);

/* Counts one compared request (d->endpoint set) whose fields are already marked
 * noise/ignored as observe marks them; --diff-ignore rules apply again. For
 * readers of records (shadowtap report). */
int fields_sum_count(struct fields_sum *s, const struct st_diff *d, const char *event_id);

/* One row per endpoint (path NULL: its totals) and per counted field, for the
 * report. Pointers are into s and stay valid while s is not changed. The caller
 * frees *rows. 0 or -ENOMEM. */
struct fsum_row {
	const char *endpoint, *path, *kind, *verdict;
	uint64_t requests, matched, noise_requests, raw, noise;
	double noise_scaled, share;
	const char *ex_id, *ex_a, *ex_b;
};
int fields_sum_rows(struct fields_sum *s, struct fsum_row **rows, size_t *n);

/* One summary document per endpoint (NDJSON lines, cumulative since start) into
 * out when the interval has passed since the last, or when force. Returns the
 * number of documents. ts_ns is the wall clock. */
int fields_sum_flush(struct fields_sum *s, uint64_t ts_ns, bool force, struct buf *out);

/* The n fields most often differing for real, for --stats; any thread. */
void fields_sum_print_top(struct fields_sum *s, FILE *f, int n);

#endif
