/* The one place counters are printed: --stats, SIGUSR1 and the exit summary all
 * call stats_print, so the three always agree. Registry counters (counters.h) are
 * printed by group; stages that keep their own stats structs are read here. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "capture.h"
#include "exchange.h"
#include "log.h"
#include "ownsock.h"
#include "pipeline.h"
#include "recording.h"
#include "fields_sum.h"
#include "replay.h"
#include "sink_es.h"
#include "stats.h"
#include "tcp_reasm.h"
#include "tls.h"
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

/* A stage's stats struct printed as " key=value" pairs: one table per struct instead
 * of a format string and an argument list that must be kept in step by hand. */
struct stat_key {
	const char *key;
	size_t off;                      /* of a uint64_t in the stats struct */
};

/* the array size check fails to compile unless the field is 64 bits wide */
_Static_assert(sizeof(struct reasm_stats) % sizeof(uint64_t) == 0 &&
	       sizeof(struct exchange_stats) % sizeof(uint64_t) == 0,
	       "stage stats are summed over workers as arrays of uint64_t");

#define K(type, key, field) \
	{ key, offsetof(type, field) + 0 * sizeof(char[sizeof(((type *)0)->field) == 8 ? 1 : -1]) }

static const struct stat_key bpf_keys[] = {
	K(struct st_stats, "packets", packets), K(struct st_stats, "matched", matched),
	K(struct st_stats, "payload_segments", payload_segments),
	K(struct st_stats, "control", control_events), K(struct st_stats, "events", events),
	K(struct st_stats, "bytes", bytes_captured), K(struct st_stats, "dup_skipped", dup_skipped),
	K(struct st_stats, "ringbuf_full", ringbuf_full),
	K(struct st_stats, "bytes_lost_ringbuf", bytes_lost_ringbuf),
	K(struct st_stats, "bytes_too_large", bytes_too_large),
	K(struct st_stats, "load_errors", load_errors), K(struct st_stats, "wakeups", wakeups),
	K(struct st_stats, "own_skipped", own_skipped),
	{ NULL, 0 },
};

static const struct stat_key tcp_keys[] = {
	K(struct reasm_stats, "segments", segments), K(struct reasm_stats, "flows", flows_created),
	K(struct reasm_stats, "active", flows_active), K(struct reasm_stats, "fin", flows_closed_fin),
	K(struct reasm_stats, "rst", flows_closed_rst), K(struct reasm_stats, "expired", flows_expired),
	K(struct reasm_stats, "evicted", flows_evicted), K(struct reasm_stats, "refused", flows_refused),
	K(struct reasm_stats, "mid_stream", mid_stream_pickups),
	K(struct reasm_stats, "delivered", bytes_delivered),
	K(struct reasm_stats, "retrans", retrans_bytes), K(struct reasm_stats, "overlap", overlap_bytes),
	K(struct reasm_stats, "ooo", ooo_segments), K(struct reasm_stats, "gaps", gaps),
	K(struct reasm_stats, "gap_bytes", gap_bytes), K(struct reasm_stats, "overflows", buffer_overflows),
	K(struct reasm_stats, "overflows_total", buffer_overflows_total),
	K(struct reasm_stats, "buffered", buffered_bytes),
	K(struct reasm_stats, "buffered_peak", buffered_bytes_peak),
	K(struct reasm_stats, "after_close", after_close), K(struct reasm_stats, "reused", flows_reused),
	K(struct reasm_stats, "no_flow", no_flow),
	K(struct reasm_stats, "refused_segments", refused_segments),
	K(struct reasm_stats, "bad_segments", bad_segments), K(struct reasm_stats, "nomem", nomem),
	K(struct reasm_stats, "ack_gaps", ack_gaps),
	{ NULL, 0 },
};

