/* Writing recordings: files named from a strftime pattern, rotated by size or age,
 * capped per directory, fed by a bounded queue from the writer thread.
 * Owns: the writer thread, its queue, the open file and the list of files made. */
#ifndef ST_REC_WRITER_H
#define ST_REC_WRITER_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include <zlib.h>

#include "buf.h"
#include "record.h"

struct recording_cfg;

struct rec_writer_stats {
	uint64_t submitted, written, blocks, bytes, files, rotations;
	uint64_t dropped_queue_full, dropped_memory, dropped_encode, dropped_dir_full;
	uint64_t dropped_write_error, files_deleted, write_errors;
	uint64_t refused_gor_separator;   /* .gor: a payload held GoReplay's separator */
};

struct rec_writer;

int rec_writer_start(struct rec_writer **out, const struct recording_cfg *rc);
/* Capture thread: encodes r into a private copy and queues it; never blocks,
 * never takes r. A full queue is a counted drop. */
void rec_writer_submit(struct rec_writer *w, const struct st_record *r);
/* Flush, close the file, join the thread; prints one stats line to f (may be NULL)
 * and frees. Accepts NULL. */
void rec_writer_stop(struct rec_writer *w, FILE *f);
/* Encode r in rc's format (the caller has redacted it). -EBADMSG, counted in st, for
 * a record .gor cannot hold; -ENOMEM. */
int rec_writer_encode(const struct recording_cfg *rc, const struct st_record *r, struct buf *b,
		      struct rec_writer_stats *st);
void rec_writer_get_stats(struct rec_writer *w, struct rec_writer_stats *st);

/* ---- output files, also used by `convert` ---- */

#define REC_MAX_FILES      4096          /* files remembered for --output-dir-max */

struct rec_writer_file {
	char *path;
	uint64_t bytes;
};

struct rec_writer_out {
	const struct recording_cfg *rc;
	int fd;
	gzFile gz;
	char cur[PATH_MAX];
	char last_base[PATH_MAX];     /* last strftime expansion, and its "-N" count */
	int last_seq;                 /* -1: the bare name not tried yet */
	int adopt_fd;                 /* >= 0: the first open takes this fd, named cur */
	uint64_t cur_bytes;           /* on disk */
	uint64_t opened_ns;
	struct rec_writer_file files[REC_MAX_FILES];   /* finished files, oldest first */
	size_t nfiles;
	uint64_t files_bytes;
	struct rec_writer_stats *st;
};

void rec_writer_out_init(struct rec_writer_out *o, const struct recording_cfg *rc,
			 struct rec_writer_stats *st);
/* Open the next file (native: with its header). 0 or negative errno, said on stderr. */
int rec_writer_out_open(struct rec_writer_out *o);
/* Write one block (native: framed; gor: as is), rotating and making room first. */
int rec_writer_out_block(struct rec_writer_out *o, const void *p, size_t n, uint32_t nrec);
void rec_writer_out_fini(struct rec_writer_out *o);

#endif
