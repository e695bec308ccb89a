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
		struct es_bulk_item it = { 0, NULL, 0 };
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
		if (count < max)
			items[count] = it;
		count++;
	}
	if (r < 0)
		return -EBADMSG;
	return count > INT_MAX ? -EBADMSG : (int)count;
}
