/* Recordings: native and GoReplay round trips, damaged files, rotation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glob.h>

#include <cmocka.h>

#include "exchange.h"
#include "http1.h"
#include "record.h"
#include "recording.h"

static char tmpdir[] = "/tmp/test_recording.XXXXXX";

static struct st_record *mk_record(uint64_t flow, uint32_t index, int chunked)
{
	struct st_record *r = record_new();
	struct http1_header hdrs[ST_MAX_HEADERS];
	struct http1_response resp;
	char req[512], head[256], body[64];
	int n, hl;

	assert_non_null(r);
	snprintf(body, sizeof(body), "{\"flow\":%llu,\"i\":%u}", (unsigned long long)flow, index);
	n = snprintf(req, sizeof(req),
		     "POST /api/%llu/%u?x=1 HTTP/1.1\r\nHost: a\r\nX-Req: %u\r\nContent-Length: %zu\r\n\r\n%s",
		     (unsigned long long)flow, index, index, strlen(body), body);
	r->raw = malloc((size_t)n);
	memcpy(r->raw, req, (size_t)n);
	r->raw_len = (size_t)n;
	r->flow_id = flow;
	r->index = index;
	record_event_id(flow, index, r->event_id);
	r->family = 4;
	r->caddr[0] = 0x0100007f;
	r->saddr[0] = 0x0200007f;
	r->cport = (uint16_t)(40000 + flow % 1000);
	r->sport = 80;
	r->clock_offset_ns = 1700000000000000000ll;
	r->req.ts_first_ns = 1000000000ull + flow * 1000000ull + index * 1000ull;
	r->req.ts_last_ns = r->req.ts_first_ns + 10;
	r->req.complete = 1;
	r->http_minor = 1;
	r->req.body_bytes = strlen(body);
	r->req.wire_bytes = (uint64_t)n;
	if (chunked)
		hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Resp: %u\r\n\r\n", index);
	else
		hl = snprintf(head, sizeof(head), "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\nX-Resp: %u\r\n\r\n",
			      strlen(body) + 1, index);
	assert_int_equal(http1_parse_response(head, (size_t)hl, &resp, hdrs, ST_MAX_HEADERS), hl);
	assert_int_equal(record_msg_set_head(&r->resp, head, (size_t)hl, resp.headers, resp.num_headers), 0);
	record_msg_body_append(&r->resp, body, strlen(body), 65536);
	record_msg_body_append(&r->resp, "!", 1, 65536);
	r->resp.chunked = chunked;
	r->resp.complete = 1;
	r->status_code = resp.status;
	r->resp.ts_first_ns = r->req.ts_first_ns + 500;
	r->resp.ts_last_ns = r->req.ts_first_ns + 900;
	return r;
}

/* Fields both formats hold must match; native-only fields only when full is set. */
static void check_same(const struct st_record *a, const struct st_record *b, int full)
{
	assert_int_equal(a->flow_id, b->flow_id);
	assert_int_equal(a->index, b->index);
	assert_string_equal(a->event_id, b->event_id);
	assert_int_equal(a->raw_len, b->raw_len);
	assert_memory_equal(a->raw, b->raw, a->raw_len);
	assert_int_equal(a->req.ts_first_ns + a->clock_offset_ns, b->req.ts_first_ns + b->clock_offset_ns);
	assert_int_equal(a->req.ts_last_ns + a->clock_offset_ns, b->req.ts_last_ns + b->clock_offset_ns);
	assert_int_equal(a->resp.ts_first_ns + a->clock_offset_ns, b->resp.ts_first_ns + b->clock_offset_ns);
	assert_int_equal(a->resp.ts_last_ns + a->clock_offset_ns, b->resp.ts_last_ns + b->clock_offset_ns);
	assert_int_equal(a->status_code, b->status_code);
	assert_int_equal(a->resp.head_len, b->resp.head_len);
	assert_memory_equal(a->resp.head, b->resp.head, a->resp.head_len);
	assert_int_equal(a->resp.nhdrs, b->resp.nhdrs);
	assert_int_equal(a->resp.body_stored, b->resp.body_stored);
	assert_memory_equal(a->resp.body, b->resp.body, a->resp.body_stored);
	assert_int_equal(a->resp.body_bytes, b->resp.body_bytes);
	assert_int_equal(a->resp.chunked, b->resp.chunked);
	assert_int_equal(!!a->resp.complete, !!b->resp.complete);
	/* the request is re-parsed from raw */
	assert_non_null(b->method);
	assert_int_equal(b->method_len, 4);
	assert_memory_equal(b->method, "POST", 4);
	assert_int_equal(a->req.body_bytes, b->req.body_bytes);
	assert_int_equal(b->req.body_stored, b->req.body_bytes);
	assert_true(b->req.nhdrs >= 3);
	if (full) {
		assert_int_equal(a->family, b->family);
		assert_memory_equal(a->caddr, b->caddr, 16);
		assert_memory_equal(a->saddr, b->saddr, 16);
		assert_int_equal(a->cport, b->cport);
		assert_int_equal(a->sport, b->sport);
		assert_int_equal(a->clock_offset_ns, b->clock_offset_ns);
		assert_int_equal(a->req.ts_first_ns, b->req.ts_first_ns);
		assert_int_equal(a->cap_flags, b->cap_flags);
	}
}

