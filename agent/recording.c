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

#include "parse.h"
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

/* ---- options ---- */

void recording_cfg_default(struct recording_cfg *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->out_format = REC_FMT_NATIVE;
	rc->out_queue_cap = 65536;
	rc->out_queue_bytes = 128u << 20;
	rc->speed_pct = 100;
	rc->body_limit = 64 * 1024;
	rc->meta_source = "live";
}

static int rec_bad(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "shadowtap: invalid value '%s' for --%s: %s\n", val ? val : "", opt, why);
	return -EINVAL;
}

int recording_parse_opt(struct recording_cfg *rc, const char *name, const char *v)
{
	uint64_t u;
	char *end;
	double d;

	if (!strcmp(name, "output-file")) {
		if (!v || !*v)
			return rec_bad(name, v, "expected a path");
		rc->out_path = v;
	} else if (!strcmp(name, "output-file-size")) {
		if (st_parse_size(v, &u) || u < 4096)
			return rec_bad(name, v, "expected a size of at least 4K");
		rc->out_file_max = u;
	} else if (!strcmp(name, "output-file-interval")) {
		errno = 0;
		u = strtoull(v, &end, 10);
		if (errno || end == v || *end || *v == '-' || u < 1 || u > 30 * 86400)
			return rec_bad(name, v, "expected seconds, 1-2592000");
		rc->out_interval_s = (uint32_t)u;
	} else if (!strcmp(name, "output-file-compress")) {
		if (!strcmp(v, "gzip"))
			rc->out_gzip = 1;
		else if (!strcmp(v, "none"))
			rc->out_gzip = 0;
		else
			return rec_bad(name, v, "expected gzip or none (zstd is not built in)");
	} else if (!strcmp(name, "output-dir-max")) {
		if (st_parse_size(v, &u) || u < 65536)
			return rec_bad(name, v, "expected a size of at least 64K");
		rc->out_dir_max = u;
	} else if (!strcmp(name, "output-format")) {
		if (!strcmp(v, "native") || !strcmp(v, "stap"))
			rc->out_format = REC_FMT_NATIVE;
		else if (!strcmp(v, "gor"))
			rc->out_format = REC_FMT_GOR;
		else
			return rec_bad(name, v, "expected native or gor");
	} else if (!strcmp(name, "input-file")) {
		if (!v || !*v)
			return rec_bad(name, v, "expected a path or glob");
		rc->in_pattern = v;
	} else if (!strcmp(name, "replay-speed")) {
		char tmp[32];
		size_t n = v ? strlen(v) : 0;

		if (n && !strcasecmp(v, "max")) {
			rc->speed_pct = 0;
			return 0;
		}
		if (n == 0 || n >= sizeof(tmp))
			return rec_bad(name, v, "expected a percentage (200%) or max");
		strcpy(tmp, v);
		if (tmp[n - 1] == '%')
			tmp[n - 1] = '\0';
		errno = 0;
		d = strtod(tmp, &end);
		if (errno || end == tmp || *end || !(d >= 0.1 && d <= 1e6))
			return rec_bad(name, v, "expected a percentage from 0.1% to 1000000%, or max");
		rc->speed_pct = d;
	} else if (!strcmp(name, "input-loop")) {
		rc->loop = 1;
	} else {
		return rec_bad(name, v, "not a recording option");
	}
	return 0;
}
