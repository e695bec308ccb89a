/* GoReplay recording format (.gor). Owns: encoding a record as entries, parsing
 * an entry's header line, and the flow an entry's ID names.
 *
 * GoReplay (v1.3.2 protocol.go): each entry is "TYPE ID START_NS LATENCY_NS\n",
 * the payload, then "\n🐵🙈🙉\n"; TYPE 1 request, 2 original response, 3 replayed
 * response (ignored). A request and its response share the ID. GoReplay's raw input
 * makes the ID from the connection (16 hex: client port, server port, client IP)
 * and the TCP ack (8 hex), so the first 16 hex digits name the client connection:
 * entries with the same prefix form one flow, replayed in order; the index is the
 * position in that flow. We write IDs the same way (flow id, 8 hex index). An ID
 * that is not 24 hex digits is its own flow. Timing is the first byte's wall time,
 * latency last byte minus first byte, as GoReplay's raw input writes them. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "buf.h"
#include "util.h"
#include "recording.h"

static int rec_gor_entry_header(struct buf *out, char type, const struct st_record *r,
			  const struct st_msg *m)
{
	/* unsigned: a recording read back may hold any values, and signed overflow is UB */
	int64_t t0 = (int64_t)(m->ts_first_ns + (uint64_t)r->clock_offset_ns);
	int64_t lat = m->ts_last_ns >= m->ts_first_ns ? (int64_t)(m->ts_last_ns - m->ts_first_ns) : 0;

	return buf_printf(out, "%c %016llx%08x %lld %lld\n", type, (unsigned long long)r->flow_id,
			  r->index, (long long)t0, (long long)lat);
}

/* The reader ends an entry at the first separator after its start: the entry's
 * own separator must be the first one, or the payload forges entries. */
static bool rec_gor_sep_only_at_end(const struct buf *out, size_t entry)
{
	const char *s = memmem(out->data + entry, out->len - entry, REC_GOR_SEP, REC_GOR_SEP_LEN);

	return s == out->data + out->len - REC_GOR_SEP_LEN;
}

int rec_gor_encode(const struct st_record *r, struct buf *out)
{
	size_t start = out->len, entry = start;
	int err = 0;

	err = rec_gor_entry_header(out, '1', r, &r->req);
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
	if (!err && !rec_gor_sep_only_at_end(out, entry))
		err = -EBADMSG;
	entry = out->len;
	if (!err && r->resp.head) {
		err = rec_gor_entry_header(out, '2', r, &r->resp);
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
		if (!err && !rec_gor_sep_only_at_end(out, entry))
			err = -EBADMSG;
	}
	if (err) {
		out->len = start;
		return err == -EBADMSG ? -EBADMSG : -ENOMEM;
	}
	return 0;
}

/* ---- parsing ---- */

static bool rec_gor_hexval(const char *s, size_t n, uint64_t *out)
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

uint64_t rec_gor_flow(const char *id, size_t idl)
{
	uint64_t flow;

	if (idl == 24 && rec_gor_hexval(id, 16, &flow))
		return flow;
	return st_mix64((uint64_t)crc32(0L, (const Bytef *)id, (uInt)idl) << 32 | idl);
}

int rec_gor_parse_meta(const uint8_t *p, size_t n, struct rec_gor_meta *m)
{
	const uint8_t *nl = memchr(p, '\n', n);
	char *f[5], *save = NULL, *tok, *end;
	size_t ml, nf = 0;
	long long ts, lat;

	if (!nl || (ml = (size_t)(nl - p)) >= sizeof(m->line))
		return -EBADMSG;
	memcpy(m->line, p, ml);
	m->line[ml] = '\0';
	for (tok = strtok_r(m->line, " ", &save); tok && nf < 5; tok = strtok_r(NULL, " ", &save))
		f[nf++] = tok;
	if (nf < 3 || strlen(f[0]) != 1 || (m->idl = strlen(f[1])) >= REC_GOR_ID_MAX)
		return -EBADMSG;
	errno = 0;
	ts = strtoll(f[2], &end, 10);
	if (errno || *end || ts < 0)
		return -EBADMSG;
	lat = 0;
	if (nf > 3) {
		lat = strtoll(f[3], &end, 10);
		if (*end || lat < 0)
			lat = 0;
	}
	m->type = f[0][0];
	m->id = f[1];
	m->ts = (uint64_t)ts;
	m->lat = (uint64_t)lat;
	m->head_len = ml + 1;
	return 0;
}