#define NREC 1200

static void write_native(const char *path, int gzip, int gor)
{
	struct recording_cfg rc;
	struct rec_writer *w;
	struct rec_writer_stats st;
	int i;

	recording_cfg_default(&rc);
	rc.out_path = path;
	rc.out_gzip = gzip;
	rc.out_format = gor ? REC_FMT_GOR : REC_FMT_NATIVE;
	assert_int_equal(rec_writer_start(&w, &rc), 0);
	for (i = 0; i < NREC; i++) {
		struct st_record *r = mk_record(1000 + i / 4, i % 4, i % 3 == 0);

		rec_writer_submit(w, r);
		record_free(r);
	}
	rec_writer_get_stats(w, &st);
	assert_int_equal(st.submitted, NREC);
	rec_writer_stop(w, NULL);
}

static void read_check(const char *path, int full, int expect_fmt)
{
	struct rec_reader *rd;
	struct st_record *r;
	struct rec_reader_stats st;
	int i = 0;

	assert_int_equal(rec_reader_open(&rd, path, 0), 0);
	assert_int_equal(rec_reader_format(rd), expect_fmt);
	while (rec_reader_next(rd, &r) == 1) {
		struct st_record *e = mk_record(1000 + i / 4, i % 4, i % 3 == 0);

		check_same(e, r, full);
		record_free(e);
		record_free(r);
		i++;
	}
	assert_int_equal(i, NREC);
	rec_reader_get_stats(rd, &st);
	assert_int_equal(st.bad_blocks + st.bad_records + st.torn_tail + st.read_errors, 0);
	rec_reader_close(rd);
}

static void test_native_roundtrip(void **state)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/a.stap", tmpdir);
	write_native(p, 0, 0);
	read_check(p, 1, REC_FMT_NATIVE);
	snprintf(p, sizeof(p), "%s/a.stap.gz", tmpdir);
	write_native(p, 1, 0);
	read_check(p, 1, REC_FMT_NATIVE);
}

static void test_gor_write_read(void **state)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/b.gor", tmpdir);
	write_native(p, 0, 1);
	read_check(p, 0, REC_FMT_GOR);
	snprintf(p, sizeof(p), "%s/b.gor.gz", tmpdir);
	write_native(p, 1, 1);
	read_check(p, 0, REC_FMT_GOR);
}

static int run_convert(const char *in, const char *out)
{
	char *argv[] = { "convert", (char *)in, (char *)out, NULL };

	return recording_convert_main(3, argv);
}

static void test_native_gor_native(void **state)
{
	char a[256], b[256], c[256], j[256];
	struct stat sb;

	snprintf(a, sizeof(a), "%s/c.stap", tmpdir);
	snprintf(b, sizeof(b), "%s/c.gor", tmpdir);
	snprintf(c, sizeof(c), "%s/c2.stap.gz", tmpdir);
	snprintf(j, sizeof(j), "%s/c.ndjson", tmpdir);
	write_native(a, 0, 0);
	assert_int_equal(run_convert(a, b), 0);
	assert_int_equal(run_convert(b, c), 0);
	read_check(c, 0, REC_FMT_NATIVE);
	assert_int_equal(run_convert(c, j), 0);
	assert_int_equal(stat(j, &sb), 0);
	assert_true(sb.st_size > NREC * 100);
	assert_int_not_equal(run_convert(a, "/tmp/x.unknown"), 0);
}

static uint8_t *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long len;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)len + 1);
	assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return p;
}

