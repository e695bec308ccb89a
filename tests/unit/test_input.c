/* Offline inputs as bounded steps for the event loop: pcapin_step reads at most N
 * packets per call and reports the end of the file; input_file_step hands on at most
 * N records, honours the in-flight bound and the recorded pace by returning a wake-up
 * time instead of sleeping, and finishes only when everything handed on is done. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "counters.h"
#include "pcap_input.h"
#include "recording.h"
#include "util.h"

static char dir[] = "/tmp/test_input.XXXXXX";

/* ---- pcap ---- */

static void put_pkt(FILE *f, uint32_t sec, const uint8_t *frame, uint32_t len, uint32_t wire)
{
	uint32_t h[4] = { sec, 0, len, wire };

	fwrite(h, sizeof(h), 1, f);
	fwrite(frame, 1, len, f);
}

/* Ethernet + IPv4 + TCP (no options) to port dport with n payload bytes */
static uint32_t mk_frame(uint8_t *b, uint16_t dport, uint8_t proto, size_t n)
{
	uint16_t iplen = (uint16_t)(40 + n);

	memset(b, 0, 54 + n);
	b[12] = 0x08;
	b[14] = 0x45;
	b[16] = (uint8_t)(iplen >> 8);
	b[17] = (uint8_t)iplen;
	b[22] = 64;
	b[23] = proto;
	b[26] = 10; b[29] = 1;              /* 10.0.0.1 -> 10.0.0.2 */
	b[30] = 10; b[33] = 2;
	b[34] = 0x9c; b[35] = 0x40;         /* sport 40000 */
	b[36] = (uint8_t)(dport >> 8);
	b[37] = (uint8_t)dport;
	b[38 + 3] = 1;                      /* seq 1 */
	b[46] = 5 << 4;
	b[47] = 0x18;                       /* PSH|ACK */
	memset(b + 54, 'x', n);
	return (uint32_t)(54 + n);
}

static int nseg;

static void on_seg(void *ctx, const struct reasm_seg *seg)
{
	nseg++;
}

