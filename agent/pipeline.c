/* The pipeline and its one event loop.
 *
 * The main thread runs the loop: epoll over a signalfd (SIGINT/SIGTERM stop,
 * SIGUSR1 prints stats), a periodic timerfd (ring drain cadence and timers), the
 * capture ring's epoll fd (live) and a one-shot timerfd an input can ask to be
 * woken by (file pacing). Offline inputs are bounded steps (pcapin_step,
 * input_file_step) run between waits, so a signal is seen within one step. Before
 * every wait, as redis's beforeSleep, the loop runs what is due: reassembly
 * ticks, periodic stats and the --exit-after deadline. Records leave the flow
 * table through the recording writer, replay and the output thread here: the thread
 * that finished a record encodes it once into its batch (sink_submit), the output
 * thread writes the NDJSON and hands each line to the Elasticsearch sink. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "exchange.h"
#include "fields_sum.h"
#include "json.h"
#include "log.h"
#include "pcap_input.h"
#include "pipeline.h"
#include "shutdown.h"
#include "recording.h"
#include "replay.h"
#include "sfile.h"
#include "sink_es.h"
#include "stats.h"
#include "tcp_reasm.h"
#include "tls.h"
#include "util.h"

#define LOOP_PERIOD_NS   20000000ull    /* live ring drain: events come without wake-ups */
#define LOOP_TICK_NS     100000000ull   /* reassembly timers on live input */
#define PCAP_STEP        2048           /* packets per step: well under 1 ms of work */
#define FILE_STEP        256            /* records per step */
#define OFFLINE_INFLIGHT 1024           /* records an offline input may have in the pipeline */
#define OFFLINE_POLL_NS  200000ull      /* look again this soon when that bound is reached */

/* ---- where records go ---- */

/* Latency histograms for --metrics: serverA's as captured, serverB's as replayed. */
static void pipeline_observe(struct pipeline *p, const struct st_record *r)
{
	uint64_t t0 = r->req.ts_first_ns, t1 = r->resp.ts_last_ns;

	if (t0 && t1 > t0 && r->resp.complete)
		metrics_hist_observe_ns(&p->h_servera, t1 - t0);
	if (r->replay && !r->replay->error && r->replay->duration_ns)
		metrics_hist_observe_ns(&p->h_serverb, r->replay->duration_ns);
}

/* Records for the output thread are handed over in batches: each producing thread
 * (the loop, the replay thread, the noise replay thread) keeps its own and flushes it
 * once per pass (sink_flush), so the output thread is woken once per batch. The
 * producer also encodes each record into the batch's NDJSON text and frees it: the
 * record's data is still in that core's cache, and it is freed on the thread (glibc
 * arena) that allocated most of it. The output thread only writes the text and hands
 * each line to Elasticsearch. */
#define SINK_BATCH 128
/* The output thread naps while it is busy (bq_set_nap): the producers' batches gather
 * and it is woken about once per SINK_NAP_MS, not once per batch (a wake-up, a context
 * switch and two futex calls each: at the GET maximum they were most of the agent's
 * context switches, issue 19). A batch waits at most SINK_NAP_MS longer in the queue.
 * A push that brings the queue to SINK_WAKE_RECORDS records (or a quarter of --queue)
 * wakes it at once. Live capture only: an offline input paces itself on what the
 * output thread has written and would wait for the naps. */
#define SINK_NAP_MS       10
#define SINK_WAKE_RECORDS 1024
/* ... or that brings the queued batches' bytes to SINK_WAKE_BYTES: at the POST
 * maximum, capture-only, 10 ms of ~60 KB records is several MB of text written on
 * one core and read back on another after it left the caches (capture-only POST
 * 0.61 -> 0.66 ns per byte with the nap, side by side, 5 repeats). GETs' batches
 * (about 1-2 KB per record) stay under it for a nap at the GET maximum. */
#define SINK_WAKE_BYTES   (1u << 20)
struct sink_line {
	char event_id[33];
	uint64_t ts_ns;
	size_t off, len;         /* in text, without the newline */
};
struct sink_batch {
	size_t n;
	struct buf text;         /* n NDJSON lines */
	struct sink_line line[SINK_BATCH];
	/* records handed over unencoded (sink_submit_raw): the output thread encodes them
	 * and writes each where it was submitted, after the first rec_at[i] lines, so a
	 * connection's records stay in order in the output */
	size_t nrec, rec_bytes;
	struct st_record *rec[SINK_BATCH];
	size_t rec_at[SINK_BATCH];
};
static __thread struct sink_batch *sink_pend;
/* the text length of this thread's last batch: a new batch's text is sized for about
 * as much at once, instead of doubling from empty (each doubling copies the lines so
 * far: about one more copy of every encoded byte, most of it for large bodies) */
static __thread size_t sink_text_hint;

/* --queue-bytes bounds what a queued batch holds: its text and its line table */
static size_t sink_batch_bytes(const void *item)
{
	const struct sink_batch *sb = item;

	return sizeof(*sb) + sb->text.cap + sb->rec_bytes;
}

static void sink_batch_free(struct sink_batch *sb)
{
	size_t i;

	if (!sb)
		return;
	for (i = 0; i < sb->nrec; i++)
		record_free(sb->rec[i]);
	buf_free(&sb->text);
	free(sb);
}

