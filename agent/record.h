/* One HTTP exchange as stored (request, serverA's and serverB's responses, diff,
 * capture flags) and its JSON encoding. Owns: every byte it points to (heap copies). */
#ifndef ST_RECORD_H
#define ST_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"

#define ST_MAX_HEADERS 100

/* bytes of a whole st_record with its room (record_new's blocks, pooled per thread) */
#define RECORD_BLOCK 2048

/* capture.* flags */
enum {
	ST_CAP_INCOMPLETE   = 1u << 0,  /* request or response not seen whole */
	ST_CAP_GAP          = 1u << 1,  /* bytes missing inside the exchange */
	ST_CAP_TRUNCATED    = 1u << 2,  /* a body stored only up to the body limit */
	ST_CAP_MALFORMED    = 1u << 3,  /* a message did not parse; see malformed */
	ST_CAP_NO_RESPONSE  = 1u << 4,  /* the connection ended before serverA answered */
	ST_CAP_MID_STREAM   = 1u << 5,  /* connection picked up without its SYN */
	ST_CAP_UPGRADED     = 1u << 6,  /* protocol switch (101/CONNECT); parsing stopped */
	ST_CAP_REPLAY_TRUNC = 1u << 7,  /* raw request longer than the replay buffer */
	ST_CAP_HEADERS_OVER = 1u << 8,  /* a message had more header fields than --max-headers */
};

/* One HTTP message as captured (or as received from serverB). */
struct st_msg {
	char *head;              /* raw head bytes (start line + header lines), heap */
	size_t head_len;
	/* nhdrs entries pointing into head, stored in head's allocation (freed with it):
	 * an inline array of ST_MAX_HEADERS made every record ~10 KiB to clear */
	struct http1_header *hdrs;
	size_t nhdrs;
	/* decoded body (de-chunked), first body_limit bytes: heap, or with body_borrowed a
	 * view into the record's raw copy (a Content-Length request body is the same bytes:
	 * one copy, not two, issue 19) */
	uint8_t *body;
	size_t body_stored;
	size_t body_cap;         /* 0 while borrowed */
	bool body_borrowed;
	uint64_t body_bytes;     /* full decoded body length */
	uint64_t wire_bytes;     /* head + body as on the wire */
	uint64_t ts_first_ns;    /* capture clock of the first and last byte */
	uint64_t ts_last_ns;
	bool complete;
	bool chunked;
	bool body_capped;        /* storage stopped early by the agent's memory bound */
	/* head (with hdrs) and body room inside the allocation of the struct that holds
	 * this message (record_replay_new): not freed on their own; a body that outgrows
	 * its room moves to the heap */
	bool head_inline;
	bool body_inline;
};

struct st_replay {
	char *target;            /* replay URL: heap, or with target_borrowed the replay
				  * configuration's string, which outlives every record */
	bool target_borrowed;
	bool pooled;             /* a block of blk_get (blkpool.h), not of malloc */
	int status_code;         /* 0 if none */
	struct st_msg resp;
	uint64_t duration_ns;    /* request sent -> last response byte */
	char *error;             /* heap; NULL on success: "timeout", "connection refused", ... */
};

/* One differing field (fields.c): "status", "header:NAME", "$.json.path", ... */
struct st_field {
	char *path;              /* heap */
	char *a, *b;             /* each side's value, cut short; NULL when absent (heap) */
	uint8_t kind;            /* enum fields_kind */
	bool noise;              /* also differed in this request's noise comparison */
	bool ignored;            /* named by --diff-ignore */
};

struct st_diff {
	bool status_same;
	bool body_same;
	bool match;
	bool pooled;             /* the block is blk_get's (blkpool.h), not malloc's */
	char **headers;          /* names whose values differ (heap strings) */
	size_t nheaders;
	char **body_paths;       /* JSON paths that differ, up to a limit */
	size_t nbody_paths;
	bool body_json;          /* both bodies parsed as JSON and were compared structurally */
	char *reason;            /* optional short explanation (heap) */
	struct st_field *fields; /* serverA vs serverB, field by field (heap) */
	size_t nfields;
	size_t fields_total;     /* differences found, nfields of them kept */
	char *endpoint;          /* "GET /api/user/{int}" (heap), set by the output thread */
	const char *noise_source;   /* "baseline" or "probe" when a noise answer came back */
	char **noise_paths;      /* fields that differed in the noise comparison (heap) */
	size_t nnoise;
	/* diff_compare allocates the diff with its lists, fields and strings as one
	 * block of this many bytes (0: each is its own allocation); record_diff_free
	 * frees only what lies outside it. The block's last room bytes are free (for
	 * the endpoint name). */
	size_t block;
	size_t room;
};

