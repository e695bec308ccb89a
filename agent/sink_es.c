/* Elasticsearch / OpenSearch bulk forwarder.
 *
 * Indices: one per UTC day, "<index_prefix>-YYYY.MM.DD" from the record's
 * @timestamp. Daily indices work on every supported version (Elasticsearch 7.x and
 * 8.x, OpenSearch 1.x and 2.x; no _type anywhere) and are easy to drop by age. The
 * mappings live in a component template "<prefix>-mappings" used by the composable
 * index template "<prefix>" (pattern "<prefix>-*"); Elasticsearch before 7.8 gets
 * the same body as a legacy _template.
 *
 * Delivery: every record is a bulk "create" with _id = event.id, so a record sent
 * twice (a retry, or a re-read of the spool after a crash) comes back as 409, which
 * counts as delivered: retries never duplicate.
 *
 * Flow: es_sink_submit copies the record into a memory queue (bounded by
 * mem_queue_bytes; past it the caller appends to the spool). The sink thread sends
 * the spool first (oldest data, in order), then the memory queue, one bulk request
 * at a time on a keep-alive connection (libcurl multi). While the cluster is down,
 * in back-off or slow, the thread moves the memory queue to the spool, so a long
 * outage costs disk, not memory. A spool batch is acked only once every item in it
 * is final (indexed, duplicate or dead-lettered).
 *
 * Errors: whole request - network errors, timeouts, 429, 5xx and other non-400
 * 4xx (401/403/404: a cluster being fixed) are retried with exponential back-off
 * and jitter; 400 and 413 split the batch in halves down to one item, which then
 * goes to the dead-letter file. An unparsable 2xx answer is retried. Per item -
 * 429 and 5xx are retried with back-off; 409 is a duplicate; any other status
 * writes the item and the reason to the dead-letter file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zlib.h>

#include "buf.h"
#include "log.h"
#include "sink_es.h"
#include "spool.h"

#define ES_BACKOFF_MIN_MS 100
#define ES_BACKOFF_MAX_MS 30000
#define ES_RESP_MAX (64u << 20)
#define ES_JSON_DEPTH 64
#define ES_SLOW_MS 10000        /* a request in flight this long counts as a slow cluster */

/* One record. The id and the JSON follow the struct, each NUL-terminated. */
struct es_item {
	struct es_item *next;
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
	ES_C_N,
};

static const char *const es_ctr_names[ES_C_N] = {
	"submitted", "indexed", "duplicates", "retried", "dead_lettered", "spooled",
	"spool_drops", "bulk_requests", "bulk_bytes", "bulk_bytes_sent", "splits",
	"err_network", "err_timeout", "err_http_429", "err_http_5xx", "err_http_4xx",
	"err_bad_response", "err_item_429", "err_item_5xx", "err_item_4xx",
	"err_dead_letter_write", "setup_failures",
};

struct es_sink {
	struct es_cfg cfg;
	char *url;
	char *prefix;
	char *spool_dir;
	char *dead_letter_path;
	char *ca_file;
	char *auth_user;         /* "user:password" for basic auth */
	char *auth_header;       /* "Authorization: ApiKey ..." */
	struct spool *spool;
	FILE *dead_letter;

	pthread_t thread;
	bool thread_started;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hdr_json, *hdr_bulk;

	/* memory queue, shared with the submitters */
	pthread_mutex_t mu;
	struct es_item *mq_head, *mq_tail;
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
	bool resp_overflow;
	bool ready;              /* probed and templates installed */
	bool healthy;            /* the last request went through */
	bool unreachable;        /* the last request failed below HTTP (refused, timeout) */
	bool legacy_template;
	int backoff_ms;
	uint64_t next_try_ms;
	struct es_batch batch;
	bool have_batch;
	char version[32];
	char distribution[32];
	_Atomic uint64_t last_drop_warn_ms;   /* submitters and the thread both warn */
	unsigned int rand_state;

	_Atomic uint64_t ctr[ES_C_N];
};

static uint64_t es_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void es_inc(struct es_sink *s, enum es_ctr c, uint64_t v)
{
	atomic_fetch_add_explicit(&s->ctr[c], v, memory_order_relaxed);
}

void es_cfg_default(struct es_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->url = "http://127.0.0.1:9200";
	cfg->index_prefix = "shadowtap";
	cfg->batch_bytes = 5u << 20;
	cfg->batch_ms = 1000;
	cfg->spool_dir = geteuid() == 0 ? "/var/lib/shadowtap/spool" : "./spool";
	cfg->spool_max_bytes = 1ull << 30;
	cfg->fsync_policy = "batch";
	cfg->gzip = 1;
	cfg->mem_queue_bytes = 64u << 20;
	cfg->request_timeout_ms = 30000;
}

/* ---- URL and environment ---- */

int es_url_normalize(const char *url, const char *port, char *out, size_t n)
{
	char tmp[1024];
	const char *scheme = "http://", *rest, *hostend, *path, *at, *p;
	bool bare = false;
	size_t hl;
	int w;

	if (port && *port) {
		char *end;
		long v = strtol(port, &end, 10);

		if (*end || v < 1 || v > 65535)
			return -EINVAL;
	}
	if (!url || !*url)
		url = "localhost";
	if (strlen(url) >= sizeof(tmp))
		return -ENAMETOOLONG;
	p = strstr(url, "://");
	if (p) {
		if (!strncasecmp(url, "https://", 8))
			scheme = "https://";
		else if (strncasecmp(url, "http://", 7))
			return -EINVAL;
		rest = p + 3;
	} else {
		bare = true;
		rest = url;
	}
	path = strchr(rest, '/');
	if (!path)
		path = rest + strlen(rest);
	/* user:password@ stays in the host part; credentials belong in the env though */
	at = memchr(rest, '@', (size_t)(path - rest));
	p = at ? at + 1 : rest;
	if (*p == '[') {
		hostend = memchr(p, ']', (size_t)(path - p));
		if (!hostend)
			return -EINVAL;
		hostend++;
	} else {
		hostend = memchr(p, ':', (size_t)(path - p));
		if (!hostend)
			hostend = path;
	}
	if (hostend == p)
		return -EINVAL;
	hl = (size_t)(hostend - rest);
	if (port && *port)
		w = snprintf(tmp, sizeof(tmp), "%s%.*s:%s%s", scheme, (int)hl, rest, port, path);
	else if (*hostend == ':')
		w = snprintf(tmp, sizeof(tmp), "%s%s", scheme, rest);
	else
		w = snprintf(tmp, sizeof(tmp), "%s%.*s%s%s", scheme, (int)hl, rest,
			     bare ? ":9200" : "", path);
	if (w < 0 || (size_t)w >= sizeof(tmp))
		return -ENAMETOOLONG;
	while (w > 0 && tmp[w - 1] == '/')
		tmp[--w] = '\0';
	if ((size_t)w >= n)
		return -ENAMETOOLONG;
	memcpy(out, tmp, (size_t)w + 1);
	return 0;
}

