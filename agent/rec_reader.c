/* Reading recordings: a buffered source (a file through zlib, gzip or not, or
 * memory), format detection by content, and GoReplay request/response pairing.
 * Owns: the reader, its buffer, the pending gor requests and per-flow counters.
 *
 * GoReplay writes a request and its response as separate entries sharing an ID;
 * requests wait (bounded in number and recorded time) for their response. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "http1.h"
#include "log.h"
#include "util.h"
#include "recording.h"

#define REC_ENTRY_MAX      (64u << 20)   /* a .gor entry larger than this is skipped */
#define REC_GOR_PENDING    4096          /* requests held waiting for their response */
#define REC_GOR_WINDOW_NS  (10ull * 1000000000ull)

/* ---- buffered source ---- */

#define REC_SRC_IN 65536

static int rec_src_fill(struct rec_reader_src *s)
{
	ssize_t k;

	if (s->in_off < s->in_len || s->in_eof)
		return 0;
	do
		k = read(s->fd, s->in, REC_SRC_IN);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	s->in_len = (size_t)k;
	s->in_off = 0;
	if (!k)
		s->in_eof = true;
	return 0;
}

/* Up to want decoded bytes into dst: *got of them are valid even when an error is
 * returned (the bytes inflate produced before the damage). 0 with *got == 0 is
 * the end; a gzip stream cut short ends like a file cut short (a torn tail), as
 * gzread treats it. */
static int rec_src_read(struct rec_reader_src *s, uint8_t *dst, size_t want, size_t *got)
{
	int err, zr;

	*got = 0;
	if (!s->mode) {
		err = rec_src_fill(s);
		if (err)
			return err;
		s->mode = s->in_len >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b ? 2 : 1;
		if (s->mode == 2) {
			if (inflateInit2(&s->zs, 15 + 16) != Z_OK)
				return -ENOMEM;
			s->zinit = true;
		}
	}
	if (s->mode == 1) {
		ssize_t k;

		if (s->in_off < s->in_len) {
			size_t n = s->in_len - s->in_off < want ? s->in_len - s->in_off : want;

			memcpy(dst, s->in + s->in_off, n);
			s->in_off += n;
			*got = n;
			return 0;
		}
		if (s->in_eof)
			return 0;
		do
			k = read(s->fd, dst, want);
		while (k < 0 && errno == EINTR);
		if (k < 0)
			return -errno;
		*got = (size_t)k;
		return 0;
	}
	s->zs.next_out = dst;
	s->zs.avail_out = want > (1u << 30) ? (1u << 30) : (uInt)want;
	while (s->zs.avail_out && !(*got = (size_t)(s->zs.next_out - dst))) {
		err = rec_src_fill(s);
		if (err)
			return err;
		if (s->in_off == s->in_len)
			return 0;                      /* end of file */
		if (s->member_end) {
			/* another gzip member follows, or trailing bytes that are not one */
			if (s->in[s->in_off] != 0x1f)
				return 0;
			inflateReset(&s->zs);
			s->member_end = false;
		}
		s->zs.next_in = s->in + s->in_off;
		s->zs.avail_in = (uInt)(s->in_len - s->in_off);
		zr = inflate(&s->zs, Z_NO_FLUSH);
		s->in_off = s->in_len - s->zs.avail_in;
		if (zr == Z_STREAM_END)
			s->member_end = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR) {
			*got = (size_t)(s->zs.next_out - dst);
			return -EIO;
		}
	}
	*got = (size_t)(s->zs.next_out - dst);
	return 0;
}

size_t rec_reader_need(struct rec_reader *rd, size_t n)
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
			size_t k;
			int err = rec_src_read(&rd->src, rd->buf + rd->len, want, &k);

			/* keep what was decoded before an error: those records are good */
			rd->len += k;
			if (err) {
				pr_warn("recording: read error: %s\n",
					err == -EIO ? "corrupt gzip data" : strerror(-err));
				rd->st.read_errors++;
				rd->eof = true;
			} else if (!k) {
				rd->eof = true;
			}
		}
	}
	return rd->len - rd->off;
}

/* ---- records from HTTP bytes ---- */

static void rec_reader_body_cb(void *ctx, const char *data, size_t len)
{
	struct st_msg *m = ((void **)ctx)[0];
	size_t limit = *(size_t *)((void **)ctx)[1];

	record_msg_body_append(m, data, len, limit);
}

int rec_reader_request_from_raw(struct st_record *r, size_t body_limit)
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
	if (record_req_set_head(r, (const char *)r->raw, (size_t)hl, req.headers, req.num_headers))
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
				       rec_reader_body_cb, ctx);
		(void)used;
	}
	if (n_bytes > r->req.body_bytes)
		r->req.body_bytes = n_bytes;
	if (!r->req.wire_bytes)
		r->req.wire_bytes = r->raw_len;
	return 0;
}