static const struct stat_key http_keys[] = {
	K(struct exchange_stats, "requests", requests), K(struct exchange_stats, "responses", responses),
	K(struct exchange_stats, "informational", informational),
	K(struct exchange_stats, "records", records), K(struct exchange_stats, "complete", complete),
	K(struct exchange_stats, "malformed_requests", malformed_requests),
	K(struct exchange_stats, "malformed_responses", malformed_responses),
	K(struct exchange_stats, "resyncs", resyncs),
	K(struct exchange_stats, "resync_skipped_bytes", resync_skipped_bytes),
	K(struct exchange_stats, "no_response", no_response),
	K(struct exchange_stats, "orphan_responses", orphan_responses),
	K(struct exchange_stats, "upgrades", upgrades),
	K(struct exchange_stats, "pending_overflow", pending_overflow),
	K(struct exchange_stats, "framing_abandoned", framing_abandoned),
	K(struct exchange_stats, "upgrade_unanswered", upgrade_unanswered),
	K(struct exchange_stats, "upgrade_unanswered_bytes", upgrade_unanswered_bytes),
	K(struct exchange_stats, "head_too_large", head_too_large),
	K(struct exchange_stats, "headers_over_limit", headers_over_limit),
	K(struct exchange_stats, "raw_truncated", raw_truncated),
	K(struct exchange_stats, "body_unstored", body_unstored),
	K(struct exchange_stats, "gap_records", gap_records),
	K(struct exchange_stats, "held_bytes", held_bytes),
	K(struct exchange_stats, "held_peak", held_bytes_peak),
	K(struct exchange_stats, "unpairable", unpairable),
	K(struct exchange_stats, "unfinished_heads", unfinished_heads),
	K(struct exchange_stats, "evicted_budget", evicted_budget),
	K(struct exchange_stats, "evicted_conn_cap", evicted_conn_cap),
	K(struct exchange_stats, "evicted_flow_table", evicted_flow_table),
	K(struct exchange_stats, "evicted_records", evicted_records),
	K(struct exchange_stats, "evicted_bytes", evicted_bytes),
	{ NULL, 0 },
};

static const struct stat_key recording_keys[] = {
	K(struct rec_writer_stats, "submitted", submitted), K(struct rec_writer_stats, "written", written),
	K(struct rec_writer_stats, "files", files), K(struct rec_writer_stats, "bytes", bytes),
	K(struct rec_writer_stats, "dropped_queue_full", dropped_queue_full),
	K(struct rec_writer_stats, "dropped_memory", dropped_memory),
	K(struct rec_writer_stats, "dropped_dir_full", dropped_dir_full),
	K(struct rec_writer_stats, "write_errors", write_errors),
	{ NULL, 0 },
};

static const struct stat_key own_keys[] = {
	K(struct ownsock_stats, "registered", registered), K(struct ownsock_stats, "active", active),
	K(struct ownsock_stats, "unbound", unbound), K(struct ownsock_stats, "untracked", untracked),
	K(struct ownsock_stats, "unneeded", unneeded),
	{ NULL, 0 },
};

#undef K

/* A stage's stats structs (all uint64_t) of every worker, added field by field.
 * Levels add up too (held bytes); peaks become the sum of the workers' peaks, an
 * upper bound of the agent's. Read while the workers run: each field is one aligned
 * 64-bit load, so a value may be a moment old but never torn. */
static void stats_sum_u64(void *sum, const void *one, size_t size)
{
	uint64_t *d = sum;
	const uint64_t *s = one;
	size_t i;

	for (i = 0; i < size / sizeof(uint64_t); i++)
		d[i] += s[i];
}

/* The workers' TCP, HTTP and replay counters summed (a worker without that part
 * adds nothing); the exit summary and the bounds check read the same sums. */
static void stats_sum_reasm(struct pipeline *p, struct reasm_stats *rs)
{
	struct reasm_stats one;
	int i;

	memset(rs, 0, sizeof(*rs));
	for (i = 0; i < p->nworkers; i++)
		if (p->w[i].reasm) {
			reasm_get_stats(p->w[i].reasm, &one);
			stats_sum_u64(rs, &one, sizeof(*rs));
		}
}

static void stats_sum_exchange(struct pipeline *p, struct exchange_stats *xs)
{
	struct exchange_stats one;
	int i;

	memset(xs, 0, sizeof(*xs));
	for (i = 0; i < p->nworkers; i++)
		if (p->w[i].x) {
			exchange_get_stats(p->w[i].x, &one);
			stats_sum_u64(xs, &one, sizeof(*xs));
		}
}

