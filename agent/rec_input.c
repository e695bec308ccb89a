/* File input (--input-file): reads every matching recording and paces its requests
 * into the pipeline. Owns: the file list, the reorder heap and the pacing clock.
 *
 * Each request is scheduled at its recorded offset from the first, scaled by
 * --replay-speed (or as fast as the in-flight bound lets at max). */
#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "recording.h"

static uint64_t rin_req_wall(const struct st_record *r)
{
	return (uint64_t)((int64_t)(r->req.ts_first_ns ? r->req.ts_first_ns : r->resp.ts_first_ns) +
			  r->clock_offset_ns);
}

/* Count the records of a file cheaply (native blocks carry their count) and note
 * its first request's time, by which rotated files are put in order. */
static int rin_count_file(const char *path, size_t body_limit, uint64_t *n, uint64_t *first)
{
	struct rec_reader *rd;
	struct st_record *r;
	const uint8_t *p;
	size_t len;
	uint32_t nrec;
	int ret;

	*n = 0;
	*first = UINT64_MAX;
	ret = rec_reader_open(&rd, path, body_limit);
	if (ret)
		return ret;
	ret = rec_reader_next(rd, &r);
	if (ret > 0) {
		*first = rin_req_wall(r);
		record_free(r);
		*n = 1;
		if (rd->format == REC_FMT_NATIVE) {
			*n += rd->bp.left;
			while ((ret = rec_native_next_block(rd, &p, &len, &nrec)) > 0)
				*n += nrec;
		} else {
			while ((ret = rec_reader_next(rd, &r)) > 0) {
				record_free(r);
				(*n)++;
			}
		}
	}
	rec_reader_close(rd);
	return ret < 0 ? ret : 0;
}

struct rin_file {
	const char *path;
	uint64_t first, n;
};

static int rin_file_cmp(const void *a, const void *b)
{
	const struct rin_file *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return strcmp(x->path, y->path);
}

struct rin_item {
	uint64_t ts, seq;
	struct st_record *rec;
};

/* Min-heap on (ts, seq): records are written when their exchange ends, so a slow
 * exchange follows faster later ones in the file; the heap gives them back in
 * request order (ties keep file order, so one connection's order is kept). */
struct rin_heap {
	struct rin_item *a;
	size_t n, cap;
};

static bool rin_less(const struct rin_item *x, const struct rin_item *y)
{
	return x->ts < y->ts || (x->ts == y->ts && x->seq < y->seq);
}

