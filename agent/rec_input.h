/* File input (--input-file): reads recordings and paces their requests into the
 * pipeline at the recorded pace (scaled) or as fast as the in-flight bound lets.
 * Owns: the file list, the reorder heap and the pacing clock; driven in steps by
 * the pipeline's event loop. */
#ifndef ST_REC_INPUT_H
#define ST_REC_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct recording_cfg;

struct recording_input {
	const struct recording_cfg *rc;
	size_t max_in_flight;        /* records handed on and not yet finished */
	void (*submit)(void *ctx, struct st_record *rec);   /* takes ownership */
	uint64_t (*finished)(void *ctx);   /* records the pipeline has finished so far */
	void *ctx;
};

struct input_file;

/* Finds every file matching rc->in_pattern and counts its records (progress and
 * order of rotated files). 0 or negative errno (message printed). */
int input_file_open(struct input_file **out, const struct recording_input *in);
/* Hands on at most max records, each at its recorded offset from the first scaled by
 * speed (or as fast as the in-flight bound lets at max), loops if asked, prints
 * progress on stderr. Returns 1 with *wake_ns set to the monotonic time at which
 * to call again (<= now: at once), 0 once everything handed on has finished, or a
 * negative errno. Never sleeps. */
int input_file_step(struct input_file *f, int max, uint64_t *wake_ns);
/* Prints the final progress and lateness lines, frees what is left. Accepts NULL. */
void input_file_close(struct input_file *f);

#endif
