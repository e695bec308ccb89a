/* Recording configuration: defaults, the recording options, and the little-endian
 * and CRC primitives both file formats share. Owns: struct recording_cfg.
 *
 * Where the rest lives (see recording.h): rec_native.c, rec_gor.c (formats),
 * rec_reader.c, rec_writer.c (files), rec_input.c (--input-file), rec_convert.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "recording.h"

void rec_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

uint32_t rec_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t rec_crc(const void *p, size_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);
	const uint8_t *q = p;

	while (n) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;

		c = crc32(c, q, k);
		q += k;
		n -= k;
	}
	return (uint32_t)c;
}

/* ---- defaults (the options themselves are in opts.c's table) ---- */

void recording_cfg_default(struct recording_cfg *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->out_format = REC_FMT_NATIVE;
	rc->out_queue_cap = 65536;
	rc->out_queue_bytes = 128u << 20;
	rc->speed_pct = 100;
	rc->max_wait_ns = REC_MAX_WAIT_DEFAULT_NS;
	rc->redact = record_redact_default;
	rc->body_limit = 64 * 1024;
	rc->meta_source = "live";
}