static int rin_push(struct rin_heap *h, struct rin_item it)
{
	size_t i;

	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 1024;
		struct rin_item *p = realloc(h->a, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		h->a = p;
		h->cap = nc;
	}
	i = h->n++;
	while (i && rin_less(&it, &h->a[(i - 1) / 2])) {
		h->a[i] = h->a[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->a[i] = it;
	return 0;
}

static struct rin_item rin_pop(struct rin_heap *h)
{
	struct rin_item top = h->a[0], last = h->a[--h->n];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < h->n) {
		if (c + 1 < h->n && rin_less(&h->a[c + 1], &h->a[c]))
			c++;
		if (!rin_less(&h->a[c], &last))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n)
		h->a[i] = last;
	return top;
}

#define RIN_REORDER_NS   (5ull * 1000000000ull)
#define RIN_REORDER_MAX  8192

struct rin {
	const struct recording_input *in;
	uint64_t total, submitted, pass, start_ns, next_progress_ns, t0_rec, t0_mono;
	bool have_t0;
	double scale;        /* wall ns per recorded ns; 0 = max */
	uint64_t late_max_ns, late_sum_ns, late_n, late_10ms;   /* submit time - schedule */
};

static void rin_check_signals(struct rin *s)
{
	struct signalfd_siginfo si;

	if (s->in->signal_fd < 0)
		return;
	while (read(s->in->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			continue;
		pr_info("signal %u: draining and exiting\n", si.ssi_signo);
		if (s->in->stop)
			*s->in->stop = 1;
	}
}

static bool rin_stopped(const struct rin *s)
{
	return s->in->stop && *s->in->stop;
}

static uint64_t rin_finished(const struct rin *s)
{
	return s->in->finished ? s->in->finished(s->in->ctx) : s->submitted;
}

static void rin_progress(struct rin *s, bool force)
{
	uint64_t now = st_mono_ns(), done;
	double el, rate, eta;

	if (!force && now < s->next_progress_ns)
		return;
	s->next_progress_ns = now + 1000000000ull;
	done = rin_finished(s);
	el = (double)(now - s->start_ns) / 1e9;
	rate = el > 0 ? (double)done / el : 0;
	if (s->in->rc->loop) {
		fprintf(stderr, "input: pass %llu, %llu requests done, %llu submitted, %.0f req/s\n",
			(unsigned long long)s->pass + 1, (unsigned long long)done,
			(unsigned long long)s->submitted, rate);
	} else {
		eta = rate > 0 && s->total > done ? (double)(s->total - done) / rate : 0;
		fprintf(stderr, "input: %llu/%llu requests done (%.1f%%), %.0f req/s, eta %.0f s\n",
			(unsigned long long)done, (unsigned long long)s->total,
			s->total ? 100.0 * (double)done / (double)s->total : 100.0, rate, eta);
	}
}

/* Sleep until the monotonic time t (0 = no wait) and until fewer than the bound
 * are in flight, checking signals and printing progress. */
static void rin_wait(struct rin *s, uint64_t t)
{
	for (;;) {
		uint64_t now = st_mono_ns(), left;
		struct timespec ts;

		rin_check_signals(s);
		rin_progress(s, false);
		if (rin_stopped(s))
			return;
		if (now >= t && s->submitted - rin_finished(s) < s->in->max_in_flight)
			return;
		left = now < t ? t - now : 200000;
		if (left > 50000000)
			left = 50000000;
		if (now >= t)
			left = 200000;   /* pacing on in-flight: poll fast */
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		nanosleep(&ts, NULL);
	}
}

static void rin_send(struct rin *s, struct rin_item it)
{
	struct st_record *r = it.rec;
	uint64_t target = 0;

	if (!s->have_t0) {
		s->have_t0 = true;
		s->t0_rec = it.ts;
		s->t0_mono = st_mono_ns();
	}
	if (s->scale > 0 && it.ts > s->t0_rec)
		target = s->t0_mono + (uint64_t)((double)(it.ts - s->t0_rec) * s->scale);
	rin_wait(s, target);
	if (rin_stopped(s)) {
		record_free(r);
		return;
	}
	if (target) {
		uint64_t now = st_mono_ns(), late = now > target ? now - target : 0;

		s->late_sum_ns += late;
		s->late_n++;
		if (late > s->late_max_ns)
			s->late_max_ns = late;
		if (late > 10000000)
			s->late_10ms++;
	}
	if (s->pass) {
		/* a later pass is another set of connections: new flow and event ids */
		r->flow_id ^= st_mix64(s->pass);
		record_event_id(r->flow_id, r->index, r->event_id);
	}
	s->submitted++;
	s->in->submit(s->in->ctx, r);
}

static int rin_file(struct rin *s, const char *path, struct rin_heap *h, uint64_t *seq)
{
	struct rec_reader *rd;
	struct rec_reader_stats st;
	struct st_record *r;
	uint64_t max_ts = 0;
	int ret;

	ret = rec_reader_open(&rd, path, s->in->rc->body_limit);
	if (ret)
		return ret;
	while (!rin_stopped(s) && (ret = rec_reader_next(rd, &r)) > 0) {
		struct rin_item it;

		it.rec = r;
		it.seq = (*seq)++;
		it.ts = rin_req_wall(r);
		if (it.ts > max_ts)
			max_ts = it.ts;
		if (rin_push(h, it)) {
			record_free(r);
			ret = -ENOMEM;
			break;
		}
		while (h->n && (h->n > RIN_REORDER_MAX || h->a[0].ts + RIN_REORDER_NS < max_ts))
			rin_send(s, rin_pop(h));
	}
	rec_reader_get_stats(rd, &st);
	rec_reader_close(rd);
	if (st.bad_blocks || st.bad_records || st.torn_tail || st.read_errors || st.resync_bytes)
		pr_warn("recording: %s: %llu bad blocks, %llu bad records, %llu torn tail, %llu read errors, %llu bytes skipped\n",
			path, (unsigned long long)st.bad_blocks, (unsigned long long)st.bad_records,
			(unsigned long long)st.torn_tail, (unsigned long long)st.read_errors,
			(unsigned long long)st.resync_bytes);
	if (st.gor_requests)
		pr_info("recording: %s: gor requests=%llu responses=%llu replayed_skipped=%llu orphan_responses=%llu "
			"ambiguous_responses=%llu unanswered=%llu\n",
			path, (unsigned long long)st.gor_requests, (unsigned long long)st.gor_responses,
			(unsigned long long)st.gor_replayed, (unsigned long long)st.gor_orphan_responses,
			(unsigned long long)st.gor_ambiguous, (unsigned long long)st.gor_unanswered);
	return ret < 0 ? ret : 0;
}

int recording_input_run(const struct recording_input *in)
{
	struct rin s = { .in = in };
	struct rin_heap h = { 0 };
	struct rin_file *files = NULL;
	glob_t g;
	uint64_t seq = 0;
	size_t i;
	int err = 0, gr;

	if (!in->max_in_flight || !in->submit)
		return -EINVAL;
	gr = glob(in->rc->in_pattern, 0, NULL, &g);
	if (gr || !g.gl_pathc) {
		pr_warn("recording: no file matches '%s'\n", in->rc->in_pattern);
		if (!gr)
			globfree(&g);
		return -ENOENT;
	}
	files = calloc(g.gl_pathc, sizeof(*files));
	if (!files) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < g.gl_pathc; i++) {
		files[i].path = g.gl_pathv[i];
		err = rin_count_file(files[i].path, in->rc->body_limit, &files[i].n, &files[i].first);
		if (err)
			goto out;
		s.total += files[i].n;
	}
	qsort(files, g.gl_pathc, sizeof(*files), rin_file_cmp);
	s.scale = in->rc->speed_pct > 0 ? 100.0 / in->rc->speed_pct : 0;
	s.start_ns = st_mono_ns();
	s.next_progress_ns = s.start_ns + 1000000000ull;
	pr_info("input: %llu requests in %zu file%s, speed %s\n", (unsigned long long)s.total,
		(size_t)g.gl_pathc, g.gl_pathc > 1 ? "s" : "", s.scale > 0 ? "recorded pace (scaled)" : "max");
	do {
		s.have_t0 = false;
		for (i = 0; i < g.gl_pathc && !rin_stopped(&s); i++) {
			err = rin_file(&s, files[i].path, &h, &seq);
			if (err)
				goto out;
		}
		while (h.n)
			rin_send(&s, rin_pop(&h));
		s.pass++;
	} while (in->rc->loop && !rin_stopped(&s) && s.total);
	/* drain: wait for everything handed on to finish */
	while (rin_finished(&s) < s.submitted) {
		struct timespec ts = { 0, 2000000 };

		rin_check_signals(&s);
		rin_progress(&s, false);
		if (rin_stopped(&s))
			break;
		nanosleep(&ts, NULL);
	}
	rin_progress(&s, true);
	if (s.late_n)
		fprintf(stderr, "input: schedule lateness mean %.2f ms, max %.2f ms, %llu of %llu requests more than 10 ms late\n",
			(double)s.late_sum_ns / (double)s.late_n / 1e6, (double)s.late_max_ns / 1e6,
			(unsigned long long)s.late_10ms, (unsigned long long)s.late_n);
out:
	while (h.n)
		record_free(rin_pop(&h).rec);
	free(h.a);
	free(files);
	globfree(&g);
	return err;
}
