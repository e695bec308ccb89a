/* On-disk FIFO of records waiting for Elasticsearch: append-only segment files of
 * CRC-framed msgpack entries plus a persisted acknowledged position. Owns: its
 * directory's *.seg and ack files. Thread-safe (one internal mutex). */
#ifndef ST_SPOOL_H
#define ST_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum spool_fsync {
	SPOOL_FSYNC_NEVER = 0,   /* leave it to the kernel: survives kill -9, not power loss */
	SPOOL_FSYNC_BATCH = 1,   /* fsync on spool_sync(), segment rotation and every ack */
	SPOOL_FSYNC_ALWAYS = 2,  /* fsync after every append */
};

struct spool_cfg {
	const char *dir;
	uint64_t max_bytes;      /* bytes of segment files on disk, acked or not */
	uint64_t segment_bytes;  /* rotate past this; 0 = min(64 MiB, max_bytes / 8) */
	enum spool_fsync fsync;
};

struct spool_stats {
	uint64_t appended;       /* entries written */
	uint64_t appended_bytes;
	uint64_t dropped;        /* refused at max_bytes (the newest record is dropped) */
	uint64_t dropped_bytes;
	uint64_t write_errors;   /* write()/open() failures; the record is dropped */
	uint64_t read;           /* entries handed to the reader (re-reads count again) */
	uint64_t corrupt;        /* entries skipped: checksum or decode failure */
	uint64_t torn;           /* incomplete entries at the end of a segment (crash) */
	uint64_t acked;          /* spool_ack() calls that moved the position */
	uint64_t disk_bytes;     /* current size of all segment files */
	uint64_t segments;       /* current number of segment files */
	uint64_t ack_recovered;  /* the ack file did not match the segments: replaced */
	uint64_t skipped_segments;   /* missing segment numbers the reader jumped over */
	uint64_t foreign;        /* *.seg names this spool would never make, left alone */
};

/* A position: everything before it has been delivered once it is acked. */
struct spool_pos {
	uint64_t seg;
	uint64_t off;
};

/* One entry as read back; strings are NUL-terminated heap copies. */
struct spool_entry {
	char *event_id;
	uint64_t ts_ns;
	char *json;
	size_t len;
};

struct spool;

int spool_fsync_parse(const char *s, enum spool_fsync *out);   /* 0 or -EINVAL */
/* Opens (creating the directory 0700) and recovers: the reader starts at the
 * persisted ack position, checked against the segments that exist; a torn tail left
 * by a crash is skipped when reached. -EPERM (one line said) for a directory another
 * user owns or others can write, -EBUSY when another agent holds its lock. */
int spool_open(struct spool **out, const struct spool_cfg *cfg);
void spool_close(struct spool *sp);                  /* syncs unless fsync=never; accepts NULL */
/* 0; -ENOSPC when max_bytes would be passed (counted as a drop); -EIO etc. */
int spool_append(struct spool *sp, const char *event_id, uint64_t ts_ns,
		 const char *json, size_t len);
int spool_sync(struct spool *sp);                    /* fsync the active segment (batch policy) */
/* 1 and an entry; 0 when the reader has caught up with the writer; <0 error. */
int spool_read(struct spool *sp, struct spool_entry *e);
void spool_entry_free(struct spool_entry *e);        /* frees the heap parts */
void spool_tell(struct spool *sp, struct spool_pos *pos);   /* reader position */
/* Persist pos as delivered; deletes fully acknowledged segments. */
int spool_ack(struct spool *sp, const struct spool_pos *pos);
void spool_rewind(struct spool *sp);                 /* reader back to the acked position */
bool spool_empty(struct spool *sp);                  /* nothing unacknowledged */
uint64_t spool_pending_bytes(struct spool *sp);      /* bytes after the ack position */
void spool_get_stats(struct spool *sp, struct spool_stats *st);
/* Decode one entry's payload (exposed for tests and fuzzing): 0, or -EBADMSG when
 * it is not exactly [event_id, ts_ns, json]. */
int spool_entry_decode(const void *p, size_t n, struct spool_entry *e);

#endif