static void test_pcap_steps(void **state)
{
	static const uint32_t hdr[6] = { 0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1 };
	uint16_t port = 80;
	struct counters ctr = { 0 };
	struct pcapin *pi;
	char path[64];
	uint8_t fr[128];
	uint32_t len;
	FILE *f;
	int i, r, steps = 0;

	snprintf(path, sizeof(path), "%s/s.pcap", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(hdr, sizeof(hdr), 1, f);
	for (i = 0; i < 7; i++) {
		len = mk_frame(fr, 80, 6, 10);
		put_pkt(f, 1000 + (uint32_t)i, fr, len, len);
	}
	len = mk_frame(fr, 81, 6, 10);           /* not a watched port */
	put_pkt(f, 1010, fr, len, len);
	len = mk_frame(fr, 80, 17, 10);          /* not TCP */
	put_pkt(f, 1011, fr, len, len);
	/* a record header claiming more bytes than the file has: a torn last record */
	{
		uint32_t h[4] = { 1012, 0, 60, 60 };

		fwrite(h, sizeof(h), 1, f);
		fwrite(fr, 1, 10, f);
	}
	fclose(f);

	nseg = 0;
	assert_int_equal(pcapin_open(&pi, path, &port, 1, on_seg, NULL, NULL, &ctr), 0);
	while ((r = pcapin_step(pi, 2)) == 1) {
		steps++;
		/* never more than the step's budget */
		assert_true(ctr_get(&ctr, CTR_PCAP_PACKETS) <= (uint64_t)steps * 2);
	}
	assert_int_equal(r, 0);
	assert_int_equal(steps, 4);              /* 9 whole packets, 2 per step */
	assert_int_equal(ctr_get(&ctr, CTR_PCAP_PACKETS), 9);
	assert_int_equal(ctr_get(&ctr, CTR_PCAP_SEGMENTS), 7);
	assert_int_equal(ctr_get(&ctr, CTR_PCAP_OTHER), 2);
	assert_int_equal(nseg, 7);
	assert_int_equal(pcapin_step(pi, 2), 0); /* stays at the end */
	pcapin_close(pi);

	assert_int_equal(pcapin_open(&pi, "/nonexistent/x.pcap", &port, 1, on_seg, NULL, NULL, &ctr),
			 -EINVAL);
	assert_null(pi);
	pcapin_close(NULL);
}

/* ---- file input ---- */

#define NREC 50

static struct {
	uint64_t submitted, finished;
	uint64_t last_ts;
	int out_of_order;
} fi;

static void fi_submit(void *ctx, struct st_record *r)
{
	if (r->req.ts_first_ns < fi.last_ts)
		fi.out_of_order++;
	fi.last_ts = r->req.ts_first_ns;
	fi.submitted++;
	record_free(r);
}

static uint64_t fi_finished(void *ctx)
{
	return fi.finished;
}

static void write_recording(const char *path, uint64_t gap_ns)
{
	struct recording_cfg rc;
	struct rec_writer *w;
	int i;

	recording_cfg_default(&rc);
	rc.out_path = path;
	assert_int_equal(rec_writer_start(&w, &rc), 0);
	for (i = 0; i < NREC; i++) {
		struct st_record *r = record_new();
		static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";

		assert_non_null(r);
		r->raw = malloc(sizeof(req) - 1);
		memcpy(r->raw, req, sizeof(req) - 1);
		r->raw_len = sizeof(req) - 1;
		r->flow_id = 7 + (uint64_t)i;
		r->index = 0;
		record_event_id(r->flow_id, r->index, r->event_id);
		r->family = 4;
		r->sport = 80;
		r->cport = 40000;
		r->req.ts_first_ns = 1000000000ull + (uint64_t)i * gap_ns;
		r->req.ts_last_ns = r->req.ts_first_ns;
		r->req.complete = 1;
		r->http_minor = 1;
		rec_writer_submit(w, r);
		record_free(r);
	}
	rec_writer_stop(w, NULL);
}

static void test_file_steps_max_speed(void **state)
{
	struct recording_cfg rc;
	struct recording_input in = { .rc = &rc, .max_in_flight = 8, .submit = fi_submit,
				      .finished = fi_finished };
	struct input_file *f;
	char path[64];
	uint64_t wake, before;
	int r, calls = 0;

	snprintf(path, sizeof(path), "%s/max.stap", dir);
	write_recording(path, 1000000);
	recording_cfg_default(&rc);
	rc.in_pattern = path;
	rc.speed_pct = 0;
	memset(&fi, 0, sizeof(fi));
	assert_int_equal(input_file_open(&f, &in), 0);
	for (;;) {
		before = fi.submitted;
		r = input_file_step(f, 5, &wake);
		assert_true(r >= 0);
		assert_true(fi.submitted - before <= 5);             /* step budget */
		assert_true(fi.submitted - fi.finished <= 8);        /* in-flight bound */
		if (r == 0)
			break;
		/* the pipeline finishes what it was given, a few at a time */
		fi.finished += (fi.submitted - fi.finished + 1) / 2;
		assert_true(++calls < 1000);
	}
	assert_int_equal(fi.submitted, NREC);
	assert_int_equal(fi.finished, NREC);   /* done only once everything finished */
	assert_int_equal(fi.out_of_order, 0);
	input_file_close(f);
}

static void test_file_steps_paced(void **state)
{
	struct recording_cfg rc;
	struct recording_input in = { .rc = &rc, .max_in_flight = 1000, .submit = fi_submit,
				      .finished = fi_finished };
	struct input_file *f;
	char path[64];
	uint64_t wake, t0, t1;
	int r;

	snprintf(path, sizeof(path), "%s/paced.stap", dir);
	write_recording(path, 50000000);        /* 50 ms apart */
	recording_cfg_default(&rc);
	rc.in_pattern = path;
	rc.speed_pct = 100;
	memset(&fi, 0, sizeof(fi));
	assert_int_equal(input_file_open(&f, &in), 0);
	t0 = st_mono_ns();
	r = input_file_step(f, 100, &wake);
	t1 = st_mono_ns();
	assert_int_equal(r, 1);
	assert_int_equal(fi.submitted, 1);      /* the first is due at once, the next is not */
	assert_true(t1 - t0 < 40000000);        /* it did not sleep until the next one */
	assert_true(wake >= t0 + 45000000 && wake <= t1 + 55000000);
	/* called early, it hands on nothing and asks for the same time */
	assert_int_equal(input_file_step(f, 100, &wake), 1);
	assert_int_equal(fi.submitted, 1);
	input_file_close(f);                    /* frees what was not handed on */
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcap_steps),
		cmocka_unit_test(test_file_steps_max_speed),
		cmocka_unit_test(test_file_steps_paced),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
