/* fields_sum: endpoint naming, noise comparison (baseline and probe), ignore
 * rules, counters and Diffy's verdict in the summary documents, probe sampling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "diff.h"
#include "fields.h"
#include "fields_sum.h"
#include "record.h"

#define HJ "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"

static void set_msg(struct st_msg *m, const char *body)
{
	struct http1_header h = { 0 };
	static const char head[] = HJ;

	h.name = strstr(head, "Content-Type");
	h.name_len = 12;
	h.value = h.name + 14;
	h.value_len = 16;
	assert_int_equal(record_msg_set_head(m, head, strlen(head), &h, 1), 0);
	assert_int_equal(record_msg_body_append(m, body, strlen(body), 1 << 20), 0);
	m->complete = true;
}

static struct st_replay *answer(const char *body)
{
	struct st_replay *rp = calloc(1, sizeof(*rp));

	assert_non_null(rp);
	rp->status_code = 200;
	set_msg(&rp->resp, body);
	return rp;
}

/* serverA, serverB and the noise answer to "GET /item/<i>" */
static struct st_record *mk(int i, const char *a, const char *b, const char *noise)
{
	struct st_record *r = record_new();
	static char target[32];

	snprintf(target, sizeof(target), "/item/%d", i);
	r->method = "GET";
	r->method_len = 3;
	r->target = target;
	r->target_len = strlen(target);
	r->flow_id = (uint64_t)i;
	snprintf(r->event_id, sizeof(r->event_id), "%032d", i);
	r->status_code = 200;
	set_msg(&r->resp, a);
	r->replay = answer(b);
	r->diff = diff_compare(r, NULL);
	assert_non_null(r->diff);
	if (noise)
		r->noise = answer(noise);
	return r;
}

static void test_baseline_verdicts(void **state)
{
	struct fields_sum_cfg cfg;
	struct fields_sum *s;
	struct buf out = { 0 };
	char a[64], b[64], n[64];
	int i;

	fields_sum_cfg_default(&cfg);
	cfg.baseline = "http://127.0.0.1:1";
	cfg.ignore[cfg.nignore++] = "GET /item/{int} $.ign";
	s = fields_sum_new(&cfg);
	assert_non_null(s);
	for (i = 0; i < 100; i++) {
		struct st_record *r;

		/* ts differs everywhere (noise), price on 10% (real), ign always (ignored) */
		snprintf(a, sizeof(a), "{\"ts\":%d,\"price\":1,\"ign\":1}", i);
		snprintf(b, sizeof(b), "{\"ts\":%d,\"price\":%d,\"ign\":2}", i + 1, i % 10 ? 1 : 2);
		snprintf(n, sizeof(n), "{\"ts\":%d,\"price\":1,\"ign\":1}", i + 2);
		r = mk(i, a, b, n);
		assert_int_equal(fields_sum_observe(s, r), 0);
		assert_string_equal(r->diff->endpoint, "GET /item/{int}");
		assert_string_equal(r->diff->noise_source, "baseline");
		assert_int_equal(r->diff->nnoise, 1);
		assert_string_equal(r->diff->noise_paths[0], "$.ts");
		record_free(r);
	}
	assert_int_equal(fields_sum_flush(s, 1000000000ull, true, &out), 1);
	assert_non_null(out.data);
	buf_putc(&out, '\0');
	assert_non_null(strstr(out.data, "\"endpoint\":\"GET /item/{int}\",\"requests\":100,\"matched\":0,"
					 "\"noise_requests\":100"));
	assert_non_null(strstr(out.data, "{\"path\":\"$.ts\",\"kind\":\"value\",\"raw\":100,\"noise\":100,"));
	assert_non_null(strstr(out.data, "{\"path\":\"$.price\",\"kind\":\"value\",\"raw\":10,\"noise\":0,"
					 "\"share\":0.100000,\"verdict\":\"real\""));
	assert_non_null(strstr(out.data, "\"path\":\"$.ign\",\"kind\":\"value\",\"raw\":100,\"noise\":0,"
					 "\"share\":1.000000,\"verdict\":\"ignored\""));
	assert_non_null(strstr(out.data, "\"raw\":100,\"noise\":100,\"share\":1.000000,\"verdict\":\"noise\""));
	/* not due yet: nothing more */
	buf_reset(&out);
	assert_int_equal(fields_sum_flush(s, 2000000000ull, false, &out), 0);
	assert_int_equal(fields_sum_flush(s, 3000000000ull, false, &out), 0);
	buf_free(&out);
	fields_sum_free(s);
}

static void test_probe_compares_serverb_twice(void **state)
{
	struct fields_sum_cfg cfg;
	struct fields_sum *s;
	struct st_record *r;

	fields_sum_cfg_default(&cfg);
	cfg.probe_pct = 100;
	s = fields_sum_new(&cfg);
	/* serverB is deterministic but differs from serverA: no noise, real */
	r = mk(1, "{\"x\":1,\"t\":1}", "{\"x\":2,\"t\":2}", "{\"x\":2,\"t\":3}");
	assert_int_equal(fields_sum_observe(s, r), 0);
	assert_string_equal(r->diff->noise_source, "probe");
	assert_int_equal(r->diff->nnoise, 1);
	assert_string_equal(r->diff->noise_paths[0], "$.t");
	assert_true(r->diff->fields[0].noise != r->diff->fields[1].noise);
	record_free(r);
	fields_sum_free(s);
}

