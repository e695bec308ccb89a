/* Cost of the difference work per record, next to the record's JSON encoding:
 * diff_compare (bytes, JSON structure, field by field) and fields_sum_observe
 * (endpoint, noise comparison, counters) on answers shaped like the test
 * service's (small JSON with noise), like a 4 KiB API answer, and exactly like the
 * benchmark's (deploy/bench/run.sh: nginx's static index.json, serverA and serverB
 * differing in "$.server" only, nginx's own headers, no noise answer).
 *   deploy/bench/micro_diff.sh builds it with the agent objects and runs it;
 *   micro_diff --once bench N runs only micro_diff_pass (diff_compare + free, then
 *   fields_sum_observe) N times on the benchmark's shape, for Callgrind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "diff.h"
#include "fields.h"
#include "fields_sum.h"
#include "record.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msg(struct st_msg *m, const char *body)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
	struct http1_header h;

	memset(m, 0, sizeof(*m));
	h.name = strstr(head, "Content-Type");
	h.name_len = 12;
	h.value = h.name + 14;
	h.value_len = 16;
	record_msg_set_head(m, head, sizeof(head) - 1, &h, 1);
	record_msg_body_append(m, body, strlen(body), 1 << 20);
	m->complete = 1;
}

/* The answer run.sh's nginx gives serverA (name "serverA") and serverB. */
static void msg_nginx(struct st_msg *m, const char *name)
{
	static const char *const hn[] = { "Server", "Date", "Content-Type", "Content-Length",
					  "Last-Modified", "Connection", "ETag", "Accept-Ranges" };
	static const char *const hv[] = { "nginx/1.24.0 (Ubuntu)", "Mon, 07 Dec 2026 05:00:00 GMT",
					  "application/json", "99", "Mon, 07 Dec 2026 04:59:00 GMT",
					  "keep-alive", "\"6574a3c4-63\"", "bytes" };
	struct http1_header h[8];
	char head[512], b[160];
	size_t o, i;

	memset(m, 0, sizeof(*m));
	o = (size_t)snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n");
	for (i = 0; i < 8; i++) {
		h[i].name = head + o;
		h[i].name_len = strlen(hn[i]);
		h[i].value = head + o + h[i].name_len + 2;
		h[i].value_len = strlen(hv[i]);
		o += (size_t)snprintf(head + o, sizeof(head) - o, "%s: %s\r\n", hn[i], hv[i]);
	}
	o += (size_t)snprintf(head + o, sizeof(head) - o, "\r\n");
	record_msg_set_head(m, head, o, h, 8);
	snprintf(b, sizeof(b),
		 "{\"server\":\"%s\",\"items\":[1,2,3,4,5,6,7,8],\"note\":\"benchmark response body of a typical small JSON API\"}\n",
		 name);
	record_msg_body_append(m, b, strlen(b), 1 << 20);
	m->complete = 1;
}

static struct st_record *bench_record(void)
{
	struct st_record *r = record_new();

	/* an id as every record has one (the field summaries keep it as an example) */
	record_event_id(0x5eed, 1, r->event_id);
	r->method = "GET";
	r->method_len = 3;
	r->target = "/";
	r->target_len = 1;
	r->status_code = 200;
	msg_nginx(&r->resp, "serverA");
	r->replay = calloc(1, sizeof(*r->replay));
	r->replay->status_code = 200;
	msg_nginx(&r->replay->resp, "serverB");
	return r;
}

/* What the agent does per replayed record of the benchmark: the replay thread's
 * diff_compare (and the diff's free, which record_free does later) and the output
 * thread's fields_sum_observe. Not inlined: Callgrind collects only this. */
__attribute__((noinline)) void micro_diff_pass(struct fields_sum *s, struct st_record *r, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		record_diff_free(r->diff);
		r->diff = diff_compare(r, NULL);
		fields_sum_observe(s, r);
	}
}

