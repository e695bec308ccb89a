/* Elasticsearch/OpenSearch bulk forwarder: its own thread running a libcurl multi
 * loop, with an on-disk spool (spool.c) while the cluster is unreachable, slow or
 * rejecting. Owns: batches, the spool, the dead-letter file.
 * Files: sink_es.c (thread), es_setup.c, es_bulk.c (pure), es_batch.c. */
#ifndef ST_SINK_ES_H
#define ST_SINK_ES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "es_bulk.h"

#define ES_MAX_NODES 16

struct es_cfg {
	const char *url;             /* base URL, e.g. http://127.0.0.1:9200, or several
				      * comma-separated (nodes of one cluster) */
	int sniff;                   /* --es-sniff: add the nodes _nodes/http lists */
	int retention_days;          /* --es-retention-days: ILM/ISM delete after N days, 0 = none */
	size_t body_limit;           /* --es-body-limit: body text per document, 0 = as recorded */
	const char *index_prefix;    /* default "shadowtap" */
	size_t batch_bytes;          /* default 5 MiB */
	int batch_ms;                /* default 1000 */
	const char *spool_dir;       /* default /var/lib/shadowtap/spool (or ./spool when not root) */
	uint64_t spool_max_bytes;    /* default 1 GiB */
	const char *fsync_policy;    /* "always" | "batch" | "never", default "batch" */
	const char *dead_letter;     /* default <spool_dir>/dead-letter.ndjson */
	uint64_t dead_letter_max_bytes; /* rotate to <dead_letter>.1 past it, default 64 MiB, 0 = no cap */
	const char *ca_file;         /* --es-ca */
	int insecure;                /* --es-insecure */
	int gzip;                    /* default 1 */
	size_t mem_queue_bytes;      /* records held in memory before spooling, default 64 MiB */
	int request_timeout_ms;      /* one bulk request, default 30000; past it the batch spools */
	int template_priority;       /* index template priority, default 200; the difference
				      * summaries' "<prefix>-diff" template needs a higher one, as
				      * "<prefix>-*" matches its indices too */
	/* credentials come from the environment or files, never argv:
	 * ES_USERNAME/ES_PASSWORD, ES_API_KEY, or *_FILE variants */
};

struct es_sink;

void es_cfg_default(struct es_cfg *cfg);
/* The URL from ELASTICSEARCH_URL (bare host or full URL) and ES_PORT, as in the
 * GoReplay demo. 0 with out filled, 0 with out[0] == '\0' when unset, or -EINVAL. */
int es_url_from_env(char *out, size_t n);
/* Start the forwarder thread (probes GET /, installs templates asynchronously;
 * an unreachable cluster is not an error: records spool). 0 or negative errno. */
int es_sink_start(struct es_sink **out, const struct es_cfg *cfg);
/* Copy one JSON document. Never blocks on the network. ts_ns is the record's
 * @timestamp as wall-clock ns since the epoch (0: now); it picks the daily index. */
void es_sink_submit(struct es_sink *s, const char *event_id, uint64_t ts_ns, const char *json, size_t len);
/* Flush: deliver what can be delivered within timeout_ms, spool the rest, join.
 * Does not free (counters stay readable for the exit summary). Accepts NULL. */
void es_sink_stop(struct es_sink *s, int timeout_ms);
void es_sink_free(struct es_sink *s);
/* From any thread: a running es_sink_stop ends now, spooling what is in memory (a
 * second SIGINT). Before es_sink_stop it does nothing. Accepts NULL. */
void es_sink_hurry(struct es_sink *s);   /* after es_sink_stop; accepts NULL */
void es_sink_print_stats(struct es_sink *s, FILE *f);

/* URL from ELASTICSEARCH_URL (bare host like "elasticsearch" -> http://elasticsearch:9200,
 * or a full URL) and ES_PORT (replaces or sets the port). 0 (out = "" when neither
 * is set), or negative errno on a bad value or a too small out. */
int es_url_from_env(char *out, size_t n);

/* Internals exposed for tests (the pure bulk helpers are in es_bulk.h). */

/* url (may be NULL) + port (may be NULL) -> normalised base URL without a trailing
 * slash, as es_url_from_env describes. 0 or -EINVAL / -ENAMETOOLONG. */
int es_url_normalize(const char *url, const char *port, char *out, size_t n);

#endif