static void stats_replay(struct pipeline *p, FILE *f)
{
	struct replay *rps[REPLAY_MAX_ENGINES];
	struct replay_stats two, one;
	int i, n = 0;

	/* counters added, settings (floor, pipeline, ...) printed once: the text of
	 * each worker's lines is not summed, which added the settings too */
	for (i = 0; i < p->nworkers && i < ST_MAX_WORKERS; i++)
		rps[n++] = p->w[i].replay;
	for (i = 0; i < p->nworkers && i < ST_MAX_WORKERS; i++)
		if (p->w[i].replay2)
			rps[n++] = p->w[i].replay2;
	replay_print_stats_n(rps, n, f);
	if (n == p->nworkers)
		return;
	/* the second engines' share of the lines above */
	memset(&two, 0, sizeof(two));
	for (i = p->nworkers; i < n; i++) {
		replay_get_stats(rps[i], &one);
		stats_sum_u64(&two, &one, sizeof(two));
	}
	/* keys of their own: scripts read the last submitted=, peak_open=, ... of the
	 * replay: lines as the totals */
	fprintf(f, "replay: second_thread records=%llu sent=%llu connections_peak=%llu\n",
		(unsigned long long)two.submitted, (unsigned long long)two.replayed,
		(unsigned long long)two.open_peak);
}

/* Per worker: events its ring got, events lost to its ring being full, events it
 * read (the agent side). Their sums are bpf events, bpf ringbuf_full (packet side;
 * TLS losses are in the tls line) and ring events. */
static void stats_workers(struct pipeline *p, FILE *f)
{
	int i;

	fprintf(f, "workers: threads=%d", p->nworkers);
	for (i = 0; i < p->nworkers; i++) {
		struct st_ring_stats rs = { 0 };

		capture_read_ring_stats(p->cap, i, &rs);
		fprintf(f, " events_%d=%llu ringbuf_full_%d=%llu read_%d=%llu", i,
			(unsigned long long)rs.events, i, (unsigned long long)rs.ringbuf_full, i,
			(unsigned long long)capture_ring_events_read(p->cap, i));
	}
	fputc('\n', f);
}

static void stats_line(FILE *f, const char *name, const void *st, const struct stat_key *k)
{
	fprintf(f, "%s:", name);
	for (; k->key; k++)
		fprintf(f, " %s=%llu", k->key,
			(unsigned long long)*(const uint64_t *)((const char *)st + k->off));
	fputc('\n', f);
}

void stats_print(struct pipeline *p, FILE *f, const char *when)
{
	struct rusage ru;

	fprintf(f, "--- shadowtap %s: %.1f s ---\n", when, (double)(st_mono_ns() - p->start_ns) / 1e9);
	if (p->cap) {
		struct st_stats s = { 0 };
		struct ownsock_stats os;

		capture_read_stats(p->cap, &s);
		stats_line(f, "bpf", &s, bpf_keys);
		fputs("ring:", f);
		ctr_print_group(f, &p->ctr, "ring");
		fputc('\n', f);
		ownsock_get_stats(&os);
		stats_line(f, "own", &os, own_keys);
		stats_workers(p, f);
	}
	if (p->tls)
		tls_print_stats(p->tls, f);
	if (p->cfg.input_pcap) {
		fputs("pcap:", f);
		ctr_print_group(f, &p->ctr, "pcap");
		fputc('\n', f);
	}
	if (p->nworkers && p->w[0].reasm) {
		struct reasm_stats rs;

		stats_sum_reasm(p, &rs);
		stats_line(f, "tcp", &rs, tcp_keys);
	}
	if (p->nworkers && p->w[0].x) {
		struct exchange_stats xs;

		stats_sum_exchange(p, &xs);
		stats_line(f, "http", &xs, http_keys);
	}
	if (p->nworkers && p->w[0].replay)
		stats_replay(p, f);
	fields_sum_print_top(p->fsum, f, 5);
	if (p->recw) {
		struct rec_writer_stats ws;

		rec_writer_get_stats(p->recw, &ws);
		stats_line(f, "recording", &ws, recording_keys);
	}
	fputs("output:", f);
	ctr_print_group(f, &p->ctr, "output");
	/* the output queue's slots are batches: its peak in records is the pipeline's */
	fprintf(f, " queue_peak=%llu\n",
		(unsigned long long)__atomic_load_n(&p->sink_records_peak, __ATOMIC_RELAXED));
	if (p->es)
		es_sink_print_stats(p->es, f);
	{
		struct record_pool_stats rs;

		record_pool_get_stats(&rs);
		fprintf(f, "records: pools=%zu idle_blocks=%zu idle_bytes=%zu cap_blocks=%zu trimmed=%llu\n",
			rs.pools, rs.idle_blocks, rs.idle_bytes, rs.cap_blocks, rs.trimmed);
	}
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "process: cpu_user=%.2fs cpu_sys=%.2fs rss_kb=%ld maxrss_kb=%ld\n",
		(double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, rss_kb(), ru.ru_maxrss);
	fflush(f);
}