int es_url_from_env(char *out, size_t n)
{
	const char *url = getenv("ELASTICSEARCH_URL");
	const char *port = getenv("ES_PORT");

	if (n)
		out[0] = '\0';
	if ((!url || !*url) && (!port || !*port))
		return 0;
	return es_url_normalize(url, port, out, n);
}

/* A secret from NAME or from the file NAME_FILE (trailing newline removed). */
static char *es_secret(const char *name)
{
	char fname[64], *v = NULL;
	const char *e = getenv(name);
	FILE *f;
	size_t len;

	if (e && *e)
		return strdup(e);
	snprintf(fname, sizeof(fname), "%s_FILE", name);
	e = getenv(fname);
	if (!e || !*e)
		return NULL;
	f = fopen(e, "r");
	if (!f) {
		pr_warn("es: cannot read %s=%s: %s\n", fname, e, strerror(errno));
		return NULL;
	}
	v = calloc(1, 4096);
	if (v && !fgets(v, 4096, f))
		v[0] = '\0';
	fclose(f);
	if (v) {
		len = strlen(v);
		while (len && (v[len - 1] == '\n' || v[len - 1] == '\r'))
			v[--len] = '\0';
	}
	return v;
}

static int es_load_credentials(struct es_sink *s)
{
	char *user = es_secret("ES_USERNAME"), *pass = es_secret("ES_PASSWORD");
	char *key = es_secret("ES_API_KEY");
	int err = 0;

	if (key && *key) {
		if (asprintf(&s->auth_header, "Authorization: ApiKey %s", key) < 0) {
			s->auth_header = NULL;
			err = -ENOMEM;
		}
	} else if (user && *user) {
		if (asprintf(&s->auth_user, "%s:%s", user, pass ? pass : "") < 0) {
			s->auth_user = NULL;
			err = -ENOMEM;
		}
	}
	if (key)
		explicit_bzero(key, strlen(key));
	if (pass)
		explicit_bzero(pass, strlen(pass));
	free(user);
	free(pass);
	free(key);
	return err;
}

/* ---- bulk body ---- */

int es_index_name(char *out, size_t n, const char *prefix, uint64_t ts_ns)
{
	struct tm tm;
	time_t t;
	int w;

	if (ts_ns)
		t = (time_t)(ts_ns / 1000000000ull);
	else
		t = time(NULL);
	gmtime_r(&t, &tm);
	w = snprintf(out, n, "%s-%04d.%02d.%02d", prefix, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	if (w < 0 || (size_t)w >= n)
		return -ENAMETOOLONG;
	return 0;
}

int es_bulk_append(struct buf *b, const char *index, const char *event_id,
		   const char *json, size_t len)
{
	size_t start = b->len, i;
	int err = 0;

	err |= buf_append(b, "{\"create\":{\"_index\":", 20);
	err |= buf_json_str(b, index, strlen(index));
	err |= buf_append(b, ",\"_id\":", 7);
	err |= buf_json_str(b, event_id, strlen(event_id));
	err |= buf_append(b, "}}\n", 3);
	start = b->len;
	err |= buf_append(b, json, len);
	if (err)
		return -ENOMEM;
	/* a raw line break in valid JSON is whitespace; NDJSON cannot carry it */
	for (i = start; i < b->len; i++)
		if (b->data[i] == '\n' || b->data[i] == '\r')
			b->data[i] = ' ';
	return buf_putc(b, '\n') ? -ENOMEM : 0;
}

/* ---- a small JSON reader: enough to walk a bulk response and GET / ---- */

static const char *ej_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at '"'; returns past the closing quote, the raw contents in *s, *sn */
static const char *ej_str(const char *p, const char *e, const char **s, size_t *sn)
{
	const char *q;

	if (p >= e || *p != '"')
		return NULL;
	for (q = p + 1; q < e; q++) {
		if (*q == '\\') {
			q++;
			continue;
		}
		if (*q == '"') {
			if (s) {
				*s = p + 1;
				*sn = (size_t)(q - p - 1);
			}
			return q + 1;
		}
	}
	return NULL;
}

static const char *ej_skip(const char *p, const char *e, int depth)
{
	char close;

	p = ej_ws(p, e);
	if (p >= e || depth > ES_JSON_DEPTH)
		return NULL;
	if (*p == '"')
		return ej_str(p, e, NULL, NULL);
	if (*p == '{' || *p == '[') {
		close = *p == '{' ? '}' : ']';
		p = ej_ws(p + 1, e);
		if (p < e && *p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				p = ej_str(ej_ws(p, e), e, NULL, NULL);
				if (!p)
					return NULL;
				p = ej_ws(p, e);
				if (p >= e || *p != ':')
					return NULL;
				p++;
			}
			p = ej_skip(p, e, depth + 1);
			if (!p)
				return NULL;
			p = ej_ws(p, e);
			if (p >= e)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p++;
		}
	}
	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		while (p < e && (strchr("+-.eE", *p) || (*p >= '0' && *p <= '9')))
			p++;
		return p;
	}
	if (e - p >= 4 && (!memcmp(p, "true", 4) || !memcmp(p, "null", 4)))
		return p + 4;
	if (e - p >= 5 && !memcmp(p, "false", 5))
		return p + 5;
	return NULL;
}

/* Value of member key (length kn) of the object at p: *v..*ve. 0, -ENOENT or -EBADMSG. */
static int ej_member(const char *p, const char *e, const char *key, size_t kn,
		     const char **v, const char **ve)
{
	const char *k, *val;
	size_t kl;

	p = ej_ws(p, e);
	if (p >= e || *p != '{')
		return -EBADMSG;
	p = ej_ws(p + 1, e);
	if (p < e && *p == '}')
		return -ENOENT;
	for (;;) {
		p = ej_str(ej_ws(p, e), e, &k, &kl);
		if (!p)
			return -EBADMSG;
		p = ej_ws(p, e);
		if (p >= e || *p != ':')
			return -EBADMSG;
		val = ej_ws(p + 1, e);
		p = ej_skip(val, e, 1);
		if (!p)
			return -EBADMSG;
		if (kl == kn && !memcmp(k, key, kn)) {
			*v = val;
			*ve = p;
			return 0;
		}
		p = ej_ws(p, e);
		if (p >= e)
			return -EBADMSG;
		if (*p == '}')
			return -ENOENT;
		if (*p != ',')
			return -EBADMSG;
		p++;
	}
}

