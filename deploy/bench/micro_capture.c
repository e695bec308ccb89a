/* The capture path of one GET in user space, as the agent runs it after the ring:
 * reassembly (hash, lookup, in-order delivery), exchange assembly, HTTP/1 parsing,
 * the record's build and free; no encoding unless MC_ENCODE is set (below; micro.c
 * measures the replayed record's). The shapes are
 * the benchmark's (deploy/bench/run.sh): loadgen's keep-alive GET and nginx's JSON
 * answer over 32 connections, one segment each, interleaved as the ring delivers
 * them. Allocations per GET are counted by wrapping malloc/calloc/realloc (link with
 * -Wl,--wrap=...), so "which allocations are left" is a number, not a guess.
 *   micro_capture RUNS [raw]      timing, best of RUNS; raw = keep_raw as when replaying
 *   micro_capture --once [raw]    one pass (for Callgrind: micro_capture_pass)
 * With MC_ENCODE=1 each record is also encoded as the capture-only agent encodes it
 * (record_to_json, the default redaction list, no rewrites) before it is freed, so
 * the whole user-space path of a capture-only GET is measured; MC_ENCODE=2 also
 * prints the first two records on stderr. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "exchange.h"
#include "record.h"
#include "shadowtap.h"
#include "tcp_reasm.h"
#include "pii.h"

#define MC_FLOWS 32
#define MC_GETS  2000            /* per flow */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static uint64_t mc_allocs;

void *__wrap_malloc(size_t n)
{
	mc_allocs++;
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	mc_allocs++;
	return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	mc_allocs++;
	return __real_realloc(p, n);
}

struct mc_corpus {
	struct buf bytes;         /* every request and answer, back to back */
	struct reasm_seg *seg;
	size_t nseg;
};

static uint64_t mc_records, mc_complete;
static int mc_encode;
static struct buf mc_out;
static struct pii_cfg mc_pii;

static void mc_emit(void *ctx, struct st_record *r)
{
	(void)ctx;
	mc_records++;
	if (r->req.complete && r->resp.complete && !r->cap_flags)
		mc_complete++;
	if (mc_encode) {
		struct record_json_opts jo = { .redact = record_redact_default, .pii = &mc_pii,
					       .body_limit = 65536 };

		if (record_to_json(r, &jo, &mc_out))
			exit(3);
		if (mc_encode > 1 && mc_records < 3)
			fprintf(stderr, "%.*s\n", (int)mc_out.len, mc_out.data);
		mc_out.len = 0;
	}
	record_free(r);
}

static size_t mc_answer(struct buf *b)
{
	static const char body[] = "{\"server\":\"a\",\"items\":[1,2,3,4,5,6,7,8],\"note\":"
				   "\"benchmark response body of a typical small JSON API\"}\n";
	size_t at = b->len;

	buf_printf(b, "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 05:00:00 GMT\r\n"
		   "Content-Type: application/json\r\nContent-Length: %zu\r\n"
		   "Last-Modified: Mon, 07 Dec 2026 04:00:00 GMT\r\nConnection: keep-alive\r\n"
		   "ETag: \"6975a-%zx\"\r\nAccept-Ranges: bytes\r\n\r\n%s",
		   sizeof(body) - 1, sizeof(body) - 1, body);
	return b->len - at;
}

static size_t mc_request(struct buf *b, unsigned i)
{
	size_t at = b->len;

	buf_printf(b, "GET /api/items/%u?w=%u&q=bench HTTP/1.1\r\nHost: 198.18.30.2\r\n"
		   "User-Agent: st-loadgen\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n\r\n",
		   (i * 7919u) % 100000u, i % MC_FLOWS);
	return b->len - at;
}