static int count_mem(const uint8_t *p, size_t n, struct rec_reader_stats *st, int *open_err)
{
	struct rec_reader *rd;
	struct st_record *r;
	int k = 0;

	*open_err = rec_reader_open_mem(&rd, p, n, 0);
	if (*open_err)
		return -1;
	while (rec_reader_next(rd, &r) == 1) {
		record_free(r);
		k++;
	}
	rec_reader_get_stats(rd, st);
	rec_reader_close(rd);
	return k;
}

static void test_truncated(void **state)
{
	char p[256];
	struct rec_reader_stats st;
	uint8_t *data;
	size_t n, cut;
	int k, prev = NREC, err;

	snprintf(p, sizeof(p), "%s/t.stap", tmpdir);
	write_native(p, 0, 0);
	data = slurp(p, &n);
	assert_int_equal(count_mem(data, n, &st, &err), NREC);
	assert_true(st.blocks >= 4);
	/* cut from the end: fewer records, a torn tail counted, never a crash */
	for (cut = n - 1; cut > n / 2; cut -= 997) {
		k = count_mem(data, cut, &st, &err);
		assert_int_equal(err, 0);
		assert_true(k < NREC && k <= prev);
		assert_true(st.torn_tail == 1);
		prev = k;
	}
	/* a cut inside the file header is a clear error */
	assert_int_equal(count_mem(data, 20, &st, &err), -1);
	assert_int_equal(err, -EPROTO);
	free(data);

	/* gzip cut short: the stream error ends the file, counted */
	snprintf(p, sizeof(p), "%s/t.stap.gz", tmpdir);
	write_native(p, 1, 0);
	data = slurp(p, &n);
	{
		struct rec_reader *rd;
		struct st_record *r;
		FILE *f = fopen(p, "wb");

		assert_non_null(f);
		assert_int_equal(fwrite(data, 1, n * 2 / 3, f), n * 2 / 3);
		fclose(f);
		assert_int_equal(rec_reader_open(&rd, p, 0), 0);
		k = 0;
		while (rec_reader_next(rd, &r) == 1) {
			record_free(r);
			k++;
		}
		rec_reader_get_stats(rd, &st);
		assert_true(k > 0 && k < NREC);
		assert_true(st.read_errors + st.torn_tail >= 1);
		rec_reader_close(rd);
	}
	free(data);

	snprintf(p, sizeof(p), "%s/t.gor", tmpdir);
	write_native(p, 0, 1);
	data = slurp(p, &n);
	k = count_mem(data, n - 7, &st, &err);
	assert_int_equal(k, NREC);   /* the last request stays, its response is torn */
	assert_int_equal(st.torn_tail, 1);
	free(data);
}

static void test_corrupt_block(void **state)
{
	char p[256];
	struct rec_reader_stats st;
	uint8_t *data;
	size_t n, off;
	int k, err;

	snprintf(p, sizeof(p), "%s/k.stap", tmpdir);
	write_native(p, 0, 0);
	data = slurp(p, &n);
	/* a payload byte in the middle: that block is skipped, the others read */
	data[n / 2] ^= 0x55;
	k = count_mem(data, n, &st, &err);
	assert_int_equal(st.bad_blocks, 1);
	assert_true(k > NREC / 2 && k < NREC);
	data[n / 2] ^= 0x55;
	/* a block header byte (length): resync finds the next block */
	off = (size_t)((uint8_t *)memmem(data + 100, n - 100, "STBK", 4) - data);
	data[off + 5] ^= 0x7f;
	k = count_mem(data, n, &st, &err);
	assert_true(st.resync_bytes > 0);
	assert_true(k > NREC / 2 && k < NREC);
	assert_int_equal(st.bad_blocks, 0);
	data[off + 5] ^= 0x7f;
	/* wrong magic and wrong version are clear errors */
	data[0] = 'X';
	assert_int_equal(count_mem(data, n, &st, &err), -1);
	assert_int_equal(err, -EPROTO);
	data[0] = 'S';
	data[8] = 9;
	assert_int_equal(count_mem(data, n, &st, &err), -1);
	assert_int_equal(err, -EPROTO);
	free(data);
}