static int ej_path(const char *body, size_t len, const char *path, const char **v, const char **ve)
{
	const char *p = body, *e = body + len, *seg = path, *dot;
	int err;

	for (;;) {
		dot = strchr(seg, '.');
		err = ej_member(p, e, seg, dot ? (size_t)(dot - seg) : strlen(seg), v, ve);
		if (err || !dot)
			return err;
		p = *v;
		e = *ve;
		seg = dot + 1;
	}
}

int es_json_get_str(const char *body, size_t len, const char *path, char *out, size_t n)
{
	const char *v, *ve, *s;
	size_t sn;
	int err = ej_path(body, len, path, &v, &ve);

	if (err)
		return err;
	if (!ej_str(v, ve, &s, &sn))
		return -EBADMSG;
	if (sn >= n)
		return -ENAMETOOLONG;
	memcpy(out, s, sn);
	out[sn] = '\0';
	return 0;
}

int es_bulk_parse(const char *body, size_t len, struct es_bulk_item *items, size_t max)
{
	const char *p, *arr, *arre, *action, *ae, *v, *ve, *k;
	size_t count = 0;

	if (!body || ej_path(body, len, "items", &arr, &arre))
		return -EBADMSG;
	p = ej_ws(arr, arre);
	if (p >= arre || *p != '[')
		return -EBADMSG;
	p = ej_ws(p + 1, arre);
	if (p < arre && *p == ']')
		return 0;
	for (;;) {
		struct es_bulk_item it = { 0, NULL, 0 };
		long st;
		char *end;

		/* {"create": {...}}: the single member's value is the result */
		p = ej_ws(p, arre);
		if (p >= arre || *p != '{')
			return -EBADMSG;
		k = ej_str(ej_ws(p + 1, arre), arre, NULL, NULL);
		if (!k)
			return -EBADMSG;
		k = ej_ws(k, arre);
		if (k >= arre || *k != ':')
			return -EBADMSG;
		action = ej_ws(k + 1, arre);
		ae = ej_skip(action, arre, 2);
		if (!ae)
			return -EBADMSG;
		if (ej_member(action, ae, "status", 6, &v, &ve))
			return -EBADMSG;
		st = strtol(v, &end, 10);
		if (end != ve || st < 100 || st > 599)
			return -EBADMSG;
		it.status = (int)st;
		if (!ej_member(action, ae, "error", 5, &v, &ve)) {
			it.error = v;
			it.error_len = (size_t)(ve - v);
		}
		if (count < max)
			items[count] = it;
		count++;
		p = ej_skip(p, arre, 1);
		if (!p)
			return -EBADMSG;
		p = ej_ws(p, arre);
		if (p >= arre)
			return -EBADMSG;
		if (*p == ']')
			break;
		if (*p != ',')
			return -EBADMSG;
		p++;
	}
	return count > INT_MAX ? -EBADMSG : (int)count;
}

/* ---- templates ---- */

static int es_build_template_body(struct es_sink *s, struct buf *b, bool component)
{
	static const char body_map[] =
		"{\"properties\":{\"bytes\":{\"type\":\"long\"},"
		"\"content\":{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":\"keyword\",\"ignore_above\":256}}},"
		"\"encoding\":{\"type\":\"keyword\"},\"truncated\":{\"type\":\"boolean\"}}}";
	static const char hdr_map[] = "{\"type\":\"object\",\"dynamic\":true}";
	static const char kw[] = "{\"type\":\"keyword\",\"ignore_above\":1024}";
	static const char lng[] = "{\"type\":\"long\"}";
	static const char bln[] = "{\"type\":\"boolean\"}";
	static const char in[] = "{\"type\":\"integer\"}";
	int err = 0;

	buf_reset(b);
	if (component)
		err |= buf_printf(b, "{\"template\":{");
	else if (s->legacy_template)
		err |= buf_printf(b, "{\"index_patterns\":[\"%s-*\"],\"order\":10,", s->prefix);
	err |= buf_printf(b,
		"\"settings\":{\"index\":{\"number_of_shards\":1,\"number_of_replicas\":0,"
		"\"refresh_interval\":\"1s\",\"mapping\":{\"total_fields\":{\"limit\":5000}}}},"
		"\"mappings\":{\"dynamic_templates\":["
		"{\"headers\":{\"path_match\":\"*headers.*\",\"match_mapping_type\":\"string\","
		"\"mapping\":{\"type\":\"keyword\",\"ignore_above\":2048}}},"
		"{\"strings\":{\"match_mapping_type\":\"string\",\"mapping\":%s}}],"
		"\"properties\":{"
		"\"@timestamp\":{\"type\":\"date\"},"
		"\"event\":{\"properties\":{\"id\":%s,\"duration\":%s,\"kind\":%s,\"dataset\":%s}},"
		"\"source\":{\"properties\":{\"ip\":{\"type\":\"ip\"},\"port\":%s}},"
		"\"destination\":{\"properties\":{\"ip\":{\"type\":\"ip\"},\"port\":%s}},"
		"\"network\":{\"properties\":{\"transport\":%s,\"type\":%s,\"connection_id\":%s,\"request_index\":%s}},"
		"\"url\":{\"properties\":{\"original\":{\"type\":\"keyword\",\"ignore_above\":8191,"
		"\"fields\":{\"text\":{\"type\":\"text\"}}},\"path\":%s,\"query\":%s}},",
		kw, kw, lng, kw, kw, in, in, kw, kw, kw, lng, kw, kw);
	err |= buf_printf(b,
		"\"http\":{\"properties\":{\"version\":%s,"
		"\"request\":{\"properties\":{\"method\":%s,\"bytes\":%s,\"headers\":%s,\"body\":%s}},"
		"\"response\":{\"properties\":{\"status_code\":%s,\"bytes\":%s,\"headers\":%s,\"body\":%s}}}},"
		"\"replay\":{\"properties\":{\"target\":%s,\"skipped\":%s,\"error\":%s,\"status_code\":%s,"
		"\"duration\":%s,\"headers\":%s,\"body\":%s}},",
		kw, kw, lng, hdr_map, body_map, in, lng, hdr_map, body_map,
		kw, kw, kw, in, lng, hdr_map, body_map);
	err |= buf_printf(b,
		"\"diff\":{\"properties\":{\"match\":%s,\"status\":%s,\"body\":%s,\"body_json\":%s,"
		"\"headers\":%s,\"body_paths\":%s,\"reason\":%s}},"
		"\"capture\":{\"properties\":{\"complete\":%s,\"incomplete\":%s,\"gap\":%s,\"gap_bytes\":%s,"
		"\"truncated\":%s,\"malformed\":%s,\"no_response\":%s,\"mid_stream\":%s,\"upgraded\":%s,"
		"\"replay_truncated\":%s}}}}",
		bln, bln, bln, bln, kw, kw, kw, bln, bln, bln, lng, bln, kw, bln, bln, bln, bln);
	if (component)
		err |= buf_printf(b, "},\"_meta\":{\"managed_by\":\"shadowtap\"}}");
	else
		err |= buf_putc(b, '}');
	return err ? -ENOMEM : 0;
}

