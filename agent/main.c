/*
 * shadowtap: copy live HTTP traffic to a second server and store every exchange.
 *
 * Threads: this one captures (ring buffer or pcap -> reassembly -> HTTP pairing);
 * the replay engine has its own (replay.c); the sink thread here encodes records
 * once and writes NDJSON and hands documents to the Elasticsearch forwarder, which
 * has its own (sink_es.c). They meet at bounded queues; a full queue is a counted
 * drop, never a blocked capture path.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "util.h"
#include "exchange.h"
#include "log.h"
#include "opts.h"
#include "bq.h"
#include "record.h"
#include "recording.h"
#include "replay.h"
#include "sink_es.h"
#include "tcp_reasm.h"

#ifndef SHADOWTAP_VERSION
#define SHADOWTAP_VERSION "dev"
#endif

/* ---- pipeline ---- */

struct app {
	struct config cfg;
	struct reasm *reasm;
	struct exchange *x;
	struct capture *cap;
	struct replay *replay;
	struct es_sink *es;
	struct rec_writer *recw;
	struct bq sinkq;
	pthread_t sink_thr;
	int sink_started;
	FILE *out;
	struct record_json_opts jopts;
	volatile int stop;
	/* sink counters (sink thread writes, others read for stats) */
	uint64_t sink_written, sink_dropped_full, sink_encode_errors, sink_write_errors;
	uint64_t dropped_no_memory;
	struct pcapin_stats pstats;
	uint64_t start_ns;
};

static void sink_submit(struct app *a, struct st_record *r)
{
	if (bq_push(&a->sinkq, r)) {
		__atomic_add_fetch(&a->sink_dropped_full, 1, __ATOMIC_RELAXED);
		record_free(r);
	}
}

static void on_replayed(void *ctx, struct st_record *r)
{
	sink_submit(ctx, r);
}

static void on_record(void *ctx, struct st_record *r)
{
	struct app *a = ctx;

	if (a->recw)
		rec_writer_submit(a->recw, r);
	if (a->replay)
		replay_submit(a->replay, r);
	else
		sink_submit(a, r);
}

/* Records the pipeline has finished with: --input-file paces itself on this. */
static uint64_t file_input_finished(void *ctx)
{
	struct app *a = ctx;

	return __atomic_load_n(&a->sink_written, __ATOMIC_RELAXED) +
	       __atomic_load_n(&a->sink_dropped_full, __ATOMIC_RELAXED) +
	       __atomic_load_n(&a->sink_encode_errors, __ATOMIC_RELAXED);
}

static void *sink_main(void *arg)
{
	struct app *a = arg;
	struct buf b = { 0 };
	void *items[256];
	int n, i;

	for (;;) {
		n = bq_pop(&a->sinkq, items, 256, 200);
		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			struct st_record *r = items[i];
			uint64_t ts = (uint64_t)((int64_t)(r->req.ts_first_ns ? r->req.ts_first_ns
									      : r->resp.ts_first_ns) +
						 r->clock_offset_ns);

			buf_reset(&b);
			if (record_to_json(r, &a->jopts, &b)) {
				a->sink_encode_errors++;
				record_free(r);
				continue;
			}
			if (a->es)
				es_sink_submit(a->es, r->event_id, ts, b.data, b.len);
			if (a->out) {
				buf_putc(&b, '\n');
				if (fwrite(b.data, 1, b.len, a->out) != b.len)
					a->sink_write_errors++;
			}
			__atomic_add_fetch(&a->sink_written, 1, __ATOMIC_RELAXED);
			record_free(r);
		}
		if (a->out && n)
			fflush(a->out);
	}
	buf_free(&b);
	return NULL;
}

static void on_segment(void *ctx, const struct reasm_seg *seg)
{
	struct app *a = ctx;

	reasm_segment(a->reasm, seg);
}

