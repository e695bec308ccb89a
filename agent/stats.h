/* Statistics output: one function prints every stage's counters.
 * Owns: the text format of the stats lines (tests and scripts parse it). */
#ifndef ST_STATS_H
#define ST_STATS_H

#include <stdio.h>

struct pipeline;

/* "--- shadowtap WHEN: S s ---" then one line per stage. Safe from the loop thread
 * while other threads run: it reads atomics and the stages' own stats getters. */
void stats_print(struct pipeline *p, FILE *f, const char *when);

/* The periodic --stats line: "--- shadowtap stats: S s --- " then per-second rates
 * over the interval since the previous line (packets, records, replayed, failed,
 * written, indexed, spooled), the losses in it and a few levels. Computed from
 * stats_print's own text, so it cannot disagree with the full block (SIGUSR1, exit).
 * Loop thread only: keeps the previous snapshot. */
void stats_print_line(struct pipeline *p, FILE *f);
/* A warning the first time each memory bound turns something away (loop thread). */
void stats_bounds_check(struct pipeline *p);

struct buf;
/* The same numbers as stats_print, in the Prometheus text format (stats_prom.c),
 * plus the latency histograms. Loop thread only, like stats_print. */
void stats_prometheus(struct pipeline *p, struct buf *out);

#endif