/* ---- curl plumbing ---- */

static size_t es_write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct es_sink *s = arg;
	size_t n = size * nmemb;

	if (s->resp.len + n > ES_RESP_MAX) {
		s->resp_overflow = true;
		return n;
	}
	if (buf_append(&s->resp, p, n))
		s->resp_overflow = true;
	return n;
}

static int es_gzip(const struct buf *in, struct buf *out)
{
	z_stream zs;
	int err = 0, zr;

	memset(&zs, 0, sizeof(zs));
	buf_reset(out);
	if (deflateInit2(&zs, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	if (buf_reserve(out, deflateBound(&zs, in->len) + 16)) {
		err = -ENOMEM;
		goto out;
	}
	zs.next_in = (Bytef *)in->data;
	zs.avail_in = (uInt)in->len;
	zs.next_out = (Bytef *)out->data;
	zs.avail_out = (uInt)(out->cap);
	zr = deflate(&zs, Z_FINISH);
	if (zr != Z_STREAM_END) {
		err = -EIO;
		goto out;
	}
	out->len = zs.total_out;
out:
	deflateEnd(&zs);
	return err;
}

static int es_send(struct es_sink *s, enum es_req kind, const char *method, const char *path)
{
	char url[2048];
	const struct buf *body = &s->req_body;
	bool gz = false;
	CURLMcode mc;

	snprintf(url, sizeof(url), "%s%s", s->url, path);
	curl_easy_reset(s->easy);
	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)s->cfg.request_timeout_ms);
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, es_write_cb);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "shadowtap");
	if (s->ca_file)
		curl_easy_setopt(s->easy, CURLOPT_CAINFO, s->ca_file);
	if (s->cfg.insecure) {
		curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(s->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (s->auth_user) {
		curl_easy_setopt(s->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(s->easy, CURLOPT_USERPWD, s->auth_user);
	}
	if (kind == ES_REQ_BULK && s->cfg.gzip && !es_gzip(&s->req_body, &s->req_gz)) {
		body = &s->req_gz;
		gz = true;
	}
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, gz ? s->hdr_bulk : s->hdr_json);
	if (!strcmp(method, "GET")) {
		curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body->data ? body->data : "");
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	}
	buf_reset(&s->resp);
	s->resp_overflow = false;
	mc = curl_multi_add_handle(s->multi, s->easy);
	if (mc != CURLM_OK) {
		pr_warn("es: cannot start a request: %s\n", curl_multi_strerror(mc));
		return -EIO;
	}
	s->req = kind;
	s->req_started_ms = es_now_ms();
	if (kind == ES_REQ_BULK) {
		es_inc(s, ES_C_BULK_REQUESTS, 1);
		es_inc(s, ES_C_BULK_BYTES, s->req_body.len);
		es_inc(s, ES_C_BULK_BYTES_SENT, body->len);
	}
	return 0;
}

/* ---- back-off ---- */

static void es_fail(struct es_sink *s)
{
	int d;

	s->healthy = false;
	if (s->backoff_ms < ES_BACKOFF_MIN_MS)
		s->backoff_ms = ES_BACKOFF_MIN_MS;
	else if (s->backoff_ms < ES_BACKOFF_MAX_MS)
		s->backoff_ms *= 2;
	if (s->backoff_ms > ES_BACKOFF_MAX_MS)
		s->backoff_ms = ES_BACKOFF_MAX_MS;
	/* jitter in [d/2, d): many agents must not hammer a recovering cluster in step */
	d = s->backoff_ms / 2 + (int)(rand_r(&s->rand_state) % (unsigned int)(s->backoff_ms / 2 + 1));
	s->next_try_ms = es_now_ms() + (uint64_t)d;
}

static void es_ok(struct es_sink *s)
{
	s->healthy = true;
	s->unreachable = false;
	s->backoff_ms = 0;
	s->next_try_ms = 0;
}

/* ---- items, queue, spool ---- */

static struct es_item *es_item_new(const char *id, uint64_t ts_ns, const char *json, size_t len)
{
	size_t idlen = strlen(id);
	struct es_item *it = malloc(sizeof(*it) + idlen + 1 + len + 1);

	if (!it)
		return NULL;
	it->next = NULL;
	it->ts_ns = ts_ns;
	it->len = len;
	memcpy(it->id, id, idlen + 1);
	it->json = it->id + idlen + 1;
	memcpy(it->json, json, len);
	it->json[len] = '\0';
	return it;
}

static void es_warn_drop(struct es_sink *s, const char *why)
{
	uint64_t now = es_now_ms(), last = atomic_load(&s->last_drop_warn_ms);

	if (last && now - last < 10000)
		return;
	if (!atomic_compare_exchange_strong(&s->last_drop_warn_ms, &last, now))
		return;
	pr_warn("es: record dropped: %s (see spool_drops)\n", why);
}

static void es_spool_item(struct es_sink *s, const char *id, uint64_t ts_ns, const char *json, size_t len)
{
	int err = s->spool ? spool_append(s->spool, id, ts_ns, json, len) : -ENODEV;

	if (!err) {
		es_inc(s, ES_C_SPOOLED, 1);
		return;
	}
	es_inc(s, ES_C_SPOOL_DROPS, 1);
	es_warn_drop(s, err == -ENOSPC ? "spool full" : err == -ENODEV ? "no spool" : "spool write failed");
}

