/* Internals shared by the Elasticsearch sink's files (sink_es.c, es_setup.c,
 * es_batch.c); nothing outside them includes this. Owns: struct es_sink. */
#ifndef ST_ES_INTERNAL_H
#define ST_ES_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <curl/curl.h>

#include "buf.h"
#include "list.h"
#include "sink_es.h"
#include "spool.h"

/* One record. The id and the JSON follow the struct, each NUL-terminated. */
struct es_item {
	struct list_node node;   /* on es_sink.mq while queued */
	uint64_t ts_ns;
	size_t len;
	char *json;
	char id[];
};

struct es_batch {
	struct es_item **items;
	size_t n, cap;
	size_t next;             /* first item not yet sent */
	size_t chunk;            /* items per request (halved on 400/413) */
	size_t sent;             /* items in the request in flight */
	struct es_item **retry;  /* items to send again after back-off */
	size_t nretry, retry_cap;
	bool from_spool;
	struct spool_pos end;    /* ack this once the batch is done */
	size_t bytes;
};

enum es_req {
	ES_REQ_NONE,
	ES_REQ_PROBE,
	ES_REQ_COMPONENT,
	ES_REQ_TEMPLATE,
	ES_REQ_BULK,
	ES_REQ_SNIFF,
	ES_REQ_RETENTION,
	ES_REQ_RET_LIST,         /* es_retention.c: the agent's own retention */
	ES_REQ_RET_DELETE,
};

/* One node of the cluster. A node that fails a request is out until retry_at_ms,
 * its own back-off doubling on each failure; the others carry on meanwhile. */
struct es_node {
	char *url;               /* no userinfo: printed */
	int backoff_ms;
	uint64_t retry_at_ms;
	_Atomic bool down;
	_Atomic uint64_t requests, failures;
};

enum es_ctr {
	ES_C_SUBMITTED,
	ES_C_INDEXED,
	ES_C_DUPLICATES,
	ES_C_RETRIED,
	ES_C_DEAD_LETTERED,
	ES_C_SPOOLED,
	ES_C_SPOOL_DROPS,
	ES_C_BULK_REQUESTS,
	ES_C_BULK_BYTES,
	ES_C_BULK_BYTES_SENT,
	ES_C_SPLITS,
	ES_C_ERR_NETWORK,
	ES_C_ERR_TIMEOUT,
	ES_C_ERR_HTTP_429,
	ES_C_ERR_HTTP_5XX,
	ES_C_ERR_HTTP_4XX,
	ES_C_ERR_BAD_RESPONSE,
	ES_C_ERR_ITEM_429,
	ES_C_ERR_ITEM_5XX,
	ES_C_ERR_ITEM_4XX,
	ES_C_ERR_DEAD_LETTER_WRITE,
	ES_C_SETUP_FAILURES,
	ES_C_DEAD_LETTER_ROTATIONS,
	ES_C_NODE_FAILURES,
	ES_C_SNIFFED,
	ES_C_BODIES_CUT,
	ES_C_RET_CHECKS,
	ES_C_RET_DELETED,
	ES_C_RET_ERRORS,
	ES_C_RESP_CUT,           /* answers cut at es_resp_cap */
	ES_C_N,
};

struct es_sink {
	struct es_cfg cfg;
	char *url;               /* every node's URL, comma-separated, for messages */
	struct es_node nodes[ES_MAX_NODES];
	_Atomic int nnodes;
	int cur;                 /* node of the request in flight */
	int rr;                  /* round-robin position */
	uint64_t next_sniff_ms;
	char *prefix;
	char *spool_dir;
	char *dead_letter_path;
	char *ca_file;
	char *auth_user;         /* "user:password" for basic auth */
	char *auth_header;       /* "Authorization: ApiKey ..." */
	struct spool *spool;
	FILE *dead_letter;
	uint64_t dead_letter_bytes;  /* size of the open dead-letter file */

	pthread_t thread;
	bool thread_started;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hdr_json, *hdr_bulk;

	/* memory queue, shared with the submitters */
	pthread_mutex_t mu;
	struct list_node mq;     /* es_item, oldest first */
	size_t mq_bytes;
	uint64_t mq_first_ms;    /* when the oldest queued record arrived */
	bool stopping;
	uint64_t stop_deadline_ms;

	/* thread state */
	enum es_req req;
	uint64_t req_started_ms;
	struct buf req_body;     /* NDJSON or template JSON */
	struct buf req_gz;
	struct buf resp;
	size_t resp_cap;         /* es_resp_cap of the request in flight */
	bool resp_overflow;      /* the answer was cut there */
	bool ready;              /* probed and templates installed */
	bool healthy;            /* the last request went through */
	bool unreachable;        /* the last request failed below HTTP (refused, timeout) */
	bool legacy_template;
	bool ilm_ok;             /* Elasticsearch took the ILM policy: templates may name it */
	int backoff_ms;
	uint64_t next_try_ms;
	struct es_batch batch;
	bool have_batch;
	char version[32];
	char distribution[32];
	/* retention by the agent itself (es_retention.c), when the cluster refused the policy */
	bool ret_self;
	bool ret_more;
	int ret_pending;         /* indices in the DELETE in flight */
	uint64_t ret_next_ms;
	_Atomic uint64_t last_drop_warn_ms;   /* submitters and the thread both warn */
	unsigned int rand_state;

	_Atomic uint64_t ctr[ES_C_N];
};

void es_inc(struct es_sink *s, enum es_ctr c, uint64_t v);

/* es_setup.c: credentials from the environment, templates, the set-up requests */
int es_load_credentials(struct es_sink *s);
int es_url_take_userinfo(char *url, char **userpwd);
int es_build_retention(const char *prefix, int days, bool opensearch, struct buf *b);
void es_handle_sniff(struct es_sink *s, CURLcode cc, long code);
int es_node_add(struct es_sink *s, const char *url);
void es_handle_setup(struct es_sink *s, CURLcode cc, long code);

/* sink_es.c: one request on the shared handle; back-off bookkeeping */
int es_send(struct es_sink *s, enum es_req kind, const char *method, const char *path);
/* Bytes read of one answer to a request of kind carrying items documents. */
size_t es_resp_cap(enum es_req kind, size_t items);
/* A transfer curl stopped because the answer passed the cap is an answer (cut, and
 * counted): CURLE_OK; any other result unchanged. */
CURLcode es_resp_result(struct es_sink *s, CURLcode cc);
/* The start of the answer as printable ASCII (others become '?'), for messages. */
const char *es_resp_excerpt(const struct es_sink *s, char *out, size_t n);
void es_fail(struct es_sink *s);
void es_ok(struct es_sink *s);

/* es_batch.c: the memory queue, the spool hand-off, batches and the dead letters */
void es_spool_item(struct es_sink *s, const char *id, uint64_t ts_ns, const char *json, size_t len);
void es_mq_to_spool(struct es_sink *s);
bool es_mq_due(struct es_sink *s, uint64_t now, bool stopping);
int es_vec_push(struct es_item ***v, size_t *n, size_t *cap, struct es_item *it);
void es_batch_clear(struct es_batch *b);
void es_batch_free(struct es_batch *b);
bool es_batch_from_spool(struct es_sink *s);
bool es_batch_from_mq(struct es_sink *s);
void es_dead_letter(struct es_sink *s, const struct es_item *it, int status,
		    const char *reason, size_t reason_len, bool reason_is_json);
void es_batch_done(struct es_sink *s);
void es_batch_park(struct es_sink *s);
void es_batch_advance(struct es_sink *s);

#endif