static void test_want_noise(void **state)
{
	struct fields_sum_cfg cfg;
	struct st_record *r = record_new();
	int i, hits = 0;

	fields_sum_cfg_default(&cfg);
	r->replay = answer("{}");
	r->method = "POST";
	r->method_len = 4;
	cfg.probe_pct = 100;
	assert_false(fields_sum_want_noise(&cfg, r));   /* unsafe: never probed */
	cfg.probe_methods[cfg.nprobe_methods++] = "POST";
	assert_true(fields_sum_want_noise(&cfg, r));
	cfg.nprobe_methods = 0;
	r->method = "GET";
	r->method_len = 3;
	cfg.probe_pct = 25;
	for (i = 0; i < 4000; i++) {
		r->index = (uint32_t)i;
		hits += fields_sum_want_noise(&cfg, r);
	}
	assert_in_range(hits, 850, 1150);
	cfg.probe_pct = 0;
	assert_false(fields_sum_want_noise(&cfg, r));
	cfg.baseline = "http://x";
	r->method = "DELETE";
	assert_true(fields_sum_want_noise(&cfg, r));    /* the baseline gets everything */
	r->replay->error = strdup("timeout");
	assert_false(fields_sum_want_noise(&cfg, r));
	record_free(r);
}

static void test_hold_unhold(void **state)
{
	struct st_record *r = mk(3, "{\"a\":1}", "{\"a\":2}", NULL);
	struct st_replay *first = r->replay;
	struct st_diff *d = r->diff;

	fields_sum_hold(r);
	assert_null(r->replay);
	assert_null(r->diff);
	r->replay = answer("{\"a\":1}");
	fields_sum_unhold(r);
	assert_ptr_equal(r->replay, first);
	assert_ptr_equal(r->diff, d);
	assert_non_null(r->noise);
	record_free(r);
}

/* With a baseline, the noise replay's own diff (serverA vs baseline) is the noise
 * comparison: observe takes its fields instead of comparing again. */
static void test_baseline_reuses_noise_diff(void **state)
{
	struct fields_sum_cfg cfg;
	struct fields_sum *s;
	struct st_record *r = mk(5, "{\"x\":1,\"t\":1}", "{\"x\":2,\"t\":2}", NULL);

	fields_sum_cfg_default(&cfg);
	cfg.baseline = "http://127.0.0.1:1";
	s = fields_sum_new(&cfg);
	fields_sum_hold(r);
	r->replay = answer("{\"x\":1,\"t\":3}");
	r->diff = diff_compare(r, NULL);
	assert_int_equal(r->diff->nfields, 1);
	fields_sum_unhold(r);
	assert_non_null(r->noise_diff);
	assert_int_equal(fields_sum_observe(s, r), 0);
	assert_int_equal(r->noise_diff->nfields, 0);   /* taken, not compared again */
	assert_int_equal(r->diff->nnoise, 1);
	assert_string_equal(r->diff->noise_paths[0], "$.t");
	/* the endpoint is written into the room at the end of the diff's block */
	assert_ptr_equal(r->diff->endpoint, (char *)r->diff + r->diff->block - r->diff->room);
	record_free(r);
	fields_sum_free(s);
}

/* The tables are bounded: endpoints past FSUM_MAX_ENDPOINTS gather in "(other)",
 * fields past FSUM_MAX_FIELDS per endpoint are counted as dropped. */
static void test_bounds(void **state)
{
	struct fields_sum_cfg cfg;
	struct fields_sum *s;
	struct fsum_row *rows;
	struct st_diff d;
	struct st_field f[FIELDS_MAX];
	char ep[64], paths[FIELDS_MAX][16];
	size_t n, i, other = 0, fieldrows = 0;
	struct buf out = { 0 };
	int k;

	fields_sum_cfg_default(&cfg);
	s = fields_sum_new(&cfg);
	memset(&d, 0, sizeof(d));
	for (k = 0; k < FSUM_MAX_ENDPOINTS + 40; k++) {
		snprintf(ep, sizeof(ep), "GET /e%d", k);
		d.endpoint = ep;
		assert_int_equal(fields_sum_count(s, &d, "x"), 0);
	}
	/* 3 requests with 32 distinct fields each on one endpoint: 96 > 64 */
	d.endpoint = "GET /wide";
	memset(f, 0, sizeof(f));
	for (k = 0; k < 3; k++) {
		for (i = 0; i < FIELDS_MAX; i++) {
			snprintf(paths[i], sizeof(paths[i]), "$.f%d_%zu", k, i);
			f[i].path = paths[i];
		}
		d.fields = f;
		d.nfields = FIELDS_MAX;
		assert_int_equal(fields_sum_count(s, &d, "y"), 0);
	}
	assert_int_equal(fields_sum_rows(s, &rows, &n), 0);
	for (i = 0; i < n; i++) {
		if (!rows[i].path && !strcmp(rows[i].endpoint, "(other)"))
			other = rows[i].requests;
		if (rows[i].path)
			fieldrows++;
	}
	free(rows);
	assert_int_equal(other, 40 + 3);   /* /wide came after the table was full */
	assert_int_equal(fieldrows, FSUM_MAX_FIELDS);
	assert_true(fields_sum_flush(s, 1, true, &out) == FSUM_MAX_ENDPOINTS + 1);
	buf_putc(&out, '\0');
	assert_non_null(strstr(out.data, "\"endpoint\":\"(other)\",\"requests\":43,"));
	assert_non_null(strstr(out.data, "\"fields_dropped\":32"));
	buf_free(&out);
	fields_sum_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_baseline_verdicts),
		cmocka_unit_test(test_probe_compares_serverb_twice),
		cmocka_unit_test(test_want_noise),
		cmocka_unit_test(test_hold_unhold),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_baseline_reuses_noise_diff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
