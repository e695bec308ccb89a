/* libFuzzer target for agent/tcp_reasm.c. The input is a list of 6-byte segment
 * descriptors for a few 4-tuples; payload bytes are a function of (tuple, dir, seq)
 * so every delivered byte can be checked. Tiny limits make eviction, overflow and
 * hole-timeout paths run. Any broken invariant aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shadowtap.h"
#include "tcp_reasm.h"

#define FZ_KEYS		4
#define FZ_TRACKERS	1024
#define FZ_MS		1000000ull

/* ISNs within a few hundred KiB of each other, across the 32-bit wrap, so serial
 * comparisons between any two of them stay meaningful */
static const uint32_t fz_isn[4] = { 0xffff8000u, 0xffffff00u, 0x00004000u, 0x00020000u };

struct fz_dir {
	uint32_t lo, hi;        /* serial span of sequence numbers fed since open */
	int acked;              /* the peer acknowledged this direction before it opened */
	uint32_t first_ack;     /* that first acknowledgment (where its data began) */
	int have_span;
	uint32_t next;          /* where the next callback must start */
	int have_next;
	uint64_t delivered, gapped;
	int eof;
};

struct fz_track {
	int key;
	int closed;
	struct fz_dir d[2];
};

static struct fz_track fz_tr[FZ_TRACKERS];
static int fz_ntr, fz_nclosed;
static uint64_t fz_delivered, fz_gapped, fz_gaps;
static struct fz_track *fz_cur[FZ_KEYS];
static const struct reasm_seg *fz_seg;

#define FZ_CHECK(c) do { if (!(c)) { fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); abort(); } } while (0)

static uint8_t fz_byte(int key, int dir, uint32_t seq)
{
	uint32_t x = seq * 2654435761u ^ (uint32_t)key * 0x9e3779b9u ^ (uint32_t)dir << 7;

	return (uint8_t)(x >> 24 ^ x >> 11);
}

static void fz_span_add(struct fz_dir *d, uint32_t start, uint32_t end)
{
	if (!d->have_span) {
		d->lo = start;
		d->hi = end;
		d->have_span = 1;
		return;
	}
	if ((int32_t)(start - d->lo) < 0)
		d->lo = start;
	if ((int32_t)(end - d->hi) > 0)
		d->hi = end;
}

static void fz_span_seg(struct fz_track *t, const struct reasm_seg *s)
{
	struct fz_dir *o = &t->d[!s->dir], *d = &t->d[s->dir];

	/* a direction opening mid-stream after its peer acknowledged earlier bytes of it
	 * starts at that acknowledgment: the bytes before its first segment are a gap */
	if (!d->have_span && d->acked && !(s->flags & ST_TCP_SYN) &&
	    (uint32_t)(s->seq - d->first_ack) - 1u < (1u << 30))
		fz_span_add(d, d->first_ack, d->first_ack);
	fz_span_add(d, s->seq, s->seq + s->len + !!(s->flags & ST_TCP_SYN));
	if ((s->flags & ST_TCP_ACK) && !(s->flags & ST_TCP_RST) && !o->have_span && !o->acked) {
		o->acked = 1;
		o->first_ack = s->ack;
	}
	/* an ACK makes the other direction's acknowledged bytes a gap: they count as fed */
	if ((s->flags & ST_TCP_ACK) && !(s->flags & ST_TCP_RST) && o->have_span)
		fz_span_add(o, o->lo, s->ack);
}

static struct fz_dir *fz_dir(struct reasm_flow *f, int dir)
{
	struct fz_track *t = f->user;

	FZ_CHECK(t && !t->closed && dir >= 0 && dir <= 1);
	FZ_CHECK(!t->d[dir].eof);
	return &t->d[dir];
}

static void fz_advance(struct reasm_flow *f, struct fz_dir *d, int dir, uint64_t n)
{
	uint32_t seq = reasm_next_seq(f, dir);

	if (d->have_next)
		FZ_CHECK(seq == d->next);
	d->have_next = 1;
	d->next = seq + (uint32_t)n;
	/* nothing is delivered or skipped beyond what was fed */
	FZ_CHECK(d->have_span);
	FZ_CHECK(d->delivered + d->gapped <= (uint64_t)(uint32_t)(d->hi - d->lo));
	FZ_CHECK((int32_t)(d->next - d->hi) <= 0);
}

static int fz_open(void *ctx, struct reasm_flow *f)
{
	struct fz_track *t;

	if (fz_ntr >= FZ_TRACKERS)
		return -1;
	/* exercise refusal now and then */
	if (fz_seg->len == 13)
		return -1;
	t = &fz_tr[fz_ntr++];
	memset(t, 0, sizeof(*t));
	t->key = f->key.cport - 1000;
	FZ_CHECK(t->key >= 0 && t->key < FZ_KEYS);
	FZ_CHECK(!fz_cur[t->key]);
	fz_span_seg(t, fz_seg);
	fz_cur[t->key] = t;
	f->user = t;
	return 0;
}

static void fz_data(void *ctx, struct reasm_flow *f, int dir, const uint8_t *p, size_t n,
		    uint64_t ts)
{
	struct fz_dir *d = fz_dir(f, dir);
	struct fz_track *t = f->user;
	uint32_t seq = reasm_next_seq(f, dir);
	size_t i;

	FZ_CHECK(n > 0);
	for (i = 0; i < n; i++)
		FZ_CHECK(p[i] == fz_byte(t->key, dir, seq + (uint32_t)i));
	d->delivered += n;
	fz_delivered += n;
	fz_advance(f, d, dir, n);
}