static void run_bench(int once)
{
	struct fields_sum_cfg cfg;
	struct fields_sum *s;
	struct st_record *r = bench_record();
	int iters = once > 0 ? once : 40000;
	double t0;

	fields_sum_cfg_default(&cfg);
	s = fields_sum_new(&cfg);
	micro_diff_pass(s, r, 1);
	if (!r->diff || r->diff->match || r->diff->nbody_paths != 1 || r->diff->nfields != 1) {
		fprintf(stderr, "micro_diff: the benchmark shape should differ in $.server only\n");
		exit(1);
	}
	t0 = now();
	micro_diff_pass(s, r, iters);
	t0 = now() - t0;
	if (once > 0)
		printf("units=%d\n", iters + 1);
	else
		printf("%-20s body=%5zu B: diff_compare + fields_sum_observe %6.3f us per record\n",
		       "benchmark shape", r->resp.body_stored, t0 / iters * 1e6);
	record_free(r);
	fields_sum_free(s);
}

static void body(struct buf *b, int items, int ts, int shuffle, int price)
{
	int i;

	buf_reset(b);
	buf_printf(b, "{\"id\":42,\"ts\":%d,\"request_id\":\"%08x-aaaa-bbbb\",\"tags\":%s,\"items\":[", ts,
		   ts * 2654435761u, shuffle ? "[\"b\",\"a\",\"c\"]" : "[\"a\",\"b\",\"c\"]");
	for (i = 0; i < items; i++)
		buf_printf(b, "%s{\"sku\":\"sku-%d\",\"name\":\"item number %d\",\"price\":%d,\"qty\":%d}",
			   i ? "," : "", i, i, price + i, i % 5);
	buf_append(b, "]}", 3);
}

static void run(const char *label, int items)
{
	struct fields_sum_cfg cfg;
	struct fields_sum *s;
	struct buf a = { 0 }, bb = { 0 }, n = { 0 }, out = { 0 };
	struct record_json_opts jo = { 0 };
	struct st_record *r = record_new();
	double t0, t_diff = 0, t_obs = 0, t_enc = 0, t_fields = 0;
	int i, iters = items > 10 ? 4000 : 40000;
	const char *env = getenv("MICRO_DIFF_ITERS");

	/* fewer loops for valgrind (callgrind counts instructions, not time) */
	if (env && atoi(env) > 0)
		iters = items > 10 ? atoi(env) : atoi(env) * 10;

	fields_sum_cfg_default(&cfg);
	cfg.baseline = "http://x";
	s = fields_sum_new(&cfg);
	r->method = "GET";
	r->method_len = 3;
	r->target = "/api/item/42";
	r->target_len = 12;
	r->status_code = 200;
	body(&a, items, 1, 0, 10);
	body(&bb, items, 2, 1, 11);
	body(&n, items, 3, 1, 10);
	msg(&r->resp, a.data);
	r->replay = calloc(1, sizeof(*r->replay));
	r->replay->status_code = 200;
	msg(&r->replay->resp, bb.data);
	r->noise = calloc(1, sizeof(*r->noise));
	r->noise->status_code = 200;
	msg(&r->noise->resp, n.data);
	for (i = 0; i < iters; i++) {
		t0 = now();
		record_diff_free(r->diff);
		r->diff = diff_compare(r, NULL);
		t_diff += now() - t0;
		t0 = now();
		{
			struct st_field *f = NULL;
			size_t nf = 0, tot = 0;

			fields_compare(200, &r->resp, 200, &r->replay->resp, diff_default_ignore, &f, &nf, &tot);
			fields_free(f, nf);
		}
		t_fields += now() - t0;
		t0 = now();
		fields_sum_observe(s, r);
		t_obs += now() - t0;
		t0 = now();
		buf_reset(&out);
		record_to_json(r, &jo, &out);
		t_enc += now() - t0;
	}
	printf("%-20s body=%5zu B: diff_compare %6.2f us (of which fields_compare %6.2f us), "
	       "observe (noise compare + counters) %6.2f us, record_to_json %6.2f us per record\n", label,
	       a.len, t_diff / iters * 1e6, t_fields / iters * 1e6, t_obs / iters * 1e6, t_enc / iters * 1e6);
	record_free(r);
	fields_sum_free(s);
	buf_free(&a);
	buf_free(&bb);
	buf_free(&n);
	buf_free(&out);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--once") == 0 && strcmp(argv[2], "bench") == 0) {
		run_bench(atoi(argv[3]) > 0 ? atoi(argv[3]) : 1000);
		return 0;
	}
	run_bench(0);
	run("test-service shape", 0);
	run("4 KiB API answer", 50);
	return 0;
}
