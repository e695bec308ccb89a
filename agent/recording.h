/* Recordings: record now, replay later. Writes captured exchanges to native
 * recordings (msgpack records in CRC-checked blocks) or GoReplay .gor files from its
 * own thread, reads both back into st_records, paces them into the pipeline
 * (--input-file), and converts between formats (shadowtap convert).
 * Owns: the writer thread, its queue and files; readers and their buffers. */
#ifndef ST_RECORDING_H
#define ST_RECORDING_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "record.h"

enum rec_format { REC_FMT_NATIVE = 0, REC_FMT_GOR, REC_FMT_NDJSON };

#define REC_MAGIC          "SHADOWTP"   /* 8 bytes at the start of a native file */
#define REC_VERSION        1
#define REC_BLOCK_MAGIC    "STBK"
#define REC_BLOCK_HDR      20           /* magic, len, nrec, crc(payload), crc(first 16) */
#define REC_BLOCK_TARGET   (64 * 1024)  /* a block is written past this many bytes ... */
#define REC_BLOCK_MS       1000         /* ... or this long after its first record */
#define REC_BLOCK_MAX      (64u << 20)  /* larger block lengths are corruption */
#define REC_GOR_SEP        "\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"  /* \n🐵🙈🙉\n */

/* Everything the command line sets; main.c keeps one in its config. */
struct recording_cfg {
	/* writer */
	const char *out_path;        /* --output-file, strftime placeholders allowed */
	int out_format;              /* REC_FMT_NATIVE or REC_FMT_GOR */
	int out_gzip;
	uint64_t out_file_max;       /* rotate past this size (bytes on disk), 0 = never */
	uint32_t out_interval_s;     /* rotate after this long, 0 = never */
	uint64_t out_dir_max;        /* cap on the files this writer made, 0 = none */
	size_t out_queue_cap;        /* records waiting for the writer, default 65536 */
	size_t out_queue_bytes;      /* encoded bytes waiting, default 128 MiB */
	/* metadata stored in the native header */
	const char *meta_iface;
	const char *meta_source;     /* "live", "pcap", "file" */
	/* input */
	const char *in_pattern;      /* --input-file PATH|GLOB */
	double speed_pct;            /* 100 = recorded pace; 0 = max */
	int loop;
	size_t body_limit;           /* body bytes kept per message when reading */
};

void recording_cfg_default(struct recording_cfg *rc);
/* Parse one of the recording options by its long name ("output-file", ...).
 * 0, or -EINVAL with a one-line message naming the option. */
int recording_parse_opt(struct recording_cfg *rc, const char *name, const char *v);

/* ---- encoding (also used by tests) ---- */
int recording_encode_native(const struct st_record *r, struct buf *out);
int recording_encode_gor(const struct st_record *r, struct buf *out);
/* deterministic event id of (flow, index), the same scheme as live capture */
void recording_event_id(uint64_t flow_id, uint32_t index, char out[33]);

/* ---- writer thread ---- */
struct rec_writer_stats {
	uint64_t submitted, written, blocks, bytes, files, rotations;
	uint64_t dropped_queue_full, dropped_memory, dropped_encode, dropped_dir_full;
	uint64_t dropped_write_error, files_deleted, write_errors;
};

struct rec_writer;

int rec_writer_start(struct rec_writer **out, const struct recording_cfg *rc);
/* Capture thread: encodes r into a private copy and queues it; never blocks,
 * never takes r. A full queue is a counted drop. */
void rec_writer_submit(struct rec_writer *w, const struct st_record *r);
/* Flush, close the file, join the thread; prints one stats line to f (may be NULL)
 * and frees. Accepts NULL. */
void rec_writer_stop(struct rec_writer *w, FILE *f);
void rec_writer_get_stats(struct rec_writer *w, struct rec_writer_stats *st);

/* ---- reader ---- */
struct rec_reader_stats {
	uint64_t records;            /* records returned */
	uint64_t blocks, bad_blocks;  /* native: blocks read, blocks skipped (CRC/shape) */
	uint64_t bad_records;        /* records that did not decode, skipped */
	uint64_t resync_bytes;       /* bytes skipped looking for the next block/entry */
	uint64_t torn_tail;          /* file ended inside a block or entry */
	uint64_t read_errors;        /* I/O or gzip stream errors (ends the file) */
	uint64_t gor_requests, gor_responses, gor_replayed, gor_orphan_responses, gor_unknown;
	uint64_t gor_unanswered;     /* requests emitted without their original response */
	uint64_t gor_ambiguous;      /* responses left unpaired: their connection pipelined */
};

struct rec_reader;

/* Opens a native (.stap, gzip or not) or GoReplay (.gor, gzip or not) file,
 * detected by content. 0, or negative errno with a message naming the file
 * (-EPROTO for a wrong magic/version/corrupt header). */
int rec_reader_open(struct rec_reader **out, const char *path, size_t body_limit);
int rec_reader_open_mem(struct rec_reader **out, const void *data, size_t len, size_t body_limit);
/* 1 with *rec set (caller owns it), 0 at the end, negative errno on a fatal error.
 * Damaged blocks/entries are counted and skipped. */
int rec_reader_next(struct rec_reader *rd, struct st_record **rec);
int rec_reader_format(const struct rec_reader *rd);
void rec_reader_get_stats(const struct rec_reader *rd, struct rec_reader_stats *st);
void rec_reader_close(struct rec_reader *rd);   /* accepts NULL */

/* ---- file input driver (--input-file) ---- */
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

/* `shadowtap convert IN OUT`: argv[0] is "convert". Returns an exit code. */
int recording_convert_main(int argc, char **argv);

#endif
