/* Comparison of serverA's and serverB's responses: status, headers (minus a list
 * that always differs), body bytes after de-chunking, JSON structurally. */
#ifndef ST_DIFF_H
#define ST_DIFF_H

#include "record.h"

struct diff_cfg {
	const char *const *ignore;   /* lower-case header names, NULL-terminated; NULL = default */
	int max_paths;               /* differing JSON paths listed, default 20 */
};

/* The default ignore list: date, server, ... NULL-terminated */
extern const char *const diff_default_ignore[];

/* Fills a new st_diff from r->resp and r->replay->resp. NULL on allocation failure. */
struct st_diff *diff_compare(const struct st_record *r, const struct diff_cfg *cfg);

/* serverA's answer in r (head, header array, body up to 4 KiB) asked into the cache
 * ahead of diff_compare. The capture thread wrote it, often on the other core, long
 * before serverB answers: read by the diff, it costs one miss after another (the
 * body, the header array, a name in the head), most of the diff's time under load.
 * In two steps so neither waits: diff_prefetch_msg (r->resp's pointers) when
 * serverB's answer is about to be read, diff_prefetch (what they point to) once the
 * read returned, the lines then come in while the answer is parsed. Only hints:
 * nothing is written. */
void diff_prefetch_msg(const struct st_record *r);
void diff_prefetch(const struct st_record *r);

#endif