struct record_pool;

struct st_record {
	/* the block's pool (record_new): where record_free returns it; NULL for a block
	 * of plain malloc. pool_next links it while it waits in a pool. */
	struct st_record *pool_next;
	struct record_pool *pool;

	/* identity */
	char event_id[33];       /* 32 hex chars: hash(flow_id, index) */
	uint64_t flow_id;
	uint32_t index;          /* request position in its connection, from 0 */
	uint8_t family;
	uint32_t caddr[4], saddr[4];
	uint16_t cport, sport;
	int64_t clock_offset_ns; /* add to capture clock for wall clock (ns since epoch) */

	/* request line, pointing into req.head */
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	int http_minor;          /* 0/1, or -1 for HTTP/0.9 */

	struct st_msg req;
	struct st_msg resp;      /* serverA's response */
	int status_code;         /* serverA's status, 0 if none */

	/* exact request bytes as captured (head + body with its framing), for replay */
	uint8_t *raw;
	size_t raw_len;
	size_t raw_cap;          /* raw's allocation while the capture appends to it */

	uint32_t cap_flags;      /* ST_CAP_* */
	uint8_t source;          /* enum st_source: capture.source, tls.established */
	const char *malformed;   /* static string: why, when ST_CAP_MALFORMED */
	const char *evicted;     /* static string: why the agent gave up holding it early */
	uint64_t gap_bytes;

	/* replay stage fills these; NULL when not replayed */
	struct st_replay *replay;
	struct st_diff *diff;
	const char *replay_skip; /* static string when deliberately not replayed: "filtered", "sampled out" */
	/* noise: the baseline's (or serverB's second) answer to the same request, and
	 * what the first replay left while the noise replay uses replay/diff */
	struct st_replay *noise;
	struct st_diff *noise_diff;      /* the noise replay's own diff: serverA vs noise */
	struct st_replay *held_replay;
	struct st_diff *held_diff;
	const char *held_skip;

	/* room in the record's own block for the raw request's first buffer, the
	 * request head, serverA's head and a Content-Length body's room, taken as they
	 * come (record_raw_realloc, record_req_set_head, record_resp_set_head; issue 19:
	 * a malloc and a cross-thread free fewer per part). room_used bytes are taken; a part that does not fit takes its own
	 * allocation as before. Last, not cleared by record_new. */
	size_t room_used;
	/* 512: the fields above (record.c asserts the struct is RECORD_BLOCK bytes) */
	_Alignas(16) char room[RECORD_BLOCK - 512];
};

/* The event id of exchange index of flow: 32 hex chars, deterministic, so live
 * capture and every reader of a recording name the same exchange the same way. */
void record_event_id(uint64_t flow_id, uint32_t index, char out[33]);
/* Headers redacted by default (lower case, NULL-terminated), for live output and
 * `convert` alike. */
extern const char *const record_redact_default[];

/* A cleared record. Its block comes from the calling thread's pool: blocks freed by
 * any thread go back to the pool of the thread that made them (a lock-free list), so
 * neither thread goes through malloc's locked paths for a record the capture makes
 * and the replay thread frees. A pool keeps at most its limit in free blocks, its own
 * thread's frees and others' together (record_pool_set_limit; at most
 * 2 * RECORD_POOL_MAX, 16 MiB); past that they are freed and counted (trimmed). */
#define RECORD_POOL_MAX 4096
/* The bytes of free blocks each thread's pool may keep (main: --memory-limit/128,
 * split among the threads that make records). Applies to the next frees; blocks
 * already kept past a lowered limit leave as they are taken. */
