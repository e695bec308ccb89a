/* File input (--input-file): reads recordings and paces their requests into the
 * pipeline at the recorded pace (scaled) or as fast as the in-flight bound lets.
 * Owns: the file list, the reorder heap and the pacing clock. */
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
	int signal_fd;               /* signalfd for SIGINT/SIGTERM, or -1 */
	volatile int *stop;          /* set to stop early (may be NULL) */
};

/* Reads every file matching rc->in_pattern (sorted), schedules each request at its
 * recorded offset from the first scaled by speed (or as fast as the bound on
 * in-flight records lets at max), loops if asked, prints progress on stderr, and
 * waits until everything submitted has finished. 0 or negative errno. */
int recording_input_run(const struct recording_input *in);

#endif