static void sink_flush(struct pipeline *p)
{
	struct sink_batch *sb = sink_pend;
	uint64_t q, nr;
	int k, full = -ENOSPC;

	if (!sb || !(sb->n + sb->nrec))
		return;
	nr = sb->n + sb->nrec;
	sink_pend = NULL;
	sink_text_hint = sb->text.len;
	/* --queue counts records: the bq's slots are batches, so the records queued are
	 * counted here (added before the push, taken off by the output thread) */
	q = __atomic_add_fetch(&p->sink_records, nr, __ATOMIC_RELAXED);
	k = q > p->cfg.queue_cap && q != nr ? -ENOSPC
		: bq_push_many_ex(&p->sinkq, (void **)&sb, 1, &full,
				  q >= SINK_WAKE_RECORDS || q > p->cfg.queue_cap / 4);
	if (k == 1) {
		uint64_t peak = __atomic_load_n(&p->sink_records_peak, __ATOMIC_RELAXED);

		while (q > peak && !__atomic_compare_exchange_n(&p->sink_records_peak, &peak, q, 1,
								__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
		return;
	}
	__atomic_sub_fetch(&p->sink_records, nr, __ATOMIC_RELAXED);
	/* --queue-bytes: the queue's bytes, not its records, were the limit */
	ctr_add(&p->ctr, k == -ENOBUFS || full == -ENOBUFS ? CTR_OUT_DROPPED_MEMORY
							   : CTR_OUT_DROPPED_QUEUE_FULL, nr);
	sink_batch_free(sb);
}

/* Encode the record into this thread's batch and free it. The record is counted as
 * finished (file_input_finished) once the output thread wrote it, or here when it
 * could not be encoded. */
static struct sink_batch *sink_batch_get(struct pipeline *p, struct st_record *r)
{
	struct sink_batch *sb = sink_pend;

	if (!sb) {
		sb = calloc(1, sizeof(*sb));
		if (!sb) {
			ctr_add(&p->ctr, CTR_OUT_DROPPED_MEMORY, 1);
			record_free(r);
			return NULL;
		}
		sink_pend = sb;
		if (sink_text_hint) {
			/* a quarter of --queue-bytes at most: a batch is flushed at half */
			size_t want = sink_text_hint + sink_text_hint / 8,
			       cap = p->cfg.queue_bytes ? p->cfg.queue_bytes / 4 : 64u << 20;

			(void)buf_reserve(&sb->text, want < cap ? want : cap);   /* a hint only */
		}
	}
	return sb;
}

/* a batch never holds more than --queue records or half of --queue-bytes, so the
 * queue's bounds still hold with a batch in it */
static void sink_maybe_flush(struct pipeline *p, struct sink_batch *sb)
{
	if (sb->n + sb->nrec == SINK_BATCH || sb->n + sb->nrec >= p->cfg.queue_cap ||
	    (p->cfg.queue_bytes && sink_batch_bytes(sb) >= p->cfg.queue_bytes / 2))
		sink_flush(p);
}

/* The replay threads hand large records over unencoded: on a busy host the replay
 * thread is the agent's busiest, and encoding large bodies there (base64 of up to
 * --body-limit per message) slowed replay enough at the POST maximum to fill the
 * replay budget (replay: dropped memory_limit); the output thread encodes them. Small
 * records (a GET's) are encoded where they are hot (sink_submit). */
#define SINK_LOCAL_MAX (16u << 10)
static void sink_submit_raw(struct pipeline *p, struct st_record *r)
{
	struct sink_batch *sb = sink_batch_get(p, r);

	if (!sb)
		return;
	sb->rec_at[sb->nrec] = sb->n;
	sb->rec[sb->nrec++] = r;
	sb->rec_bytes += record_bytes(r);
	sink_maybe_flush(p, sb);
}

/* Count r in the difference summaries, encode it as one more line of sb and observe
 * its latencies; the caller frees r. Used by the producers (sink_submit) and by the
 * output thread for the records handed over whole (sink_submit_raw). */
static void sink_encode(struct pipeline *p, struct sink_batch *sb, struct st_record *r)
{
	struct sink_line *l;
	size_t off;

	if (p->fsum && fields_sum_observe(p->fsum, r))
		ctr_add(&p->ctr, CTR_OUT_ENCODE_ERRORS, 1);
	off = sb->text.len;
	if (record_to_json(r, &p->jopts, &sb->text)) {
		sb->text.len = off;     /* drop whatever the failed encoding appended */
		ctr_add(&p->ctr, CTR_OUT_ENCODE_ERRORS, 1);
		return;
	}
	if (p->metrics)
		pipeline_observe(p, r);
	l = &sb->line[sb->n++];
	memcpy(l->event_id, r->event_id, sizeof(l->event_id));
	l->ts_ns = (uint64_t)((int64_t)(r->req.ts_first_ns ? r->req.ts_first_ns : r->resp.ts_first_ns) +
			      r->clock_offset_ns);
	l->off = off;
	l->len = sb->text.len - off;
	buf_putc(&sb->text, '\n');
}

static void sink_submit(struct pipeline *p, struct st_record *r)
{
	struct sink_batch *sb = sink_batch_get(p, r);

	if (!sb)
		return;
	sink_encode(p, sb, r);
	record_free(r);
	sink_maybe_flush(p, sb);
}

/* The replay threads' pass is over: hand over what they finished. */
static void on_replay_idle(void *ctx)
{
	sink_flush(ctx);
}

/* A worker's pass (a ring drain or an input step) is over: hand over its batches. */
static void worker_flush(struct worker *w)
{
	replay_flush(w->replay);
	replay_flush(w->replay2);
	sink_flush(w->p);
}

/* The same for every worker, from the loop thread: only while no worker thread runs
 * (one worker, or after they were joined). */
static void pipeline_flush(struct pipeline *p)
{
	int i;

	for (i = 0; i < p->nworkers && !p->w[i].started; i++) {
		replay_flush(p->w[i].replay);
		replay_flush(p->w[i].replay2);
	}
	sink_flush(p);
}

static void on_replayed(void *ctx, struct st_record *r)
{
	struct pipeline *p = ctx;

	if (p->noise && fields_sum_want_noise(&p->cfg.diff, r)) {
		fields_sum_hold(r);
		replay_submit(p->noise, r);
		return;
	}
	if (record_bytes(r) <= SINK_LOCAL_MAX)
		sink_submit(ctx, r);
	else
		sink_submit_raw(ctx, r);
}

static void on_noise(void *ctx, struct st_record *r)
{
	fields_sum_unhold(r);
	if (record_bytes(r) <= SINK_LOCAL_MAX)
		sink_submit(ctx, r);
	else
		sink_submit_raw(ctx, r);
}

/* Summary documents go where records go (NDJSON output, Elasticsearch). */
static void sink_summaries(struct pipeline *p, struct buf *b, bool force)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	buf_reset(b);
	if (fields_sum_flush(p->fsum, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
			     force, b) <= 0)
		return;
	if (p->out) {
		if (fwrite(b->data, 1, b->len, p->out) != b->len)
			ctr_add(&p->ctr, CTR_OUT_WRITE_ERRORS, 1);
		fflush(p->out);
	}
	if (p->es_diff) {
		const char *l = b->data, *e = b->data + b->len, *nl, *v, *ve;
		char id[40];

		for (; l < e; l = nl + 1) {
			nl = memchr(l, '\n', (size_t)(e - l));
			if (!nl)
				break;
			if (json_path(l, (size_t)(nl - l), "event.id", &v, &ve) || ve - v != 34)
				continue;
			memcpy(id, v + 1, 32);
			id[32] = '\0';
			es_sink_submit(p->es_diff, id, 0, l, (size_t)(nl - l));
		}
	}
}

/* The request is its connection's only one: the first, and it closes the
 * connection (Connection: close, or HTTP/1.0 without keep-alive). */
static bool record_whole_connection(const struct st_record *r)
{
	const struct http1_header *h;

	if (r->index != 0)
		return false;
	h = http1_find_header(r->req.hdrs, r->req.nhdrs, "connection");
	if (h && http1_has_token(h->value, h->value_len, "close"))
		return true;
	return r->http_minor == 0 && !(h && http1_has_token(h->value, h->value_len, "keep-alive"));
}

/* Which of the worker's engines replays r. A replay thread that falls behind (on a
 * busy host it is runnable but waits for a CPU, and a POST costs it ~100 µs of
 * connect, send and close) fills the replay budget, which then refuses records;
 * while it holds a backlog, a request that is a whole connection (the POST mix:
 * Connection: close) may go to the second engine, whose thread gets its own share of
 * the CPUs, without reordering any connection's requests. Everything else, and
 * everything while there is no backlog, stays on the first engine. */
struct replay *pipeline_replay_for(struct worker *w, const struct st_record *r)
{
	if (!w->replay2 || !replay_backlogged(w->replay) || !record_whole_connection(r))
		return w->replay;
	return replay_held_own(w->replay2) < replay_held_own(w->replay) ? w->replay2 : w->replay;
}

static void on_record(void *ctx, struct st_record *r)
{
	struct worker *w = ctx;
	struct pipeline *p = w->p;

	ctr_add(&p->ctr, CTR_PIPE_RECORDS, 1);
	if (p->recw)
		rec_writer_submit(p->recw, r);
	if (w->replay)
		replay_submit(pipeline_replay_for(w, r), r);
	else
		sink_submit(p, r);
}

/* Records the pipeline has finished with: --input-file paces itself on this. */
static uint64_t file_input_finished(void *ctx)
{
	struct pipeline *p = ((struct worker *)ctx)->p;

	return ctr_get(&p->ctr, CTR_OUT_WRITTEN) + ctr_get(&p->ctr, CTR_OUT_DROPPED_QUEUE_FULL) +
	       ctr_get(&p->ctr, CTR_OUT_DROPPED_MEMORY) +
	       ctr_get(&p->ctr, CTR_OUT_ENCODE_ERRORS);
}

/* ---- --metrics: snapshot rendered on the loop thread, served by metrics.c ---- */

static void metrics_render_snapshot(void *ctx, struct buf *out)
{
	struct pipeline *p = ctx;

	pthread_mutex_lock(&p->msnap_mu);
	buf_append(out, p->msnap.data ? p->msnap.data : "", p->msnap.len);
	pthread_mutex_unlock(&p->msnap_mu);
}

static const char *metrics_ready(void *ctx)
{
	struct pipeline *p = ctx;
	static __thread char why[128];

	pthread_mutex_lock(&p->msnap_mu);
	snprintf(why, sizeof(why), "%s", p->not_ready);
	pthread_mutex_unlock(&p->msnap_mu);
	return why[0] ? why : NULL;
}

static void metrics_refresh(struct pipeline *p)
{
	struct buf b = { 0 }, old;
	const char *why = "";

	stats_prometheus(p, &b);
	if (!p->cap && !p->pcap && !p->file)
		why = "no capture attached";
	else if (p->es && b.data && strstr(b.data, "\nshadowtap_es_ready 0\n"))
		why = "Elasticsearch not reached yet (records spool)";
	else if (p->stop)
		why = "shutting down";
	pthread_mutex_lock(&p->msnap_mu);
	old = p->msnap;
	p->msnap = b;
	snprintf(p->not_ready, sizeof(p->not_ready), "%s", why);
	pthread_mutex_unlock(&p->msnap_mu);
	buf_free(&old);
}

/* Lines [from, to) of sb: to the output file and to Elasticsearch. */
static void sink_write_lines(struct pipeline *p, const struct sink_batch *sb, size_t from, size_t to)
{
	size_t j, off, len;

	if (from >= to)
		return;
	if (p->es)
		for (j = from; j < to; j++)
			es_sink_submit(p->es, sb->line[j].event_id, sb->line[j].ts_ns,
				       sb->text.data + sb->line[j].off, sb->line[j].len);
	off = sb->line[from].off;
	len = sb->line[to - 1].off + sb->line[to - 1].len + 1 - off;   /* with the last '\n' */
	if (p->out && fwrite(sb->text.data + off, 1, len, p->out) != len)
		ctr_add(&p->ctr, CTR_OUT_WRITE_ERRORS, to - from);
	ctr_add(&p->ctr, CTR_OUT_WRITTEN, to - from);
}

/* One batch, in the order its producer submitted the records: the encoded lines, with
 * each record handed over whole encoded (into one) and written at its place; the
 * records are freed with sb. */
static void sink_write_batch(struct pipeline *p, struct sink_batch *sb, struct sink_batch *one)
{
	size_t j, done = 0;

	for (j = 0; j < sb->nrec; j++) {
		sink_write_lines(p, sb, done, sb->rec_at[j]);
		done = sb->rec_at[j];
		if (!one) {
			/* no room to encode it (sink_main's batch): dropped for want of memory */
			ctr_add(&p->ctr, CTR_OUT_DROPPED_MEMORY, 1);
			continue;
		}
		one->n = 0;
		buf_reset(&one->text);
		sink_encode(p, one, sb->rec[j]);   /* an encoding error leaves one empty */
		sink_write_lines(p, one, 0, one->n);
	}
	sink_write_lines(p, sb, done, sb->n);
}

/* The output thread: writes the producers' NDJSON batches, feeds Elasticsearch. */
static void *sink_main(void *arg)
{
	struct pipeline *p = arg;
	struct buf b = { 0 };
	struct sink_batch *one = calloc(1, sizeof(*one));
	void *items[64];
	int n, i;

	for (;;) {
		n = bq_pop(&p->sinkq, items, 64, 200);
		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			struct sink_batch *sb = items[i];
			size_t nr = sb->n + sb->nrec;

			sink_write_batch(p, sb, one);
			__atomic_sub_fetch(&p->sink_records, nr, __ATOMIC_RELAXED);
			sink_batch_free(sb);
		}
		if (p->out && n)
			fflush(p->out);
		if (p->fsum)
			sink_summaries(p, &b, false);
	}
	if (p->fsum)
		sink_summaries(p, &b, true);
	buf_free(&b);
	sink_batch_free(one);
	return NULL;
}

