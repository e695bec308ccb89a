/* File input (--input-file): reads every matching recording and paces its requests
 * into the pipeline. Owns: the file list, the reorder heap and the pacing clock.
 *
 * Each request is scheduled at its recorded offset from the first, scaled by
 * --replay-speed (or as fast as the in-flight bound lets at max). The pipeline's
 * event loop drives it in bounded steps (input_file_step) and sleeps until the
 * time the step asks for; signals, stats and --exit-after are the loop's. */
#include <errno.h>
#include <glob.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "rec_input.h"
#include "recording.h"

static uint64_t rin_req_wall(const struct st_record *r)
{
	/* unsigned wrap-around, not signed overflow: a recording may hold any values */
	return (r->req.ts_first_ns ? r->req.ts_first_ns : r->resp.ts_first_ns) +
	       (uint64_t)r->clock_offset_ns;
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
#define RIN_INFLIGHT_POLL_NS 200000ull   /* pacing on the in-flight bound: look again soon */
#define RIN_DRAIN_POLL_NS    2000000ull

enum rin_phase { RIN_READ, RIN_FLUSH, RIN_DRAIN, RIN_DONE };

struct input_file {
	struct recording_input in;
	glob_t g;
	bool have_glob;
	struct rin_file *files;
	size_t nfiles, fi;               /* files in order; the one being read */
	struct rec_reader *rd;
	uint64_t max_ts, seq;
	struct rin_heap h;
	struct rin_item pending;         /* next to send, waiting for its time or room */
	bool have_pending;
	enum rin_phase phase;
	uint64_t total, submitted, pass, start_ns, next_progress_ns, t0_rec, t0_mono;
	bool have_t0;
	double scale;        /* wall ns per recorded ns; 0 = max */
	double last_off;     /* wall ns after t0_mono of the last target */
	double skipped;      /* wall ns cut from gaps longer than rc->max_wait_ns, this pass */
	double skipped_all;
	uint64_t waits_cut;
	uint64_t late_max_ns, late_sum_ns, late_n, late_10ms;   /* submit time - schedule */
};

static uint64_t rin_finished(const struct input_file *s)
{
	return s->in.finished ? s->in.finished(s->in.ctx) : s->submitted;
}

static void rin_progress(struct input_file *s, uint64_t now, bool force)
{
	uint64_t done;
	double el, rate, eta;

	if (!force && now < s->next_progress_ns)
		return;
	s->next_progress_ns = now + 1000000000ull;
	done = rin_finished(s);
	el = (double)(now - s->start_ns) / 1e9;
	rate = el > 0 ? (double)done / el : 0;
	if (s->in.rc->loop) {
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

/* When the pending record is due (0 = now). */
static uint64_t rin_target(struct input_file *s, uint64_t now)
{
	const struct rin_item *it = &s->pending;

	double off, cap = (double)s->in.rc->max_wait_ns;

	if (!s->have_t0) {
		s->have_t0 = true;
		s->t0_rec = it->ts;
		s->t0_mono = now;
		s->last_off = 0;
		s->skipped = 0;
	}
	if (!(s->scale > 0 && it->ts > s->t0_rec))
		return 0;
	/* in double: a gap of 2^62 ns scaled would overflow a uint64_t. One wait is
	 * cut to the cap (a hostile or broken timestamp must not stall the replay);
	 * a record already cut gives the same target again. */
	off = (double)(it->ts - s->t0_rec) * s->scale - s->skipped;
	if (cap > 0 && off - s->last_off > cap) {
		s->skipped += off - s->last_off - cap;
		s->skipped_all += off - s->last_off - cap;
		s->waits_cut++;
		off = s->last_off + cap;
	}
	if (off > s->last_off)
		s->last_off = off;
	return s->t0_mono + (uint64_t)off;
}

static void rin_send(struct input_file *s, uint64_t target, uint64_t now)
{
	struct st_record *r = s->pending.rec;

	s->have_pending = false;
	if (target) {
		uint64_t late = now > target ? now - target : 0;

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
	s->in.submit(s->in.ctx, r);
}

static void rin_close_reader(struct input_file *s)
{
	struct rec_reader *rd = s->rd;
	const char *path = s->files[s->fi].path;
	struct rec_reader_stats st;

	rec_reader_get_stats(rd, &st);
	rec_reader_close(rd);
	s->rd = NULL;
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
}

/* Moves the next record into s->pending: 1 if there is one, 0 if this phase has
 * none left, negative errno on a fatal read error. */
static int rin_next(struct input_file *s)
{
	struct st_record *r;
	int ret;

	while (s->phase == RIN_READ) {
		struct rin_heap *h = &s->h;

		if (h->n && (h->n > RIN_REORDER_MAX || h->a[0].ts + RIN_REORDER_NS < s->max_ts)) {
			s->pending = rin_pop(h);
			return 1;
		}
		if (!s->rd) {
			if (s->fi == s->nfiles) {
				s->phase = RIN_FLUSH;
				break;
			}
			ret = rec_reader_open(&s->rd, s->files[s->fi].path, s->in.rc->body_limit);
			if (ret)
				return ret;
			s->max_ts = 0;
		}
		ret = rec_reader_next(s->rd, &r);
		if (ret <= 0) {
			rin_close_reader(s);
			if (ret < 0)
				return ret;
			s->fi++;
			continue;
		}
		{
			struct rin_item it = { .rec = r, .seq = s->seq++, .ts = rin_req_wall(r) };

			if (it.ts > s->max_ts)
				s->max_ts = it.ts;
			if (rin_push(h, it)) {
				record_free(r);
				return -ENOMEM;
			}
		}
	}
	if (s->phase == RIN_FLUSH) {
		if (s->h.n) {
			s->pending = rin_pop(&s->h);
			return 1;
		}
		s->pass++;
		if (s->in.rc->loop && s->total) {
			s->phase = RIN_READ;
			s->fi = 0;
			s->have_t0 = false;
			return rin_next(s);
		}
		s->phase = RIN_DRAIN;
	}
	return 0;
}

int input_file_open(struct input_file **out, const struct recording_input *in)
{
	struct input_file *s;
	size_t i;
	int err = 0, gr;

	*out = NULL;
	if (!in->max_in_flight || !in->submit)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->in = *in;
	gr = glob(in->rc->in_pattern, 0, NULL, &s->g);
	s->have_glob = gr == 0;
	if (gr || !s->g.gl_pathc) {
		pr_warn("recording: no file matches '%s'\n", in->rc->in_pattern);
		err = -ENOENT;
		goto fail;
	}
	s->nfiles = s->g.gl_pathc;
	s->files = calloc(s->nfiles, sizeof(*s->files));
	if (!s->files) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < s->nfiles; i++) {
		s->files[i].path = s->g.gl_pathv[i];
		err = rin_count_file(s->files[i].path, in->rc->body_limit, &s->files[i].n, &s->files[i].first);
		if (err)
			goto fail;
		s->total += s->files[i].n;
	}
	qsort(s->files, s->nfiles, sizeof(*s->files), rin_file_cmp);
	s->scale = in->rc->speed_pct > 0 ? 100.0 / in->rc->speed_pct : 0;
	s->start_ns = st_mono_ns();
	s->next_progress_ns = s->start_ns + 1000000000ull;
	pr_info("input: %llu requests in %zu file%s, speed %s\n", (unsigned long long)s->total,
		s->nfiles, s->nfiles > 1 ? "s" : "", s->scale > 0 ? "recorded pace (scaled)" : "max");
	*out = s;
	return 0;
fail:
	input_file_close(s);
	return err;
}

int input_file_step(struct input_file *s, int max, uint64_t *wake_ns)
{
	uint64_t now = st_mono_ns();
	int n, ret;

	*wake_ns = now;
	rin_progress(s, now, false);
	for (n = 0; n < max; n++) {
		uint64_t target;

		if (!s->have_pending) {
			ret = rin_next(s);
			if (ret < 0) {
				s->phase = RIN_DONE;
				return ret;
			}
			if (ret == 0)
				break;
			s->have_pending = true;
		}
		target = rin_target(s, now);
		if (target > now) {
			*wake_ns = target;
			return 1;
		}
		if (s->submitted - rin_finished(s) >= s->in.max_in_flight) {
			*wake_ns = now + RIN_INFLIGHT_POLL_NS;
			return 1;
		}
		rin_send(s, target, now);
		if (target)
			now = st_mono_ns();
	}
	if (s->have_pending || s->phase < RIN_DRAIN)
		return 1;
	/* drain: everything handed on must finish before the input is done */
	if (rin_finished(s) < s->submitted) {
		*wake_ns = now + RIN_DRAIN_POLL_NS;
		return 1;
	}
	s->phase = RIN_DONE;
	return 0;
}

void input_file_close(struct input_file *s)
{
	if (!s)
		return;
	if (s->start_ns) {
		rin_progress(s, st_mono_ns(), true);
		if (s->late_n)
			fprintf(stderr, "input: schedule lateness mean %.2f ms, max %.2f ms, %llu of %llu requests more than 10 ms late\n",
				(double)s->late_sum_ns / (double)s->late_n / 1e6, (double)s->late_max_ns / 1e6,
				(unsigned long long)s->late_10ms, (unsigned long long)s->late_n);
		if (s->waits_cut)
			fprintf(stderr, "input: %llu pacing waits cut to %.3f s (--replay-max-wait): %.3f s "
				"of recorded gaps skipped\n", (unsigned long long)s->waits_cut,
				(double)s->in.rc->max_wait_ns / 1e9, s->skipped_all / 1e9);
	}
	if (s->rd)
		rec_reader_close(s->rd);
	if (s->have_pending)
		record_free(s->pending.rec);
	while (s->h.n)
		record_free(rin_pop(&s->h).rec);
	free(s->h.a);
	free(s->files);
	if (s->have_glob)
		globfree(&s->g);
	free(s);
}
