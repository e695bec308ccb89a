/* Recordings: native msgpack files, GoReplay .gor files, the file-input driver and
 * `shadowtap convert`.
 *
 * Native format (version 1), all integers little-endian:
 *   file header: "SHADOWTP", u16 version, u16 flags (0), u32 meta_len,
 *                meta_len bytes of a msgpack map (format, created_ns, host, agent,
 *                iface, source), u32 CRC32 of everything before it.
 *   blocks:      "STBK", u32 payload_len, u32 nrecords, u32 CRC32(payload),
 *                u32 CRC32(the 16 bytes before), payload = nrecords msgpack maps.
 * A block is written (and flushed; gzip uses Z_SYNC_FLUSH) once it holds 64 KiB or
 * is 1 s old, so a crash loses at most the unflushed block. A reader skips a block
 * whose payload CRC fails (its length is trusted, the header has its own CRC),
 * scans byte by byte for the next "STBK" after a damaged header, and stops with a
 * counted torn tail where the file ends inside a block.
 *
 * Record map keys: id event_id, fl flow_id, ix index, af family, ca/sa addresses
 * (16 bytes), cp/sp ports, co clock offset, cf capture flags, gb gap bytes,
 * st status, raw request bytes, rq/rs request/response message maps (h head, b
 * stored body, n body bytes, w wire bytes, t0/t1 first/last byte capture time,
 * x bits: 1 complete, 2 chunked, 4 body capped). With raw present the request head
 * and body are rebuilt from it and not stored twice. Unknown keys are skipped.
 *
 * GoReplay (v1.3.2 protocol.go): each entry is "TYPE ID START_NS LATENCY_NS\n",
 * the payload, then "\n🐵🙈🙉\n"; TYPE 1 request, 2 original response, 3 replayed
 * response (ignored). A request and its response share the ID. GoReplay's raw input
 * makes the ID from the connection (16 hex: client port, server port, client IP)
 * and the TCP ack (8 hex), so the first 16 hex digits name the client connection:
 * entries with the same prefix form one flow, replayed in order; the index is the
 * position in that flow. We write IDs the same way (flow id, 8 hex index). An ID
 * that is not 24 hex digits is its own flow. Timing is the first byte's wall time,
 * latency last byte minus first byte, as GoReplay's raw input writes them.
 *
 * Writer bounds: records wait encoded in a bounded queue (count and bytes); a full
 * queue drops and counts. --output-dir-max counts only the files this writer made:
 * the oldest finished ones are deleted first; if the current file alone would
 * exceed the cap, new blocks are dropped and counted (dropped_dir_full). */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zlib.h>

#include "buf.h"
#include "util.h"
#include "http1.h"
#include "log.h"
#include "parse.h"
#include "bq.h"
#include "recording.h"

#ifndef SHADOWTAP_VERSION
#define SHADOWTAP_VERSION "dev"
#endif

#define REC_GOR_SEP_LEN    (sizeof(REC_GOR_SEP) - 1)
#define REC_ENTRY_MAX      (64u << 20)   /* a .gor entry larger than this is skipped */
#define REC_META_MAX       (1u << 20)
#define REC_GOR_PENDING    4096          /* requests held waiting for their response */
#define REC_GOR_WINDOW_NS  (10ull * 1000000000ull)
#define REC_MAX_FILES      4096          /* files remembered for --output-dir-max */

void recording_event_id(uint64_t flow_id, uint32_t index, char out[33])
{
	uint64_t a = st_mix64(flow_id ^ st_mix64(index));
	uint64_t b = st_mix64(a ^ 0x5348414457544150ull);

	snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

static void rec_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t rec_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t rec_crc(const void *p, size_t n)
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

/* ---- encoding ---- */

static int rec_pk_write(void *data, const char *p, size_t n)
{
	return buf_append(data, p, n) ? -1 : 0;
}

static int rec_pk_key(msgpack_packer *pk, const char *k)
{
	size_t n = strlen(k);

	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, k, n);
}

static int rec_pk_bin(msgpack_packer *pk, const void *p, size_t n)
{
	return msgpack_pack_bin(pk, n) || (n && msgpack_pack_bin_body(pk, p, n));
}

static int rec_pk_msg(msgpack_packer *pk, const struct st_msg *m, bool with_bytes)
{
	int n = 5 + (with_bytes && m->head ? 1 : 0) + (with_bytes && m->body_stored ? 1 : 0);
	int x = (m->complete ? 1 : 0) | (m->chunked ? 2 : 0) | (m->body_capped ? 4 : 0);

	if (msgpack_pack_map(pk, n))
		return -1;
	if (with_bytes && m->head && (rec_pk_key(pk, "h") || rec_pk_bin(pk, m->head, m->head_len)))
		return -1;
	if (with_bytes && m->body_stored &&
	    (rec_pk_key(pk, "b") || rec_pk_bin(pk, m->body, m->body_stored)))
		return -1;
	return rec_pk_key(pk, "n") || msgpack_pack_uint64(pk, m->body_bytes) ||
	       rec_pk_key(pk, "w") || msgpack_pack_uint64(pk, m->wire_bytes) ||
	       rec_pk_key(pk, "t0") || msgpack_pack_uint64(pk, m->ts_first_ns) ||
	       rec_pk_key(pk, "t1") || msgpack_pack_uint64(pk, m->ts_last_ns) ||
	       rec_pk_key(pk, "x") || msgpack_pack_int(pk, x) ? -1 : 0;
}

int recording_encode_native(const struct st_record *r, struct buf *out)
{
	msgpack_packer pk;
	bool raw = r->raw && r->raw_len;
	bool resp = r->resp.head != NULL;
	size_t start = out->len;
	int n = 15 + (raw ? 1 : 0) + (resp ? 1 : 0);

	msgpack_packer_init(&pk, out, rec_pk_write);
	if (msgpack_pack_map(&pk, n) ||
	    rec_pk_key(&pk, "id") || msgpack_pack_str(&pk, strlen(r->event_id)) ||
	    msgpack_pack_str_body(&pk, r->event_id, strlen(r->event_id)) ||
	    rec_pk_key(&pk, "fl") || msgpack_pack_uint64(&pk, r->flow_id) ||
	    rec_pk_key(&pk, "ix") || msgpack_pack_uint32(&pk, r->index) ||
	    rec_pk_key(&pk, "af") || msgpack_pack_uint8(&pk, r->family) ||
	    rec_pk_key(&pk, "ca") || rec_pk_bin(&pk, r->caddr, sizeof(r->caddr)) ||
	    rec_pk_key(&pk, "sa") || rec_pk_bin(&pk, r->saddr, sizeof(r->saddr)) ||
	    rec_pk_key(&pk, "cp") || msgpack_pack_uint16(&pk, r->cport) ||
	    rec_pk_key(&pk, "sp") || msgpack_pack_uint16(&pk, r->sport) ||
	    rec_pk_key(&pk, "co") || msgpack_pack_int64(&pk, r->clock_offset_ns) ||
	    rec_pk_key(&pk, "cf") || msgpack_pack_uint32(&pk, r->cap_flags) ||
	    rec_pk_key(&pk, "gb") || msgpack_pack_uint64(&pk, r->gap_bytes) ||
	    rec_pk_key(&pk, "st") || msgpack_pack_int(&pk, r->status_code) ||
	    rec_pk_key(&pk, "hv") || msgpack_pack_int(&pk, r->http_minor) ||
	    (raw && (rec_pk_key(&pk, "raw") || rec_pk_bin(&pk, r->raw, r->raw_len))) ||
	    rec_pk_key(&pk, "rq") || rec_pk_msg(&pk, &r->req, !raw) ||
	    (resp && (rec_pk_key(&pk, "rs") || rec_pk_msg(&pk, &r->resp, true))) ||
	    rec_pk_key(&pk, "v") || msgpack_pack_int(&pk, REC_VERSION)) {
		out->len = start;
		return -ENOMEM;
	}
	return 0;
}

static int rec_gor_header(struct buf *out, char type, const struct st_record *r,
			  const struct st_msg *m)
{
	int64_t t0 = (int64_t)m->ts_first_ns + r->clock_offset_ns;
	int64_t lat = m->ts_last_ns >= m->ts_first_ns ? (int64_t)(m->ts_last_ns - m->ts_first_ns) : 0;

	return buf_printf(out, "%c %016llx%08x %lld %lld\n", type, (unsigned long long)r->flow_id,
			  r->index, (long long)t0, (long long)lat);
}

int recording_encode_gor(const struct st_record *r, struct buf *out)
{
	size_t start = out->len;
	int err = 0;

	err = rec_gor_header(out, '1', r, &r->req);
	if (!err && r->raw && r->raw_len)
		err = buf_append(out, r->raw, r->raw_len);
	else if (!err) {
		/* request not kept whole: the best we have is head + stored body */
		err = buf_append(out, r->req.head ? r->req.head : "", r->req.head_len);
		if (!err && r->req.body_stored)
			err = buf_append(out, r->req.body, r->req.body_stored);
	}
	if (!err)
		err = buf_append(out, REC_GOR_SEP, REC_GOR_SEP_LEN);
	if (!err && r->resp.head) {
		err = rec_gor_header(out, '2', r, &r->resp);
		if (!err)
			err = buf_append(out, r->resp.head, r->resp.head_len);
		/* the body is stored decoded: give it back the framing its head announces */
		if (!err && r->resp.chunked) {
			if (r->resp.body_stored)
				err = buf_printf(out, "%zx\r\n", r->resp.body_stored) ||
				      buf_append(out, r->resp.body, r->resp.body_stored) ||
				      buf_append(out, "\r\n", 2);
			if (!err)
				err = buf_append(out, "0\r\n\r\n", 5);
		} else if (!err && r->resp.body_stored) {
			err = buf_append(out, r->resp.body, r->resp.body_stored);
		}
		if (!err)
			err = buf_append(out, REC_GOR_SEP, REC_GOR_SEP_LEN);
	}
	if (err) {
		out->len = start;
		return -ENOMEM;
	}
	return 0;
}