void es_sink_submit(struct es_sink *s, const char *event_id, uint64_t ts_ns, const char *json, size_t len)
{
	struct es_item *it;
	bool wake = false, spool = false;

	if (!s || !event_id || !json)
		return;
	es_inc(s, ES_C_SUBMITTED, 1);
	pthread_mutex_lock(&s->mu);
	if (s->mq_bytes + len > s->cfg.mem_queue_bytes || s->stopping) {
		spool = true;
	} else {
		it = es_item_new(event_id, ts_ns, json, len);
		if (!it) {
			spool = true;
		} else {
			if (!s->mq_head)
				s->mq_first_ms = es_now_ms();
			if (s->mq_tail)
				s->mq_tail->next = it;
			else
				s->mq_head = it;
			s->mq_tail = it;
			wake = s->mq_bytes < s->cfg.batch_bytes && s->mq_bytes + len >= s->cfg.batch_bytes;
			s->mq_bytes += len;
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (spool)
		es_spool_item(s, event_id, ts_ns, json, len);
	if (wake)
		curl_multi_wakeup(s->multi);
}

/* Detach up to max_bytes (all with max_bytes 0) from the memory queue. */
static struct es_item *es_mq_take(struct es_sink *s, size_t max_bytes)
{
	struct es_item *head, *it, *prev = NULL;
	size_t bytes = 0;

	pthread_mutex_lock(&s->mu);
	head = s->mq_head;
	for (it = head; it; prev = it, it = it->next) {
		if (max_bytes && bytes && bytes + it->len > max_bytes)
			break;
		bytes += it->len;
	}
	if (it) {
		prev->next = NULL;
		s->mq_head = it;
		s->mq_first_ms = es_now_ms();
	} else {
		s->mq_head = s->mq_tail = NULL;
	}
	s->mq_bytes -= bytes;
	pthread_mutex_unlock(&s->mu);
	return head;
}

static void es_mq_to_spool(struct es_sink *s)
{
	struct es_item *it = es_mq_take(s, 0), *next;
	bool any = it != NULL;

	for (; it; it = next) {
		next = it->next;
		es_spool_item(s, it->id, it->ts_ns, it->json, it->len);
		free(it);
	}
	if (any && s->spool)
		spool_sync(s->spool);
}

static int es_vec_push(struct es_item ***v, size_t *n, size_t *cap, struct es_item *it)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		struct es_item **nv = realloc(*v, nc * sizeof(**v));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = it;
	return 0;
}

static void es_batch_clear(struct es_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->items[i]);
	for (i = 0; i < b->nretry; i++)
		free(b->retry[i]);
	b->n = b->nretry = b->next = b->sent = b->bytes = 0;
	b->chunk = 0;
	b->from_spool = false;
}

static void es_batch_free(struct es_batch *b)
{
	es_batch_clear(b);
	free(b->items);
	free(b->retry);
	memset(b, 0, sizeof(*b));
}

/* Fill the batch from the spool; true when it holds something to send. */
static bool es_batch_from_spool(struct es_sink *s)
{
	struct es_batch *b = &s->batch;
	struct spool_entry e;
	struct spool_pos pos, start;
	int r;

	if (!s->spool || spool_empty(s->spool))
		return false;
	spool_tell(s->spool, &start);
	while (b->bytes < s->cfg.batch_bytes) {
		struct es_item *it;

		r = spool_read(s->spool, &e);
		if (r <= 0)
			break;
		it = es_item_new(e.event_id, e.ts_ns, e.json, e.len);
		spool_entry_free(&e);
		if (!it || es_vec_push(&b->items, &b->n, &b->cap, it)) {
			free(it);
			break;
		}
		b->bytes += it->len;
	}
	spool_tell(s->spool, &pos);
	if (!b->n) {
		/* only skipped (torn/corrupt) bytes: move the ack past them */
		spool_ack(s->spool, &pos);
		return false;
	}
	b->from_spool = true;
	b->end = pos;
	b->chunk = b->n;
	s->have_batch = true;
	return true;
}

static bool es_batch_from_mq(struct es_sink *s)
{
	struct es_batch *b = &s->batch;
	struct es_item *it = es_mq_take(s, s->cfg.batch_bytes), *next;

	for (; it; it = next) {
		next = it->next;
		if (es_vec_push(&b->items, &b->n, &b->cap, it)) {
			es_spool_item(s, it->id, it->ts_ns, it->json, it->len);
			free(it);
			continue;
		}
		b->bytes += it->len;
	}
	if (!b->n)
		return false;
	b->from_spool = false;
	b->chunk = b->n;
	s->have_batch = true;
	return true;
}

