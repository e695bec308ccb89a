/* libFuzzer: arbitrary bytes as a record through --es-body-limit's cut
 * (es_doc_cut_bodies). A cut document is never longer than the input plus the
 * "truncated" marks, and when the input was one JSON value so is the output. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "es_bulk.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *e;
	struct buf out = { 0 };
	size_t limit;
	int r;

	if (size < 1)
		return 0;
	limit = data[0] % 64;
	in++;
	size--;
	r = es_doc_cut_bodies(in, size, limit, &out);
	if (r == 1) {
		if (out.len > size + 3 * 17)
			abort();
		e = json_skip(in, in + size, 0);
		if (e && json_ws(e, in + size) == in + size) {
			e = json_skip(out.data, out.data + out.len, 0);
			if (!e || json_ws(e, out.data + out.len) != out.data + out.len)
				abort();
		}
	} else if (r != 0 && r != -ENOMEM) {
		abort();
	}
	buf_free(&out);
	return 0;
}
