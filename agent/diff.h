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

#endif
