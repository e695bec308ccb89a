/* Elasticsearch bulk requests and responses, pure (no curl, no threads): the daily
 * index name, the NDJSON body, and reading _bulk and GET / answers. Owns: nothing. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "es_bulk.h"
#include "json.h"

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

/* ---- reading answers (json.c scans) ---- */

int es_json_get_str(const char *body, size_t len, const char *path, char *out, size_t n)
{
	const char *v, *ve, *s;
	size_t sn;
	int err = json_path(body, len, path, &v, &ve);

	if (err)
		return err;
	if (!json_string(v, ve, &s, &sn))
		return -EBADMSG;
	if (sn >= n)
		return -ENAMETOOLONG;
	memcpy(out, s, sn);
	out[sn] = '\0';
	return 0;
}

int es_bulk_parse(const char *body, size_t len, struct es_bulk_item *items, size_t max)
{
	const char *arr, *arre, *iv, *ive, *action, *ae, *v, *ve;
	struct json_iter list, item;
	size_t count = 0;
	int r;

	if (!body || json_path(body, len, "items", &arr, &arre) ||
	    json_iter_init(&list, arr, arre, '[', 1))
		return -EBADMSG;
	while ((r = json_iter_next(&list, NULL, NULL, &iv, &ive)) > 0) {
		struct es_bulk_item it = { 0, NULL, 0, NULL, 0 };
		long st;
		char *end;

		/* {"create": {...}}: the single member's value is the result */
		if (json_iter_init(&item, iv, ive, '{', 2) ||
		    json_iter_next(&item, NULL, NULL, &action, &ae) != 1)
			return -EBADMSG;
		if (json_member(action, ae, "status", 6, &v, &ve))
			return -EBADMSG;
		st = strtol(v, &end, 10);
		if (end != ve || st < 100 || st > 599)
			return -EBADMSG;
		it.status = (int)st;
		if (!json_member(action, ae, "error", 5, &v, &ve)) {
			it.error = v;
			it.error_len = (size_t)(ve - v);
		}
		if (!json_member(action, ae, "_id", 3, &v, &ve) && *v == '"') {
			it.id = v + 1;
			it.id_len = (size_t)(ve - v - 2);
		}
		if (count < max)
			items[count] = it;
		count++;
	}
	if (r < 0)
		return -EBADMSG;
	return count > INT_MAX ? -EBADMSG : (int)count;
}

bool es_bulk_item_is(const struct es_bulk_item *it, const char *id)
{
	char dec[256];
	size_t n = strlen(id), dn;
	const char *q;

	if (!it->id)
		return false;
	if (it->id_len == n && !memcmp(it->id, id, n))
		return true;
	/* the same id written with escapes: decoding never makes it longer */
	if (!memchr(it->id, '\\', it->id_len) || it->id_len > sizeof(dec))
		return false;
	q = json_string_decode(it->id - 1, it->id + it->id_len + 1, dec, &dn);
	return q && dn == n && !memcmp(dec, id, n);
}

struct es_cut {
	const char *at, *skip_to;   /* drop [at, skip_to), then insert text */
	const char *text;
};

/* Where to cut the raw string contents [c, ce) to at most limit bytes. */
static const char *es_cut_point(const char *c, const char *ce, size_t limit, bool b64)
{
	const char *p = c, *last = c;

	if ((size_t)(ce - c) <= limit)
		return ce;
	if (b64)
		return c + (limit & ~(size_t)3);
	while (p < ce && (size_t)(p - c) <= limit) {
		last = p;
		if (*p == '\\')
			p += p + 1 < ce && p[1] == 'u' ? 6 : 2;
		else
			p++;
	}
	if ((size_t)(p - c) <= limit)
		last = p;
	/* not inside a UTF-8 sequence: back to its lead byte */
	while (last > c && ((unsigned char)*last & 0xc0) == 0x80)
		last--;
	return last;
}

int es_doc_cut_bodies(const char *json, size_t len, size_t limit, struct buf *out)
{
	static const char *const paths[] = { "http.request.body", "http.response.body", "replay.body" };
	static const char mark[] = ",\"truncated\":true";
	struct es_cut cuts[6];
	const char *e = json + len, *p = json;
	size_t i, j, n = 0;
	int err = 0;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *v, *ve, *c, *ce, *t, *te, *enc, *ence, *cut;
		bool b64;

		if (json_path(json, len, paths[i], &v, &ve) || *v != '{' ||
		    json_member(v, ve, "content", 7, &c, &ce) || *c != '"' || ce - c < 2)
			continue;
		b64 = !json_member(v, ve, "encoding", 8, &enc, &ence) && ence - enc == 8 &&
		      !memcmp(enc, "\"base64\"", 8);
		cut = es_cut_point(c + 1, ce - 1, limit, b64);
		if (cut == ce - 1)
			continue;
		cuts[n++] = (struct es_cut){ cut, ce - 1, NULL };
		if (json_member(v, ve, "truncated", 9, &t, &te))
			cuts[n++] = (struct es_cut){ ve - 1, ve - 1, mark };
	}
	if (!n)
		return 0;
	/* the paths are in document order in a record, but sort to be sure */
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && cuts[j].at < cuts[j - 1].at; j--) {
			struct es_cut tmp = cuts[j];

			cuts[j] = cuts[j - 1];
			cuts[j - 1] = tmp;
		}
	buf_reset(out);
	for (i = 0; i < n; i++) {
		err |= buf_append(out, p, (size_t)(cuts[i].at - p));
		if (cuts[i].text)
			err |= buf_append(out, cuts[i].text, strlen(cuts[i].text));
		p = cuts[i].skip_to;
	}
	err |= buf_append(out, p, (size_t)(e - p));
	return err ? -ENOMEM : 1;
}