static void test_gor_pairing(void **state)
{
	static const char g[] =
		"1 0050d4a27f00000100000001 1000 5\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n" REC_GOR_SEP
		"1 0051d4a27f00000100000002 1100 5\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" REC_GOR_SEP
		"2 0051d4a27f00000100000002 1200 3\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno" REC_GOR_SEP
		"3 0051d4a27f00000100000002 1200 3\nHTTP/1.1 500 X\r\nContent-Length: 0\r\n\r\n" REC_GOR_SEP
		"2 0050d4a27f00000100000001 1300 3\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes" REC_GOR_SEP
		"1 0050d4a27f00000100000009 1400 5\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n" REC_GOR_SEP
		"2 ffffffffffffffffffffffff 1500 3\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" REC_GOR_SEP
		"9 abc 1 1\npayload" REC_GOR_SEP "no header line" REC_GOR_SEP;
	struct rec_reader *rd;
	struct rec_reader_stats st;
	struct st_record *r[4] = { 0 };
	int i;

	assert_int_equal(rec_reader_open_mem(&rd, g, sizeof(g) - 1, 0), 0);
	for (i = 0; i < 4 && rec_reader_next(rd, &r[i]) == 1; i++)
		;
	assert_int_equal(i, 3);
	/* request order is kept; /a and /c share a connection (same 16-hex prefix) */
	assert_memory_equal(r[0]->target, "/a", 2);
	assert_int_equal(r[0]->status_code, 200);
	assert_int_equal(r[0]->resp.body_stored, 3);
	assert_memory_equal(r[1]->target, "/b", 2);
	assert_int_equal(r[1]->status_code, 404);
	assert_memory_equal(r[2]->target, "/c", 2);
	assert_int_equal(r[2]->status_code, 0);
	assert_int_equal(r[0]->flow_id, 0x0050d4a27f000001ull);
	assert_int_equal(r[0]->flow_id, r[2]->flow_id);
	assert_int_equal(r[0]->index, 0);
	assert_int_equal(r[2]->index, 1);
	assert_int_not_equal(r[1]->flow_id, r[0]->flow_id);
	assert_int_equal(r[0]->req.ts_first_ns, 1000);
	assert_int_equal(r[0]->resp.ts_last_ns, 1303);
	rec_reader_get_stats(rd, &st);
	assert_int_equal(st.gor_requests, 3);
	assert_int_equal(st.gor_replayed, 1);
	assert_int_equal(st.gor_orphan_responses, 1);
	assert_int_equal(st.gor_unknown, 1);
	assert_int_equal(st.bad_records, 1);
	assert_int_equal(st.gor_unanswered, 1);
	for (i = 0; i < 3; i++)
		record_free(r[i]);
	rec_reader_close(rd);
	assert_int_equal(rec_reader_open_mem(&rd, "garbage!", 8, 0), -EPROTO);
}

/* GoReplay names pipelined requests by the same ack: never guess their responses */
static void test_gor_pipelined(void **state)
{
	static const char g[] =
		"1 0050d4a27f00000100000001 1000 5\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n" REC_GOR_SEP
		"1 0050d4a27f00000100000001 1001 5\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" REC_GOR_SEP
		"2 0050d4a27f00000100000001 1200 3\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na" REC_GOR_SEP
		"2 0050d4a27f00000100000050 1300 3\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb" REC_GOR_SEP;
	struct rec_reader *rd;
	struct rec_reader_stats st;
	struct st_record *r;
	int n = 0;

	assert_int_equal(rec_reader_open_mem(&rd, g, sizeof(g) - 1, 0), 0);
	while (rec_reader_next(rd, &r) == 1) {
		assert_null(r->resp.head);
		assert_int_equal(r->index, (uint32_t)n);
		record_free(r);
		n++;
	}
	assert_int_equal(n, 2);
	rec_reader_get_stats(rd, &st);
	assert_int_equal(st.gor_ambiguous, 2);
	assert_int_equal(st.gor_unanswered, 2);
	rec_reader_close(rd);
}

static void test_rotation_and_cap(void **state)
{
	struct recording_cfg rc;
	struct rec_writer *w;
	char pat[256];
	glob_t g;
	int i, j;

	recording_cfg_default(&rc);
	snprintf(pat, sizeof(pat), "%s/rot/r-%%Y.stap", tmpdir);
	snprintf(pat + 200, 56, "%s/rot", tmpdir);
	mkdir(pat + 200, 0755);
	rc.out_path = pat;
	rc.out_file_max = 70000;
	rc.out_dir_max = 300000;
	assert_int_equal(rec_writer_start(&w, &rc), 0);
	for (j = 0; j < 6; j++) {
		for (i = 0; i < 400; i++) {
			struct st_record *r = mk_record((uint64_t)j * 1000 + (uint64_t)i, 0, 0);

			rec_writer_submit(w, r);
			record_free(r);
		}
		usleep(150000);
	}
	rec_writer_stop(w, stderr);
	snprintf(pat, sizeof(pat), "%s/rot/r-*.stap", tmpdir);
	assert_int_equal(glob(pat, 0, NULL, &g), 0);
	/* several files, and no more on disk than the cap allows */
	assert_true(g.gl_pathc >= 3);
	{
		uint64_t tot = 0;
		struct stat sb;
		size_t k;

		for (k = 0; k < g.gl_pathc; k++) {
			assert_int_equal(stat(g.gl_pathv[k], &sb), 0);
			tot += (uint64_t)sb.st_size;
		}
		assert_true(tot <= 300000);
	}
	globfree(&g);
}

