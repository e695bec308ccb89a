/* Elasticsearch sink batches: the memory queue submitters fill, the spool it
 * overflows to, the batch in flight and its retries, and the dead-letter file.
 * Owns: es_item lifetimes; a spool batch is acked only once every item is final. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include "json.h"
#include "log.h"
#include "sfile.h"
#include "es_internal.h"
#include "util.h"

static struct es_item *es_item_new(const char *id, uint64_t ts_ns, const char *json, size_t len)
{
	size_t idlen = strlen(id);
	struct es_item *it = malloc(sizeof(*it) + idlen + 1 + len + 1);

	if (!it)
		return NULL;
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
	uint64_t now = st_mono_ms(), last = atomic_load(&s->last_drop_warn_ms);

	if (last && now - last < 10000)
		return;
	if (!atomic_compare_exchange_strong(&s->last_drop_warn_ms, &last, now))
		return;
	pr_warn("es: record dropped: %s (see spool_drops)\n", why);
}

void es_spool_item(struct es_sink *s, const char *id, uint64_t ts_ns, const char *json, size_t len)
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
	struct buf cut = { 0 };
	struct es_item *it;
	bool wake = false, spool = false;

	if (!s || !event_id || !json)
		return;
	/* --es-body-limit: only a document longer than the limit can hold a longer
	 * body; one copy per such record, freed once queued or spooled below */
	if (s->cfg.body_limit && len > s->cfg.body_limit) {
		if (es_doc_cut_bodies(json, len, s->cfg.body_limit, &cut) == 1) {
			es_inc(s, ES_C_BODIES_CUT, 1);
			json = cut.data;
			len = cut.len;
		}
	}
	es_inc(s, ES_C_SUBMITTED, 1);
	pthread_mutex_lock(&s->mu);
	if (s->mq_bytes + len > s->cfg.mem_queue_bytes || s->stopping) {
		spool = true;
	} else {
		it = es_item_new(event_id, ts_ns, json, len);
		if (!it) {
			spool = true;
		} else {
			if (list_empty(&s->mq))
				s->mq_first_ms = st_mono_ms();
			list_add_tail(&s->mq, &it->node);
			wake = s->mq_bytes < s->cfg.batch_bytes && s->mq_bytes + len >= s->cfg.batch_bytes;
			s->mq_bytes += len;
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (spool)
		es_spool_item(s, event_id, ts_ns, json, len);
	buf_free(&cut);
	if (wake)
		curl_multi_wakeup(s->multi);
}

/* Move up to max_bytes (all with max_bytes 0, at least one item) from the memory
 * queue onto out. */
static void es_mq_take(struct es_sink *s, size_t max_bytes, struct list_node *out)
{
	struct list_node *n;
	size_t bytes = 0;

	pthread_mutex_lock(&s->mu);
	list_for_each(n, &s->mq) {
		size_t len = list_entry(n, struct es_item, node)->len;

		if (max_bytes && bytes && bytes + len > max_bytes)
			break;
		bytes += len;
	}
	list_cut_before(out, &s->mq, n);
	if (!list_empty(&s->mq))
		s->mq_first_ms = st_mono_ms();
	s->mq_bytes -= bytes;
	pthread_mutex_unlock(&s->mu);
}

bool es_mq_due(struct es_sink *s, uint64_t now, bool stopping)
{
	bool due;

	pthread_mutex_lock(&s->mu);
	due = !list_empty(&s->mq) && (stopping || s->mq_bytes >= s->cfg.batch_bytes ||
			     now - s->mq_first_ms >= (uint64_t)s->cfg.batch_ms);
	pthread_mutex_unlock(&s->mu);
	return due;
}

void es_mq_to_spool(struct es_sink *s)
{
	struct list_node taken, *n, *nx;
	bool any;

	list_init(&taken);
	es_mq_take(s, 0, &taken);
	any = !list_empty(&taken);
	list_for_each_safe(n, nx, &taken) {
		struct es_item *it = list_entry(n, struct es_item, node);

		es_spool_item(s, it->id, it->ts_ns, it->json, it->len);
		free(it);
	}
	if (any && s->spool)
		spool_sync(s->spool);
}

int es_vec_push(struct es_item ***v, size_t *n, size_t *cap, struct es_item *it)
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

void es_batch_clear(struct es_batch *b)
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

void es_batch_free(struct es_batch *b)
{
	es_batch_clear(b);
	free(b->items);
	free(b->retry);
	memset(b, 0, sizeof(*b));
}

/* Fill the batch from the spool; true when it holds something to send. */
bool es_batch_from_spool(struct es_sink *s)
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

bool es_batch_from_mq(struct es_sink *s)
{
	struct es_batch *b = &s->batch;
	struct list_node taken, *n, *nx;

	list_init(&taken);
	es_mq_take(s, s->cfg.batch_bytes, &taken);
	list_for_each_safe(n, nx, &taken) {
		struct es_item *it = list_entry(n, struct es_item, node);

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

/* What ES sent as an item's "error" goes into one NDJSON line: embedded as JSON
 * only when it is one well-formed value (raw control characters inside strings fail
 * json_skip), with its whitespace flattened to spaces; anything else, or anything
 * longer than ES_DL_REASON_MAX, becomes an escaped JSON string. */
#define ES_DL_REASON_MAX 8192

static int es_dl_reason(struct buf *line, const char *r, size_t n, bool is_json)
{
	const char *e = r + n, *v = is_json && n <= ES_DL_REASON_MAX ? json_skip(r, e, 0) : NULL;
	size_t i, start;

	if (v && json_ws(v, e) == e) {
		start = line->len;
		if (buf_append(line, r, n))
			return -ENOMEM;
		for (i = start; i < line->len; i++)
			if ((unsigned char)line->data[i] < 0x20)
				line->data[i] = ' ';
		return 0;
	}
	return buf_json_str(line, r, n > ES_DL_REASON_MAX ? ES_DL_REASON_MAX : n);
}

/* Past --dead-letter-max-bytes the file becomes "<path>.1" (replacing the older
 * one) and a new file starts: at most twice the limit on disk. */
static int es_dl_open(struct es_sink *s, size_t need)
{
	struct stat st;

	if (s->dead_letter && s->cfg.dead_letter_max_bytes &&
	    s->dead_letter_bytes + need > s->cfg.dead_letter_max_bytes && s->dead_letter_bytes) {
		char old[PATH_MAX];

		fclose(s->dead_letter);
		s->dead_letter = NULL;
		snprintf(old, sizeof(old), "%s.1", s->dead_letter_path);
		if (rename(s->dead_letter_path, old))
			pr_warn("es: cannot rotate the dead-letter file %s: %s\n", s->dead_letter_path,
				strerror(errno));
		else
			es_inc(s, ES_C_DEAD_LETTER_ROTATIONS, 1);
	}
	if (s->dead_letter)
		return 0;
	s->dead_letter = sfile_fopen(s->dead_letter_path, "a");   /* 0600, no symlink */
	if (!s->dead_letter) {
		pr_warn("es: cannot open the dead-letter file %s: %s\n", s->dead_letter_path,
			strerror(errno));
		return -errno;
	}
	s->dead_letter_bytes = fstat(fileno(s->dead_letter), &st) ? 0 : (uint64_t)st.st_size;
	/* a file left over the limit by an earlier run rotates now */
	if (s->cfg.dead_letter_max_bytes && s->dead_letter_bytes &&
	    s->dead_letter_bytes + need > s->cfg.dead_letter_max_bytes)
		return es_dl_open(s, need);
	return 0;
}

void es_dead_letter(struct es_sink *s, const struct es_item *it, int status,
		    const char *reason, size_t reason_len, bool reason_is_json)
{
	struct buf line = { 0 };
	char index[256];
	struct timespec ts;
	int err = 0;

	es_inc(s, ES_C_DEAD_LETTERED, 1);
	clock_gettime(CLOCK_REALTIME, &ts);
	es_index_name(index, sizeof(index), s->prefix, it->ts_ns);
	err |= buf_printf(&line, "{\"time\":%lld,\"status\":%d,\"index\":", (long long)ts.tv_sec, status);
	err |= buf_json_str(&line, index, strlen(index));
	err |= buf_append(&line, ",\"id\":", 6);
	err |= buf_json_str(&line, it->id, strlen(it->id));
	err |= buf_append(&line, ",\"error\":", 9);
	err |= es_dl_reason(&line, reason, reason_len, reason_is_json);
	err |= buf_append(&line, ",\"doc\":", 7);
	err |= buf_append(&line, it->json, it->len);
	err |= buf_append(&line, "}\n", 2);
	if (err || es_dl_open(s, line.len) ||
	    fwrite(line.data, 1, line.len, s->dead_letter) != line.len || fflush(s->dead_letter))
		es_inc(s, ES_C_ERR_DEAD_LETTER_WRITE, 1);
	else
		s->dead_letter_bytes += line.len;
	buf_free(&line);
}

/* The batch is finished: ack its spool range and free it. */
void es_batch_done(struct es_sink *s)
{
	if (s->batch.from_spool && s->spool)
		spool_ack(s->spool, &s->batch.end);
	es_batch_clear(&s->batch);
	s->have_batch = false;
}

/* The remaining items of a memory batch go to the spool. A spool batch stays for a
 * later attempt: its records are still in the spool, unacknowledged. */
void es_batch_park(struct es_sink *s)
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
void es_batch_advance(struct es_sink *s)
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