int rec_reader_response(struct st_record *r, const uint8_t *p, size_t n, bool body_raw,
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
	if (record_resp_set_head(r, (const char *)p, (size_t)hl, resp.headers, resp.num_headers, 0))
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
	if (http1_body_feed(&body, (const char *)p + hl, n - (size_t)hl, rec_reader_body_cb, ctx) >= 0 &&
	    (body.done || http1_body_eof(&body) == 0))
		r->resp.complete = 1;
	return 0;
}

/* ---- GoReplay pairing ---- */

static struct rec_flowctr *rec_reader_flow_get(struct rec_reader *rd, uint64_t flow)
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

/* Pending requests by ID, so pairing a response and spotting a pipelined
 * connection cost one short chain walk instead of a scan of every pending entry. */
static uint32_t rec_reader_id_hash(const char *id, size_t n)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	while (n--)
		h = (h ^ (uint8_t)*id++) * 16777619u;
	return h;
}

static void rec_reader_id_add(struct rec_reader *rd, struct rec_gor_pending *pe)
{
	struct rec_gor_pending **pp = &rd->by_id[pe->hash & (REC_GOR_BUCKETS - 1)];

	while (*pp)
		pp = &(*pp)->hnext;
	pe->hnext = NULL;
	*pp = pe;
}

static void rec_reader_id_del(struct rec_reader *rd, struct rec_gor_pending *pe)
{
	struct rec_gor_pending **pp = &rd->by_id[pe->hash & (REC_GOR_BUCKETS - 1)];

	while (*pp && *pp != pe)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = pe->hnext;
}

/* The oldest pending request with this ID (answered ones too unless unanswered). */
static struct rec_gor_pending *rec_reader_id_find(struct rec_reader *rd, const char *id, size_t n,
						  uint32_t h, bool unanswered)
{
	struct rec_gor_pending *pe;

	for (pe = rd->by_id[h & (REC_GOR_BUCKETS - 1)]; pe; pe = pe->hnext, rd->st.gor_id_probes++)
		if (pe->hash == h && !memcmp(pe->id, id, n + 1) && (!unanswered || !pe->rec->resp.head))
			return pe;
	return NULL;
}

/* Handle one entry [p, p+n) (without its separator). Returns 1 if a request was
 * queued, 0 otherwise. */
static int rec_reader_gor_entry(struct rec_reader *rd, const uint8_t *p, size_t n)
{
	struct rec_gor_pending *pe = NULL;
	struct rec_gor_meta gm;
	struct rec_flowctr *fc;
	struct st_record *r;
	uint64_t flow;
	uint32_t h;

	if (rec_gor_parse_meta(p, n, &gm)) {
		rd->st.bad_records++;
		return 0;
	}
	h = rec_reader_id_hash(gm.id, gm.idl);
	p += gm.head_len;
	n -= gm.head_len;
	if (rd->last_ts < gm.ts)
		rd->last_ts = gm.ts;
	switch (gm.type) {
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
		flow = rec_gor_flow(gm.id, gm.idl);
		fc = rec_reader_flow_get(rd, flow);
		r->flow_id = flow;
		r->index = fc ? fc->next++ : 0;
		/* GoReplay names a request by the ack it carried: pipelined requests
		 * share it, and their responses (named by seq) cannot be told apart */
		if (fc && !fc->pipelined && rec_reader_id_find(rd, gm.id, gm.idl, h, false))
			fc->pipelined = true;
		record_event_id(r->flow_id, r->index, r->event_id);
		r->req.ts_first_ns = gm.ts;
		r->req.ts_last_ns = gm.ts + gm.lat;
		r->req.complete = 1;
		r->req.wire_bytes = n;
		r->http_minor = 1;
		rec_reader_request_from_raw(r, rd->body_limit);
		memcpy(pe->id, gm.id, gm.idl + 1);
		pe->hash = h;
		pe->rec = r;
		list_add_tail(&rd->pending, &pe->node);
		rec_reader_id_add(rd, pe);
		rd->npending++;
		return 1;
	case '2':
		rd->st.gor_responses++;
		/* by ID, and only where that is unambiguous: a wrong serverA response
		 * would make a false diff, a missing one is just counted */
		fc = rec_reader_flow_get(rd, rec_gor_flow(gm.id, gm.idl));
		if (fc && fc->pipelined) {
			rd->st.gor_ambiguous++;
			return 0;
		}
		pe = rec_reader_id_find(rd, gm.id, gm.idl, h, true);
		if (!pe) {
			rd->st.gor_orphan_responses++;
			return 0;
		}
		r = pe->rec;
		if (rec_reader_response(r, p, n, true, rd->body_limit)) {
			rd->st.bad_records++;
			return 0;
		}
		r->resp.ts_first_ns = gm.ts;
		r->resp.ts_last_ns = gm.ts + gm.lat;
		return 0;
	case '3':
		rd->st.gor_replayed++;
		return 0;
	default:
		rd->st.gor_unknown++;
		return 0;
	}
}