/* ---- the one-line --stats ---- */

#define SL_MAX 640

struct sl_kv {
	char name[64];                   /* "group.key", "group.sub" (sum) or "group.sub.key" */
	double v;
};

struct sl_snap {
	struct sl_kv kv[SL_MAX];
	int n;
	uint64_t ns;
};

static void sl_add(struct sl_snap *s, const char *g, const char *sub, const char *k, double v)
{
	char name[64];
	int i;

	snprintf(name, sizeof(name), "%s%s%s%s%s", g, sub ? "." : "", sub ? sub : "", k ? "." : "",
		 k ? k : "");
	for (i = 0; i < s->n; i++) {
		if (!strcmp(s->kv[i].name, name)) {
			s->kv[i].v += v;
			return;
		}
	}
	if (s->n < SL_MAX) {
		snprintf(s->kv[s->n].name, sizeof(s->kv[s->n].name), "%s", name);
		s->kv[s->n++].v = v;
	}
}

/* stats_print's lines as numbers: "group: [sub] k=v ..." */
static void sl_take(struct pipeline *p, struct sl_snap *s)
{
	char *text = NULL, *line, *save = NULL, *tok, *tsave, *eq, *end, *colon, *sub;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	s->n = 0;
	s->ns = st_mono_ns();
	if (!m)
		return;
	stats_print(p, m, "stats");
	fclose(m);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		colon = strchr(line, ':');
		if (!colon || !strncmp(line, "---", 3))
			continue;
		*colon = '\0';
		sub = NULL;
		for (tok = strtok_r(colon + 1, " ", &tsave); tok; tok = strtok_r(NULL, " ", &tsave)) {
			eq = strchr(tok, '=');
			if (!eq) {
				sub = tok;
				continue;
			}
			*eq = '\0';
			double v = strtod(eq + 1, &end);

			if (end == eq + 1)
				continue;
			sl_add(s, line, sub, tok, v);
			if (sub)
				sl_add(s, line, sub, NULL, v);
		}
	}
	free(text);
}

static double sl_get(const struct sl_snap *s, const char *name, int *found)
{
	int i;

	for (i = 0; i < s->n; i++) {
		if (!strcmp(s->kv[i].name, name)) {
			if (found)
				*found = 1;
			return s->kv[i].v;
		}
	}
	return 0;
}

static struct sl_snap sl_prev, sl_cur;

void stats_print_line(struct pipeline *p, FILE *f)
{
	static const struct { const char *name, *label; } rates[] = {
		{ "bpf.packets", "packets" }, { "pcap.packets", "packets" },
		{ "http.records", "records" }, { "replay.replayed", "replayed" },
		{ "replay.failed", "failed" }, { "output.written", "written" },
		{ "es.indexed", "indexed" }, { "es.spooled", "spooled" },
	};
	static const struct { const char *name, *label; } lost[] = {
		{ "bpf.ringbuf_full", "ring" }, { "replay.dropped", "replay" },
		{ "output.dropped_queue_full", "output" }, { "output.dropped_memory", "output" },
		{ "es.spool_drops", "es" },
	};
	double dt, first;
	size_t i;
	int found, sep = 0;

	sl_take(p, &sl_cur);
	first = sl_prev.n == 0;
	dt = first ? (double)(sl_cur.ns - p->start_ns) / 1e9 : (double)(sl_cur.ns - sl_prev.ns) / 1e9;
	if (dt <= 0)
		dt = 1e-9;
	fprintf(f, "--- shadowtap stats: %.1f s --- ", (double)(sl_cur.ns - p->start_ns) / 1e9);
	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		found = 0;
		double v = sl_get(&sl_cur, rates[i].name, &found);

		if (!found)
			continue;
		v -= first ? 0 : sl_get(&sl_prev, rates[i].name, NULL);
		fprintf(f, "%s%s %.0f/s", sep++ ? ", " : "", rates[i].label, v / dt);
	}
	fputs("; lost", f);
	for (i = 0; i < sizeof(lost) / sizeof(lost[0]); i++) {
		found = 0;
		double v = sl_get(&sl_cur, lost[i].name, &found);

		if (found)
			fprintf(f, " %s %.0f", lost[i].label,
				v - (first ? 0 : sl_get(&sl_prev, lost[i].name, NULL)));
	}
	found = 0;
	double inflight = sl_get(&sl_cur, "replay.in_flight", &found);

	if (found)
		fprintf(f, "; replay in flight %.0f", inflight);
	found = 0;
	double spool = sl_get(&sl_cur, "es.spool_pending_bytes", &found);

	if (found)
		fprintf(f, "; spool %.1f MB", spool / 1e6);
	fprintf(f, "; rss %.0f MB\n", sl_get(&sl_cur, "process.rss_kb", NULL) / 1024);
	fflush(f);
	sl_prev = sl_cur;
}

