/* Retention without ISM/ILM: the Elasticsearch sink deletes its own daily indices
 * "<prefix>-YYYY.MM.DD" once their whole day is more than --es-retention-days old.
 * Owns: which index names qualify (pure, below) and the hourly list/delete requests. */
#ifndef ST_ES_RETENTION_H
#define ST_ES_RETENTION_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

#define ES_RETENTION_PERIOD_MS (3600u * 1000u)   /* at most one check per hour */
#define ES_RETENTION_MAX_DELETE 64               /* indices per DELETE request */

/* The "index" lines of GET _cat/indices (one name per line, as h=index prints them)
 * -> a comma-separated list in out of the names that are exactly "<prefix>-YYYY.MM.DD"
 * with a valid date whose day ended more than days * 24 h before now (UTC). At most
 * max names; *more is set when further names qualified. Returns how many names were
 * put in out, or -ENOMEM. Other prefixes, longer names ("<prefix>-diff-..."), today's
 * and future days are never picked. */
int es_retention_pick(const char *prefix, int days, time_t now, const char *list, size_t len,
		      struct buf *out, int max, int *more);

struct es_sink;
/* es_retention.c, on the sink's thread (es_internal.h has the state) */
void es_retention_enable(struct es_sink *s);
int es_retention_start(struct es_sink *s, uint64_t now_ms);
void es_handle_retention(struct es_sink *s, int curl_code, long code);

#endif
