/* Native recording format (.stap): msgpack records in CRC-checked blocks.
 * Owns: encoding and decoding records, the file header and block framing.
 *
 * Version 1, all integers little-endian:
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
 * and body are rebuilt from it and not stored twice. Unknown keys are skipped. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "buf.h"
#include "http1.h"
#include "log.h"
#include "mp.h"
#include "recording.h"

#ifndef SHADOWTAP_VERSION
#define SHADOWTAP_VERSION "dev"
#endif

#define REC_META_MAX       (1u << 20)

/* ---- encoding ---- */

static int rec_native_pk_write(void *data, const char *p, size_t n)
{
	return buf_append(data, p, n) ? -1 : 0;
}

static int rec_native_pk_key(msgpack_packer *pk, const char *k)
{
	size_t n = strlen(k);

	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, k, n);
}

static int rec_native_pk_bin(msgpack_packer *pk, const void *p, size_t n)
{
	return msgpack_pack_bin(pk, n) || (n && msgpack_pack_bin_body(pk, p, n));
}

static int rec_native_pk_msg(msgpack_packer *pk, const struct st_msg *m, bool with_bytes)
{
	int n = 5 + (with_bytes && m->head ? 1 : 0) + (with_bytes && m->body_stored ? 1 : 0);
	int x = (m->complete ? 1 : 0) | (m->chunked ? 2 : 0) | (m->body_capped ? 4 : 0);

	if (msgpack_pack_map(pk, n))
		return -1;
	if (with_bytes && m->head && (rec_native_pk_key(pk, "h") || rec_native_pk_bin(pk, m->head, m->head_len)))
		return -1;
	if (with_bytes && m->body_stored &&
	    (rec_native_pk_key(pk, "b") || rec_native_pk_bin(pk, m->body, m->body_stored)))
		return -1;
	return rec_native_pk_key(pk, "n") || msgpack_pack_uint64(pk, m->body_bytes) ||
	       rec_native_pk_key(pk, "w") || msgpack_pack_uint64(pk, m->wire_bytes) ||
	       rec_native_pk_key(pk, "t0") || msgpack_pack_uint64(pk, m->ts_first_ns) ||
	       rec_native_pk_key(pk, "t1") || msgpack_pack_uint64(pk, m->ts_last_ns) ||
	       rec_native_pk_key(pk, "x") || msgpack_pack_int(pk, x) ? -1 : 0;
}

int rec_native_encode(const struct st_record *r, struct buf *out)
{
	msgpack_packer pk;
	bool raw = r->raw && r->raw_len;
	bool resp = r->resp.head != NULL;
	size_t start = out->len;
	int n = 15 + (raw ? 1 : 0) + (resp ? 1 : 0);

	msgpack_packer_init(&pk, out, rec_native_pk_write);
	if (msgpack_pack_map(&pk, n) ||
	    rec_native_pk_key(&pk, "id") || msgpack_pack_str(&pk, strlen(r->event_id)) ||
	    msgpack_pack_str_body(&pk, r->event_id, strlen(r->event_id)) ||
	    rec_native_pk_key(&pk, "fl") || msgpack_pack_uint64(&pk, r->flow_id) ||
	    rec_native_pk_key(&pk, "ix") || msgpack_pack_uint32(&pk, r->index) ||
	    rec_native_pk_key(&pk, "af") || msgpack_pack_uint8(&pk, r->family) ||
	    rec_native_pk_key(&pk, "ca") || rec_native_pk_bin(&pk, r->caddr, sizeof(r->caddr)) ||
	    rec_native_pk_key(&pk, "sa") || rec_native_pk_bin(&pk, r->saddr, sizeof(r->saddr)) ||
	    rec_native_pk_key(&pk, "cp") || msgpack_pack_uint16(&pk, r->cport) ||
	    rec_native_pk_key(&pk, "sp") || msgpack_pack_uint16(&pk, r->sport) ||
	    rec_native_pk_key(&pk, "co") || msgpack_pack_int64(&pk, r->clock_offset_ns) ||
	    rec_native_pk_key(&pk, "cf") || msgpack_pack_uint32(&pk, r->cap_flags) ||
	    rec_native_pk_key(&pk, "gb") || msgpack_pack_uint64(&pk, r->gap_bytes) ||
	    rec_native_pk_key(&pk, "st") || msgpack_pack_int(&pk, r->status_code) ||
	    rec_native_pk_key(&pk, "hv") || msgpack_pack_int(&pk, r->http_minor) ||
	    (raw && (rec_native_pk_key(&pk, "raw") || rec_native_pk_bin(&pk, r->raw, r->raw_len))) ||
	    rec_native_pk_key(&pk, "rq") || rec_native_pk_msg(&pk, &r->req, !raw) ||
	    (resp && (rec_native_pk_key(&pk, "rs") || rec_native_pk_msg(&pk, &r->resp, true))) ||
	    rec_native_pk_key(&pk, "v") || msgpack_pack_int(&pk, REC_VERSION)) {
		out->len = start;
		return -ENOMEM;
	}
	return 0;
}