/* ---- output files (rotation, gzip, directory cap) ---- */

struct rec_file {
	char *path;
	uint64_t bytes;
};

struct rec_out {
	const struct recording_cfg *rc;
	int fd;
	gzFile gz;
	char cur[PATH_MAX];
	char last_base[PATH_MAX];     /* last strftime expansion, and its "-N" count */
	int last_seq;
	uint64_t cur_bytes;           /* on disk */
	uint64_t opened_ns;
	struct rec_file files[REC_MAX_FILES];   /* finished files, oldest first */
	size_t nfiles;
	uint64_t files_bytes;
	struct rec_writer_stats *st;
};

static int rec_out_write_all(struct rec_out *o, const void *p, size_t n)
{
	const char *q = p;

	if (o->gz) {
		while (n) {
			unsigned k = n > (1u << 30) ? (1u << 30) : (unsigned)n;
			int w = gzwrite(o->gz, q, k);

			if (w <= 0)
				return -EIO;
			q += w;
			n -= (size_t)w;
		}
		return 0;
	}
	while (n) {
		ssize_t w = write(o->fd, q, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

static void rec_out_sync_size(struct rec_out *o)
{
	off_t off;

	if (o->gz)
		gzflush(o->gz, Z_SYNC_FLUSH);
	off = lseek(o->fd, 0, SEEK_END);
	if (off >= 0)
		o->cur_bytes = (uint64_t)off;
}

static void rec_out_close(struct rec_out *o)
{
	if (o->fd < 0)
		return;
	if (o->gz) {
		struct stat sb;

		if (gzclose(o->gz) != Z_OK) {   /* finishes the stream and closes fd */
			o->st->write_errors++;
			pr_warn("recording: finishing %s failed\n", o->cur);
		}
		o->gz = NULL;
		if (!stat(o->cur, &sb))
			o->cur_bytes = (uint64_t)sb.st_size;
	} else {
		rec_out_sync_size(o);
		close(o->fd);
	}
	o->fd = -1;
	if (o->nfiles == REC_MAX_FILES) {
		/* too many to remember: forget (never delete) the oldest */
		o->files_bytes -= o->files[0].bytes;
		free(o->files[0].path);
		memmove(o->files, o->files + 1, (REC_MAX_FILES - 1) * sizeof(o->files[0]));
		o->nfiles--;
	}
	o->files[o->nfiles].path = strdup(o->cur);
	if (o->files[o->nfiles].path) {
		o->files[o->nfiles].bytes = o->cur_bytes;
		o->files_bytes += o->cur_bytes;
		o->nfiles++;
	}
	o->cur_bytes = 0;
}

static int rec_out_header(struct rec_out *o)
{
	struct buf b = { 0 };
	msgpack_packer pk;
	char host[256] = "";
	struct timespec ts;
	uint8_t h[20];
	uint32_t crc;
	int err = -ENOMEM;

	clock_gettime(CLOCK_REALTIME, &ts);
	gethostname(host, sizeof(host) - 1);
	msgpack_packer_init(&pk, &b, rec_pk_write);
	memcpy(h, REC_MAGIC, 8);
	h[8] = REC_VERSION & 0xff;
	h[9] = REC_VERSION >> 8;
	h[10] = h[11] = 0;
	if (buf_append(&b, h, 16))
		goto out;
	if (msgpack_pack_map(&pk, 6) ||
	    rec_pk_key(&pk, "format") || msgpack_pack_str(&pk, 19) ||
	    msgpack_pack_str_body(&pk, "shadowtap-recording", 19) ||
	    rec_pk_key(&pk, "created_ns") ||
	    msgpack_pack_uint64(&pk, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ||
	    rec_pk_key(&pk, "host") || msgpack_pack_str(&pk, strlen(host)) ||
	    msgpack_pack_str_body(&pk, host, strlen(host)) ||
	    rec_pk_key(&pk, "agent") || msgpack_pack_str(&pk, strlen(SHADOWTAP_VERSION)) ||
	    msgpack_pack_str_body(&pk, SHADOWTAP_VERSION, strlen(SHADOWTAP_VERSION)) ||
	    rec_pk_key(&pk, "iface") ||
	    msgpack_pack_str(&pk, o->rc->meta_iface ? strlen(o->rc->meta_iface) : 3) ||
	    msgpack_pack_str_body(&pk, o->rc->meta_iface ? o->rc->meta_iface : "any",
				  o->rc->meta_iface ? strlen(o->rc->meta_iface) : 3) ||
	    rec_pk_key(&pk, "source") ||
	    msgpack_pack_str(&pk, o->rc->meta_source ? strlen(o->rc->meta_source) : 0) ||
	    msgpack_pack_str_body(&pk, o->rc->meta_source ? o->rc->meta_source : "",
				  o->rc->meta_source ? strlen(o->rc->meta_source) : 0))
		goto out;
	rec_put32((uint8_t *)b.data + 12, (uint32_t)(b.len - 16));
	crc = rec_crc(b.data, b.len);
	rec_put32(h, crc);
	if (buf_append(&b, h, 4))
		goto out;
	err = rec_out_write_all(o, b.data, b.len);
out:
	buf_free(&b);
	return err;
}

/* Expand the strftime pattern; a name already used in this run gets "-N" before
 * its extension (N growing, never reused, even after --output-dir-max deleted the
 * file) so rotation never overwrites what it wrote. */
static int rec_out_name(struct rec_out *o, char *dst, size_t cap)
{
	char base[PATH_MAX];
	time_t now = time(NULL);
	struct tm tm;
	const char *slash, *dot;
	int w;

	localtime_r(&now, &tm);
	if (!strftime(base, sizeof(base), o->rc->out_path, &tm))
		return -ENAMETOOLONG;
	if (strcmp(base, o->last_base)) {
		if (strlen(base) >= cap || strlen(base) >= sizeof(o->last_base))
			return -ENAMETOOLONG;
		memcpy(o->last_base, base, strlen(base) + 1);
		memcpy(dst, base, strlen(base) + 1);
		o->last_seq = 0;
		return 0;
	}
	slash = strrchr(base, '/');
	dot = strchr(slash ? slash + 1 : base, '.');
	o->last_seq++;
	w = dot ? snprintf(dst, cap, "%.*s-%d%s", (int)(dot - base), base, o->last_seq, dot)
		: snprintf(dst, cap, "%s-%d", base, o->last_seq);
	return w < 0 || (size_t)w >= cap ? -ENAMETOOLONG : 0;
}

static int rec_out_open(struct rec_out *o)
{
	char name[PATH_MAX];
	int err;

	err = rec_out_name(o, name, sizeof(name));
	if (err) {
		pr_warn("recording: cannot name the output file from '%s'\n", o->rc->out_path);
		return err;
	}
	o->fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (o->fd < 0) {
		err = -errno;
		pr_warn("recording: cannot open %s: %s\n", name, strerror(errno));
		return err;
	}
	if (o->rc->out_gzip) {
		o->gz = gzdopen(o->fd, "wb6");
		if (!o->gz) {
			close(o->fd);
			o->fd = -1;
			pr_warn("recording: cannot start gzip on %s\n", name);
			return -ENOMEM;
		}
	}
	snprintf(o->cur, sizeof(o->cur), "%s", name);
	o->cur_bytes = 0;
	o->opened_ns = st_mono_ns();
	o->st->files++;
	pr_info("recording to %s\n", name);
	if (o->rc->out_format == REC_FMT_NATIVE) {
		err = rec_out_header(o);
		if (err) {
			pr_warn("recording: cannot write the header of %s: %s\n", name, strerror(-err));
			return err;
		}
	}
	rec_out_sync_size(o);
	return 0;
}

/* Make room under --output-dir-max by deleting the oldest finished files. */
static bool rec_out_room(struct rec_out *o, size_t n)
{
	if (!o->rc->out_dir_max)
		return true;
	while (o->files_bytes + o->cur_bytes + n > o->rc->out_dir_max && o->nfiles) {
		if (unlink(o->files[0].path) && errno != ENOENT)
			pr_warn("recording: cannot delete %s: %s\n", o->files[0].path, strerror(errno));
		else
			o->st->files_deleted++;
		o->files_bytes -= o->files[0].bytes;
		free(o->files[0].path);
		memmove(o->files, o->files + 1, (o->nfiles - 1) * sizeof(o->files[0]));
		o->nfiles--;
	}
	return o->files_bytes + o->cur_bytes + n <= o->rc->out_dir_max;
}

/* Write one block (native: framed; gor: as is). Returns 0 or negative errno. */
static int rec_out_block(struct rec_out *o, const void *p, size_t n, uint32_t nrec)
{
	uint8_t h[REC_BLOCK_HDR];
	uint64_t now = st_mono_ns();
	size_t need = n + (o->rc->out_format == REC_FMT_NATIVE ? REC_BLOCK_HDR : 0);
	int err;

	if (o->fd >= 0 &&
	    ((o->rc->out_file_max && o->cur_bytes + need > o->rc->out_file_max && o->cur_bytes > 64) ||
	     (o->rc->out_interval_s && now - o->opened_ns >= o->rc->out_interval_s * 1000000000ull))) {
		rec_out_close(o);
		o->st->rotations++;
	}
	if (o->fd < 0) {
		err = rec_out_open(o);
		if (err) {
			if (o->fd >= 0)
				rec_out_close(o);
			o->st->dropped_write_error += nrec;
			return err;
		}
	}
	if (!rec_out_room(o, need)) {
		o->st->dropped_dir_full += nrec;
		return -ENOSPC;
	}
	if (o->rc->out_format == REC_FMT_NATIVE) {
		memcpy(h, REC_BLOCK_MAGIC, 4);
		rec_put32(h + 4, (uint32_t)n);
		rec_put32(h + 8, nrec);
		rec_put32(h + 12, rec_crc(p, n));
		rec_put32(h + 16, rec_crc(h, 16));
		err = rec_out_write_all(o, h, sizeof(h));
		if (!err)
			err = rec_out_write_all(o, p, n);
	} else {
		err = rec_out_write_all(o, p, n);
	}
	if (err) {
		o->st->write_errors++;
		o->st->dropped_write_error += nrec;
		pr_warn("recording: write to %s failed: %s\n", o->cur, strerror(-err));
		return err;
	}
	rec_out_sync_size(o);
	o->st->blocks++;
	o->st->bytes += n;
	o->st->written += nrec;
	return 0;
}

static void rec_out_init(struct rec_out *o, const struct recording_cfg *rc, struct rec_writer_stats *st)
{
	memset(o, 0, sizeof(*o));
	o->rc = rc;
	o->fd = -1;
	o->st = st;
}

static void rec_out_fini(struct rec_out *o)
{
	size_t i;

	rec_out_close(o);
	for (i = 0; i < o->nfiles; i++)
		free(o->files[i].path);
	o->nfiles = 0;
}

/* ---- writer thread ---- */

struct rec_item {
	size_t len;
	char *data;
};

struct rec_writer {
	struct recording_cfg rc;
	struct bq q;
	pthread_t thr;
	bool started;
	uint64_t queued_bytes;         /* atomic */
	struct rec_writer_stats st;    /* drop counters atomic; the rest writer thread */
	struct rec_out out;
};

static void rec_writer_flush(struct rec_writer *w, struct buf *blk, uint32_t *nrec)
{
	if (!*nrec)
		return;
	rec_out_block(&w->out, blk->data, blk->len, *nrec);
	buf_reset(blk);
	*nrec = 0;
}

static void *rec_writer_main(void *arg)
{
	struct rec_writer *w = arg;
	struct buf blk = { 0 };
	void *items[256];
	uint64_t first_ns = 0;
	uint32_t nrec = 0;
	int n, i;

	for (;;) {
		n = bq_pop(&w->q, items, 256, 100);
		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			struct rec_item *it = items[i];

			if (!nrec)
				first_ns = st_mono_ns();
			if (buf_append(&blk, it->data, it->len))
				__atomic_add_fetch(&w->st.dropped_memory, 1, __ATOMIC_RELAXED);
			else
				nrec++;
			__atomic_sub_fetch(&w->queued_bytes, it->len, __ATOMIC_RELAXED);
			free(it->data);
			free(it);
			if (blk.len >= REC_BLOCK_TARGET)
				rec_writer_flush(w, &blk, &nrec);
		}
		if (nrec && st_mono_ns() - first_ns >= REC_BLOCK_MS * 1000000ull)
			rec_writer_flush(w, &blk, &nrec);
	}
	rec_writer_flush(w, &blk, &nrec);
	buf_free(&blk);
	return NULL;
}

int rec_writer_start(struct rec_writer **out, const struct recording_cfg *rc)
{
	struct rec_writer *w;
	int err;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->rc = *rc;
	rec_out_init(&w->out, &w->rc, &w->st);
	err = bq_init(&w->q, rc->out_queue_cap ? rc->out_queue_cap : 65536);
	if (err)
		goto fail;
	/* open the first file now so a bad path fails at start, not later */
	err = rec_out_open(&w->out);
	if (err)
		goto fail_q;
	if (pthread_create(&w->thr, NULL, rec_writer_main, w)) {
		err = -EAGAIN;
		pr_warn("recording: cannot start the writer thread\n");
		goto fail_q;
	}
	w->started = true;
	*out = w;
	return 0;
fail_q:
	bq_destroy(&w->q);
fail:
	rec_out_fini(&w->out);
	free(w);
	return err;
}

void rec_writer_submit(struct rec_writer *w, const struct st_record *r)
{
	struct rec_item *it;
	struct buf b = { 0 };
	int err;

	__atomic_add_fetch(&w->st.submitted, 1, __ATOMIC_RELAXED);
	err = w->rc.out_format == REC_FMT_GOR ? recording_encode_gor(r, &b)
					      : recording_encode_native(r, &b);
	if (err) {
		__atomic_add_fetch(&w->st.dropped_encode, 1, __ATOMIC_RELAXED);
		buf_free(&b);
		return;
	}
	if (__atomic_add_fetch(&w->queued_bytes, b.len, __ATOMIC_RELAXED) > w->rc.out_queue_bytes) {
		__atomic_sub_fetch(&w->queued_bytes, b.len, __ATOMIC_RELAXED);
		__atomic_add_fetch(&w->st.dropped_memory, 1, __ATOMIC_RELAXED);
		buf_free(&b);
		return;
	}
	it = malloc(sizeof(*it));
	if (!it) {
		__atomic_sub_fetch(&w->queued_bytes, b.len, __ATOMIC_RELAXED);
		__atomic_add_fetch(&w->st.dropped_memory, 1, __ATOMIC_RELAXED);
		buf_free(&b);
		return;
	}
	it->len = b.len;
	it->data = b.data;
	if (bq_push(&w->q, it)) {
		__atomic_sub_fetch(&w->queued_bytes, b.len, __ATOMIC_RELAXED);
		__atomic_add_fetch(&w->st.dropped_queue_full, 1, __ATOMIC_RELAXED);
		free(it->data);
		free(it);
	}
}

void rec_writer_get_stats(struct rec_writer *w, struct rec_writer_stats *st)
{
	*st = w->st;
	st->submitted = __atomic_load_n(&w->st.submitted, __ATOMIC_RELAXED);
	st->dropped_queue_full = __atomic_load_n(&w->st.dropped_queue_full, __ATOMIC_RELAXED);
	st->dropped_memory = __atomic_load_n(&w->st.dropped_memory, __ATOMIC_RELAXED);
	st->dropped_encode = __atomic_load_n(&w->st.dropped_encode, __ATOMIC_RELAXED);
}

void rec_writer_stop(struct rec_writer *w, FILE *f)
{
	struct rec_writer_stats s;

	if (!w)
		return;
	bq_close(&w->q);
	if (w->started)
		pthread_join(w->thr, NULL);
	rec_out_fini(&w->out);
	rec_writer_get_stats(w, &s);
	if (f)
		fprintf(f, "recording: submitted=%llu written=%llu blocks=%llu bytes=%llu files=%llu "
			   "rotations=%llu files_deleted=%llu dropped_queue_full=%llu dropped_memory=%llu "
			   "dropped_encode=%llu dropped_dir_full=%llu dropped_write_error=%llu write_errors=%llu\n",
			(unsigned long long)s.submitted, (unsigned long long)s.written,
			(unsigned long long)s.blocks, (unsigned long long)s.bytes,
			(unsigned long long)s.files, (unsigned long long)s.rotations,
			(unsigned long long)s.files_deleted, (unsigned long long)s.dropped_queue_full,
			(unsigned long long)s.dropped_memory, (unsigned long long)s.dropped_encode,
			(unsigned long long)s.dropped_dir_full, (unsigned long long)s.dropped_write_error,
			(unsigned long long)s.write_errors);
	bq_destroy(&w->q);
	free(w);
}

/* ---- reader: buffered source ---- */

struct rec_gor_pending {
	struct st_record *rec;
	char id[64];
	struct rec_gor_pending *next;
};

struct rec_flowctr {
	uint64_t flow;
	uint32_t next;
	bool used;
	bool pipelined;      /* two requests pending with one ID: pairing is ambiguous */
};

struct rd_blockpos {
	const uint8_t *data;
	size_t len, off;
	uint32_t left;
};

struct rec_reader {
	gzFile gz;
	const uint8_t *mem;
	size_t mem_len, mem_off;
	bool eof;
	uint8_t *buf;
	size_t cap, len, off;
	int format;
	size_t body_limit;
	struct rec_reader_stats st;
	/* gor pairing: FIFO of requests waiting for their response */
	struct rec_gor_pending *head, *tail;
	size_t npending;
	struct rec_flowctr *fc;        /* per-flow request counters (open addressing) */
	size_t fc_cap, fc_used;
	uint64_t last_ts;
	struct rd_blockpos bp;         /* native: the block being decoded */
};

/* Make at least n bytes available at buf+off; returns how many are (< n at EOF). */
static size_t rd_need(struct rec_reader *rd, size_t n)
{
	while (rd->len - rd->off < n && !rd->eof) {
		size_t want;

		if (rd->off && (rd->off > rd->cap / 2 || rd->cap - rd->len < 65536)) {
			memmove(rd->buf, rd->buf + rd->off, rd->len - rd->off);
			rd->len -= rd->off;
			rd->off = 0;
		}
		if (rd->cap - rd->len < 65536 || rd->cap - rd->off < n) {
			size_t nc = rd->cap ? rd->cap : 262144;
			uint8_t *p;

			while (nc - rd->len < 65536 || nc < n + rd->off)
				nc *= 2;
			p = realloc(rd->buf, nc);
			if (!p) {
				rd->st.read_errors++;
				rd->eof = true;
				break;
			}
			rd->buf = p;
			rd->cap = nc;
		}
		want = rd->cap - rd->len;
		if (rd->mem) {
			size_t k = rd->mem_len - rd->mem_off < want ? rd->mem_len - rd->mem_off : want;

			memcpy(rd->buf + rd->len, rd->mem + rd->mem_off, k);
			rd->mem_off += k;
			rd->len += k;
			if (rd->mem_off == rd->mem_len)
				rd->eof = true;
		} else {
			int k = gzread(rd->gz, rd->buf + rd->len, want > (1u << 30) ? (1u << 30) : (unsigned)want);

			if (k < 0) {
				int zerr;

				pr_warn("recording: read error: %s\n", gzerror(rd->gz, &zerr));
				rd->st.read_errors++;
				rd->eof = true;
			} else if (k == 0) {
				rd->eof = true;
			} else {
				rd->len += (size_t)k;
			}
		}
	}
	return rd->len - rd->off;
}

/* ---- reader: msgpack cursor (bounds-checked, no allocation) ---- */

struct mp {
	const uint8_t *p, *end;
	bool bad;
};

enum { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_STR, MP_BIN, MP_ARR, MP_MAP, MP_OTHER };

struct mp_val {
	int type;
	uint64_t u;          /* UINT, BOOL; ARR/MAP count */
	int64_t i;           /* INT (and UINT fitting) */
	const uint8_t *s;    /* STR/BIN */
	size_t n;
};

static uint64_t mp_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static bool mp_take(struct mp *m, size_t n, const uint8_t **out)
{
	if (m->bad || (size_t)(m->end - m->p) < n) {
		m->bad = true;
		return false;
	}
	*out = m->p;
	m->p += n;
	return true;
}

static bool mp_read(struct mp *m, struct mp_val *v)
{
	const uint8_t *q;
	uint8_t c;
	int w;

	memset(v, 0, sizeof(*v));
	if (!mp_take(m, 1, &q))
		return false;
	c = q[0];
	if (c <= 0x7f) { v->type = MP_UINT; v->u = c; v->i = c; return true; }
	if (c >= 0xe0) { v->type = MP_INT; v->i = (int8_t)c; return true; }
	if ((c & 0xf0) == 0x80) { v->type = MP_MAP; v->u = c & 0x0f; return true; }
	if ((c & 0xf0) == 0x90) { v->type = MP_ARR; v->u = c & 0x0f; return true; }
	if ((c & 0xe0) == 0xa0) {
		v->type = MP_STR;
		v->n = c & 0x1f;
		return mp_take(m, v->n, &v->s);
	}
	switch (c) {
	case 0xc0: v->type = MP_NIL; return true;
	case 0xc2: case 0xc3: v->type = MP_BOOL; v->u = c & 1; return true;
	case 0xc4: case 0xc5: case 0xc6:
	case 0xd9: case 0xda: case 0xdb:
		w = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
		if (!mp_take(m, (size_t)w, &q))
			return false;
		v->type = c <= 0xc6 ? MP_BIN : MP_STR;
		v->n = (size_t)mp_be(q, w);
		return mp_take(m, v->n, &v->s);
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		w = 1 << (c - 0xcc);
		if (!mp_take(m, (size_t)w, &q))
			return false;
		v->type = MP_UINT;
		v->u = mp_be(q, w);
		v->i = (int64_t)v->u;
		return true;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		w = 1 << (c - 0xd0);
		if (!mp_take(m, (size_t)w, &q))
			return false;
		v->type = MP_INT;
		v->u = mp_be(q, w);
		/* sign-extend from w bytes */
		v->i = w == 8 ? (int64_t)v->u : (int64_t)(v->u << (64 - 8 * w)) >> (64 - 8 * w);
		return true;
	case 0xdc: case 0xdd: case 0xde: case 0xdf:
		w = (c == 0xdc || c == 0xde) ? 2 : 4;
		if (!mp_take(m, (size_t)w, &q))
			return false;
		v->type = c <= 0xdd ? MP_ARR : MP_MAP;
		v->u = mp_be(q, w);
		return true;
	case 0xca: case 0xcb:
		v->type = MP_OTHER;
		return mp_take(m, c == 0xca ? 4 : 8, &q);
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		v->type = MP_OTHER;
		return mp_take(m, 1 + ((size_t)1 << (c - 0xd4)), &q);
	case 0xc7: case 0xc8: case 0xc9:
		w = 1 << (c - 0xc7);
		if (!mp_take(m, (size_t)w, &q))
			return false;
		v->type = MP_OTHER;
		v->n = (size_t)mp_be(q, w);
		return mp_take(m, v->n + 1, &q);
	default:
		m->bad = true;
		return false;
	}
}

/* Skip one value (containers included), iteratively with a count of pending
 * values, so hostile nesting cannot exhaust the stack. */
static bool mp_skip(struct mp *m)
{
	uint64_t pending = 1;
	struct mp_val v;

	while (pending) {
		if (!mp_read(m, &v))
			return false;
		pending--;
		if (v.type == MP_ARR || v.type == MP_MAP) {
			uint64_t add = v.type == MP_MAP ? v.u * 2 : v.u;

			/* every element takes at least a byte */
			if (add > (uint64_t)(m->end - m->p)) {
				m->bad = true;
				return false;
			}
			pending += add;
		}
	}
	return true;
}

static bool mp_key_is(const struct mp_val *k, const char *s)
{
	size_t n = strlen(s);

	return k->type == MP_STR && k->n == n && !memcmp(k->s, s, n);
}

static bool mp_uint(const struct mp_val *v, uint64_t *out)
{
	if (v->type == MP_UINT) {
		*out = v->u;
		return true;
	}
	if (v->type == MP_INT && v->i >= 0) {
		*out = (uint64_t)v->i;
		return true;
	}
	return false;
}

static bool mp_int(const struct mp_val *v, int64_t *out)
{
	if (v->type == MP_INT || (v->type == MP_UINT && v->u <= INT64_MAX)) {
		*out = v->i;
		return true;
	}
	return false;
}

/* ---- reader: building records ---- */

static void rd_body_cb(void *ctx, const char *data, size_t len)
{
	struct st_msg *m = ((void **)ctx)[0];
	size_t limit = *(size_t *)((void **)ctx)[1];

	record_msg_body_append(m, data, len, limit);
}

/* Fill the request's parsed fields (method, target, headers, body) from raw. */
static int rd_request_from_raw(struct st_record *r, size_t body_limit)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_request req;
	struct http1_body body = { 0 };
	uint64_t cl = 0, n_bytes = r->req.body_bytes;
	void *ctx[2] = { &r->req, &body_limit };
	int hl, fr;
	ssize_t used;

	hl = http1_parse_request((const char *)r->raw, r->raw_len, &req, hdrs, ST_MAX_HEADERS);
	if (hl < 0) {
		r->cap_flags |= ST_CAP_MALFORMED;
		r->malformed = "request in the recording did not parse";
		return -EBADMSG;
	}
	if (record_msg_set_head(&r->req, (const char *)r->raw, (size_t)hl, req.headers, req.num_headers))
		return -ENOMEM;
	r->method = r->req.head + (req.method - (const char *)r->raw);
	r->method_len = req.method_len;
	r->target = r->req.head + (req.target - (const char *)r->raw);
	r->target_len = req.target_len;
	r->http_minor = req.minor_version;
	fr = http1_request_framing(&req, &cl);
	r->req.chunked = fr == HTTP1_BODY_CHUNKED;
	r->req.body_bytes = 0;
	if (fr == HTTP1_BODY_LENGTH || fr == HTTP1_BODY_CHUNKED) {
		http1_body_init(&body, fr, cl);
		used = http1_body_feed(&body, (const char *)r->raw + hl, r->raw_len - (size_t)hl,
				       rd_body_cb, ctx);
		(void)used;
	}
	if (n_bytes > r->req.body_bytes)
		r->req.body_bytes = n_bytes;
	if (!r->req.wire_bytes)
		r->req.wire_bytes = r->raw_len;
	return 0;
}

/* Response head (+ optionally a decoded body) from bytes; body_raw says whether the
 * bytes after the head are still framed (gor) or already decoded (native). */
static int rd_response(struct st_record *r, const uint8_t *p, size_t n, bool body_raw,
		       size_t body_limit)
{
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	struct http1_body body = { 0 };
	void *ctx[2] = { &r->resp, &body_limit };
	uint64_t cl = 0;
	int hl, fr;

	hl = http1_parse_response((const char *)p, n, &resp, hdrs, ST_MAX_HEADERS);
	if (hl < 0)
		return -EBADMSG;
	if (record_msg_set_head(&r->resp, (const char *)p, (size_t)hl, resp.headers, resp.num_headers))
		return -ENOMEM;
	r->status_code = resp.status;
	if (!body_raw)
		return 0;
	fr = http1_response_framing(&resp, r->method ? r->method : "GET", r->method ? r->method_len : 3, &cl);
	r->resp.chunked = fr == HTTP1_BODY_CHUNKED;
	r->resp.wire_bytes = n;
	if (fr == HTTP1_BODY_NONE || fr == HTTP1_MALFORMED) {
		r->resp.complete = fr == HTTP1_BODY_NONE;
		return 0;
	}
	http1_body_init(&body, fr, cl);
	if (http1_body_feed(&body, (const char *)p + hl, n - (size_t)hl, rd_body_cb, ctx) >= 0 &&
	    (body.done || http1_body_eof(&body) == 0))
		r->resp.complete = 1;
	return 0;
}

static bool rd_msg(struct mp *m, uint64_t cnt, struct st_msg *msg, const uint8_t **head,
		   size_t *head_len, const uint8_t **body, size_t *body_len)
{
	struct mp_val k, v;
	uint64_t u;

	while (cnt--) {
		if (!mp_read(m, &k))
			return false;
		if (mp_key_is(&k, "h") || mp_key_is(&k, "b")) {
			if (!mp_read(m, &v) || v.type != MP_BIN)
				return false;
			if (k.s[0] == 'h') {
				*head = v.s;
				*head_len = v.n;
			} else {
				*body = v.s;
				*body_len = v.n;
			}
			continue;
		}
		if (mp_key_is(&k, "n") || mp_key_is(&k, "w") || mp_key_is(&k, "t0") ||
		    mp_key_is(&k, "t1") || mp_key_is(&k, "x")) {
			if (!mp_read(m, &v) || !mp_uint(&v, &u))
				return false;
			if (k.s[0] == 'n')
				msg->body_bytes = u;
			else if (k.s[0] == 'w')
				msg->wire_bytes = u;
			else if (k.s[0] == 'x') {
				msg->complete = u & 1;
				msg->chunked = (u >> 1) & 1;
				msg->body_capped = (u >> 2) & 1;
			} else if (k.s[1] == '0')
				msg->ts_first_ns = u;
			else
				msg->ts_last_ns = u;
			continue;
		}
		if (!mp_skip(m))
			return false;
	}
	return true;
}

/* Decode one record map; NULL (counted by the caller) when it does not fit the schema. */
static struct st_record *rd_native_record(struct rec_reader *rd, struct mp *m)
{
	const uint8_t *qh = NULL, *qb = NULL, *sh = NULL, *sb = NULL, *raw = NULL;
	size_t qhl = 0, qbl = 0, shl = 0, sbl = 0, rawl = 0;
	struct st_record *r = record_new();
	struct mp_val k, v;
	uint64_t cnt, u, keep_body_bytes;
	int64_t i;
	bool have_id = false;

	if (!r)
		return NULL;
	if (!mp_read(m, &v) || v.type != MP_MAP)
		goto bad;
	for (cnt = v.u; cnt; cnt--) {
		if (!mp_read(m, &k) || k.type != MP_STR)
			goto bad;
		if (mp_key_is(&k, "rq") || mp_key_is(&k, "rs")) {
			bool rq = k.s[1] == 'q';

			if (!mp_read(m, &v) || v.type != MP_MAP)
				goto bad;
			if (!rd_msg(m, v.u, rq ? &r->req : &r->resp, rq ? &qh : &sh, rq ? &qhl : &shl,
				    rq ? &qb : &sb, rq ? &qbl : &sbl))
				goto bad;
			continue;
		}
		if (!mp_read(m, &v))
			goto bad;
		if (mp_key_is(&k, "id")) {
			if (v.type != MP_STR || v.n != 32)
				goto bad;
			memcpy(r->event_id, v.s, 32);
			r->event_id[32] = '\0';
			have_id = true;
		} else if (mp_key_is(&k, "ca") || mp_key_is(&k, "sa")) {
			if (v.type != MP_BIN || v.n != 16)
				goto bad;
			memcpy(k.s[0] == 'c' ? r->caddr : r->saddr, v.s, 16);
		} else if (mp_key_is(&k, "raw")) {
			if (v.type != MP_BIN)
				goto bad;
			raw = v.s;
			rawl = v.n;
		} else if (mp_key_is(&k, "co") || mp_key_is(&k, "st") || mp_key_is(&k, "hv")) {
			if (!mp_int(&v, &i))
				goto bad;
			if (k.s[0] == 'c')
				r->clock_offset_ns = i;
			else if (k.s[0] == 's')
				r->status_code = (int)(i > 999 || i < 0 ? 0 : i);
			else
				r->http_minor = i < 0 ? -1 : i > 1 ? 1 : (int)i;
		} else if (mp_key_is(&k, "fl") || mp_key_is(&k, "ix") || mp_key_is(&k, "af") ||
			   mp_key_is(&k, "cp") || mp_key_is(&k, "sp") || mp_key_is(&k, "cf") ||
			   mp_key_is(&k, "gb") || mp_key_is(&k, "v")) {
			if (!mp_uint(&v, &u))
				goto bad;
			if (mp_key_is(&k, "fl"))
				r->flow_id = u;
			else if (mp_key_is(&k, "ix"))
				r->index = (uint32_t)u;
			else if (mp_key_is(&k, "af"))
				r->family = (uint8_t)u;
			else if (mp_key_is(&k, "cp"))
				r->cport = (uint16_t)u;
			else if (mp_key_is(&k, "sp"))
				r->sport = (uint16_t)u;
			else if (mp_key_is(&k, "cf"))
				r->cap_flags = (uint32_t)u;
			else if (mp_key_is(&k, "gb"))
				r->gap_bytes = u;
		} else if (v.type == MP_ARR || v.type == MP_MAP) {
			/* unknown container: skip its elements too */
			uint64_t add = v.type == MP_MAP ? v.u * 2 : v.u;

			while (add--)
				if (!mp_skip(m))
					goto bad;
		}
	}
	if (r->cap_flags & ST_CAP_MALFORMED)
		r->malformed = "recorded as malformed";
	if (!have_id)
		recording_event_id(r->flow_id, r->index, r->event_id);
	if (raw) {
		r->raw = malloc(rawl);
		if (!r->raw)
			goto bad;
		memcpy(r->raw, raw, rawl);
		r->raw_len = rawl;
		keep_body_bytes = r->req.body_bytes;
		rd_request_from_raw(r, rd->body_limit);
		if (keep_body_bytes > r->req.body_bytes)
			r->req.body_bytes = keep_body_bytes;
	} else if (qh) {
		struct http1_header hdrs[ST_MAX_HEADERS];
		struct http1_request req;
		int hl = http1_parse_request((const char *)qh, qhl, &req, hdrs, ST_MAX_HEADERS);

		if (hl > 0 && !record_msg_set_head(&r->req, (const char *)qh, (size_t)hl, req.headers,
						   req.num_headers)) {
			r->method = r->req.head + (req.method - (const char *)qh);
			r->method_len = req.method_len;
			r->target = r->req.head + (req.target - (const char *)qh);
			r->target_len = req.target_len;
		}
		keep_body_bytes = r->req.body_bytes;
		if (qbl)
			record_msg_body_append(&r->req, (const char *)qb, qbl, rd->body_limit);
		r->req.body_bytes = keep_body_bytes;
	}
	if (sh) {
		keep_body_bytes = r->resp.body_bytes;
		if (rd_response(r, sh, shl, false, rd->body_limit) == 0 && sbl)
			record_msg_body_append(&r->resp, (const char *)sb, sbl, rd->body_limit);
		r->resp.body_bytes = keep_body_bytes;
	}
	return r;
bad:
	record_free(r);
	return NULL;
}

/* ---- reader: native blocks ---- */

static int rd_native_header(struct rec_reader *rd)
{
	uint32_t meta_len, ver;
	const uint8_t *p;

	if (rd_need(rd, 16) < 16 || memcmp(rd->buf + rd->off, REC_MAGIC, 8)) {
		pr_warn("recording: not a shadowtap recording (wrong magic)\n");
		return -EPROTO;
	}
	p = rd->buf + rd->off;
	ver = (uint32_t)p[8] | (uint32_t)p[9] << 8;
	if (ver != REC_VERSION) {
		pr_warn("recording: unsupported recording version %u (this agent reads %d)\n", ver,
			REC_VERSION);
		return -EPROTO;
	}
	meta_len = rec_get32(p + 12);
	if (meta_len > REC_META_MAX || rd_need(rd, 16 + (size_t)meta_len + 4) < 16 + (size_t)meta_len + 4) {
		pr_warn("recording: truncated or corrupt file header\n");
		return -EPROTO;
	}
	p = rd->buf + rd->off;
	if (rec_crc(p, 16 + meta_len) != rec_get32(p + 16 + meta_len)) {
		pr_warn("recording: corrupt file header (checksum)\n");
		return -EPROTO;
	}
	rd->off += 16 + meta_len + 4;
	return 0;
}

/* Next block into [*p, *p + *n): 1, or 0 at the end. */
static int rd_native_block(struct rec_reader *rd, const uint8_t **p, size_t *n, uint32_t *nrec)
{
	const uint8_t *h;
	size_t have;
	uint32_t len;

	for (;;) {
		have = rd_need(rd, REC_BLOCK_HDR);
		if (have == 0)
			return 0;
		if (have < REC_BLOCK_HDR) {
			rd->st.torn_tail++;
			rd->off = rd->len;
			return 0;
		}
		h = rd->buf + rd->off;
		if (memcmp(h, REC_BLOCK_MAGIC, 4) || rec_crc(h, 16) != rec_get32(h + 16) ||
		    rec_get32(h + 4) > REC_BLOCK_MAX) {
			/* damaged header: look for the next block one byte further on */
			rd->off++;
			rd->st.resync_bytes++;
			continue;
		}
		len = rec_get32(h + 4);
		have = rd_need(rd, REC_BLOCK_HDR + (size_t)len);
		if (have < REC_BLOCK_HDR + (size_t)len) {
			rd->st.torn_tail++;
			rd->off = rd->len;
			return 0;
		}
		h = rd->buf + rd->off;
		rd->off += REC_BLOCK_HDR + len;
		if (rec_crc(h + REC_BLOCK_HDR, len) != rec_get32(h + 12)) {
			rd->st.bad_blocks++;
			continue;
		}
		rd->st.blocks++;
		*p = h + REC_BLOCK_HDR;
		*n = len;
		*nrec = rec_get32(h + 8);
		return 1;
	}
}

/* ---- reader: GoReplay ---- */

static bool rd_hexval(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		int c = s[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return true;
}

static struct rec_flowctr *rd_flow_get(struct rec_reader *rd, uint64_t flow)
{
	size_t i;

	if (rd->fc_used * 2 >= rd->fc_cap) {
		size_t nc = rd->fc_cap ? rd->fc_cap * 2 : 1024, j;
		struct rec_flowctr *n = calloc(nc, sizeof(*n));

		if (!n)
			return NULL;
		for (j = 0; j < rd->fc_cap; j++) {
			if (!rd->fc[j].used)
				continue;
			for (i = st_mix64(rd->fc[j].flow) & (nc - 1); n[i].used; i = (i + 1) & (nc - 1))
				;
			n[i] = rd->fc[j];
		}
		free(rd->fc);
		rd->fc = n;
		rd->fc_cap = nc;
	}
	for (i = st_mix64(flow) & (rd->fc_cap - 1); rd->fc[i].used; i = (i + 1) & (rd->fc_cap - 1))
		if (rd->fc[i].flow == flow)
			return &rd->fc[i];
	rd->fc[i].used = true;
	rd->fc[i].flow = flow;
	rd->fc_used++;
	return &rd->fc[i];
}

static uint64_t rd_gor_flow(const char *id, size_t idl)
{
	uint64_t flow;

	if (idl == 24 && rd_hexval(id, 16, &flow))
		return flow;
	return st_mix64((uint64_t)crc32(0L, (const Bytef *)id, (uInt)idl) << 32 | idl);
}

/* Parse one entry [p, p+n) (without its separator). Returns 1 if a request was
 * queued, 0 otherwise. */
static int rd_gor_entry(struct rec_reader *rd, const uint8_t *p, size_t n)
{
	const uint8_t *nl = memchr(p, '\n', n);
	char meta[256], *f[5], *save = NULL, *tok;
	struct rec_gor_pending *pe, *alt;
	struct rec_flowctr *fc;
	struct st_record *r;
	size_t ml, idl, nf = 0;
	long long ts, lat;
	uint64_t flow;
	char *end;

	if (!nl || (ml = (size_t)(nl - p)) >= sizeof(meta)) {
		rd->st.bad_records++;
		return 0;
	}
	memcpy(meta, p, ml);
	meta[ml] = '\0';
	for (tok = strtok_r(meta, " ", &save); tok && nf < 5; tok = strtok_r(NULL, " ", &save))
		f[nf++] = tok;
	if (nf < 3 || strlen(f[0]) != 1 || (idl = strlen(f[1])) >= sizeof(pe->id)) {
		rd->st.bad_records++;
		return 0;
	}
	errno = 0;
	ts = strtoll(f[2], &end, 10);
	if (errno || *end || ts < 0) {
		rd->st.bad_records++;
		return 0;
	}
	lat = 0;
	if (nf > 3) {
		lat = strtoll(f[3], &end, 10);
		if (*end || lat < 0)
			lat = 0;
	}
	p = nl + 1;
	n -= ml + 1;
	if (rd->last_ts < (uint64_t)ts)
		rd->last_ts = (uint64_t)ts;
	switch (f[0][0]) {
	case '1':
		rd->st.gor_requests++;
		r = record_new();
		pe = calloc(1, sizeof(*pe));
		if (!r || !pe || !(r->raw = malloc(n ? n : 1))) {
			record_free(r);
			free(pe);
			rd->st.bad_records++;
			return 0;
		}
		memcpy(r->raw, p, n);
		r->raw_len = n;
		flow = rd_gor_flow(f[1], idl);
		fc = rd_flow_get(rd, flow);
		r->flow_id = flow;
		r->index = fc ? fc->next++ : 0;
		/* GoReplay names a request by the ack it carried: pipelined requests
		 * share it, and their responses (named by seq) cannot be told apart */
		for (alt = rd->head; fc && !fc->pipelined && alt; alt = alt->next)
			if (!strcmp(alt->id, f[1]))
				fc->pipelined = true;
		recording_event_id(r->flow_id, r->index, r->event_id);
		r->req.ts_first_ns = (uint64_t)ts;
		r->req.ts_last_ns = (uint64_t)ts + (uint64_t)lat;
		r->req.complete = 1;
		r->req.wire_bytes = n;
		r->http_minor = 1;
		rd_request_from_raw(r, rd->body_limit);
		memcpy(pe->id, f[1], idl + 1);
		pe->rec = r;
		if (rd->tail)
			rd->tail->next = pe;
		else
			rd->head = pe;
		rd->tail = pe;
		rd->npending++;
		return 1;
	case '2':
		rd->st.gor_responses++;
		/* by ID, and only where that is unambiguous: a wrong serverA response
		 * would make a false diff, a missing one is just counted */
		fc = rd_flow_get(rd, rd_gor_flow(f[1], idl));
		if (fc && fc->pipelined) {
			rd->st.gor_ambiguous++;
			return 0;
		}
		for (pe = rd->head; pe; pe = pe->next)
			if (!pe->rec->resp.head && !strcmp(pe->id, f[1]))
				break;
		if (!pe) {
			rd->st.gor_orphan_responses++;
			return 0;
		}
		r = pe->rec;
		if (rd_response(r, p, n, true, rd->body_limit)) {
			rd->st.bad_records++;
			return 0;
		}
		r->resp.ts_first_ns = (uint64_t)ts;
		r->resp.ts_last_ns = (uint64_t)ts + (uint64_t)lat;
		return 0;
	case '3':
		rd->st.gor_replayed++;
		return 0;
	default:
		rd->st.gor_unknown++;
		return 0;
	}
}

static struct st_record *rd_gor_pop(struct rec_reader *rd)
{
	struct rec_gor_pending *pe = rd->head;
	struct st_record *r = pe->rec;

	rd->head = pe->next;
	if (!rd->head)
		rd->tail = NULL;
	rd->npending--;
	free(pe);
	if (!r->resp.head)
		rd->st.gor_unanswered++;
	return r;
}

/* The oldest pending request may go once answered, once the window has passed it,
 * or when too many wait. */
static bool rd_gor_ready(struct rec_reader *rd)
{
	const struct st_record *r;

	if (!rd->head)
		return false;
	r = rd->head->rec;
	return r->resp.head || rd->npending > REC_GOR_PENDING ||
	       rd->last_ts > r->req.ts_first_ns + REC_GOR_WINDOW_NS;
}

static int rd_gor_next(struct rec_reader *rd, struct st_record **out)
{
	const uint8_t *s;
	size_t have, scanned = 0;

	for (;;) {
		if (rd_gor_ready(rd)) {
			*out = rd_gor_pop(rd);
			return 1;
		}
		have = rd_need(rd, scanned + REC_GOR_SEP_LEN);
		if (have < scanned + REC_GOR_SEP_LEN && rd->eof) {
			/* end of file: a non-empty rest without separator is a torn entry */
			if (rd->len - rd->off > 0) {
				const uint8_t *q = rd->buf + rd->off;
				size_t k = rd->len - rd->off, i;

				for (i = 0; i < k && (q[i] == '\n' || q[i] == '\r' || q[i] == ' '); i++)
					;
				if (i < k)
					rd->st.torn_tail++;
				rd->off = rd->len;
			}
			if (rd->head) {
				*out = rd_gor_pop(rd);
				return 1;
			}
			return 0;
		}
		s = memmem(rd->buf + rd->off + scanned, have - scanned, REC_GOR_SEP, REC_GOR_SEP_LEN);
		if (!s) {
			scanned = have - (REC_GOR_SEP_LEN - 1);
			if (scanned > REC_ENTRY_MAX) {
				/* an entry this large is not a recording we can hold: drop it */
				rd->st.bad_records++;
				rd->st.resync_bytes += scanned;
				rd->off += scanned;
				scanned = 0;
			}
			have = rd_need(rd, have + 65536);
			continue;
		}
		have = (size_t)(s - (rd->buf + rd->off));
		rd_gor_entry(rd, rd->buf + rd->off, have);
		rd->off += have + REC_GOR_SEP_LEN;
		scanned = 0;
	}
}

/* ---- reader: public ---- */

static int rd_detect(struct rec_reader *rd)
{
	size_t have = rd_need(rd, 8);
	const uint8_t *p = rd->buf + rd->off;

	if (have >= 8 && !memcmp(p, REC_MAGIC, 8)) {
		rd->format = REC_FMT_NATIVE;
		return rd_native_header(rd);
	}
	if (have >= 2 && p[0] >= '1' && p[0] <= '3' && p[1] == ' ') {
		rd->format = REC_FMT_GOR;
		return 0;
	}
	if (have == 0) {
		rd->format = REC_FMT_GOR;   /* an empty file is an empty recording */
		return 0;
	}
	pr_warn("recording: neither a shadowtap recording nor a GoReplay file (wrong magic)\n");
	return -EPROTO;
}

static int rd_alloc(struct rec_reader **out, size_t body_limit)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->body_limit = body_limit ? body_limit : 64 * 1024;
	return 0;
}

int rec_reader_open(struct rec_reader **out, const char *path, size_t body_limit)
{
	struct rec_reader *rd;
	int fd, err;

	*out = NULL;
	err = rd_alloc(&rd, body_limit);
	if (err)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		pr_warn("recording: cannot open %s: %s\n", path, strerror(errno));
		free(rd);
		return err;
	}
	rd->gz = gzdopen(fd, "rb");
	if (!rd->gz) {
		close(fd);
		free(rd);
		return -ENOMEM;
	}
	gzbuffer(rd->gz, 256 * 1024);
	err = rd_detect(rd);
	if (err) {
		pr_warn("recording: cannot read %s\n", path);
		rec_reader_close(rd);
		return err;
	}
	*out = rd;
	return 0;
}

int rec_reader_open_mem(struct rec_reader **out, const void *data, size_t len, size_t body_limit)
{
	struct rec_reader *rd;
	int err;

	*out = NULL;
	err = rd_alloc(&rd, body_limit);
	if (err)
		return err;
	rd->mem = data;
	rd->mem_len = len;
	rd->eof = len == 0;
	err = rd_detect(rd);
	if (err) {
		rec_reader_close(rd);
		return err;
	}
	*out = rd;
	return 0;
}

static int rd_native_next(struct rec_reader *rd, struct st_record **out)
{
	struct rd_blockpos *bp = &rd->bp;
	const uint8_t *p;
	size_t n;
	uint32_t nrec;
	int ret;

	for (;;) {
		if (bp->left && bp->off < bp->len) {
			struct mp m = { bp->data + bp->off, bp->data + bp->len, false };
			struct st_record *r = rd_native_record(rd, &m);

			bp->left--;
			if (!r || m.bad) {
				record_free(r);
				/* the rest of the block cannot be framed reliably */
				rd->st.bad_records += 1 + bp->left;
				bp->left = 0;
				continue;
			}
			bp->off = (size_t)(m.p - bp->data);
			*out = r;
			return 1;
		}
		if (bp->left) {
			rd->st.bad_records += bp->left;   /* block shorter than its count */
			bp->left = 0;
		}
		ret = rd_native_block(rd, &p, &n, &nrec);
		if (ret <= 0)
			return ret;
		/* points into rd->buf, which stays put until the next rd_need */
		bp->data = p;
		bp->len = n;
		bp->off = 0;
		bp->left = nrec;
	}
}

int rec_reader_next(struct rec_reader *rd, struct st_record **rec)
{
	int ret;

	*rec = NULL;
	if (rd->format == REC_FMT_GOR)
		ret = rd_gor_next(rd, rec);
	else
		ret = rd_native_next(rd, rec);
	if (ret > 0)
		rd->st.records++;
	return ret;
}

int rec_reader_format(const struct rec_reader *rd)
{
	return rd->format;
}

void rec_reader_get_stats(const struct rec_reader *rd, struct rec_reader_stats *st)
{
	*st = rd->st;
}

void rec_reader_close(struct rec_reader *rd)
{
	struct rec_gor_pending *pe, *nx;

	if (!rd)
		return;
	for (pe = rd->head; pe; pe = nx) {
		nx = pe->next;
		record_free(pe->rec);
		free(pe);
	}
	if (rd->gz)
		gzclose(rd->gz);
	free(rd->fc);
	free(rd->buf);
	free(rd);
}

/* ---- file input driver ---- */

static uint64_t rec_req_wall(const struct st_record *r)
{
	return (uint64_t)((int64_t)(r->req.ts_first_ns ? r->req.ts_first_ns : r->resp.ts_first_ns) +
			  r->clock_offset_ns);
}

/* Count the records of a file cheaply (native blocks carry their count) and note
 * its first request's time, by which rotated files are put in order. */
static int rec_count_file(const char *path, size_t body_limit, uint64_t *n, uint64_t *first)
{
	struct rec_reader *rd;
	struct st_record *r;
	const uint8_t *p;
	size_t len;
	uint32_t nrec;
	int ret;

	*n = 0;
	*first = UINT64_MAX;
	ret = rec_reader_open(&rd, path, body_limit);
	if (ret)
		return ret;
	ret = rec_reader_next(rd, &r);
	if (ret > 0) {
		*first = rec_req_wall(r);
		record_free(r);
		*n = 1;
		if (rd->format == REC_FMT_NATIVE) {
			*n += rd->bp.left;
			while ((ret = rd_native_block(rd, &p, &len, &nrec)) > 0)
				*n += nrec;
		} else {
			while ((ret = rec_reader_next(rd, &r)) > 0) {
				record_free(r);
				(*n)++;
			}
		}
	}
	rec_reader_close(rd);
	return ret < 0 ? ret : 0;
}

struct rin_file {
	const char *path;
	uint64_t first, n;
};

static int rin_file_cmp(const void *a, const void *b)
{
	const struct rin_file *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return strcmp(x->path, y->path);
}

struct rin_item {
	uint64_t ts, seq;
	struct st_record *rec;
};

/* Min-heap on (ts, seq): records are written when their exchange ends, so a slow
 * exchange follows faster later ones in the file; the heap gives them back in
 * request order (ties keep file order, so one connection's order is kept). */
struct rin_heap {
	struct rin_item *a;
	size_t n, cap;
};

static bool rin_less(const struct rin_item *x, const struct rin_item *y)
{
	return x->ts < y->ts || (x->ts == y->ts && x->seq < y->seq);
}

static int rin_push(struct rin_heap *h, struct rin_item it)
{
	size_t i;

	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 1024;
		struct rin_item *p = realloc(h->a, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		h->a = p;
		h->cap = nc;
	}
	i = h->n++;
	while (i && rin_less(&it, &h->a[(i - 1) / 2])) {
		h->a[i] = h->a[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->a[i] = it;
	return 0;
}

static struct rin_item rin_pop(struct rin_heap *h)
{
	struct rin_item top = h->a[0], last = h->a[--h->n];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < h->n) {
		if (c + 1 < h->n && rin_less(&h->a[c + 1], &h->a[c]))
			c++;
		if (!rin_less(&h->a[c], &last))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n)
		h->a[i] = last;
	return top;
}

#define RIN_REORDER_NS   (5ull * 1000000000ull)
#define RIN_REORDER_MAX  8192

struct rin {
	const struct recording_input *in;
	uint64_t total, submitted, pass, start_ns, next_progress_ns, t0_rec, t0_mono;
	bool have_t0;
	double scale;        /* wall ns per recorded ns; 0 = max */
	uint64_t late_max_ns, late_sum_ns, late_n, late_10ms;   /* submit time - schedule */
};

static void rin_check_signals(struct rin *s)
{
	struct signalfd_siginfo si;

	if (s->in->signal_fd < 0)
		return;
	while (read(s->in->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			continue;
		pr_info("signal %u: draining and exiting\n", si.ssi_signo);
		if (s->in->stop)
			*s->in->stop = 1;
	}
}

static bool rin_stopped(const struct rin *s)
{
	return s->in->stop && *s->in->stop;
}

static uint64_t rin_finished(const struct rin *s)
{
	return s->in->finished ? s->in->finished(s->in->ctx) : s->submitted;
}

static void rin_progress(struct rin *s, bool force)
{
	uint64_t now = st_mono_ns(), done;
	double el, rate, eta;

	if (!force && now < s->next_progress_ns)
		return;
	s->next_progress_ns = now + 1000000000ull;
	done = rin_finished(s);
	el = (double)(now - s->start_ns) / 1e9;
	rate = el > 0 ? (double)done / el : 0;
	if (s->in->rc->loop) {
		fprintf(stderr, "input: pass %llu, %llu requests done, %llu submitted, %.0f req/s\n",
			(unsigned long long)s->pass + 1, (unsigned long long)done,
			(unsigned long long)s->submitted, rate);
	} else {
		eta = rate > 0 && s->total > done ? (double)(s->total - done) / rate : 0;
		fprintf(stderr, "input: %llu/%llu requests done (%.1f%%), %.0f req/s, eta %.0f s\n",
			(unsigned long long)done, (unsigned long long)s->total,
			s->total ? 100.0 * (double)done / (double)s->total : 100.0, rate, eta);
	}
}

/* Sleep until the monotonic time t (0 = no wait) and until fewer than the bound
 * are in flight, checking signals and printing progress. */
static void rin_wait(struct rin *s, uint64_t t)
{
	for (;;) {
		uint64_t now = st_mono_ns(), left;
		struct timespec ts;

		rin_check_signals(s);
		rin_progress(s, false);
		if (rin_stopped(s))
			return;
		if (now >= t && s->submitted - rin_finished(s) < s->in->max_in_flight)
			return;
		left = now < t ? t - now : 200000;
		if (left > 50000000)
			left = 50000000;
		if (now >= t)
			left = 200000;   /* pacing on in-flight: poll fast */
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		nanosleep(&ts, NULL);
	}
}

static void rin_send(struct rin *s, struct rin_item it)
{
	struct st_record *r = it.rec;
	uint64_t target = 0;

	if (!s->have_t0) {
		s->have_t0 = true;
		s->t0_rec = it.ts;
		s->t0_mono = st_mono_ns();
	}
	if (s->scale > 0 && it.ts > s->t0_rec)
		target = s->t0_mono + (uint64_t)((double)(it.ts - s->t0_rec) * s->scale);
	rin_wait(s, target);
	if (rin_stopped(s)) {
		record_free(r);
		return;
	}
	if (target) {
		uint64_t now = st_mono_ns(), late = now > target ? now - target : 0;

		s->late_sum_ns += late;
		s->late_n++;
		if (late > s->late_max_ns)
			s->late_max_ns = late;
		if (late > 10000000)
			s->late_10ms++;
	}
	if (s->pass) {
		/* a later pass is another set of connections: new flow and event ids */
		r->flow_id ^= st_mix64(s->pass);
		recording_event_id(r->flow_id, r->index, r->event_id);
	}
	s->submitted++;
	s->in->submit(s->in->ctx, r);
}

static int rin_file(struct rin *s, const char *path, struct rin_heap *h, uint64_t *seq)
{
	struct rec_reader *rd;
	struct rec_reader_stats st;
	struct st_record *r;
	uint64_t max_ts = 0;
	int ret;

	ret = rec_reader_open(&rd, path, s->in->rc->body_limit);
	if (ret)
		return ret;
	while (!rin_stopped(s) && (ret = rec_reader_next(rd, &r)) > 0) {
		struct rin_item it;

		it.rec = r;
		it.seq = (*seq)++;
		it.ts = rec_req_wall(r);
		if (it.ts > max_ts)
			max_ts = it.ts;
		if (rin_push(h, it)) {
			record_free(r);
			ret = -ENOMEM;
			break;
		}
		while (h->n && (h->n > RIN_REORDER_MAX || h->a[0].ts + RIN_REORDER_NS < max_ts))
			rin_send(s, rin_pop(h));
	}
	rec_reader_get_stats(rd, &st);
	rec_reader_close(rd);
	if (st.bad_blocks || st.bad_records || st.torn_tail || st.read_errors || st.resync_bytes)
		pr_warn("recording: %s: %llu bad blocks, %llu bad records, %llu torn tail, %llu read errors, %llu bytes skipped\n",
			path, (unsigned long long)st.bad_blocks, (unsigned long long)st.bad_records,
			(unsigned long long)st.torn_tail, (unsigned long long)st.read_errors,
			(unsigned long long)st.resync_bytes);
	if (st.gor_requests)
		pr_info("recording: %s: gor requests=%llu responses=%llu replayed_skipped=%llu orphan_responses=%llu "
			"ambiguous_responses=%llu unanswered=%llu\n",
			path, (unsigned long long)st.gor_requests, (unsigned long long)st.gor_responses,
			(unsigned long long)st.gor_replayed, (unsigned long long)st.gor_orphan_responses,
			(unsigned long long)st.gor_ambiguous, (unsigned long long)st.gor_unanswered);
	return ret < 0 ? ret : 0;
}

int recording_input_run(const struct recording_input *in)
{
	struct rin s = { .in = in };
	struct rin_heap h = { 0 };
	struct rin_file *files = NULL;
	glob_t g;
	uint64_t seq = 0;
	size_t i;
	int err = 0, gr;

	if (!in->max_in_flight || !in->submit)
		return -EINVAL;
	gr = glob(in->rc->in_pattern, 0, NULL, &g);
	if (gr || !g.gl_pathc) {
		pr_warn("recording: no file matches '%s'\n", in->rc->in_pattern);
		if (!gr)
			globfree(&g);
		return -ENOENT;
	}
	files = calloc(g.gl_pathc, sizeof(*files));
	if (!files) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < g.gl_pathc; i++) {
		files[i].path = g.gl_pathv[i];
		err = rec_count_file(files[i].path, in->rc->body_limit, &files[i].n, &files[i].first);
		if (err)
			goto out;
		s.total += files[i].n;
	}
	qsort(files, g.gl_pathc, sizeof(*files), rin_file_cmp);
	s.scale = in->rc->speed_pct > 0 ? 100.0 / in->rc->speed_pct : 0;
	s.start_ns = st_mono_ns();
	s.next_progress_ns = s.start_ns + 1000000000ull;
	pr_info("input: %llu requests in %zu file%s, speed %s\n", (unsigned long long)s.total,
		(size_t)g.gl_pathc, g.gl_pathc > 1 ? "s" : "", s.scale > 0 ? "recorded pace (scaled)" : "max");
	do {
		s.have_t0 = false;
		for (i = 0; i < g.gl_pathc && !rin_stopped(&s); i++) {
			err = rin_file(&s, files[i].path, &h, &seq);
			if (err)
				goto out;
		}
		while (h.n)
			rin_send(&s, rin_pop(&h));
		s.pass++;
	} while (in->rc->loop && !rin_stopped(&s) && s.total);
	/* drain: wait for everything handed on to finish */
	while (rin_finished(&s) < s.submitted) {
		struct timespec ts = { 0, 2000000 };

		rin_check_signals(&s);
		rin_progress(&s, false);
		if (rin_stopped(&s))
			break;
		nanosleep(&ts, NULL);
	}
	rin_progress(&s, true);
	if (s.late_n)
		fprintf(stderr, "input: schedule lateness mean %.2f ms, max %.2f ms, %llu of %llu requests more than 10 ms late\n",
			(double)s.late_sum_ns / (double)s.late_n / 1e6, (double)s.late_max_ns / 1e6,
			(unsigned long long)s.late_10ms, (unsigned long long)s.late_n);
out:
	while (h.n)
		record_free(rin_pop(&h).rec);
	free(h.a);
	free(files);
	globfree(&g);
	return err;
}

/* ---- convert ---- */

static int rec_fmt_from_name(const char *p, int *gz)
{
	size_t n = strlen(p);

	*gz = 0;
	if (n > 3 && !strcmp(p + n - 3, ".gz")) {
		*gz = 1;
		n -= 3;
	}
	if (n >= 5 && !strncmp(p + n - 5, ".stap", 5))
		return REC_FMT_NATIVE;
	if (n >= 4 && !strncmp(p + n - 4, ".gor", 4))
		return REC_FMT_GOR;
	if (!*gz && (!strcmp(p, "-") || (n >= 7 && !strncmp(p + n - 7, ".ndjson", 7)) ||
		     (n >= 5 && !strncmp(p + n - 5, ".json", 5))))
		return REC_FMT_NDJSON;
	return -1;
}

int recording_convert_main(int argc, char **argv)
{
	static const char *const redact[] = {
		"authorization", "cookie", "set-cookie", "proxy-authorization", NULL,
	};
	struct record_json_opts jo = { .redact = redact, .body_limit = 64 * 1024 };
	const char *in = NULL, *outp = NULL;
	struct recording_cfg rc;
	struct rec_writer_stats wst = { 0 };
	struct rec_reader_stats rst;
	struct rec_reader *rd = NULL;
	struct rec_out o;
	struct buf b = { 0 }, blk = { 0 };
	struct st_record *r;
	char esc[PATH_MAX];
	FILE *jf = NULL;
	uint64_t nrec = 0, u;
	uint32_t bn = 0;
	int fmt, gz, i, ret, rc_exit = 1;
	size_t k, e;

	recording_cfg_default(&rc);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-redact")) {
			jo.redact = NULL;
		} else if (!strcmp(argv[i], "--body-limit") && i + 1 < argc) {
			if (st_parse_size(argv[++i], &u) || u > (1ull << 30)) {
				fprintf(stderr, "shadowtap convert: invalid value '%s' for --body-limit\n", argv[i]);
				return 2;
			}
			rc.body_limit = u;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: shadowtap convert [--no-redact] [--body-limit SIZE] IN OUT\n"
			       "Reads a shadowtap recording (.stap[.gz]) or GoReplay file (.gor[.gz]) and\n"
			       "writes OUT in the format its extension names: .stap[.gz], .gor[.gz],\n"
			       ".ndjson (records as JSON, sensitive headers redacted unless --no-redact).\n");
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "shadowtap convert: unknown option '%s'\n", argv[i]);
			return 2;
		} else if (!in) {
			in = argv[i];
		} else if (!outp) {
			outp = argv[i];
		} else {
			fprintf(stderr, "shadowtap convert: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!in || !outp) {
		fprintf(stderr, "shadowtap convert: expected IN and OUT (see convert --help)\n");
		return 2;
	}
	fmt = rec_fmt_from_name(outp, &gz);
	if (fmt < 0) {
		fprintf(stderr, "shadowtap convert: cannot tell the format of '%s' "
				"(use .stap, .stap.gz, .gor, .gor.gz or .ndjson)\n", outp);
		return 2;
	}
	if (rec_reader_open(&rd, in, rc.body_limit))
		return 1;
	jo.body_limit = rc.body_limit;
	/* the output name is literal here: escape strftime's % */
	for (k = 0, e = 0; outp[k] && e + 2 < sizeof(esc); k++) {
		if (outp[k] == '%')
			esc[e++] = '%';
		esc[e++] = outp[k];
	}
	esc[e] = '\0';
	rc.out_path = esc;
	rc.out_format = fmt;
	rc.out_gzip = gz;
	rc.meta_source = "convert";
	rec_out_init(&o, &rc, &wst);
	if (fmt == REC_FMT_NDJSON) {
		jf = strcmp(outp, "-") ? fopen(outp, "w") : stdout;
		if (!jf) {
			fprintf(stderr, "shadowtap convert: cannot open %s: %s\n", outp, strerror(errno));
			goto out;
		}
	} else if (rec_out_open(&o)) {
		goto out;
	}
	while ((ret = rec_reader_next(rd, &r)) > 0) {
		buf_reset(&b);
		if (fmt == REC_FMT_NDJSON) {
			if (!record_to_json(r, &jo, &b) && !buf_putc(&b, '\n') &&
			    fwrite(b.data, 1, b.len, jf) == b.len)
				nrec++;
			else
				wst.write_errors++;
		} else {
			ret = fmt == REC_FMT_GOR ? recording_encode_gor(r, &b) : recording_encode_native(r, &b);
			if (ret || buf_append(&blk, b.data, b.len)) {
				wst.dropped_encode++;
			} else {
				bn++;
				nrec++;
			}
			if (blk.len >= REC_BLOCK_TARGET) {
				rec_out_block(&o, blk.data, blk.len, bn);
				buf_reset(&blk);
				bn = 0;
			}
		}
		record_free(r);
	}
	if (bn)
		rec_out_block(&o, blk.data, blk.len, bn);
	if (ret < 0)
		goto out;
	rc_exit = wst.write_errors || wst.dropped_encode || wst.dropped_write_error ? 1 : 0;
out:
	rec_out_fini(&o);
	if (jf && jf != stdout && fclose(jf))
		rc_exit = 1;
	else if (jf == stdout)
		fflush(stdout);
	if (rd) {
		rec_reader_get_stats(rd, &rst);
		fprintf(stderr, "convert: %llu records written to %s; read %llu (bad_blocks=%llu "
				"bad_records=%llu torn_tail=%llu read_errors=%llu gor_orphan_responses=%llu "
				"gor_ambiguous=%llu gor_unanswered=%llu); errors=%llu\n",
			(unsigned long long)nrec, outp, (unsigned long long)rst.records,
			(unsigned long long)rst.bad_blocks, (unsigned long long)rst.bad_records,
			(unsigned long long)rst.torn_tail, (unsigned long long)rst.read_errors,
			(unsigned long long)rst.gor_orphan_responses, (unsigned long long)rst.gor_ambiguous,
			(unsigned long long)rst.gor_unanswered,
			(unsigned long long)(wst.write_errors + wst.dropped_encode + wst.dropped_write_error));
	}
	rec_reader_close(rd);
	buf_free(&b);
	buf_free(&blk);
	return rc_exit;
}
