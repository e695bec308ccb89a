/* Elasticsearch bulk requests and responses, pure (no curl, no threads, no
 * global state): daily index names, the NDJSON body, _bulk and GET / answers. */
#ifndef ST_ES_BULK_H
#define ST_ES_BULK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* "<prefix>-YYYY.MM.DD" (UTC) of ts_ns; 0 or -ENAMETOOLONG. */
int es_index_name(char *out, size_t n, const char *prefix, uint64_t ts_ns);
/* Append one bulk "create" action line and the document line. */
int es_bulk_append(struct buf *b, const char *index, const char *event_id,
		   const char *json, size_t len);

struct es_bulk_item {
	int status;              /* HTTP status of the item */
	const char *error;       /* raw JSON of its "error" member, into the body; NULL if none */
	size_t error_len;
	const char *id;          /* raw contents of its "_id" string, into the body; NULL if none */
	size_t id_len;
};
/* Parse a _bulk response: the number of items (filling at most max), or -EBADMSG. */
int es_bulk_parse(const char *body, size_t len, struct es_bulk_item *items, size_t max);
/* The item answers the document with _id id: an answer is matched to its document by
 * position, so one whose _id is missing or another is no answer for it. */
bool es_bulk_item_is(const struct es_bulk_item *it, const char *id);
/* The string value at a dotted path ("version.number") of a JSON object, unescaped
 * only trivially (copied raw); 0 or -ENOENT / -EBADMSG / -ENAMETOOLONG. */
int es_json_get_str(const char *body, size_t len, const char *path, char *out, size_t n);

/* --es-body-limit: out = the record json with every body's "content" (http.request,
 * http.response, replay) cut to at most limit characters of its JSON text (never
 * inside an escape or a UTF-8 sequence; base64 to whole quads) and marked
 * "truncated":true; "bytes" keeps the size seen. 1 when cut, 0 when nothing was
 * longer (out untouched), or -ENOMEM / -EBADMSG. */
int es_doc_cut_bodies(const char *json, size_t len, size_t limit, struct buf *out);

#endif
