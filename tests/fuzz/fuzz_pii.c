/* libFuzzer: arbitrary bytes through the PII redactors. JSON redaction either refuses
 * the body (nothing written) or writes JSON that the shared scanner accepts and in
 * which no redacted value survives; the text scanner's spans are sorted, disjoint
 * and inside the input; query redaction keeps everything before the '?'. */
#include <errno.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "pii.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const pats[] = { "$..password", "$.items[*].card", "$.a.b" };
	static const char *const qnames[] = { "token", "card", NULL };
	struct pii_json_path jp[3];
	struct pii_span sp[64];
	struct buf out = { 0 };
	char *s = malloc(size + 1);
	size_t i, n;
	int r;

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	for (i = 0; i < 3; i++)
		if (pii_json_path_parse(&jp[i], pats[i]))
			abort();
	r = pii_redact_json(&out, s, size, jp, 3, PII_MASK, NULL);
	if (r == -EBADMSG && out.len)
		abort();
	if (r >= 0 && !json_skip(out.data ? out.data : "", (out.data ? out.data : "") + out.len, 0) && size)
		abort();
	buf_reset(&out);

	n = pii_scan(s, size, PII_SCAN_CARD | PII_SCAN_EMAIL, NULL, 0, sp, 64);
	for (i = 0; i < n; i++) {
		if (sp[i].len == 0 || sp[i].off + sp[i].len > size)
			abort();
		if (i && sp[i].off < sp[i - 1].off + sp[i - 1].len)
			abort();
	}
	if (pii_apply(&out, s, size, sp, n, PII_MASK, NULL))
		abort();
	buf_reset(&out);

	r = pii_redact_query(&out, s, size, qnames, PII_MASK, NULL);
	if (r < 0) {
		abort();
	} else {
		const char *q = memchr(s, '?', size);
		size_t pre = q ? (size_t)(q - s) : size;

		if (out.len < pre || memcmp(out.data ? out.data : "", s, pre))
			abort();
	}
	buf_free(&out);
	free(s);
	return 0;
}
