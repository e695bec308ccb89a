/* libFuzzer: arbitrary bytes as a spool entry's payload, through the decoder the
 * spool reader uses (the shared msgpack cursor). A decoded entry's strings must be
 * copies of bytes that were present, so they can never be longer than the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_entry e;

	if (spool_entry_decode(data, size, &e) == 0) {
		if (e.len > size || strlen(e.event_id) > size || e.json[e.len] != '\0')
			abort();
		spool_entry_free(&e);
	} else if (e.event_id || e.json) {
		abort();
	}
	return 0;
}