static void fz_gap(void *ctx, struct reasm_flow *f, int dir, uint64_t n)
{
	struct fz_dir *d = fz_dir(f, dir);

	FZ_CHECK(n > 0 && n < (1ull << 31));
	d->gapped += n;
	fz_gapped += n;
	fz_gaps++;
	fz_advance(f, d, dir, n);
}

static void fz_eof(void *ctx, struct reasm_flow *f, int dir)
{
	struct fz_dir *d = fz_dir(f, dir);

	d->eof = 1;
}

static void fz_close(void *ctx, struct reasm_flow *f, enum reasm_close_reason why)
{
	struct fz_track *t = f->user;

	FZ_CHECK(t && !t->closed);
	FZ_CHECK(why <= REASM_CLOSE_SHUTDOWN);
	t->closed = 1;
	FZ_CHECK(fz_cur[t->key] == t);
	fz_cur[t->key] = NULL;
	fz_nclosed++;
	f->user = NULL;
}

static const struct reasm_ops fz_ops = {
	.open = fz_open, .data = fz_data, .gap = fz_gap, .eof = fz_eof, .close = fz_close,
};

static void fz_stats_ok(struct reasm *r, const struct reasm_cfg *cfg)
{
	struct reasm_stats st;

	FZ_CHECK(reasm_check(r) == 0);
	reasm_get_stats(r, &st);
	FZ_CHECK(st.buffered_bytes <= cfg->max_total_bytes);
	FZ_CHECK(st.buffered_bytes <= st.buffered_bytes_peak);
	FZ_CHECK(st.flows_active == (uint64_t)(fz_ntr - fz_nclosed));
	FZ_CHECK(st.flows_active <= cfg->max_flows);
	FZ_CHECK(st.bytes_delivered == fz_delivered);
	FZ_CHECK(st.gap_bytes == fz_gapped && st.gaps == fz_gaps);
	FZ_CHECK(st.flows_created == (uint64_t)fz_ntr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reasm_cfg cfg;
	uint8_t pay[256];
	uint64_t now = 1000 * FZ_MS;
	struct reasm *r;
	size_t i;

	fz_ntr = fz_nclosed = 0;
	fz_delivered = fz_gapped = fz_gaps = 0;
	memset(fz_cur, 0, sizeof(fz_cur));
	if (size < 2)
		return 0;
	/* the first two bytes pick the limits: tiny, so overflow and eviction happen */
	reasm_cfg_default(&cfg);
	cfg.max_flows = 1 + (data[0] & 3);
	cfg.max_flow_bytes = 200 + (size_t)(data[0] >> 2) * 40;
	cfg.max_total_bytes = 200 + (size_t)data[1] * 12;
	cfg.hole_timeout_ns = (20 + (uint64_t)(data[1] & 7) * 100) * FZ_MS;
	cfg.idle_timeout_ns = 2000 * FZ_MS;
	cfg.linger_ns = 300 * FZ_MS;
	r = reasm_new(&cfg, &fz_ops, NULL);
	FZ_CHECK(r);

	for (i = 2; i + 6 <= size; i += 6) {
		const uint8_t *b = data + i;
		int key = b[0] & 3, dir = b[0] >> 2 & 1;
		uint32_t isn = fz_isn[b[5] & 3];
		uint32_t off = (uint32_t)b[1] << 8 | b[2];
		struct reasm_seg s;
		uint32_t k;

		memset(&s, 0, sizeof(s));
		s.key.family = 4;
		s.key.caddr[0] = 0x0100000a;
		s.key.saddr[0] = 0x0200000a;
		s.key.cport = (uint16_t)(1000 + key);
		s.key.sport = 80;
		s.dir = (uint8_t)dir;
		/* an acknowledgment of the other direction now and then, near its bytes */
		if (b[5] & 0x20) {
			s.flags = ST_TCP_ACK;
			s.ack = fz_isn[(b[5] >> 2) & 3] + 1 + (((uint32_t)b[1] << 8 | b[3]) & 0x7ff);
		}
		if (b[0] & 0x08)
			s.flags |= ST_TCP_SYN;
		if (b[0] & 0x10)
			s.flags |= ST_TCP_FIN;
		if ((b[0] & 0x60) == 0x60)
			s.flags |= ST_TCP_RST;
		/* small offsets mostly, so segments meet and overlap */
		if (b[5] & 0x80)
			off &= 0x3ff;
		s.seq = (s.flags & ST_TCP_SYN) ? isn : isn + 1 + off;
		s.len = (s.flags & ST_TCP_SYN) ? 0 : b[3];
		for (k = 0; k < s.len; k++)
			pay[k] = fz_byte(key, dir, s.seq + k);
		s.data = s.len ? pay : NULL;
		now += (uint64_t)(b[4] & 0x3f) * (b[5] & 0x40 ? FZ_MS : FZ_MS / 16);
		s.ts_ns = now;
		if (fz_cur[key])
			fz_span_seg(fz_cur[key], &s);
		fz_seg = &s;
		reasm_segment(r, &s);
		fz_stats_ok(r, &cfg);
		if (b[4] & 0x40) {
			reasm_tick(r, now);
			fz_stats_ok(r, &cfg);
		}
		if ((b[4] & 0xc0) == 0xc0) {
			reasm_flush_all(r);
			fz_stats_ok(r, &cfg);
			FZ_CHECK(fz_ntr == fz_nclosed);
		}
	}
	reasm_free(r);
	FZ_CHECK(fz_ntr == fz_nclosed);
	return 0;
}