/* Built whole in memory so the CRC covers exactly what is written. */
int rec_native_file_header(struct buf *b, const char *iface, const char *source)
{
	msgpack_packer pk;
	char host[256] = "";
	struct timespec ts;
	size_t start = b->len;
	uint8_t h[16];

	clock_gettime(CLOCK_REALTIME, &ts);
	gethostname(host, sizeof(host) - 1);
	msgpack_packer_init(&pk, b, rec_native_pk_write);
	memcpy(h, REC_MAGIC, 8);
	h[8] = REC_VERSION & 0xff;
	h[9] = REC_VERSION >> 8;
	h[10] = h[11] = 0;
	if (buf_append(b, h, 16))
		goto fail;
	if (msgpack_pack_map(&pk, 6) ||
	    rec_native_pk_key(&pk, "format") || msgpack_pack_str(&pk, 19) ||
	    msgpack_pack_str_body(&pk, "shadowtap-recording", 19) ||
	    rec_native_pk_key(&pk, "created_ns") ||
	    msgpack_pack_uint64(&pk, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ||
	    rec_native_pk_key(&pk, "host") || msgpack_pack_str(&pk, strlen(host)) ||
	    msgpack_pack_str_body(&pk, host, strlen(host)) ||
	    rec_native_pk_key(&pk, "agent") || msgpack_pack_str(&pk, strlen(SHADOWTAP_VERSION)) ||
	    msgpack_pack_str_body(&pk, SHADOWTAP_VERSION, strlen(SHADOWTAP_VERSION)) ||
	    rec_native_pk_key(&pk, "iface") ||
	    msgpack_pack_str(&pk, iface ? strlen(iface) : 3) ||
	    msgpack_pack_str_body(&pk, iface ? iface : "any", iface ? strlen(iface) : 3) ||
	    rec_native_pk_key(&pk, "source") ||
	    msgpack_pack_str(&pk, source ? strlen(source) : 0) ||
	    msgpack_pack_str_body(&pk, source ? source : "", source ? strlen(source) : 0))
		goto fail;
	rec_put32((uint8_t *)b->data + start + 12, (uint32_t)(b->len - start - 16));
	rec_put32(h, rec_crc(b->data + start, b->len - start));
	if (buf_append(b, h, 4))
		goto fail;
	return 0;
fail:
	b->len = start;
	return -ENOMEM;
}

void rec_native_block_header(uint8_t h[REC_BLOCK_HDR], const void *p, size_t n, uint32_t nrec)
{
	memcpy(h, REC_BLOCK_MAGIC, 4);
	rec_put32(h + 4, (uint32_t)n);
	rec_put32(h + 8, nrec);
	rec_put32(h + 12, rec_crc(p, n));
	rec_put32(h + 16, rec_crc(h, 16));
}

/* ---- decoding ---- */

static bool rec_native_msg(struct mp *m, uint64_t cnt, struct st_msg *msg, const uint8_t **head,
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
static struct st_record *rec_native_record(struct rec_reader *rd, struct mp *m)
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
			if (!rec_native_msg(m, v.u, rq ? &r->req : &r->resp, rq ? &qh : &sh, rq ? &qhl : &shl,
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
		record_event_id(r->flow_id, r->index, r->event_id);
	if (raw) {
		r->raw = malloc(rawl);
		if (!r->raw)
			goto bad;
		memcpy(r->raw, raw, rawl);
		r->raw_len = rawl;
		keep_body_bytes = r->req.body_bytes;
		rec_reader_request_from_raw(r, rd->body_limit);
		if (keep_body_bytes > r->req.body_bytes)
			r->req.body_bytes = keep_body_bytes;
	} else if (qh) {
		struct http1_header hdrs[ST_MAX_HEADERS];
		struct http1_request req;
		int hl = http1_parse_request((const char *)qh, qhl, &req, hdrs, ST_MAX_HEADERS);

		if (hl > 0 && !record_req_set_head(r, (const char *)qh, (size_t)hl, req.headers,
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
		if (rec_reader_response(r, sh, shl, false, rd->body_limit) == 0 && sbl)
			record_msg_body_append(&r->resp, (const char *)sb, sbl, rd->body_limit);
		r->resp.body_bytes = keep_body_bytes;
	}
	return r;
bad:
	record_free(r);
	return NULL;
}

/* ---- blocks ---- */

int rec_native_read_header(struct rec_reader *rd)
{
	uint32_t meta_len, ver;
	const uint8_t *p;

	if (rec_reader_need(rd, 16) < 16 || memcmp(rd->buf + rd->off, REC_MAGIC, 8)) {
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
	if (meta_len > REC_META_MAX || rec_reader_need(rd, 16 + (size_t)meta_len + 4) < 16 + (size_t)meta_len + 4) {
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
int rec_native_next_block(struct rec_reader *rd, const uint8_t **p, size_t *n, uint32_t *nrec)
{
	const uint8_t *h;
	size_t have;
	uint32_t len;

	for (;;) {
		have = rec_reader_need(rd, REC_BLOCK_HDR);
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
		have = rec_reader_need(rd, REC_BLOCK_HDR + (size_t)len);
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

int rec_native_next(struct rec_reader *rd, struct st_record **out)
{
	struct rec_reader_blockpos *bp = &rd->bp;
	const uint8_t *p;
	size_t n;
	uint32_t nrec;
	int ret;

	for (;;) {
		if (bp->left && bp->off < bp->len) {
			struct mp m = { bp->data + bp->off, bp->data + bp->len, false };
			struct st_record *r = rec_native_record(rd, &m);

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
		ret = rec_native_next_block(rd, &p, &n, &nrec);
		if (ret <= 0)
			return ret;
		/* points into rd->buf, which stays put until the next rec_reader_need */
		bp->data = p;
		bp->len = n;
		bp->off = 0;
		bp->left = nrec;
	}
}