static struct st_record *rec_reader_gor_pop(struct rec_reader *rd)
{
	struct rec_gor_pending *pe = list_first_entry(&rd->pending, struct rec_gor_pending, node);
	struct st_record *r = pe->rec;

	list_del(&pe->node);
	rec_reader_id_del(rd, pe);
	rd->npending--;
	free(pe);
	if (!r->resp.head)
		rd->st.gor_unanswered++;
	return r;
}

/* The oldest pending request may go once answered, once the window has passed it,
 * or when too many wait. */
static bool rec_reader_gor_ready(struct rec_reader *rd)
{
	const struct st_record *r;

	if (list_empty(&rd->pending))
		return false;
	r = list_first_entry(&rd->pending, struct rec_gor_pending, node)->rec;
	return r->resp.head || rd->npending > REC_GOR_PENDING ||
	       rd->last_ts > r->req.ts_first_ns + REC_GOR_WINDOW_NS;
}

static int rec_reader_gor_next(struct rec_reader *rd, struct st_record **out)
{
	const uint8_t *s;
	size_t have, scanned = 0;

	for (;;) {
		if (rec_reader_gor_ready(rd)) {
			*out = rec_reader_gor_pop(rd);
			return 1;
		}
		have = rec_reader_need(rd, scanned + REC_GOR_SEP_LEN);
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
			if (!list_empty(&rd->pending)) {
				*out = rec_reader_gor_pop(rd);
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
			have = rec_reader_need(rd, have + 65536);
			continue;
		}
		have = (size_t)(s - (rd->buf + rd->off));
		rec_reader_gor_entry(rd, rd->buf + rd->off, have);
		rd->off += have + REC_GOR_SEP_LEN;
		scanned = 0;
	}
}

/* ---- public ---- */

static int rec_reader_detect(struct rec_reader *rd)
{
	size_t have = rec_reader_need(rd, 8);
	const uint8_t *p;

	if (have == 0) {
		rd->format = REC_FMT_GOR;   /* an empty file is an empty recording */
		return 0;
	}
	p = rd->buf + rd->off;
	if (have >= 8 && !memcmp(p, REC_MAGIC, 8)) {
		rd->format = REC_FMT_NATIVE;
		return rec_native_read_header(rd);
	}
	if (have >= 2 && p[0] >= '1' && p[0] <= '3' && p[1] == ' ') {
		rd->format = REC_FMT_GOR;
		return 0;
	}
	pr_warn("recording: neither a shadowtap recording nor a GoReplay file (wrong magic)\n");
	return -EPROTO;
}

static int rec_reader_alloc(struct rec_reader **out, size_t body_limit)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->body_limit = body_limit ? body_limit : 64 * 1024;
	(*out)->src.fd = -1;
	list_init(&(*out)->pending);
	return 0;
}

int rec_reader_open(struct rec_reader **out, const char *path, size_t body_limit)
{
	struct rec_reader *rd;
	struct stat sb;
	int fd, err;

	*out = NULL;
	err = rec_reader_alloc(&rd, body_limit);
	if (err)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		pr_warn("recording: cannot open %s: %s\n", path, strerror(errno));
		free(rd);
		return err;
	}
	if (fstat(fd, &sb) || S_ISDIR(sb.st_mode)) {
		pr_warn("recording: %s is a directory, not a recording\n", path);
		close(fd);
		free(rd);
		return -EISDIR;
	}
	rd->src.fd = fd;
	rd->src.in = malloc(REC_SRC_IN);
	if (!rd->src.in) {
		rec_reader_close(rd);
		return -ENOMEM;
	}
	err = rec_reader_detect(rd);
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
	err = rec_reader_alloc(&rd, body_limit);
	if (err)
		return err;
	rd->mem = data;
	rd->mem_len = len;
	rd->eof = len == 0;
	err = rec_reader_detect(rd);
	if (err) {
		rec_reader_close(rd);
		return err;
	}
	*out = rd;
	return 0;
}

int rec_reader_next(struct rec_reader *rd, struct st_record **rec)
{
	int ret;

	*rec = NULL;
	if (rd->format == REC_FMT_GOR)
		ret = rec_reader_gor_next(rd, rec);
	else
		ret = rec_native_next(rd, rec);
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
	struct list_node *n, *nx;

	if (!rd)
		return;
	list_for_each_safe(n, nx, &rd->pending) {
		struct rec_gor_pending *pe = list_entry(n, struct rec_gor_pending, node);

		record_free(pe->rec);
		free(pe);
	}
	if (rd->src.zinit)
		inflateEnd(&rd->src.zs);
	if (rd->src.fd >= 0)
		close(rd->src.fd);
	free(rd->src.in);
	free(rd->fc);
	free(rd->buf);
	free(rd);
}