static void test_opts(void **state)
{
	struct recording_cfg rc;

	recording_cfg_default(&rc);
	assert_int_equal(recording_parse_opt(&rc, "replay-speed", "200%"), 0);
	assert_true(rc.speed_pct == 200);
	assert_int_equal(recording_parse_opt(&rc, "replay-speed", "max"), 0);
	assert_true(rc.speed_pct == 0);
	assert_int_equal(recording_parse_opt(&rc, "replay-speed", "fast"), -EINVAL);
	assert_int_equal(recording_parse_opt(&rc, "output-file-size", "10M"), 0);
	assert_int_equal(rc.out_file_max, 10u << 20);
	assert_int_equal(recording_parse_opt(&rc, "output-file-compress", "zstd"), -EINVAL);
	assert_int_equal(recording_parse_opt(&rc, "output-format", "gor"), 0);
	assert_int_equal(rc.out_format, REC_FMT_GOR);
}

static void collect_live(void *ctx, struct st_record *r)
{
	struct st_record **out = ctx;
	int i;

	for (i = 0; i < 3; i++)
		if (!out[i]) {
			out[i] = r;
			return;
		}
	record_free(r);
}

/* Records made live (exchange.c) and the same exchanges read back from a GoReplay
 * file (which stores no id: the reader rebuilds it from flow and index) carry the
 * same event ids, and both equal record_event_id(flow, index). */
static void test_live_and_recorded_ids(void **state)
{
	static const char req[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct st_record *live[3] = { 0 }, *r;
	struct exchange_cfg cfg;
	struct reasm_flow f = { 0 };
	struct rec_reader *rd;
	struct exchange *x;
	struct buf b = { 0 };
	char want[33];
	uint64_t t = 1000;
	int i;

	exchange_cfg_default(&cfg);
	cfg.keep_raw = 1;
	x = exchange_new(&cfg, collect_live, live);
	assert_non_null(x);
	f.key.family = 4;
	f.key.cport = 40000;
	f.key.sport = 80;
	f.flow_id = 0x0123456789abcdefull;
	assert_int_equal(exchange_reasm_ops.open(x, &f), 0);
	for (i = 0; i < 2; i++) {
		exchange_reasm_ops.data(x, &f, 0, (const uint8_t *)req, strlen(req), t += 1000);
		exchange_reasm_ops.data(x, &f, 1, (const uint8_t *)resp, strlen(resp), t += 1000);
	}
	exchange_reasm_ops.close(x, &f, REASM_CLOSE_FIN);
	exchange_free(x);
	assert_non_null(live[0]);
	assert_non_null(live[1]);
	for (i = 0; i < 2; i++) {
		assert_int_equal(live[i]->index, i);
		record_event_id(f.flow_id, (uint32_t)i, want);
		assert_string_equal(live[i]->event_id, want);
		assert_int_equal(rec_gor_encode(live[i], &b), 0);
	}
	assert_int_equal(rec_reader_open_mem(&rd, b.data, b.len, 0), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(rec_reader_next(rd, &r), 1);
		assert_int_equal(r->flow_id, f.flow_id);
		assert_int_equal(r->index, i);
		assert_string_equal(r->event_id, live[i]->event_id);
		record_free(r);
	}
	rec_reader_close(rd);
	buf_free(&b);
	for (i = 0; i < 3; i++)
		record_free(live[i]);
}

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opts),
		cmocka_unit_test(test_native_roundtrip),
		cmocka_unit_test(test_gor_write_read),
		cmocka_unit_test(test_native_gor_native),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_corrupt_block),
		cmocka_unit_test(test_gor_pairing),
		cmocka_unit_test(test_gor_pipelined),
		cmocka_unit_test(test_rotation_and_cap),
		cmocka_unit_test(test_live_and_recorded_ids),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
