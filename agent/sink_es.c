/* Elasticsearch / OpenSearch bulk forwarder: the delivery thread and its libcurl
 * multi loop, request/response handling, back-off; start, stop and counters.
 * Owns: the thread, the curl handles, the request in flight.
 *
 * Set-up (URL, credentials, templates) is es_setup.c; the bulk body and response
 * parsing es_bulk.c; the memory queue, spool hand-off and batches es_batch.c.
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
 * writes the item and the reason to the dead-letter file. */
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
#include "es_internal.h"
#include "es_retention.h"
#include "ownsock.h"
#include "urlsafe.h"
#include "util.h"

#define ES_BACKOFF_MIN_MS 100
#define ES_BACKOFF_MAX_MS 30000
/* What the agent reads of one Elasticsearch answer: 8 MiB, plus 4 KiB per document
 * of a bulk request (a real item answer is 200-300 bytes, an error with its reason
 * about 1 KiB), at most 256 MiB. Past it the transfer is cut at once: an endless or
 * huge answer costs neither more memory nor the rest of --es-timeout. */
#define ES_RESP_BASE     (8u << 20)
#define ES_RESP_PER_ITEM 4096u
#define ES_RESP_MAX      (256u << 20)
#define ES_SLOW_MS 10000        /* a request in flight this long counts as a slow cluster */

static const char *const es_ctr_names[ES_C_N] = {
	"submitted", "indexed", "duplicates", "retried", "dead_lettered", "spooled",
	"spool_drops", "bulk_requests", "bulk_bytes", "bulk_bytes_sent", "splits",
	"err_network", "err_timeout", "err_http_429", "err_http_5xx", "err_http_4xx",
	"err_bad_response", "err_item_429", "err_item_5xx", "err_item_4xx",
	"err_dead_letter_write", "setup_failures", "dead_letter_rotations", "node_failures",
	"sniffed", "bodies_cut", "retention_checks", "retention_deleted", "retention_errors",
	"responses_cut",
};

void es_inc(struct es_sink *s, enum es_ctr c, uint64_t v)
{
	atomic_fetch_add_explicit(&s->ctr[c], v, memory_order_relaxed);
}

/* ---- curl plumbing ---- */

static size_t es_write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct es_sink *s = arg;
	size_t n = size * nmemb;

	if (s->resp.len + n > s->resp_cap || buf_append(&s->resp, p, n)) {
		/* returning less than n makes curl stop with CURLE_WRITE_ERROR */
		s->resp_overflow = true;
		return 0;
	}
	return n;
}

size_t es_resp_cap(enum es_req kind, size_t items)
{
	size_t cap = ES_RESP_BASE;

	if (kind == ES_REQ_BULK)
		cap += items > (ES_RESP_MAX - ES_RESP_BASE) / ES_RESP_PER_ITEM ?
		       ES_RESP_MAX - ES_RESP_BASE : items * ES_RESP_PER_ITEM;
	return cap;
}

CURLcode es_resp_result(struct es_sink *s, CURLcode cc)
{
	/* cut at the cap: the status line and headers came whole, the body is cut */
	if (cc == CURLE_WRITE_ERROR && s->resp_overflow) {
		es_inc(s, ES_C_RESP_CUT, 1);
		pr_debug("es: answer over %zu bytes: cut\n", s->resp_cap);
		return CURLE_OK;
	}
	return cc;
}