static int mc_build(struct mc_corpus *c)
{
	struct { size_t off, len; } *msg;
	uint32_t cseq[MC_FLOWS], sseq[MC_FLOWS];
	struct reasm_key k[MC_FLOWS];
	size_t nmsg = 2 * (size_t)MC_FLOWS * MC_GETS, m = 0, s = 0;
	uint64_t ts = 1765083600000000000ull;
	unsigned f, i;

	msg = calloc(nmsg, sizeof(*msg));
	c->seg = calloc(nmsg + 4 * MC_FLOWS, sizeof(*c->seg));
	if (!msg || !c->seg)
		return -1;
	for (i = 0; i < nmsg / 2; i++) {
		msg[2 * i].off = c->bytes.len;
		msg[2 * i].len = mc_request(&c->bytes, i);
		msg[2 * i + 1].off = c->bytes.len;
		msg[2 * i + 1].len = mc_answer(&c->bytes);
	}
	for (f = 0; f < MC_FLOWS; f++) {
		memset(&k[f], 0, sizeof(k[f]));
		k[f].family = 4;
		k[f].cport = (uint16_t)(40000 + f);
		k[f].sport = 80;
		k[f].caddr[0] = htonl(0xc6121e01u);
		k[f].saddr[0] = htonl(0xc6121e02u);
		cseq[f] = 1000u + f * 7777u;
		sseq[f] = 5000u + f * 3333u;
		c->seg[s++] = (struct reasm_seg){ .key = k[f], .dir = REASM_C2S, .flags = ST_TCP_SYN,
			.seq = cseq[f]++, .ts_ns = ts++ };
		c->seg[s++] = (struct reasm_seg){ .key = k[f], .dir = REASM_S2C,
			.flags = ST_TCP_SYN | ST_TCP_ACK, .seq = sseq[f]++, .ack = cseq[f], .ts_ns = ts++ };
	}
	/* one GET per connection in turn, each answered before the next connection's */
	for (i = 0; i < MC_GETS; i++) {
		for (f = 0; f < MC_FLOWS; f++, m += 2) {
			c->seg[s++] = (struct reasm_seg){ .key = k[f], .dir = REASM_C2S,
				.flags = ST_TCP_ACK | ST_TCP_PSH, .seq = cseq[f], .ack = sseq[f],
				.ts_ns = ts += 1000, .data = (const uint8_t *)c->bytes.data + msg[m].off,
				.len = (uint32_t)msg[m].len };
			cseq[f] += (uint32_t)msg[m].len;
			c->seg[s++] = (struct reasm_seg){ .key = k[f], .dir = REASM_S2C,
				.flags = ST_TCP_ACK | ST_TCP_PSH, .seq = sseq[f], .ack = cseq[f],
				.ts_ns = ts += 20000, .data = (const uint8_t *)c->bytes.data + msg[m + 1].off,
				.len = (uint32_t)msg[m + 1].len };
			sseq[f] += (uint32_t)msg[m + 1].len;
		}
	}
	for (f = 0; f < MC_FLOWS; f++) {
		c->seg[s++] = (struct reasm_seg){ .key = k[f], .dir = REASM_C2S,
			.flags = ST_TCP_FIN | ST_TCP_ACK, .seq = cseq[f], .ack = sseq[f], .ts_ns = ts++ };
		c->seg[s++] = (struct reasm_seg){ .key = k[f], .dir = REASM_S2C,
			.flags = ST_TCP_FIN | ST_TCP_ACK, .seq = sseq[f], .ack = cseq[f] + 1, .ts_ns = ts++ };
	}
	c->nseg = s;
	free(msg);
	return 0;
}

__attribute__((noinline)) void micro_capture_pass(const struct mc_corpus *c, int raw)
{
	struct exchange_cfg xcfg;
	struct reasm_cfg rcfg;
	struct exchange *x;
	struct reasm *r;
	size_t i;

	exchange_cfg_default(&xcfg);
	xcfg.keep_raw = raw;
	reasm_cfg_default(&rcfg);
	x = exchange_new(&xcfg, mc_emit, NULL);
	r = x ? reasm_new(&rcfg, &exchange_reasm_ops, x) : NULL;
	if (!r) {
		fprintf(stderr, "micro_capture: cannot set up reassembly\n");
		exit(1);
	}
	for (i = 0; i < c->nseg; i++)
		reasm_segment(r, &c->seg[i]);
	reasm_flush_all(r);
	reasm_free(r);
	exchange_free(x);
}

static double mc_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
	const uint64_t gets = (uint64_t)MC_FLOWS * MC_GETS;
	struct mc_corpus c = { 0 };
	int once = argc > 1 && !strcmp(argv[1], "--once");
	int runs = once ? 1 : (argc > 1 ? atoi(argv[1]) : 7);
	int raw = argc > 2 && !strcmp(argv[2], "raw");
	double best = 0;
	uint64_t a0;

	mc_encode = getenv("MC_ENCODE") ? atoi(getenv("MC_ENCODE")) : 0;

	if (runs < 1 || mc_build(&c)) {
		fprintf(stderr, "usage: micro_capture RUNS|--once [raw]\n");
		return 2;
	}
	for (int i = 0; i < runs; i++) {
		double t0;

		mc_records = mc_complete = 0;
		a0 = mc_allocs;
		t0 = mc_now();
		micro_capture_pass(&c, raw);
		t0 = mc_now() - t0;
		if (!i || t0 < best)
			best = t0;
		a0 = mc_allocs - a0;
	}
	/* every GET must come out whole, or the figures measure a broken path */
	if (mc_records != gets || mc_complete != gets) {
		fprintf(stderr, "micro_capture: %llu records, %llu complete, expected %llu\n",
			(unsigned long long)mc_records, (unsigned long long)mc_complete,
			(unsigned long long)gets);
		return 1;
	}
	printf("units=%llu\n", (unsigned long long)gets);
	printf("capture%s ns_per_get=%.1f allocs_per_get=%.3f gets=%llu\n", raw ? "_raw" : "",
	       best / (double)gets, (double)a0 / (double)gets, (unsigned long long)gets);
	free(c.seg);
	buf_free(&c.bytes);
	return 0;
}