/* Which memory bound bit: one warning the first time each one turns something away
 * (its counter is in the exit summary). The loop thread, once a second. */
void stats_bounds_check(struct pipeline *p)
{
	static uint32_t told;
	const struct config *c = &p->cfg;
	struct reasm_stats rs;
	struct exchange_stats xs;
	struct replay_stats ps = { 0 }, p1;
	uint64_t out_mem, out_q;
	int i;

	stats_sum_reasm(p, &rs);
	stats_sum_exchange(p, &xs);
	for (i = 0; i < p->nworkers; i++) {
		if (p->w[i].replay) {
			replay_get_stats(p->w[i].replay, &p1);
			stats_sum_u64(&ps, &p1, sizeof(ps));
		}
		if (p->w[i].replay2) {
			replay_get_stats(p->w[i].replay2, &p1);
			stats_sum_u64(&ps, &p1, sizeof(ps));
		}
	}
	out_mem = ctr_get(&p->ctr, CTR_OUT_DROPPED_MEMORY);
	out_q = ctr_get(&p->ctr, CTR_OUT_DROPPED_QUEUE_FULL);
#define BOUND(bit, cond, ...)                                                  \
	do {                                                                   \
		if (!(told & (1u << (bit))) && (cond)) {                       \
			told |= 1u << (bit);                                   \
			pr_warn("memory bound reached: " __VA_ARGS__);         \
		}                                                              \
	} while (0)
	BOUND(0, xs.evicted_budget, "--max-held-bytes %llu: connections holding the most evicted "
	      "(http: evicted_budget=%llu)\n", (unsigned long long)c->xcfg.max_held_bytes,
	      (unsigned long long)xs.evicted_budget);
	BOUND(1, xs.evicted_conn_cap, "--max-conn-bytes %llu: a connection evicted (http: "
	      "evicted_conn_cap=%llu)\n", (unsigned long long)c->xcfg.max_conn_bytes,
	      (unsigned long long)xs.evicted_conn_cap);
	BOUND(2, rs.buffer_overflows_total, "--max-buffered-bytes %llu: holes turned into gaps "
	      "(tcp: overflows_total=%llu buffered_peak=%llu)\n",
	      (unsigned long long)c->reasm.max_total_bytes,
	      (unsigned long long)rs.buffer_overflows_total, (unsigned long long)rs.buffered_bytes_peak);
	BOUND(3, rs.buffer_overflows > rs.buffer_overflows_total, "--max-flow-bytes %llu: a "
	      "connection's hole turned into a gap (tcp: overflows=%llu, overflows_total=%llu)\n",
	      (unsigned long long)c->reasm.max_flow_bytes, (unsigned long long)rs.buffer_overflows,
	      (unsigned long long)rs.buffer_overflows_total);
	BOUND(4, rs.flows_evicted, "--max-flows %zu: the least recently active connections "
	      "forgotten (tcp: evicted=%llu)\n", c->reasm.max_flows,
	      (unsigned long long)rs.flows_evicted);
	BOUND(5, ps.d_memory, "--replay-max-bytes %llu: records not replayed (replay: dropped "
	      "memory_limit=%llu)\n", (unsigned long long)c->replay.max_inflight_bytes,
	      (unsigned long long)ps.d_memory);
	BOUND(6, ps.d_queue, "--replay-queue %zu: records not replayed (replay: dropped "
	      "queue_full=%llu)\n", c->replay.queue_cap, (unsigned long long)ps.d_queue);
	BOUND(7, out_mem, "--queue-bytes %llu: records not written (output: dropped_memory=%llu)\n",
	      (unsigned long long)c->queue_bytes, (unsigned long long)out_mem);
	BOUND(8, out_q, "--queue %zu: records not written (output: dropped_queue_full=%llu)\n",
	      c->queue_cap, (unsigned long long)out_q);
#undef BOUND
}