const char *es_resp_excerpt(const struct es_sink *s, char *out, size_t n)
{
	size_t i, k = 0;

	/* what a server sends is printed only as printable ASCII: no escape sequences
	 * or line breaks reach the log */
	for (i = 0; s->resp.data && i < s->resp.len && k + 1 < n; i++) {
		unsigned char c = (unsigned char)s->resp.data[i];

		out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (n)
		out[k] = '\0';
	return out;
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

/* The next node for a request: round robin over the nodes that are up; when all
 * are out, the one whose back-off ends first (so one node behaves as before). */
static int es_pick_node(struct es_sink *s)
{
	int n = atomic_load(&s->nnodes), i, k, best = 0;
	uint64_t now = st_mono_ms();

	for (k = 0; k < n; k++) {
		i = (s->rr + k) % n;
		if (!atomic_load(&s->nodes[i].down) || s->nodes[i].retry_at_ms <= now) {
			s->rr = i + 1;
			return i;
		}
	}
	for (i = 1; i < n; i++)
		if (s->nodes[i].retry_at_ms < s->nodes[best].retry_at_ms)
			best = i;
	return best;
}

static bool es_any_node_up(struct es_sink *s)
{
	int n = atomic_load(&s->nnodes), i;
	uint64_t now = st_mono_ms();

	for (i = 0; i < n; i++)
		if (!atomic_load(&s->nodes[i].down) || s->nodes[i].retry_at_ms <= now)
			return true;
	return false;
}

int es_send(struct es_sink *s, enum es_req kind, const char *method, const char *path)
{
	char url[2048];
	const struct buf *body = &s->req_body;
	bool gz = false;
	CURLMcode mc;

	s->cur = es_pick_node(s);
	atomic_fetch_add(&s->nodes[s->cur].requests, 1);
	snprintf(url, sizeof(url), "%s%s", s->nodes[s->cur].url, path);
	curl_easy_reset(s->easy);
	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	ownsock_curl(s->easy);	/* the agent never captures its own connections */
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
	/* a large answer's buffer is not kept for the next, small one */
	if (s->resp.cap > (1u << 20))
		buf_free(&s->resp);
	buf_reset(&s->resp);
	s->resp_overflow = false;
	s->resp_cap = es_resp_cap(kind, kind == ES_REQ_BULK ? s->batch.sent : 0);
	mc = curl_multi_add_handle(s->multi, s->easy);
	if (mc != CURLM_OK) {
		pr_warn("es: cannot start a request: %s\n", curl_multi_strerror(mc));
		return -EIO;
	}
	s->req = kind;
	s->req_started_ms = st_mono_ms();
	if (kind == ES_REQ_BULK) {
		es_inc(s, ES_C_BULK_REQUESTS, 1);
		es_inc(s, ES_C_BULK_BYTES, s->req_body.len);
		es_inc(s, ES_C_BULK_BYTES_SENT, body->len);
	}
	return 0;
}

/* ---- back-off ---- */

void es_fail(struct es_sink *s)
{
	struct es_node *nd = &s->nodes[s->cur];
	int d;

	/* the node is out for its own back-off; with another node up, carry on there
	 * at once: the request is resent whole (create + fixed _id: never twice) */
	es_inc(s, ES_C_NODE_FAILURES, 1);
	atomic_fetch_add(&nd->failures, 1);
	nd->backoff_ms = nd->backoff_ms < 500 ? 500 : nd->backoff_ms < ES_BACKOFF_MAX_MS ?
			 nd->backoff_ms * 2 : ES_BACKOFF_MAX_MS;
	if (nd->backoff_ms > ES_BACKOFF_MAX_MS)
		nd->backoff_ms = ES_BACKOFF_MAX_MS;
	nd->retry_at_ms = st_mono_ms() + (uint64_t)(nd->backoff_ms / 2) +
			  (uint64_t)(rand_r(&s->rand_state) % (unsigned int)(nd->backoff_ms / 2 + 1));
	if (!atomic_exchange(&nd->down, true) && atomic_load(&s->nnodes) > 1)
		pr_warn("es: node %s out after a failed request; retried with back-off\n", nd->url);
	if (atomic_load(&s->nnodes) > 1 && es_any_node_up(s)) {
		s->next_try_ms = 0;
		return;
	}
	s->healthy = false;
	if (s->backoff_ms < ES_BACKOFF_MIN_MS)
		s->backoff_ms = ES_BACKOFF_MIN_MS;
	else if (s->backoff_ms < ES_BACKOFF_MAX_MS)
		s->backoff_ms *= 2;
	if (s->backoff_ms > ES_BACKOFF_MAX_MS)
		s->backoff_ms = ES_BACKOFF_MAX_MS;
	/* jitter in [d/2, d): many agents must not hammer a recovering cluster in step */
	d = s->backoff_ms / 2 + (int)(rand_r(&s->rand_state) % (unsigned int)(s->backoff_ms / 2 + 1));
	s->next_try_ms = st_mono_ms() + (uint64_t)d;
}

void es_ok(struct es_sink *s)
{
	struct es_node *nd = &s->nodes[s->cur];

	if (atomic_exchange(&nd->down, false) && atomic_load(&s->nnodes) > 1)
		pr_info("es: node %s back\n", nd->url);
	nd->backoff_ms = 0;
	nd->retry_at_ms = 0;
	s->healthy = true;
	s->unreachable = false;
	s->backoff_ms = 0;
	s->next_try_ms = 0;
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
	/* answers are matched by position: one for another document means the answer
	 * is not for this request, and counting it would lose or misfile documents */
	for (i = 0; i < n; i++) {
		if (!es_bulk_item_is(&res[i], b->items[b->next + i]->id)) {
			es_inc(s, ES_C_ERR_BAD_RESPONSE, 1);
			pr_debug("es: bulk response item %zu is for another document\n", i);
			goto retry_whole;
		}
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
		cc = es_resp_result(s, m->data.result);
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		curl_multi_remove_handle(s->multi, m->easy_handle);
		if (kind == ES_REQ_BULK) {
			s->req = ES_REQ_NONE;
			es_handle_bulk(s, cc, code);
		} else if (kind == ES_REQ_SNIFF) {
			s->req = ES_REQ_NONE;
			es_handle_sniff(s, cc, code);
		} else if (kind == ES_REQ_RET_LIST || kind == ES_REQ_RET_DELETE) {
			es_handle_retention(s, cc, code);
		} else {
			es_handle_setup(s, cc, code);
		}
	}
}

/* Nothing left to do, or nothing that can be done: the cluster cannot be reached
 * and every record is already on disk, so waiting out the timeout gains nothing. */
static bool es_idle(struct es_sink *s)
{
	bool empty;

	pthread_mutex_lock(&s->mu);
	empty = list_empty(&s->mq);
	pthread_mutex_unlock(&s->mu);
	if (!empty || s->req != ES_REQ_NONE)
		return false;
	if (s->unreachable && (!s->have_batch || s->batch.from_spool))
		return true;
	if (s->ret_self && !s->ret_next_ms)   /* the first retention check is not skipped */
		return false;
	return !s->have_batch && (!s->spool || spool_empty(s->spool));
}

static void *es_thread(void *arg)
{
	struct es_sink *s = arg;

	for (;;) {
		uint64_t now = st_mono_ms(), deadline;
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
			} else if (s->cfg.sniff && now >= s->next_sniff_ms && !stopping) {
				s->next_sniff_ms = now + 60000;
				buf_reset(&s->req_body);
				if (es_send(s, ES_REQ_SNIFF, "GET", "/_nodes/http"))
					es_fail(s);
			} else if (s->ret_self && now >= s->ret_next_ms) {
				es_retention_start(s, now);
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
	char url[1024], *userpwd = NULL, *up;
	const char *p, *c;
	int err;

	*out = NULL;
	err = spool_fsync_parse(cfg->fsync_policy, &fs);
	if (err) {
		pr_warn("es: bad fsync policy '%s' (always, batch or never)\n", cfg->fsync_policy);
		return err;
	}
	/* every URL is checked before anything starts */
	for (p = cfg->url ? cfg->url : ""; ; p = c + 1) {
		char one[1024];
		size_t l;

		c = strchr(p, ',');
		l = c ? (size_t)(c - p) : strlen(p);
		if (l >= sizeof(one) || (memcpy(one, p, l), one[l] = '\0',
					  es_url_normalize(one, NULL, url, sizeof(url)))) {
			pr_warn("es: bad url '%s'\n", url_printable(l < sizeof(one) ? one : "", url, sizeof(url)));
			return -EINVAL;
		}
		if (!c)
			break;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		free(userpwd);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->mu, NULL);
	list_init(&s->mq);
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
	for (p = cfg->url ? cfg->url : ""; ; p = c + 1) {
		char one[1024];
		size_t l;

		c = strchr(p, ',');
		l = c ? (size_t)(c - p) : strlen(p);
		memcpy(one, p, l);
		one[l] = '\0';
		es_url_normalize(one, NULL, url, sizeof(url));
		err = es_url_take_userinfo(url, &up);
		if (err)
			goto fail;
		if (up && !userpwd)
			userpwd = up;
		else if (up) {
			explicit_bzero(up, strlen(up));
			free(up);
		}
		err = es_node_add(s, url);
		if (err && err != -EEXIST)
			goto fail;
		if (!c)
			break;
	}
	{
		struct buf all = { 0 };
		int i;

		for (i = 0; i < s->nnodes; i++)
			if (buf_printf(&all, "%s%s", i ? "," : "", s->nodes[i].url))
				break;
		s->url = all.data ? strndup(all.data, all.len) : NULL;
		buf_free(&all);
	}
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
	if (userpwd) {
		/* the environment wins; the URL's copy is used only when it is alone */
		if (!s->auth_user && !s->auth_header) {
			s->auth_user = userpwd;
			userpwd = NULL;
		}
		pr_warn("es: user:password@ in the URL %s; credentials belong in ES_USERNAME/ES_PASSWORD\n",
			s->auth_user && !userpwd ? "is used" : "is ignored (ES_USERNAME or ES_API_KEY is set)");
		if (userpwd) {
			explicit_bzero(userpwd, strlen(userpwd));
			free(userpwd);
			userpwd = NULL;
		}
	}
	scfg.dir = s->spool_dir;
	scfg.max_bytes = cfg->spool_max_bytes ? cfg->spool_max_bytes : (1ull << 30);
	scfg.fsync = fs;
	err = spool_open(&s->spool, &scfg);
	if (err) {
		if (err != -EPERM && err != -EBUSY)   /* those the spool said in one line */
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
	if (userpwd)
		explicit_bzero(userpwd, strlen(userpwd));
	free(userpwd);
	es_sink_free(s);
	return err;
}

void es_sink_stop(struct es_sink *s, int timeout_ms)
{
	if (!s || !s->thread_started)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	s->stop_deadline_ms = st_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_unlock(&s->mu);
	curl_multi_wakeup(s->multi);
	pthread_join(s->thread, NULL);
	s->thread_started = false;
	if (s->spool)
		spool_sync(s->spool);
}

void es_sink_hurry(struct es_sink *s)
{
	bool stopping;

	if (!s || !s->multi)
		return;
	/* only a stop already under way: before it, the caller's es_sink_stop(s, 0) is */
	pthread_mutex_lock(&s->mu);
	stopping = s->stopping;
	if (stopping)
		s->stop_deadline_ms = st_mono_ms();
	pthread_mutex_unlock(&s->mu);
	if (stopping)
		curl_multi_wakeup(s->multi);
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
	for (int i = 0; i < s->nnodes; i++)
		free(s->nodes[i].url);
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
			"spool_full_drops=%llu spool_write_errors=%llu spool_ack_recovered=%llu "
			"spool_skipped_segments=%llu spool_foreign=%llu\n",
			(unsigned long long)spool_pending_bytes(s->spool),
			(unsigned long long)st.disk_bytes, (unsigned long long)st.segments,
			(unsigned long long)st.appended, (unsigned long long)st.read,
			(unsigned long long)st.corrupt, (unsigned long long)st.torn,
			(unsigned long long)st.dropped, (unsigned long long)st.write_errors,
			(unsigned long long)st.ack_recovered, (unsigned long long)st.skipped_segments,
			(unsigned long long)st.foreign);
	}
	fprintf(f, "es: url=%s server=%s/%s ready=%d\n", s->url,
		s->distribution[0] ? s->distribution : "unknown", s->version[0] ? s->version : "?",
		s->ready ? 1 : 0);
	if (atomic_load(&s->nnodes) > 1) {
		int n = atomic_load(&s->nnodes), up = 0;

		for (i = 0; i < n; i++)
			up += !atomic_load(&s->nodes[i].down);
		fprintf(f, "es: nodes=%d nodes_up=%d", n, up);
		for (i = 0; i < n; i++)
			fprintf(f, " node%d_requests=%llu node%d_failures=%llu", i,
				(unsigned long long)atomic_load(&s->nodes[i].requests), i,
				(unsigned long long)atomic_load(&s->nodes[i].failures));
		fprintf(f, "\n");
	}
}