static void on_tick(void *ctx, uint64_t now_ns)
{
	struct app *a = ctx;

	reasm_tick(a->reasm, now_ns);
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void print_stats(struct app *a, FILE *f, const char *when)
{
	struct reasm_stats rs;
	struct exchange_stats xs;
	struct rusage ru;

	fprintf(f, "--- shadowtap %s: %.1f s ---\n", when, (double)(st_mono_ns() - a->start_ns) / 1e9);
	if (a->cap) {
		struct st_stats s = { 0 };
		struct capture_ustats us = { 0 };

		capture_read_stats(a->cap, &s);
		capture_get_ustats(a->cap, &us);
		fprintf(f,
			"bpf: packets=%llu matched=%llu payload_segments=%llu control=%llu events=%llu "
			"bytes=%llu dup_skipped=%llu ringbuf_full=%llu bytes_lost_ringbuf=%llu "
			"bytes_too_large=%llu load_errors=%llu wakeups=%llu\n",
			(unsigned long long)s.packets, (unsigned long long)s.matched,
			(unsigned long long)s.payload_segments, (unsigned long long)s.control_events,
			(unsigned long long)s.events, (unsigned long long)s.bytes_captured,
			(unsigned long long)s.dup_skipped, (unsigned long long)s.ringbuf_full,
			(unsigned long long)s.bytes_lost_ringbuf, (unsigned long long)s.bytes_too_large,
			(unsigned long long)s.load_errors, (unsigned long long)s.wakeups);
		fprintf(f, "ring: events=%llu bad_events=%llu\n", (unsigned long long)us.events,
			(unsigned long long)us.bad_events);
	}
	if (a->cfg.input_pcap)
		fprintf(f,
			"pcap: packets=%llu segments=%llu other=%llu malformed=%llu fragments=%llu "
			"snap_truncated=%llu unsupported_link=%llu\n",
			(unsigned long long)a->pstats.packets, (unsigned long long)a->pstats.segments,
			(unsigned long long)a->pstats.not_tcp, (unsigned long long)a->pstats.malformed,
			(unsigned long long)a->pstats.fragments, (unsigned long long)a->pstats.snap_truncated,
			(unsigned long long)a->pstats.unsupported_link);
	if (a->reasm) {
		reasm_get_stats(a->reasm, &rs);
		fprintf(f,
			"tcp: segments=%llu flows=%llu active=%llu fin=%llu rst=%llu expired=%llu "
			"evicted=%llu refused=%llu mid_stream=%llu delivered=%llu retrans=%llu "
			"overlap=%llu ooo=%llu gaps=%llu gap_bytes=%llu overflows=%llu buffered=%llu "
			"buffered_peak=%llu after_close=%llu reused=%llu no_flow=%llu refused_segments=%llu "
			"bad_segments=%llu nomem=%llu\n",
			(unsigned long long)rs.segments, (unsigned long long)rs.flows_created,
			(unsigned long long)rs.flows_active, (unsigned long long)rs.flows_closed_fin,
			(unsigned long long)rs.flows_closed_rst, (unsigned long long)rs.flows_expired,
			(unsigned long long)rs.flows_evicted, (unsigned long long)rs.flows_refused,
			(unsigned long long)rs.mid_stream_pickups, (unsigned long long)rs.bytes_delivered,
			(unsigned long long)rs.retrans_bytes, (unsigned long long)rs.overlap_bytes,
			(unsigned long long)rs.ooo_segments, (unsigned long long)rs.gaps,
			(unsigned long long)rs.gap_bytes, (unsigned long long)rs.buffer_overflows,
			(unsigned long long)rs.buffered_bytes, (unsigned long long)rs.buffered_bytes_peak,
			(unsigned long long)rs.after_close, (unsigned long long)rs.flows_reused,
			(unsigned long long)rs.no_flow, (unsigned long long)rs.refused_segments,
			(unsigned long long)rs.bad_segments, (unsigned long long)rs.nomem);
	}
	if (a->x) {
		exchange_get_stats(a->x, &xs);
		fprintf(f,
			"http: requests=%llu responses=%llu informational=%llu records=%llu complete=%llu "
			"malformed_requests=%llu malformed_responses=%llu resyncs=%llu "
			"resync_skipped_bytes=%llu no_response=%llu orphan_responses=%llu upgrades=%llu "
			"pending_overflow=%llu framing_abandoned=%llu head_too_large=%llu raw_truncated=%llu body_unstored=%llu gap_records=%llu "
			"held_bytes=%llu held_peak=%llu\n",
			(unsigned long long)xs.requests, (unsigned long long)xs.responses,
			(unsigned long long)xs.informational, (unsigned long long)xs.records,
			(unsigned long long)xs.complete, (unsigned long long)xs.malformed_requests,
			(unsigned long long)xs.malformed_responses, (unsigned long long)xs.resyncs,
			(unsigned long long)xs.resync_skipped_bytes, (unsigned long long)xs.no_response,
			(unsigned long long)xs.orphan_responses, (unsigned long long)xs.upgrades,
			(unsigned long long)xs.pending_overflow, (unsigned long long)xs.framing_abandoned,
			(unsigned long long)xs.head_too_large,
			(unsigned long long)xs.raw_truncated, (unsigned long long)xs.body_unstored,
			(unsigned long long)xs.gap_records,
			(unsigned long long)xs.held_bytes, (unsigned long long)xs.held_bytes_peak);
	}
	if (a->replay)
		replay_print_stats(a->replay, f);
	if (a->recw) {
		struct rec_writer_stats ws;

		rec_writer_get_stats(a->recw, &ws);
		fprintf(f, "recording: submitted=%llu written=%llu files=%llu bytes=%llu "
			"dropped_queue_full=%llu dropped_memory=%llu dropped_dir_full=%llu write_errors=%llu\n",
			(unsigned long long)ws.submitted, (unsigned long long)ws.written,
			(unsigned long long)ws.files, (unsigned long long)ws.bytes,
			(unsigned long long)ws.dropped_queue_full, (unsigned long long)ws.dropped_memory,
			(unsigned long long)ws.dropped_dir_full, (unsigned long long)ws.write_errors);
	}
	fprintf(f, "output: written=%llu dropped_queue_full=%llu encode_errors=%llu write_errors=%llu queue_peak=%llu\n",
		(unsigned long long)__atomic_load_n(&a->sink_written, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&a->sink_dropped_full, __ATOMIC_RELAXED),
		(unsigned long long)a->sink_encode_errors, (unsigned long long)a->sink_write_errors,
		(unsigned long long)a->sinkq.peak);
	if (a->es)
		es_sink_print_stats(a->es, f);
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "process: cpu_user=%.2fs cpu_sys=%.2fs rss_kb=%ld maxrss_kb=%ld\n",
		(double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, rss_kb(), ru.ru_maxrss);
	fflush(f);
}

static int setup_signals(sigset_t *set)
{
	int fd;

	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGUSR1);
	/* block before any thread starts so only the signalfd sees them */
	if (pthread_sigmask(SIG_BLOCK, set, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Non-blocking: 1 if asked to stop, 0 otherwise; SIGUSR1 prints stats. */
static int check_signals(struct app *a, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			print_stats(a, stderr, "stats");
			continue;
		}
		pr_info("signal %u: draining and exiting\n", si.ssi_signo);
		a->stop = 1;
	}
	return a->stop;
}

int main(int argc, char **argv)
{
	struct app *a;
	struct config *c;
	uint64_t deadline = 0, next_stats = 0, next_tick = 0;
	struct timespec rt, mt;
	sigset_t sigs;
	int sfd = -1, err = 0, rc = EXIT_OK, i;

	if (argc > 1 && !strcmp(argv[1], "convert"))
		return recording_convert_main(argc - 1, argv + 1);
	a = calloc(1, sizeof(*a));
	if (!a) {
		fprintf(stderr, "shadowtap: out of memory\n");
		return EXIT_RUNTIME;
	}
	c = &a->cfg;
	opts_defaults(c);
	err = opts_parse(c, argc, argv, environ);
	if (err == OPTS_HELP || err == OPTS_VERSION) {
		if (err == OPTS_HELP)
			opts_usage(stdout);
		else
			printf("shadowtap %s\n", SHADOWTAP_VERSION);
		goto cleanup;
	}
	if (err || opts_finish(c)) {
		rc = EXIT_USAGE;
		goto cleanup;
	}
	if (!c->no_redact)
		a->jopts.redact = c->redact;
	a->jopts.body_limit = c->xcfg.body_limit;

	sfd = setup_signals(&sigs);
	if (sfd < 0) {
		pr_warn("cannot set up signal handling: %s\n", strerror(-sfd));
		rc = EXIT_RUNTIME;
		goto cleanup;
	}
	a->start_ns = st_mono_ns();

	if (c->output) {
		if (!strcmp(c->output, "-")) {
			a->out = stdout;
		} else {
			a->out = fopen(c->output, "w");
			if (!a->out) {
				pr_warn("cannot open output file %s: %s\n", c->output, strerror(errno));
				rc = EXIT_RUNTIME;
				goto cleanup;
			}
		}
	}
	if (!c->output && !c->es_url && !c->rec.out_path)
		pr_info("no --output, --es or --output-file given: records are only counted\n");

	err = bq_init(&a->sinkq, c->queue_cap);
	if (err) {
		rc = EXIT_RUNTIME;
		goto cleanup;
	}
	if (c->es_url) {
		err = es_sink_start(&a->es, &c->es);
		if (err) {
			rc = EXIT_RUNTIME;
			goto cleanup;
		}
	}
	if (pthread_create(&a->sink_thr, NULL, sink_main, a)) {
		pr_warn("cannot start the output thread\n");
		rc = EXIT_RUNTIME;
		goto cleanup;
	}
	a->sink_started = 1;
	if (c->replay.ntargets) {
		err = replay_start(&a->replay, &c->replay, on_replayed, a);
		if (err) {
			rc = err == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
			goto cleanup;
		}
	}

	/* capture clock -> wall clock: live events carry CLOCK_MONOTONIC, pcaps wall time */
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	if (!c->input_pcap)
		c->xcfg.clock_offset_ns = ((int64_t)rt.tv_sec - mt.tv_sec) * 1000000000ll +
					  (rt.tv_nsec - mt.tv_nsec);
	a->x = exchange_new(&c->xcfg, on_record, a);
	a->reasm = a->x ? reasm_new(&c->reasm, &exchange_reasm_ops, a->x) : NULL;
	if (!a->reasm) {
		pr_warn("out of memory setting up the flow table\n");
		rc = EXIT_RUNTIME;
		goto cleanup;
	}

	if (c->exit_after_ns)
		deadline = st_mono_ns() + c->exit_after_ns;
	if (c->stats_interval_s)
		next_stats = st_mono_ns() + (uint64_t)c->stats_interval_s * 1000000000ull;

	if (c->rec.out_path && rec_writer_start(&a->recw, &c->rec)) {
		rc = EXIT_RUNTIME;
		goto cleanup;
	}
	if (c->rec.in_pattern) {
		struct recording_input in = {
			.rc = &c->rec, .submit = on_record, .finished = file_input_finished, .ctx = a,
			.signal_fd = sfd, .stop = &a->stop,
			/* stay well inside replay's and the sink's queue bounds */
			.max_in_flight = c->replay.queue_cap / 2 < 1024 ? c->replay.queue_cap / 2 + 1 : 1024,
		};

		if (recording_input_run(&in))
			rc = EXIT_RUNTIME;
	} else if (c->input_pcap) {
		err = pcapin_run(c->input_pcap, c->cap.ports, c->cap.nports, on_segment, on_tick, a,
				 &a->pstats, &a->stop);
		if (err)
			rc = EXIT_RUNTIME;
	} else {
		err = capture_open(&a->cap, &c->cap, on_segment, a);
		if (err) {
			rc = EXIT_BPF;
			goto cleanup;
		}
		{
			char plist[16 * 6 + 1] = "";
			size_t pl = 0;

			for (i = 0; i < c->cap.nports; i++)
				pl += (size_t)snprintf(plist + pl, sizeof(plist) - pl, "%s%u", i ? "," : "",
						       c->cap.ports[i]);
			pr_info("capturing TCP port%s %s on %s\n", c->cap.nports > 1 ? "s" : "", plist,
				c->cap.iface ? c->cap.iface : "all interfaces");
		}
		while (!check_signals(a, sfd)) {
			uint64_t now;

			err = capture_poll(a->cap, 20);
			if (err < 0 && err != -EINTR) {
				pr_warn("ring buffer poll failed: %s\n", strerror(-err));
				rc = EXIT_RUNTIME;
				break;
			}
			now = st_mono_ns();
			if (now >= next_tick) {
				reasm_tick(a->reasm, now);
				next_tick = now + 100000000ull;
			}
			if (next_stats && now >= next_stats) {
				print_stats(a, stderr, "stats");
				next_stats = now + (uint64_t)c->stats_interval_s * 1000000000ull;
			}
			if (deadline && now >= deadline)
				break;
		}
		/* drain what the kernel already queued */
		capture_poll(a->cap, 0);
	}

cleanup:
	if (a->reasm) {
		reasm_flush_all(a->reasm);
	}
	/* prints its own stats line and frees: the exit summary does not repeat it */
	rec_writer_stop(a->recw, stderr);
	a->recw = NULL;
	if (a->replay)
		replay_stop(a->replay);
	if (a->sink_started) {
		bq_close(&a->sinkq);
		pthread_join(a->sink_thr, NULL);
	}
	if (a->es)
		es_sink_stop(a->es, 30000);
	if (a->x && rc != EXIT_USAGE)
		print_stats(a, stderr, "exit");
	if (a->out && a->out != stdout)
		fclose(a->out);
	else if (a->out)
		fflush(a->out);
	reasm_free(a->reasm);
	exchange_free(a->x);
	replay_free(a->replay);
	es_sink_free(a->es);
	capture_close(a->cap);
	bq_destroy(&a->sinkq);
	if (sfd >= 0)
		close(sfd);
	opts_free(c);
	free(a);
	return rc;
}