static void es_dead_letter(struct es_sink *s, const struct es_item *it, int status,
			   const char *reason, size_t reason_len, bool reason_is_json)
{
	struct buf line = { 0 };
	char index[256];
	struct timespec ts;
	int err = 0;

	es_inc(s, ES_C_DEAD_LETTERED, 1);
	if (!s->dead_letter) {
		s->dead_letter = fopen(s->dead_letter_path, "a");
		if (!s->dead_letter) {
			es_inc(s, ES_C_ERR_DEAD_LETTER_WRITE, 1);
			pr_warn("es: cannot open the dead-letter file %s: %s\n", s->dead_letter_path,
				strerror(errno));
			return;
		}
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	es_index_name(index, sizeof(index), s->prefix, it->ts_ns);
	err |= buf_printf(&line, "{\"time\":%lld,\"status\":%d,\"index\":", (long long)ts.tv_sec, status);
	err |= buf_json_str(&line, index, strlen(index));
	err |= buf_append(&line, ",\"id\":", 6);
	err |= buf_json_str(&line, it->id, strlen(it->id));
	err |= buf_append(&line, ",\"error\":", 9);
	if (reason_is_json)
		err |= buf_append(&line, reason, reason_len);
	else
		err |= buf_json_str(&line, reason, reason_len);
	err |= buf_append(&line, ",\"doc\":", 7);
	err |= buf_append(&line, it->json, it->len);
	err |= buf_append(&line, "}\n", 2);
	if (err || fwrite(line.data, 1, line.len, s->dead_letter) != line.len || fflush(s->dead_letter))
		es_inc(s, ES_C_ERR_DEAD_LETTER_WRITE, 1);
	buf_free(&line);
}

/* The batch is finished: ack its spool range and free it. */
static void es_batch_done(struct es_sink *s)
{
	if (s->batch.from_spool && s->spool)
		spool_ack(s->spool, &s->batch.end);
	es_batch_clear(&s->batch);
	s->have_batch = false;
}

/* The remaining items of a memory batch go to the spool. A spool batch stays for a
 * later attempt: its records are still in the spool, unacknowledged. */
static void es_batch_park(struct es_sink *s)
{
	struct es_batch *b = &s->batch;
	size_t i;

	if (b->from_spool) {
		/* on ENOMEM the record is still unacknowledged in the spool: a restart resends it */
		for (i = 0; i < b->nretry; i++)
			if (es_vec_push(&b->items, &b->n, &b->cap, b->retry[i]))
				free(b->retry[i]);
		b->nretry = 0;
		return;
	}
	for (i = b->next; i < b->n; i++)
		es_spool_item(s, b->items[i]->id, b->items[i]->ts_ns, b->items[i]->json, b->items[i]->len);
	for (i = 0; i < b->nretry; i++)
		es_spool_item(s, b->retry[i]->id, b->retry[i]->ts_ns, b->retry[i]->json, b->retry[i]->len);
	if (s->spool)
		spool_sync(s->spool);
	es_batch_clear(b);
	s->have_batch = false;
}

/* Move to the retry list when the batch was all sent: the retries become the batch. */
static void es_batch_advance(struct es_sink *s)
{
	struct es_batch *b = &s->batch;
	size_t i;

	if (b->next < b->n)
		return;
	if (!b->nretry) {
		es_batch_done(s);
		return;
	}
	if (!b->from_spool) {
		es_fail(s);
		es_batch_park(s);
		return;
	}
	/* items already final were indexed, duplicates or dead-lettered */
	for (i = 0; i < b->n; i++) {
		free(b->items[i]);
		b->items[i] = NULL;
	}
	b->n = 0;
	for (i = 0; i < b->nretry; i++)
		if (es_vec_push(&b->items, &b->n, &b->cap, b->retry[i]))
			free(b->retry[i]);
	b->nretry = 0;
	b->next = 0;
	b->chunk = b->n;
	es_fail(s);
}

static int es_send_batch(struct es_sink *s)
{
	struct es_batch *b = &s->batch;
	char index[256];
	size_t i, end;

	if (b->next >= b->n)
		return -EINVAL;
	if (!b->chunk)
		b->chunk = b->n;
	end = b->next + b->chunk;
	if (end > b->n)
		end = b->n;
	buf_reset(&s->req_body);
	for (i = b->next; i < end; i++) {
		if (es_index_name(index, sizeof(index), s->prefix, b->items[i]->ts_ns) ||
		    es_bulk_append(&s->req_body, index, b->items[i]->id, b->items[i]->json, b->items[i]->len))
			return -ENOMEM;
	}
	b->sent = end - b->next;
	return es_send(s, ES_REQ_BULK, "POST", "/_bulk");
}

/* A bulk answer with HTTP status code: the whole request failed or items did. */
static void es_handle_bulk(struct es_sink *s, CURLcode cc, long code)
{
	struct es_batch *b = &s->batch;
	struct es_bulk_item *res = NULL;
	size_t i, n = b->sent;
	int got;
	bool any_retry = false;

	s->unreachable = cc != CURLE_OK;
	if (cc != CURLE_OK) {
		es_inc(s, cc == CURLE_OPERATION_TIMEDOUT ? ES_C_ERR_TIMEOUT : ES_C_ERR_NETWORK, 1);
		pr_debug("es: bulk request failed: %s\n", curl_easy_strerror(cc));
		goto retry_whole;
	}
	if (code == 413 || code == 400) {
		es_inc(s, ES_C_ERR_HTTP_4XX, 1);
		if (n > 1) {
			b->chunk = n / 2;
			es_inc(s, ES_C_SPLITS, 1);
			return;
		}
		es_dead_letter(s, b->items[b->next], (int)code,
			       s->resp.len ? s->resp.data : "request rejected",
			       s->resp.len ? s->resp.len : 16, false);
		b->next++;
		es_batch_advance(s);
		return;
	}
	if (code == 429 || code >= 500 || code < 200 || code >= 300) {
		es_inc(s, code == 429 ? ES_C_ERR_HTTP_429 : code >= 500 ? ES_C_ERR_HTTP_5XX : ES_C_ERR_HTTP_4XX, 1);
		pr_debug("es: bulk request answered %ld\n", code);
		goto retry_whole;
	}
	res = calloc(n ? n : 1, sizeof(*res));
	if (!res)
		goto retry_whole;
	got = s->resp_overflow ? -EBADMSG : es_bulk_parse(s->resp.data, s->resp.len, res, n);
	if (got != (int)n) {
		es_inc(s, ES_C_ERR_BAD_RESPONSE, 1);
		pr_debug("es: unusable bulk response (%d items for %zu)\n", got, n);
		goto retry_whole;
	}
	for (i = 0; i < n; i++) {
		struct es_item *it = b->items[b->next + i];
		int st = res[i].status;

		if (st >= 200 && st < 300) {
			es_inc(s, ES_C_INDEXED, 1);
		} else if (st == 409) {
			es_inc(s, ES_C_DUPLICATES, 1);
		} else if (st == 429 || st >= 500) {
			es_inc(s, st == 429 ? ES_C_ERR_ITEM_429 : ES_C_ERR_ITEM_5XX, 1);
			es_inc(s, ES_C_RETRIED, 1);
			if (es_vec_push(&b->retry, &b->nretry, &b->retry_cap, it)) {
				es_spool_item(s, it->id, it->ts_ns, it->json, it->len);
				continue;
			}
			b->items[b->next + i] = NULL;
			any_retry = true;
			continue;
		} else {
			es_inc(s, ES_C_ERR_ITEM_4XX, 1);
			es_dead_letter(s, it, st, res[i].error ? res[i].error : "\"no reason\"",
				       res[i].error ? res[i].error_len : 11, true);
		}
	}
	/* items moved to the retry list were NULLed above; free() of NULL is fine */
	free(res);
	b->next += n;
	/* after a split, grow back slowly: the next items may be just as large */
	if (b->chunk < b->n)
		b->chunk = b->chunk * 2 < b->n ? b->chunk * 2 : b->n;
	if (!any_retry)
		es_ok(s);
	es_batch_advance(s);
	return;
retry_whole:
	free(res);
	es_inc(s, ES_C_RETRIED, n);
	es_fail(s);
	es_batch_park(s);
}

static void es_handle_setup(struct es_sink *s, CURLcode cc, long code)
{
	char num[32];

	s->unreachable = cc != CURLE_OK;
	if (cc != CURLE_OK || code < 200 || code >= 300) {
		if (cc != CURLE_OK)
			es_inc(s, cc == CURLE_OPERATION_TIMEDOUT ? ES_C_ERR_TIMEOUT : ES_C_ERR_NETWORK, 1);
		es_inc(s, ES_C_SETUP_FAILURES, 1);
		if (atomic_load(&s->ctr[ES_C_SETUP_FAILURES]) == 1)
			pr_warn("es: %s not ready (%s); records spool until it is\n", s->url,
				cc != CURLE_OK ? curl_easy_strerror(cc) : "http error");
		pr_debug("es: setup step %d failed: curl %d http %ld: %.*s\n", s->req, cc, code,
			 (int)(s->resp.len > 300 ? 300 : s->resp.len), s->resp.data ? s->resp.data : "");
		s->req = ES_REQ_NONE;
		es_fail(s);
		return;
	}
	switch (s->req) {
	case ES_REQ_PROBE: {
		int major = 0, minor = 0;

		if (es_json_get_str(s->resp.data, s->resp.len, "version.number", num, sizeof(num))) {
			es_inc(s, ES_C_ERR_BAD_RESPONSE, 1);
			s->req = ES_REQ_NONE;
			es_fail(s);
			return;
		}
		snprintf(s->version, sizeof(s->version), "%s", num);
		if (es_json_get_str(s->resp.data, s->resp.len, "version.distribution",
				    s->distribution, sizeof(s->distribution)))
			snprintf(s->distribution, sizeof(s->distribution), "elasticsearch");
		sscanf(num, "%d.%d", &major, &minor);
		s->legacy_template = strcmp(s->distribution, "opensearch") &&
				     (major < 7 || (major == 7 && minor < 8));
		pr_info("es: %s is %s %s\n", s->url, s->distribution, s->version);
		s->req = ES_REQ_NONE;
		if (s->legacy_template) {
			char path[300];

			snprintf(path, sizeof(path), "/_template/%s", s->prefix);
			if (es_build_template_body(s, &s->req_body, false) ||
			    es_send(s, ES_REQ_TEMPLATE, "PUT", path))
				es_fail(s);
		} else {
			char path[300];

			snprintf(path, sizeof(path), "/_component_template/%s-mappings", s->prefix);
			if (es_build_template_body(s, &s->req_body, true) ||
			    es_send(s, ES_REQ_COMPONENT, "PUT", path))
				es_fail(s);
		}
		return;
	}
	case ES_REQ_COMPONENT: {
		char path[300];

		buf_reset(&s->req_body);
		s->req = ES_REQ_NONE;
		snprintf(path, sizeof(path), "/_index_template/%s", s->prefix);
		if (buf_printf(&s->req_body, "{\"index_patterns\":[\"%s-*\"],\"composed_of\":[\"%s-mappings\"],"
			       "\"priority\":200}", s->prefix, s->prefix) ||
		    es_send(s, ES_REQ_TEMPLATE, "PUT", path))
			es_fail(s);
		return;
	}
	case ES_REQ_TEMPLATE:
		s->req = ES_REQ_NONE;
		s->ready = true;
		es_ok(s);
		pr_info("es: templates for %s-* installed\n", s->prefix);
		return;
	default:
		s->req = ES_REQ_NONE;
		return;
	}
}

static void es_collect(struct es_sink *s)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(s->multi, &left))) {
		long code = 0;
		CURLcode cc;
		enum es_req kind = s->req;

		if (m->msg != CURLMSG_DONE)
			continue;
		cc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		curl_multi_remove_handle(s->multi, m->easy_handle);
		if (kind == ES_REQ_BULK) {
			s->req = ES_REQ_NONE;
			es_handle_bulk(s, cc, code);
		} else {
			es_handle_setup(s, cc, code);
		}
	}
}

