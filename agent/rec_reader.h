/* Reading recordings: a buffered source (file through zlib, or memory), format
 * detection, GoReplay request/response pairing, records rebuilt from HTTP bytes.
 * Owns: the reader, its buffer, pending gor requests and per-flow counters. */
#ifndef ST_REC_READER_H
#define ST_REC_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "list.h"
#include "rec_gor.h"
#include "record.h"

struct rec_reader_stats {
	uint64_t records;            /* records returned */
	uint64_t blocks, bad_blocks;  /* native: blocks read, blocks skipped (CRC/shape) */
	uint64_t bad_records;        /* records that did not decode, skipped */
	uint64_t resync_bytes;       /* bytes skipped looking for the next block/entry */
	uint64_t torn_tail;          /* file ended inside a block or entry */
	uint64_t read_errors;        /* I/O or gzip stream errors (ends the file) */
	uint64_t gor_requests, gor_responses, gor_replayed, gor_orphan_responses, gor_unknown;
	uint64_t gor_unanswered;     /* requests emitted without their original response */
	uint64_t gor_id_probes;      /* pending entries looked at to pair by id (cost, for tests) */
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

/* ---- for the rec_* modules only ---- */

struct rec_gor_pending {
	struct st_record *rec;
	char id[REC_GOR_ID_MAX];
	uint32_t hash;
	struct list_node node;       /* on rec_reader.pending */
	struct rec_gor_pending *hnext;   /* rec_reader.by_id chain, oldest first */
};

#define REC_GOR_BUCKETS 8192     /* power of two, above the pending bound */

struct rec_flowctr {
	uint64_t flow;
	uint32_t next;
	bool used;
	bool pipelined;      /* two requests pending with one ID: pairing is ambiguous */
};

struct rec_reader_blockpos {
	const uint8_t *data;
	size_t len, off;
	uint32_t left;
};

/* A file, plain or gzip (members concatenated), decoded here rather than with gzread
 * so that what inflate produced before a corrupt byte is kept. */
struct rec_reader_src {
	int fd;                        /* -1 for a memory reader */
	int mode;                      /* 0 not yet known, 1 plain, 2 gzip */
	bool zinit, in_eof, member_end;
	z_stream zs;
	uint8_t *in;                   /* read buffer for gzip input */
	size_t in_len, in_off;
};

struct rec_reader {
	struct rec_reader_src src;
	const uint8_t *mem;
	size_t mem_len, mem_off;
	bool eof;
	uint8_t *buf;
	size_t cap, len, off;
	int format;
	size_t body_limit;
	struct rec_reader_stats st;
	/* gor pairing: FIFO of requests waiting for their response */
	struct list_node pending;
	size_t npending;
	struct rec_gor_pending *by_id[REC_GOR_BUCKETS];   /* the same entries by ID */
	struct rec_flowctr *fc;        /* per-flow request counters (open addressing) */
	size_t fc_cap, fc_used;
	uint64_t last_ts;
	struct rec_reader_blockpos bp;         /* native: the block being decoded */
};

/* Make at least n bytes available at buf+off; returns how many are (< n at EOF). */
size_t rec_reader_need(struct rec_reader *rd, size_t n);
/* Fill a record's request (method, target, headers, body) from r->raw. */
int rec_reader_request_from_raw(struct st_record *r, size_t body_limit);
/* Response head (+ optionally a decoded body) from bytes; body_raw says whether the
 * bytes after the head are still framed (gor) or already decoded (native). */
int rec_reader_response(struct st_record *r, const uint8_t *p, size_t n, bool body_raw,
			size_t body_limit);

#endif