void record_pool_set_limit(size_t bytes);
struct record_pool_stats {
	size_t pools;            /* pools made (threads that made records, kept for reuse) */
	size_t idle_blocks;      /* free blocks kept in them, to reuse */
	size_t idle_bytes;       /* idle_blocks * RECORD_BLOCK */
	size_t cap_blocks;       /* the most a pool keeps (both lists) */
	unsigned long long trimmed;   /* blocks freed because their pool was at its cap */
};
/* A snapshot over every pool (a lock held while it walks them; not a hot path). */
void record_pool_get_stats(struct record_pool_stats *s);
struct st_record *record_new(void);
void record_free(struct st_record *r);            /* accepts NULL */
void record_msg_free(struct st_msg *m);           /* frees heap parts, keeps struct */
void record_replay_free(struct st_replay *rp);    /* accepts NULL */
/* serverB's answer as one allocation (issue 19: one malloc instead of four): the
 * st_replay (zeroed), a copy of the parsed head with its header array, and room for
 * body_room body bytes (a Content-Length body within the body limit: exactly it).
 * target is borrowed, not copied: the caller's string must outlive every record
 * (replay targets are configuration strings, freed after the output thread ends).
 * NULL on allocation failure. */
struct st_replay *record_replay_new(const char *target, const char *head, size_t head_len,
				    const struct http1_header *hdrs, size_t nhdrs, size_t body_room);
void record_diff_free(struct st_diff *d);         /* accepts NULL */
/* Bytes the record holds (the struct, heads, bodies, raw copy, replay answers; the
 * diff's small strings are not counted): what a queue bounded in bytes charges for it.
 * Stable while nobody modifies the record. */
size_t record_bytes(const struct st_record *r);
/* The bytes of the record and its request, serverA's answer and raw copy, each part
 * once: a part in the record's room is inside sizeof(*r) (no replay answer or diff):
 * what the capture's held bytes and the replay queue charge for it. */
size_t record_held_bytes(const struct st_record *r);
/* m's part of it, for m = r->req or r->resp: its head and body outside r's room. */
size_t record_msg_held_bytes(const struct st_msg *m);

/* Append decoded body bytes, keeping at most limit (a borrowed body is copied first). */
int record_msg_body_append(struct st_msg *m, const char *data, size_t len, size_t limit);
/* A borrowed body becomes a heap copy of its stored bytes (before the buffer it views
 * goes away). 0, or -ENOMEM with the body dropped (body_stored 0). */
int record_msg_body_own(struct st_msg *m);
/* Copy a parsed head into m->head and repoint hdrs into the copy. */
int record_msg_set_head(struct st_msg *m, const char *head, size_t head_len,
			const struct http1_header *hdrs, size_t nhdrs);
/* Every builder of records (capture, recordings) sets a record's heads through these
 * two: record_msg_set_head for r->req, into r->room when the head and its header array
 * fit there, else its own allocation; the same for r->resp with room for body_room
 * body bytes behind the head (record_msg_set_head_room; 0: none). */
int record_req_set_head(struct st_record *r, const char *head, size_t head_len,
			const struct http1_header *hdrs, size_t nhdrs);
int record_resp_set_head(struct st_record *r, const char *head, size_t head_len,
			 const struct http1_header *hdrs, size_t nhdrs, size_t body_room);
/* r->raw resized to cap bytes as realloc would (NULL on failure, r->raw untouched):
 * a first raw copy goes in r->room when it fits (issue 19: the capture thread's
 * malloc and the replay thread's free of a GET's raw request, across cores), one
 * that outgrows the room moves to the heap. The caller sets r->raw and raw_cap. */
uint8_t *record_raw_realloc(struct st_record *r, size_t cap);
/* r->raw freed, unless it is in r->room; the caller clears r->raw. */
void record_raw_free(struct st_record *r);
/* The same for a message without a head or body yet, with room for body_room body
 * bytes behind the head in the same allocation (body_inline: moved to the heap if it
 * outgrows the room). One malloc for a Content-Length answer instead of two. */
int record_msg_set_head_room(struct st_msg *m, const char *head, size_t head_len,
			     const struct http1_header *hdrs, size_t nhdrs, size_t body_room);

struct pii_cfg;

struct record_json_opts {
	const char *const *redact;   /* lower-case header names to redact, NULL-terminated */
	const struct pii_cfg *pii;   /* --redact-mode/-json/-query/-pattern; NULL: mask headers only */
	size_t body_limit;           /* content is already cut to this; informational */
};

/* Append the record as one JSON object (no newline). */
int record_to_json(const struct st_record *r, const struct record_json_opts *o, struct buf *out);

#endif