static bool es_mq_due(struct es_sink *s, uint64_t now, bool stopping)
{
	bool due;

	pthread_mutex_lock(&s->mu);
	due = s->mq_head && (stopping || s->mq_bytes >= s->cfg.batch_bytes ||
			     now - s->mq_first_ms >= (uint64_t)s->cfg.batch_ms);
	pthread_mutex_unlock(&s->mu);
	return due;
}

/* Nothing left to do, or nothing that can be done: the cluster cannot be reached
 * and every record is already on disk, so waiting out the timeout gains nothing. */
static bool es_idle(struct es_sink *s)
{
	bool empty;

	pthread_mutex_lock(&s->mu);
	empty = !s->mq_head;
	pthread_mutex_unlock(&s->mu);
	if (!empty || s->req != ES_REQ_NONE)
		return false;
	if (s->unreachable && (!s->have_batch || s->batch.from_spool))
		return true;
	return !s->have_batch && (!s->spool || spool_empty(s->spool));
}

static void *es_thread(void *arg)
{
	struct es_sink *s = arg;

	for (;;) {
		uint64_t now = es_now_ms(), deadline;
		bool stopping;
		int timeout = 50, nrun;

		pthread_mutex_lock(&s->mu);
		stopping = s->stopping;
		deadline = s->stop_deadline_ms;
		pthread_mutex_unlock(&s->mu);
		if (stopping && (now >= deadline || es_idle(s)))
			break;

		/* down, backing off or slow: keep memory for fresh records, park the rest */
		if ((!s->ready || !s->healthy ||
		     (s->req == ES_REQ_BULK && now - s->req_started_ms > ES_SLOW_MS)) &&
		    es_mq_due(s, now, stopping))
			es_mq_to_spool(s);

		if (s->req == ES_REQ_NONE && now >= s->next_try_ms) {
			if (!s->ready) {
				buf_reset(&s->req_body);
				if (es_send(s, ES_REQ_PROBE, "GET", "/"))
					es_fail(s);
			} else if (s->have_batch || es_batch_from_spool(s) ||
				   (es_mq_due(s, now, stopping) && es_batch_from_mq(s))) {
				if (es_send_batch(s)) {
					es_fail(s);
					es_batch_park(s);
				}
			}
		}
		if (s->req == ES_REQ_NONE && s->next_try_ms > now && s->next_try_ms - now < (uint64_t)timeout)
			timeout = (int)(s->next_try_ms - now);
		curl_multi_poll(s->multi, NULL, 0, timeout > 0 ? timeout : 1, NULL);
		curl_multi_perform(s->multi, &nrun);
		es_collect(s);
	}

	/* out of time: whatever is left is kept on disk for the next start */
	if (s->req != ES_REQ_NONE) {
		curl_multi_remove_handle(s->multi, s->easy);
		s->req = ES_REQ_NONE;
	}
	if (s->have_batch) {
		if (s->batch.from_spool) {
			es_batch_clear(&s->batch);
			s->have_batch = false;
		} else {
			es_batch_park(s);
		}
	}
	es_mq_to_spool(s);
	return NULL;
}

