/* Recordings: record now, replay later. The recording configuration, its options,
 * and the format constants the rec_* modules share; includes their headers.
 * Owns: struct recording_cfg and the recording options. Files by job:
 *   rec_native.c  native .stap format: encode/decode of records, header, blocks
 *   rec_gor.c     GoReplay .gor format: entry encode, entry header parse, ids
 *   rec_reader.c  reading files: gzip, format detection, gor request/response pairing
 *   rec_writer.c  writing files: rotation, directory cap, the writer thread
 *   rec_input.c   --input-file: pacing recorded requests into the pipeline
 *   rec_convert.c `shadowtap convert` */
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
#define REC_GOR_SEP_LEN    (sizeof(REC_GOR_SEP) - 1)

#define REC_MAX_WAIT_DEFAULT_NS (10ull * 1000000000ull)

/* Everything the command line sets; main.c keeps one in its config. */
struct pii_cfg;

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
	const char *const *redact;   /* header values replaced in recordings (NULL: none) */
	int keep_secrets;            /* --record-secrets: store them as captured */
	const struct pii_cfg *pii;   /* --redact-* rules, applied to recordings too (rec_redact.c) */
	int keep_pii;                /* --record-pii: bodies and query strings as captured */
	/* metadata stored in the native header */
	const char *meta_iface;
	const char *meta_source;     /* "live", "pcap", "file" */
	/* input */
	const char *in_pattern;      /* --input-file PATH|GLOB */
	double speed_pct;            /* 100 = recorded pace; 0 = max */
	uint64_t max_wait_ns;        /* one pacing wait is cut to this (default 10 s) */
	int loop;
	size_t body_limit;           /* body bytes kept per message when reading */
};

void recording_cfg_default(struct recording_cfg *rc);
/* Parse one of the recording options by its long name ("output-file", ...), through
 * the agent's option table (opts.c). 0, or -EINVAL with a one-line message naming
 * the option. */
int recording_parse_opt(struct recording_cfg *rc, const char *name, const char *v);

/* little-endian and CRC32 primitives of the native format */
void rec_put32(uint8_t *p, uint32_t v);
uint32_t rec_get32(const uint8_t *p);
uint32_t rec_crc(const void *p, size_t n);

#include "rec_native.h"
#include "rec_gor.h"
#include "rec_reader.h"
#include "rec_writer.h"
#include "rec_input.h"
#include "rec_convert.h"
#include "rec_redact.h"

#endif
