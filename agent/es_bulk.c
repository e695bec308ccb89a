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

#define ES_JSON_DEPTH 64

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