int es_sink_start(struct es_sink **out, const struct es_cfg *cfg)
{
	struct spool_cfg scfg = { 0 };
	struct es_sink *s;
	enum spool_fsync fs;
	char url[1024];
	int err;

	*out = NULL;
	err = spool_fsync_parse(cfg->fsync_policy, &fs);
	if (err) {
		pr_warn("es: bad fsync policy '%s' (always, batch or never)\n", cfg->fsync_policy);
		return err;
	}
	err = es_url_normalize(cfg->url, NULL, url, sizeof(url));
	if (err) {
		pr_warn("es: bad url '%s'\n", cfg->url ? cfg->url : "");
		return err;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	s->cfg = *cfg;
	if (!s->cfg.batch_bytes)
		s->cfg.batch_bytes = 5u << 20;
	if (s->cfg.batch_ms <= 0)
		s->cfg.batch_ms = 1000;
	if (!s->cfg.mem_queue_bytes)
		s->cfg.mem_queue_bytes = 64u << 20;
	if (s->cfg.request_timeout_ms <= 0)
		s->cfg.request_timeout_ms = 30000;
	s->rand_state = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	s->url = strdup(url);
	s->prefix = strdup(cfg->index_prefix && *cfg->index_prefix ? cfg->index_prefix : "shadowtap");
	s->spool_dir = strdup(cfg->spool_dir && *cfg->spool_dir ? cfg->spool_dir : "./spool");
	s->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
	if (cfg->dead_letter && *cfg->dead_letter)
		s->dead_letter_path = strdup(cfg->dead_letter);
	else if (s->spool_dir && asprintf(&s->dead_letter_path, "%s/dead-letter.ndjson", s->spool_dir) < 0)
		s->dead_letter_path = NULL;
	if (!s->url || !s->prefix || !s->spool_dir || !s->dead_letter_path || (cfg->ca_file && !s->ca_file)) {
		err = -ENOMEM;
		goto fail;
	}
	s->cfg.url = s->url;
	s->cfg.index_prefix = s->prefix;
	s->cfg.spool_dir = s->spool_dir;
	s->cfg.dead_letter = s->dead_letter_path;
	s->cfg.ca_file = s->ca_file;
	err = es_load_credentials(s);
	if (err)
		goto fail;
	scfg.dir = s->spool_dir;
	scfg.max_bytes = cfg->spool_max_bytes ? cfg->spool_max_bytes : (1ull << 30);
	scfg.fsync = fs;
	err = spool_open(&s->spool, &scfg);
	if (err) {
		pr_warn("es: cannot open the spool in %s: %s\n", s->spool_dir, strerror(-err));
		goto fail;
	}
	if (!spool_empty(s->spool))
		pr_info("es: %llu bytes left in the spool from an earlier run\n",
			(unsigned long long)spool_pending_bytes(s->spool));
	s->multi = curl_multi_init();
	s->easy = curl_easy_init();
	s->hdr_json = curl_slist_append(NULL, "Content-Type: application/json");
	s->hdr_bulk = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
	if (s->hdr_bulk)
		s->hdr_bulk = curl_slist_append(s->hdr_bulk, "Content-Encoding: gzip");
	if (s->auth_header) {
		s->hdr_json = curl_slist_append(s->hdr_json, s->auth_header);
		s->hdr_bulk = curl_slist_append(s->hdr_bulk, s->auth_header);
	}
	if (!s->multi || !s->easy || !s->hdr_json || !s->hdr_bulk) {
		err = -ENOMEM;
		goto fail;
	}
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, 4L);
	err = -pthread_create(&s->thread, NULL, es_thread, s);
	if (err)
		goto fail;
	s->thread_started = true;
	*out = s;
	return 0;
fail:
	es_sink_free(s);
	return err;
}

void es_sink_stop(struct es_sink *s, int timeout_ms)
{
	if (!s || !s->thread_started)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	s->stop_deadline_ms = es_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_unlock(&s->mu);
	curl_multi_wakeup(s->multi);
	pthread_join(s->thread, NULL);
	s->thread_started = false;
	if (s->spool)
		spool_sync(s->spool);
}

void es_sink_free(struct es_sink *s)
{
	if (!s)
		return;
	es_sink_stop(s, 0);
	es_batch_free(&s->batch);
	if (s->easy)
		curl_easy_cleanup(s->easy);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	curl_slist_free_all(s->hdr_json);
	curl_slist_free_all(s->hdr_bulk);
	spool_close(s->spool);
	if (s->dead_letter)
		fclose(s->dead_letter);
	buf_free(&s->req_body);
	buf_free(&s->req_gz);
	buf_free(&s->resp);
	if (s->auth_user)
		explicit_bzero(s->auth_user, strlen(s->auth_user));
	if (s->auth_header)
		explicit_bzero(s->auth_header, strlen(s->auth_header));
	free(s->auth_user);
	free(s->auth_header);
	free(s->url);
	free(s->prefix);
	free(s->spool_dir);
	free(s->dead_letter_path);
	free(s->ca_file);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void es_sink_print_stats(struct es_sink *s, FILE *f)
{
	struct spool_stats st = { 0 };
	int i;

	if (!s)
		return;
	fprintf(f, "es:");
	for (i = 0; i < ES_C_N; i++) {
		if (i && i % 8 == 0)
			fprintf(f, "\nes:");
		fprintf(f, " %s=%llu", es_ctr_names[i],
			(unsigned long long)atomic_load_explicit(&s->ctr[i], memory_order_relaxed));
	}
	fprintf(f, "\n");
	if (s->spool) {
		spool_get_stats(s->spool, &st);
		fprintf(f, "es: spool_pending_bytes=%llu spool_disk_bytes=%llu spool_segments=%llu "
			"spool_appended=%llu spool_read=%llu spool_corrupt=%llu spool_torn=%llu "
			"spool_full_drops=%llu spool_write_errors=%llu\n",
			(unsigned long long)spool_pending_bytes(s->spool),
			(unsigned long long)st.disk_bytes, (unsigned long long)st.segments,
			(unsigned long long)st.appended, (unsigned long long)st.read,
			(unsigned long long)st.corrupt, (unsigned long long)st.torn,
			(unsigned long long)st.dropped, (unsigned long long)st.write_errors);
	}
	fprintf(f, "es: url=%s server=%s/%s ready=%d\n", s->url,
		s->distribution[0] ? s->distribution : "unknown", s->version[0] ? s->version : "?",
		s->ready ? 1 : 0);
}