static void on_segment(void *ctx, const struct reasm_seg *seg)
{
	struct worker *w = ctx;

	reasm_segment(w->reasm, seg);
}

static void on_tick(void *ctx, uint64_t now_ns)
{
	struct worker *w = ctx;

	reasm_tick(w->reasm, now_ns);
}

/* ---- start / stop ---- */

static int setup_signals(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	/* blocked before any thread starts, so only the signalfd sees them */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

void pipeline_init(struct pipeline *p)
{
	memset(p, 0, sizeof(*p));
	p->sfd = p->tfd = p->wfd = p->epfd = -1;
	opts_defaults(&p->cfg);
}

/* A limit given (or derived from --memory-limit) for the whole agent, as one
 * worker's share: the workers together stay within it. */
static void pipeline_split(size_t *v, int n, size_t floor)
{
	if (n > 1 && *v)
		*v = *v / (size_t)n < floor ? floor : *v / (size_t)n;
}

/* The worker's replay engine and, unless --replay-rate caps each engine (a second
 * would double it), a second engine (pipeline_replay_for) with its own thread and
 * pool. The two pools share the worker's --replay-connections-max, a quarter of it
 * for the second as long as each keeps its floor, and the agent's byte budget. */
static int worker_replay_start(struct pipeline *p, struct worker *w)
{
	struct replay_cfg c2 = w->rpcfg;
	bool two = w->rpcfg.rate <= 0;
	int err;

	if (two) {
		c2.connections_max = w->rpcfg.connections_max / 4;
		if (c2.connections_max < c2.connections)
			c2.connections_max = c2.connections;
		if (w->rpcfg.connections_max - c2.connections_max >= w->rpcfg.connections)
			w->rpcfg.connections_max -= c2.connections_max;
	}
	err = replay_start(&w->replay, &w->rpcfg, on_replayed, p);
	if (!err && two)
		err = replay_start(&w->replay2, &c2, on_replayed, p);
	if (err)
		return err;
	replay_set_idle(w->replay, on_replay_idle);
	replay_set_batching(w->replay, true);
	if (w->replay2) {
		replay_set_idle(w->replay2, on_replay_idle);
		replay_set_batching(w->replay2, true);
	}
	return 0;
}

/* The workers, their share of each limit, and their replay engines. Offline inputs
 * are read on the loop thread in file order, so they have one worker. */
static int pipeline_workers_new(struct pipeline *p)
{
	struct config *c = &p->cfg;
	int i, n = (int)c->workers, err;

	if (n < 1)
		n = 1;
	if (n > 1 && (c->input_pcap || c->rec.in_pattern)) {
		pr_info("--workers %d: an offline input is read by one worker\n", n);
		n = 1;
	}
	p->w = calloc((size_t)n, sizeof(*p->w));
	if (!p->w) {
		pr_warn("out of memory setting up the workers\n");
		return EXIT_RUNTIME;
	}
	p->nworkers = n;
	for (i = 0; i < n; i++) {
		struct worker *w = &p->w[i];

		w->p = p;
		w->id = i;
		w->rcfg = c->reasm;
		pipeline_split(&w->rcfg.max_flows, n, 64);
		pipeline_split(&w->rcfg.max_total_bytes, n, 65536);
		if (!c->replay.ntargets)
			continue;
		w->rpcfg = c->replay;
		pipeline_split(&w->rpcfg.queue_cap, n, 16);
		/* the replay budget is the agent's, not split: a worker whose flows carry
		 * the large bodies may use what the others leave (one shared count), and
		 * the worker's second engine shares it too */
		w->rpcfg.shared_held = &p->replay_held;
		if (n > 1 && w->rpcfg.connections_max / n >= w->rpcfg.connections)
			w->rpcfg.connections_max /= n;
		err = worker_replay_start(p, w);
		if (err)
			return err == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
	}
	if (n > 1)
		pr_info("%d workers: connections are spread over %d rings and threads\n", n, n);
	return EXIT_OK;
}

int pipeline_start(struct pipeline *p)
{
	struct config *c = &p->cfg;
	struct timespec rt, mt;
	int err, i;

	p->sfd = setup_signals();
	if (p->sfd < 0) {
		pr_warn("cannot set up signal handling: %s\n", strerror(-p->sfd));
		return EXIT_RUNTIME;
	}
	p->start_ns = st_mono_ns();
	if (!c->red.no_redact)
		p->jopts.redact = c->red.header;
	p->jopts.body_limit = c->xcfg.body_limit;
	p->jopts.pii = &c->pii;

	if (c->output) {
		if (!strcmp(c->output, "-")) {
			p->out = stdout;
		} else {
			/* append: an existing file (an earlier run's records) is never truncated */
			p->out = sfile_fopen(c->output, "a");   /* 0600, no symlink */
			if (!p->out) {
				pr_warn("cannot open output file %s: %s\n", c->output, strerror(errno));
				return EXIT_RUNTIME;
			}
		}
	}
	if (!c->output && !c->es_url && !c->rec.out_path)
		pr_info("no --output, --es or --output-file given: records are only counted\n");

	if (bq_init(&p->sinkq, c->queue_cap))
		return EXIT_RUNTIME;
	bq_set_max_bytes(&p->sinkq, c->queue_bytes, sink_batch_bytes);
	if (!c->input_pcap && !c->rec.in_pattern)
		bq_set_nap(&p->sinkq, SINK_NAP_MS, SINK_WAKE_BYTES);
	p->sinkq_ready = 1;
	if (c->es_url && es_sink_start(&p->es, &c->es))
		return EXIT_RUNTIME;
	if (p->es && c->replay.ntargets) {
		struct es_cfg dc = c->es;

		snprintf(p->es_diff_prefix, sizeof(p->es_diff_prefix), "%s-diff",
			 c->es.index_prefix ? c->es.index_prefix : "shadowtap");
		snprintf(p->es_diff_spool, sizeof(p->es_diff_spool), "%s-diff",
			 c->es.spool_dir ? c->es.spool_dir : "./spool");
		dc.index_prefix = p->es_diff_prefix;
		dc.spool_dir = p->es_diff_spool;
		dc.dead_letter = NULL;
		dc.template_priority = 201;
		if (es_sink_start(&p->es_diff, &dc))
			return EXIT_RUNTIME;
	}
	if (c->replay.ndiff_ignore)
		c->diff.hdr_ignore = c->replay.diff_ignore;   /* NULL-terminated: at most 63 of 64 */
	if (c->replay.ntargets && !(p->fsum = fields_sum_new(&c->diff)))
		return EXIT_RUNTIME;
	if (pthread_create(&p->sink_thr, NULL, sink_main, p)) {
		pr_warn("cannot start the output thread\n");
		return EXIT_RUNTIME;
	}
	p->sink_started = 1;
	if (c->metrics_listen) {
		struct metrics_cfg mc = { .listen = c->metrics_listen, .render = metrics_render_snapshot,
					  .ready = metrics_ready, .ctx = p };

		pthread_mutex_init(&p->msnap_mu, NULL);
		snprintf(p->not_ready, sizeof(p->not_ready), "starting");
		if (metrics_start(&p->metrics, &mc))
			return EXIT_RUNTIME;
		pr_info("metrics on http://%s/metrics\n", c->metrics_listen);
	}
	err = pipeline_workers_new(p);
	if (err)
		return err;
	if (c->replay.ntargets && (c->diff.baseline || c->diff.probe_pct > 0)) {
		struct replay_cfg nc = c->replay;

		/* every request that reaches it was already filtered and sampled */
		if (c->diff.baseline) {
			memset(nc.targets, 0, sizeof(nc.targets));
			nc.targets[0] = c->diff.baseline;
			nc.ntargets = 1;
		}
		nc.sample_pct = 100;
		nc.nallow_url = nc.ndeny_url = nc.nallow_method = 0;
		err = replay_start(&p->noise, &nc, on_noise, p);
		if (err)
			return err == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
		replay_set_idle(p->noise, on_replay_idle);
	}

	/* capture clock -> wall clock: live events carry CLOCK_MONOTONIC, pcaps wall time */
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	if (!c->input_pcap)
		c->xcfg.clock_offset_ns = ((int64_t)rt.tv_sec - mt.tv_sec) * 1000000000ll +
					  (rt.tv_nsec - mt.tv_nsec);
	for (i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->w[i];

		w->xcfg = c->xcfg;
		pipeline_split(&w->xcfg.max_held_bytes, p->nworkers, 65536);
		w->x = exchange_new(&w->xcfg, on_record, w);
		w->reasm = w->x ? reasm_new(&w->rcfg, &exchange_reasm_ops, w->x) : NULL;
		if (!w->reasm) {
			pr_warn("out of memory setting up the flow table\n");
			return EXIT_RUNTIME;
		}
	}
	if (c->rec.out_path && rec_writer_start(&p->recw, &c->rec))
		return EXIT_RUNTIME;
	return EXIT_OK;
}

/* ---- the event loop ---- */

static int loop_add(struct pipeline *p, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static void loop_arm(int fd, uint64_t at_ns, uint64_t period_ns)
{
	struct itimerspec its = {
		.it_value = { (time_t)(at_ns / 1000000000ull), (long)(at_ns % 1000000000ull) },
		.it_interval = { (time_t)(period_ns / 1000000000ull), (long)(period_ns % 1000000000ull) },
	};

	timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void loop_signals(struct pipeline *p)
{
	struct signalfd_siginfo si;

	while (read(p->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		ctr_add(&p->ctr, CTR_LOOP_SIGNALS, 1);
		if (si.ssi_signo == SIGUSR1) {
			stats_print(p, stderr, "stats");
			continue;
		}
		pr_info("signal %u: draining and exiting\n", si.ssi_signo);
		p->stop = 1;
	}
}

/* Work that is due, run before every wait: ring drain, timers, stats, deadline. */
static void loop_before_wait(struct pipeline *p, uint64_t now)
{
	struct config *c = &p->cfg;

	if (p->cap && p->nworkers > 1) {
		capture_housekeeping(p->cap);   /* the worker threads drain the rings */
	} else if (p->cap) {
		capture_poll(p->cap, 0);
		if (now >= p->next_tick) {
			reasm_tick(p->w[0].reasm, now);
			p->next_tick = now + LOOP_TICK_NS;
		}
	}
	if (p->metrics && now >= p->next_metrics) {
		metrics_refresh(p);
		p->next_metrics = now + 1000000000ull;
	}
	if (now >= p->next_bounds) {
		stats_bounds_check(p);
		p->next_bounds = now + 1000000000ull;
	}
	if (p->next_stats && now >= p->next_stats) {
		stats_print_line(p, stderr);
		p->next_stats = now + (uint64_t)c->stats_interval_s * 1000000000ull;
	}
	if (p->deadline && now >= p->deadline) {
		pr_info("--exit-after reached: draining and exiting\n");
		p->stop = 1;
	}
	pipeline_flush(p);
}

/* One bounded step of an offline input: 1 if it wants to run again (at *wake),
 * 0 when it is done, an exit code below 0 on error. */
static int loop_step(struct pipeline *p, uint64_t *wake)
{
	int r;

	if (p->pcap) {
		/* a file can wait: rather than outrun the output queue and drop, pause
		 * while too many records are on their way (the bound also keeps the
		 * drain after a SIGINT short) */
		if (ctr_get(&p->ctr, CTR_PIPE_RECORDS) - file_input_finished(&p->w[0]) >= p->offline_inflight) {
			*wake = st_mono_ns() + OFFLINE_POLL_NS;
			return 1;
		}
		*wake = 0;
		r = pcapin_step(p->pcap, PCAP_STEP);
		return r < 0 ? -EXIT_RUNTIME : r;
	}
	if (p->file) {
		r = input_file_step(p->file, FILE_STEP, wake);
		return r < 0 ? -EXIT_RUNTIME : r;
	}
	*wake = UINT64_MAX;   /* live: the ring and the periodic timer wake the loop */
	return 1;
}

static int loop_open_input(struct pipeline *p)
{
	struct config *c = &p->cfg;
	void *wctx[ST_MAX_WORKERS];
	int err, i;

	if (c->rec.in_pattern) {
		struct recording_input in = {
			.rc = &c->rec, .submit = on_record, .finished = file_input_finished, .ctx = &p->w[0],
			/* stay well inside replay's and the sink's queue bounds */
			.max_in_flight = c->replay.queue_cap / 2 < 1024 ? c->replay.queue_cap / 2 + 1 : 1024,
		};

		return input_file_open(&p->file, &in) ? EXIT_RUNTIME : EXIT_OK;
	}
	p->offline_inflight = c->queue_cap / 2 + 1;
	if (c->replay.ntargets && c->replay.queue_cap / 2 + 1 < p->offline_inflight)
		p->offline_inflight = c->replay.queue_cap / 2 + 1;
	if (p->offline_inflight > OFFLINE_INFLIGHT)
		p->offline_inflight = OFFLINE_INFLIGHT;
	if (c->input_pcap)
		return pcapin_open(&p->pcap, c->input_pcap, c->cap.ports, c->cap.nports, on_segment,
				   on_tick, &p->w[0], &p->ctr) ? EXIT_RUNTIME : EXIT_OK;
	c->cap.ctr = &p->ctr;
	c->cap.nrings = p->nworkers;
	/* ownsock's callers are the replay and the Elasticsearch sink only */
	c->cap.no_own_conns = !c->replay.ntargets && !c->es_url;
	for (i = 0; i < p->nworkers; i++)
		wctx[i] = &p->w[i];
	c->cap.ring_ctx = wctx;
	err = capture_open(&p->cap, &c->cap, on_segment, &p->w[0]);
	c->cap.ring_ctx = NULL;
	if (err)
		return EXIT_BPF;
	if (c->tls_mode) {
		/* the same rings for both sources; a TLS failure leaves packet capture on */
		c->tls.ring_fd = capture_ring_fd(p->cap);
		c->tls.rings_fd = capture_rings_fd(p->cap);
		c->tls.nrings = p->nworkers;
		c->tls.wakeup_bytes = c->cap.wakeup_bytes;
		if (tls_open(&p->tls, &c->tls))
			pr_warn("tls: HTTPS capture is off; packet capture goes on\n");
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
	return EXIT_OK;
}

/* ---- the worker threads (--workers N > 1, live capture) ---- */

#define WORKER_POLL_MS 20   /* as LOOP_PERIOD_NS: events come without wake-ups */

/* A worker's loop: its ring, its flow table's timers, its batches. The loop thread
 * keeps the signals, stats, metrics and the deadline. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pipeline *p = w->p;
	uint64_t now;

	while (!__atomic_load_n(&p->wstop, __ATOMIC_ACQUIRE)) {
		if (capture_poll_ring(p->cap, w->id, WORKER_POLL_MS) < 0)
			break;
		now = st_mono_ns();
		if (now >= w->next_tick) {
			reasm_tick(w->reasm, now);
			w->next_tick = now + LOOP_TICK_NS;
		}
		worker_flush(w);
	}
	capture_poll_ring(p->cap, w->id, 0);   /* what the kernel already queued */
	worker_flush(w);
	return NULL;
}

static int pipeline_workers_run(struct pipeline *p)
{
	int i;

	if (!p->cap || p->nworkers < 2)
		return EXIT_OK;
	for (i = 0; i < p->nworkers; i++) {
		if (pthread_create(&p->w[i].thr, NULL, worker_main, &p->w[i])) {
			pr_warn("cannot start worker thread %d\n", i);
			return EXIT_RUNTIME;
		}
		p->w[i].started = 1;
	}
	return EXIT_OK;
}

static void pipeline_workers_join(struct pipeline *p)
{
	int i;

	__atomic_store_n(&p->wstop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < p->nworkers; i++) {
		if (p->w[i].started) {
			pthread_join(p->w[i].thr, NULL);
			p->w[i].started = 0;
		}
	}
}

int pipeline_run(struct pipeline *p)
{
	struct config *c = &p->cfg;
	struct epoll_event evs[8];
	uint64_t now, wake = 0;
	int rc, i, n, more = 1;

	rc = loop_open_input(p);
	if (rc)
		return rc;
	rc = pipeline_workers_run(p);
	if (rc)
		return rc;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	p->wfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (p->epfd < 0 || p->tfd < 0 || p->wfd < 0 || loop_add(p, p->sfd) || loop_add(p, p->tfd) ||
	    loop_add(p, p->wfd) ||
	    (p->cap && p->nworkers == 1 && loop_add(p, capture_epoll_fd(p->cap)))) {
		pr_warn("cannot set up the event loop: %s\n", strerror(errno));
		return EXIT_RUNTIME;
	}
	now = st_mono_ns();
	loop_arm(p->tfd, now + LOOP_PERIOD_NS, LOOP_PERIOD_NS);
	if (c->exit_after_ns)
		p->deadline = now + c->exit_after_ns;
	if (c->stats_interval_s)
		p->next_stats = now + (uint64_t)c->stats_interval_s * 1000000000ull;

	while (!p->stop) {
		int timeout = -1;

		ctr_add(&p->ctr, CTR_LOOP_ITERATIONS, 1);
		now = st_mono_ns();
		loop_before_wait(p, now);
		if (p->stop)
			break;
		if (wake <= now)
			timeout = 0;                        /* the input has work now */
		else if (wake != UINT64_MAX)
			loop_arm(p->wfd, wake, 0);          /* sleep until the input's time */
		n = epoll_wait(p->epfd, evs, 8, timeout);
		if (n < 0 && errno != EINTR) {
			pr_warn("epoll_wait failed: %s\n", strerror(errno));
			return EXIT_RUNTIME;
		}
		for (i = 0; i < n; i++) {
			uint64_t exp;

			if (evs[i].data.fd == p->sfd)
				loop_signals(p);
			else if (evs[i].data.fd == p->tfd || evs[i].data.fd == p->wfd)
				(void)!read(evs[i].data.fd, &exp, sizeof(exp));
			/* the ring fd: drained in loop_before_wait */
		}
		if (p->stop)
			break;
		if (st_mono_ns() >= wake) {
			more = loop_step(p, &wake);
			pipeline_flush(p);
			if (more < 0)
				return -more;
			if (!more)
				break;
		}
	}
	if (p->cap && p->nworkers == 1)
		capture_poll(p->cap, 0);   /* what the kernel already queued */
	pipeline_workers_join(p);
	return EXIT_OK;
}

/* A second SIGINT/SIGTERM while draining (shutdown.c's watcher thread). */
static int pipeline_hurried;

static void pipeline_hurry(void *arg)
{
	struct pipeline *p = arg;
	int i;

	__atomic_store_n(&pipeline_hurried, 1, __ATOMIC_RELEASE);
	for (i = 0; i < p->nworkers; i++) {
		replay_stop_by(p->w[i].replay, st_mono_ns());
		replay_stop_by(p->w[i].replay2, st_mono_ns());
	}
	replay_stop_by(p->noise, st_mono_ns());
	es_sink_hurry(p->es);
	es_sink_hurry(p->es_diff);
}

/* What is left of the --shutdown-timeout budget, in ms (0 once hurried). */
static int pipeline_left_ms(uint64_t deadline_ms)
{
	uint64_t now = st_mono_ms();

	if (__atomic_load_n(&pipeline_hurried, __ATOMIC_ACQUIRE) || now >= deadline_ms)
		return 0;
	return (int)(deadline_ms - now);
}

/* Drain in data-flow order within --shutdown-timeout (default 10 s, below systemd's
 * TimeoutStopSec=30 and docker stop's 30 s): replay gives up on what serverB has not
 * answered by then, Elasticsearch leaves the rest in the spool. A second signal ends
 * both at once. The watcher exits the process at the deadline plus a grace for
 * writing the spool, should a stage miss its own bound. */
#define PIPELINE_SPOOL_GRACE_MS 5000

void pipeline_stop(struct pipeline *p)
{
	uint64_t budget_ms = p->cfg.shutdown_timeout_ns ? p->cfg.shutdown_timeout_ns / 1000000ull : 10000;
	uint64_t deadline_ms = st_mono_ms() + budget_ms;
	int watching, i;

	watching = shutdown_watch_start(p->sfd, deadline_ms + PIPELINE_SPOOL_GRACE_MS,
					pipeline_hurry, p) == 0;
	for (i = 0; i < p->nworkers; i++) {
		replay_stop_by(p->w[i].replay, deadline_ms * 1000000ull);
		replay_stop_by(p->w[i].replay2, deadline_ms * 1000000ull);
	}
	replay_stop_by(p->noise, deadline_ms * 1000000ull);
	/* the inputs first: file input prints its last progress and lateness lines */
	input_file_close(p->file);
	p->file = NULL;
	pcapin_close(p->pcap);
	p->pcap = NULL;
	pipeline_workers_join(p);     /* a start-up failure after they started */
	for (i = 0; i < p->nworkers; i++)
		if (p->w[i].reasm)
			reasm_flush_all(p->w[i].reasm);
	pipeline_flush(p);
	/* prints its own stats line and frees: the exit summary does not repeat it */
	rec_writer_stop(p->recw, stderr);
	p->recw = NULL;
	for (i = 0; i < p->nworkers; i++) {
		replay_stop(p->w[i].replay);
		replay_stop(p->w[i].replay2);
	}
	if (p->noise)
		replay_stop(p->noise);
	if (p->sink_started) {
		sink_flush(p);    /* records refused while the replay stopped */
		bq_close(&p->sinkq);
		pthread_join(p->sink_thr, NULL);
		p->sink_started = 0;
	}
	if (p->es)
		es_sink_stop(p->es, pipeline_left_ms(deadline_ms));
	if (p->es_diff)
		es_sink_stop(p->es_diff, pipeline_left_ms(deadline_ms));
	if (watching)
		shutdown_watch_stop();
}

void pipeline_free(struct pipeline *p)
{
	if (p->metrics) {
		metrics_stop(p->metrics);
		p->metrics = NULL;
		pthread_mutex_destroy(&p->msnap_mu);
		buf_free(&p->msnap);
	}
	if (p->out && p->out != stdout)
		fclose(p->out);
	else if (p->out)
		fflush(p->out);
	p->out = NULL;
	int i;

	input_file_close(p->file);
	pcapin_close(p->pcap);
	for (i = 0; i < p->nworkers; i++) {
		reasm_free(p->w[i].reasm);
		exchange_free(p->w[i].x);
		replay_free(p->w[i].replay);
		replay_free(p->w[i].replay2);
	}
	free(p->w);
	p->w = NULL;
	p->nworkers = 0;
	replay_free(p->noise);
	fields_sum_free(p->fsum);
	es_sink_free(p->es);
	es_sink_free(p->es_diff);
	tls_close(p->tls);
	capture_close(p->cap);
	if (p->sinkq_ready)
		bq_destroy(&p->sinkq);
	if (p->epfd >= 0)
		close(p->epfd);
	if (p->tfd >= 0)
		close(p->tfd);
	if (p->wfd >= 0)
		close(p->wfd);
	if (p->sfd >= 0)
		close(p->sfd);
	opts_free(&p->cfg);
}
