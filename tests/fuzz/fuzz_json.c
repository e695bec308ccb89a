/* libFuzzer: arbitrary bytes as two JSON response bodies (split at the first NUL,
 * or in half), compared by diff.c's JSON reader, plus the shared scanner (json.c)
 * on the whole input. Both sides carry a JSON content type so the reader always
 * runs; a body the same on both sides must compare equal when it parses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "json.h"
#include "log.h"
#include "record.h"

static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";

static void fuzz_msg(struct st_msg *m, const uint8_t *p, size_t n)
{
	struct http1_header h = { "Content-Type", 12, "application/json", 16 };

	h.name = strstr(head, "Content-Type");
	h.value = strstr(head, "application/json");
	if (record_msg_set_head(m, head, sizeof(head) - 1, &h, 1) ||
	    (n && record_msg_body_append(m, (const char *)p, n, n + 1)))
		abort();
	m->complete = 1;
}

static void fuzz_diff(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	struct st_record *r = record_new();
	struct diff_cfg cfg = { 0 };
	struct st_diff *d;

	if (!r || !(r->replay = calloc(1, sizeof(*r->replay))))
		abort();
	r->status_code = r->replay->status_code = 200;
	fuzz_msg(&r->resp, a, an);
	fuzz_msg(&r->replay->resp, b, bn);
	d = diff_compare(r, &cfg);
	if (d && a == b && an == bn && d->body_json && !d->body_same)
		abort();
	record_diff_free(d);
	record_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	const char *e = (const char *)data + size, *v, *ve, *q;
	size_t an = nul ? (size_t)(nul - data) : size / 2;

	st_log_level = -1;
	fuzz_diff(data, an, data + an + (nul ? 1 : 0), size - an - (nul ? 1 : 0));
	fuzz_diff(data, size, data, size);
	q = json_skip((const char *)data, e, 0);
	if (q && (q < (const char *)data || q > e))
		abort();
	if (!json_path((const char *)data, size, "a.b", &v, &ve) &&
	    (v < (const char *)data || ve > e || v > ve))
		abort();
	return 0;
}
