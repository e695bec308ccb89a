/* libFuzzer: arbitrary bytes as an Elasticsearch answer, through the _bulk
 * response parser and the GET / version reader. Every result must point into the
 * input and every status must be an HTTP status. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "es_bulk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct es_bulk_item items[16];
	const char *body = (const char *)data;
	char out[64];
	int n, i;

	n = es_bulk_parse(body, size, items, 16);
	for (i = 0; i < n && i < 16; i++) {
		if (items[i].status < 100 || items[i].status > 599)
			abort();
		if (items[i].error && (items[i].error < body ||
				       items[i].error + items[i].error_len > body + size))
			abort();
		if (items[i].id && (items[i].id < body || items[i].id + items[i].id_len > body + size))
			abort();
		es_bulk_item_is(&items[i], "0123456789abcdef0123456789abcdef");
	}
	if (!es_json_get_str(body, size, "version.number", out, sizeof(out)) &&
	    strlen(out) >= sizeof(out))
		abort();
	es_json_get_str(body, size, "items", out, sizeof(out));
	return 0;
}
