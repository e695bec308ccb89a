/* libFuzzer: arbitrary bytes as two response bodies (split at the first NUL, or in
 * half) under a content type picked by the first byte (JSON, form, text), compared
 * field by field. Checks: at most FIELDS_MAX kept, never more kept than found,
 * every path non-empty, a body compared with itself has no differences, and the
 * fast paths (fields_fast) find exactly what the plain comparison finds. Inputs
 * whose first byte has bit 0x80 set compare the first body with a copy of itself in
 * which the rest of the input is spliced at a position, so the fast path that
 * derives one body from the other is reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "record.h"

static const char *const heads[] = {
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
};

static void fuzz_msg(struct st_msg *m, const char *head, const uint8_t *p, size_t n)
{
	struct http1_header h;

	memset(m, 0, sizeof(*m));
	h.name = strstr(head, "Content-Type");
	h.name_len = 12;
	h.value = h.name + 14;
	h.value_len = (size_t)(strstr(h.value, "\r\n") - h.value);
	if (record_msg_set_head(m, head, strlen(head), &h, 1) ||
	    (n && record_msg_body_append(m, (const char *)p, n, n + 1)))
		abort();
	m->complete = 1;
}

static void fuzz_cmp(const char *head, const uint8_t *a, size_t an, const uint8_t *b, size_t bn,
		     int expect_same)
{
	struct st_msg ma, mb;
	struct st_field *f = NULL;
	size_t n = 0, total = 0, i;

	struct st_field *g = NULL;
	size_t gn = 0, gtotal = 0;

	fuzz_msg(&ma, head, a, an);
	fuzz_msg(&mb, head, b, bn);
	if (fields_compare(200, &ma, 200, &mb, NULL, &f, &n, &total))
		abort();   /* only -ENOMEM, which the fuzzer's sizes never reach */
	if (n > FIELDS_MAX || total < n || (expect_same && n))
		abort();
	for (i = 0; i < n; i++)
		if (!f[i].path || !f[i].path[0] || f[i].kind >= FK_NKINDS)
			abort();
	fields_fast = false;
	if (fields_compare(200, &ma, 200, &mb, NULL, &g, &gn, &gtotal))
		abort();
	fields_fast = true;
	if (gn != n || gtotal != total)
		abort();
	for (i = 0; i < n; i++)
		if (strcmp(f[i].path, g[i].path) || f[i].kind != g[i].kind || !f[i].a != !g[i].a ||
		    !f[i].b != !g[i].b || (f[i].a && strcmp(f[i].a, g[i].a)) ||
		    (f[i].b && strcmp(f[i].b, g[i].b)))
			abort();
	fields_free(g, gn);
	fields_free(f, n);
	record_msg_free(&ma);
	record_msg_free(&mb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul;
	const char *head;
	size_t an;

	if (size < 1)
		return 0;
	head = heads[data[0] % 3];
	if (data[0] & 0x80 && size >= 3) {
		/* body a = data[3..3+len), b = a with data[3+len..) spliced in at pos,
		 * replacing del bytes */
		size_t len = (size_t)data[1] < size - 3 ? (size_t)data[1] : size - 3;
		size_t pos = len ? data[2] % (len + 1) : 0, del = (size_t)(data[0] & 3);
		size_t rest = size - 3 - len;
		uint8_t *b = malloc(len + rest + 1);

		if (!b)
			return 0;
		if (pos + del > len)
			del = len - pos;
		memcpy(b, data + 3, pos);
		memcpy(b + pos, data + 3 + len, rest);
		memcpy(b + pos + rest, data + 3 + pos + del, len - pos - del);
		fuzz_cmp(head, data + 3, len, b, len - del + rest, 0);
		free(b);
		return 0;
	}
	data++;
	size--;
	nul = memchr(data, 0, size);
	an = nul ? (size_t)(nul - data) : size / 2;
	fuzz_cmp(head, data, an, data + an + (nul != NULL), size - an - (nul != NULL), 0);
	fuzz_cmp(head, data, an, data, an, 1);
	return 0;
}
