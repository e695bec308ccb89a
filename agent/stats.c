/* The one place counters are printed: --stats, SIGUSR1 and the exit summary all
 * call stats_print, so the three always agree. Registry counters (counters.h) are
 * printed by group; stages that keep their own stats structs are read here. */
#include <stdio.h>
#include <sys/resource.h>

#include "capture.h"
#include "exchange.h"
#include "pipeline.h"
#include "recording.h"
#include "replay.h"
#include "sink_es.h"
#include "stats.h"
#include "tcp_reasm.h"
#include "util.h"

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

void stats_print(struct pipeline *p, FILE *f, const char *when)
{
	struct reasm_stats rs;
	struct exchange_stats xs;
	struct rusage ru;

	fprintf(f, "--- shadowtap %s: %.1f s ---\n", when, (double)(st_mono_ns() - p->start_ns) / 1e9);
	if (p->w.cap) {
		struct st_stats s = { 0 };
		struct capture_ustats us = { 0 };

		capture_read_stats(p->w.cap, &s);
		capture_get_ustats(p->w.cap, &us);
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
	if (p->cfg.input_pcap) {
		fputs("pcap:", f);
		ctr_print_group(f, &p->ctr, "pcap");
		fputc('\n', f);
	}
	if (p->w.reasm) {
		reasm_get_stats(p->w.reasm, &rs);
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
	if (p->w.x) {
		exchange_get_stats(p->w.x, &xs);
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
	if (p->w.replay)
		replay_print_stats(p->w.replay, f);
	if (p->recw) {
		struct rec_writer_stats ws;

		rec_writer_get_stats(p->recw, &ws);
		fprintf(f, "recording: submitted=%llu written=%llu files=%llu bytes=%llu "
			"dropped_queue_full=%llu dropped_memory=%llu dropped_dir_full=%llu write_errors=%llu\n",
			(unsigned long long)ws.submitted, (unsigned long long)ws.written,
			(unsigned long long)ws.files, (unsigned long long)ws.bytes,
			(unsigned long long)ws.dropped_queue_full, (unsigned long long)ws.dropped_memory,
			(unsigned long long)ws.dropped_dir_full, (unsigned long long)ws.write_errors);
	}
	fputs("output:", f);
	ctr_print_group(f, &p->ctr, "output");
	fprintf(f, " queue_peak=%llu\n", (unsigned long long)p->w.sinkq.peak);
	if (p->es)
		es_sink_print_stats(p->es, f);
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "process: cpu_user=%.2fs cpu_sys=%.2fs rss_kb=%ld maxrss_kb=%ld\n",
		(double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, rss_kb(), ru.ru_maxrss);
	fflush(f);
}
