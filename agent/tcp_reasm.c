/* TCP reassembly: flow table and per-direction in-order delivery.
 *
 * Each direction keeps a 64-bit stream offset ("next") relative to its start (ISN+1
 * with a SYN, else the first sequence number seen), so everything past the 32-bit
 * conversion in reasm_off() is plain integer arithmetic and wrap-around is handled
 * in one place with serial-number arithmetic.
 *
 * Overlap policy: the first copy of a byte that reached us wins. Bytes already
 * delivered are trimmed from later segments (retrans_bytes); bytes already buffered
 * are kept and the later copy's version is dropped (overlap_bytes), including when
 * the later copy is the in-order segment: it is delivered around the buffered bytes.
 *
 * Flow lifecycle: live -> (FIN on both sides, RST, or one FIN + linger) tombstone ->
 * free after linger; idle, evicted, replaced and shut-down flows are freed at once.
 * Tombstones absorb late segments (after_close) instead of opening mid-stream flows. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "shadowtap.h"
#include "log.h"
#include "tcp_reasm.h"

#define REASM_DEF_MAX_FLOWS	8192
#define REASM_DEF_FLOW_BYTES	(512u << 10)
#define REASM_DEF_TOTAL_BYTES	(8u << 20)
#define REASM_DEF_IDLE_NS	(120ull * 1000000000ull)
#define REASM_DEF_HOLE_NS	(500ull * 1000000ull)
#define REASM_DEF_LINGER_NS	(10ull * 1000000000ull)
#define REASM_SYN_REORDER	(1u << 20)
#define REASM_MAX_SEG		(1u << 30)
/* largest gap an ACK may declare past the delivered bytes: a TCP window with the
 * maximum scale (2^30); an ACK further ahead is bogus and ignored */
#define REASM_ACK_MAX_GAP	(1ll << 30)
#define REASM_ID_SEED		0x5ad0ca95e11f10d5ull

struct reasm_list {
	struct reasm_list *prev, *next;
};

#define reasm_entry(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

struct reasm_node {
	struct reasm_node *prev, *next;
	int64_t off;            /* stream offset of data[0] */
	uint64_t ts_ns;         /* arrival: the hole before it existed from then on */
	uint32_t len;
	uint8_t data[];
};

#define REASM_NODE_COST(len) (sizeof(struct reasm_node) + (uint64_t)(len))

enum { RD_NONE = 0, RD_OPEN, RD_EOF };
enum { RF_FREE = 0, RF_LIVE, RF_TOMB };

struct reasm_fl;

struct reasm_dir {
	struct reasm_fl *fl;    /* owner, for walks over reasm.holes */
	uint8_t idx;            /* REASM_C2S / REASM_S2C */
	uint8_t state;
	uint8_t syn;            /* start came from a SYN */
	uint8_t fin;            /* fin_off is known */
	uint8_t acked;          /* first_ack is set (direction not open yet) */
	uint8_t ack_wait;       /* wait_ack is pending (server direction only) */
	uint32_t first_ack;     /* the peer's first ACK of this direction before it opened */
	uint32_t wait_ack;      /* the client's ACK of these bytes, not applied yet: it takes
				 * effect once the client's bytes before wait_off are in */
	uint32_t base;          /* sequence number of stream offset 0 */
	int64_t next;           /* stream offset of the next byte to deliver */
	int64_t hi;             /* end of the highest byte seen (delivered or buffered) */
	int64_t wait_off;       /* in the peer direction's stream offsets */
	int64_t fin_off;
	struct reasm_node *head, *tail;  /* buffered, sorted, disjoint, head->off > next */
	struct reasm_list hole;          /* on reasm.holes while head != NULL */
};

struct reasm_fl {
	struct reasm_flow pub;  /* first: callbacks get &pub */
	struct reasm_fl *hnext; /* hash chain, or free list */
	uint64_t hash;
	struct reasm_list lru;  /* reasm.lru when live, reasm.tombs when a tombstone */
	struct reasm_list linger;  /* reasm.linger while half closed */
	uint64_t mem;           /* buffered cost, both directions */
	uint8_t state;
	uint8_t refused;
	struct reasm_dir d[2];
};

struct reasm {
	struct reasm_cfg cfg;
	struct reasm_ops ops;
	void *ctx;
	struct reasm_fl *pool;
	struct reasm_fl *free;
	size_t fresh;            /* pool[fresh..max_flows) never handed out (pages untouched) */
	struct reasm_fl **buckets;
	uint64_t mask;
	uint64_t seed;
	uint64_t seed_fam[2];   /* reasm_mix(seed ^ family), IPv4 then IPv6 */
	uint64_t mem;           /* buffered cost, all flows */
	struct reasm_list lru, tombs, linger, holes;
	struct reasm_stats st;
};

static void reasm_list_init(struct reasm_list *l)
{
	l->prev = l->next = l;
}

static int reasm_list_linked(const struct reasm_list *l)
{
	return l->next != l;
}

static void reasm_list_del(struct reasm_list *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	reasm_list_init(l);
}

static void reasm_list_add_tail(struct reasm_list *head, struct reasm_list *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static void reasm_list_move_tail(struct reasm_list *head, struct reasm_list *l)
{
	reasm_list_del(l);
	reasm_list_add_tail(head, l);
}

void reasm_cfg_default(struct reasm_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_flows = REASM_DEF_MAX_FLOWS;
	cfg->max_flow_bytes = REASM_DEF_FLOW_BYTES;
	cfg->max_total_bytes = REASM_DEF_TOTAL_BYTES;
	cfg->idle_timeout_ns = REASM_DEF_IDLE_NS;
	cfg->hole_timeout_ns = REASM_DEF_HOLE_NS;
	cfg->linger_ns = REASM_DEF_LINGER_NS;
}

static uint64_t reasm_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* The flow ID's hash (records carry it, so it must not change). Not cryptographic. */
static uint64_t reasm_hash_key(const struct reasm_key *k, uint64_t seed)
{
	uint64_t h = reasm_mix(seed ^ k->family);
	int i;

	for (i = 0; i < 4; i++)
		h = reasm_mix(h ^ ((uint64_t)k->caddr[i] << 32 | k->saddr[i]));
	return reasm_mix(h ^ ((uint64_t)k->cport << 16 | k->sport));
}

/* The bucket hash, once per segment: the same chain, but an IPv4 key's three zero
 * address words are skipped and the seed's first round is done once per family in
 * reasm_new (2 rounds for IPv4 instead of 6; P, issue 19). The random seed only makes
 * bucket collisions hard to aim at. */
static uint64_t reasm_bucket_hash(const struct reasm *r, const struct reasm_key *k)
{
	uint64_t h = r->seed_fam[k->family == 6];
	int i, n = k->family == 6 ? 4 : 1;

	for (i = 0; i < n; i++)
		h = reasm_mix(h ^ ((uint64_t)k->caddr[i] << 32 | k->saddr[i]));
	return reasm_mix(h ^ ((uint64_t)k->cport << 16 | k->sport));
}

static int reasm_key_eq(const struct reasm_key *a, const struct reasm_key *b)
{
	/* a TLS plaintext stream and packets on the same 4-tuple are different flows */
	return a->family == b->family && a->source == b->source && a->cport == b->cport &&
	       a->sport == b->sport &&
	       !memcmp(a->caddr, b->caddr, sizeof(a->caddr)) &&
	       !memcmp(a->saddr, b->saddr, sizeof(a->saddr));
}

struct reasm *reasm_new(const struct reasm_cfg *cfg, const struct reasm_ops *ops, void *ctx)
{
	struct reasm *r = calloc(1, sizeof(*r));
	uint64_t nb = 1;

	if (!r)
		goto fail;
	if (cfg)
		r->cfg = *cfg;
	else
		reasm_cfg_default(&r->cfg);
	if (!r->cfg.max_flows)
		r->cfg.max_flows = REASM_DEF_MAX_FLOWS;
	if (!r->cfg.linger_ns)
		r->cfg.linger_ns = REASM_DEF_LINGER_NS;
	if (ops)
		r->ops = *ops;
	r->ctx = ctx;
	if (r->cfg.max_flows > (1u << 28)) {
		pr_warn("reasm: max_flows %zu is too large\n", r->cfg.max_flows);
		goto fail;
	}
	while (nb < r->cfg.max_flows)
		nb <<= 1;
	r->mask = nb - 1;
	/* calloc'd pages are only touched as flows get used: entries never used are
	 * handed out by index (r->fresh), not threaded on the free list up front,
	 * which wrote every entry (21 MB resident from start at the default 65,536
	 * flows; docs/cost.md, memory bounds, session 8) */
	r->pool = calloc(r->cfg.max_flows, sizeof(*r->pool));
	r->buckets = calloc(nb, sizeof(*r->buckets));
	if (!r->pool || !r->buckets) {
		pr_warn("reasm: cannot allocate a table of %zu flows\n", r->cfg.max_flows);
		goto fail;
	}
	if (getrandom(&r->seed, sizeof(r->seed), GRND_NONBLOCK) != sizeof(r->seed))
		r->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)r;
	r->seed_fam[0] = reasm_mix(r->seed ^ 4);
	r->seed_fam[1] = reasm_mix(r->seed ^ 6);
	reasm_list_init(&r->lru);
	reasm_list_init(&r->tombs);
	reasm_list_init(&r->linger);
	reasm_list_init(&r->holes);
	return r;
fail:
	if (r) {
		free(r->pool);
		free(r->buckets);
		free(r);
	}
	return NULL;
}

static int64_t reasm_off(const struct reasm_dir *d, uint32_t seq)
{
	uint32_t nseq = d->base + (uint32_t)d->next;

	return d->next + (int32_t)(seq - nseq);
}

uint32_t reasm_next_seq(const struct reasm_flow *f, int dir)
{
	const struct reasm_fl *fl = (const struct reasm_fl *)f;
	const struct reasm_dir *d;

	if (!f || dir < 0 || dir > 1)
		return 0;
	d = &fl->d[dir];
	return d->state == RD_NONE ? 0 : d->base + (uint32_t)d->next;
}

static void reasm_ack(struct reasm *r, struct reasm_fl *f, int dir, uint32_t ack);

/* The client's delivery has reached the point where its deferred ACK of the server's
 * bytes applies (see reasm_seg_ack): apply it now, between the client's bytes. */
static void reasm_ack_due(struct reasm *r, struct reasm_fl *f)
{
	struct reasm_dir *s = &f->d[REASM_S2C];

	if (s->ack_wait && f->d[REASM_C2S].next >= s->wait_off) {
		s->ack_wait = 0;
		reasm_ack(r, f, REASM_S2C, s->wait_ack);
	}
}

static void reasm_emit(struct reasm *r, struct reasm_fl *f, int dir, const uint8_t *p,
		       uint32_t n, uint64_t ts)
{
	struct reasm_dir *d = &f->d[dir], *s = &f->d[REASM_S2C];

	while (n) {
		uint32_t k = n;

		if (dir == REASM_C2S) {
			reasm_ack_due(r, f);
			/* cut where a deferred ACK applies */
			if (s->ack_wait && s->wait_off > d->next && s->wait_off - d->next < n)
				k = (uint32_t)(s->wait_off - d->next);
		}
		r->st.bytes_delivered += k;
		if (r->ops.data)
			r->ops.data(r->ctx, &f->pub, dir, p, k, ts);
		d->next += k;
		p += k;
		n -= k;
	}
	if (dir == REASM_C2S)
		reasm_ack_due(r, f);
}

static void reasm_gap(struct reasm *r, struct reasm_fl *f, int dir, uint64_t n)
{
	if (!n)
		return;
	r->st.gaps++;
	r->st.gap_bytes += n;
	if (r->ops.gap)
		r->ops.gap(r->ctx, &f->pub, dir, n);
	f->d[dir].next += (int64_t)n;
	if (dir == REASM_C2S)
		reasm_ack_due(r, f);
}

static void reasm_node_del(struct reasm *r, struct reasm_fl *f, struct reasm_dir *d,
			   struct reasm_node *n)
{
	uint64_t cost = REASM_NODE_COST(n->len);

	if (n->prev)
		n->prev->next = n->next;
	else
		d->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		d->tail = n->prev;
	r->mem -= cost;
	f->mem -= cost;
	r->st.buffered_bytes -= n->len;
	free(n);
	if (!d->head)
		reasm_list_del(&d->hole);
}

static void reasm_half_closed(struct reasm *r, struct reasm_fl *f)
{
	if (!reasm_list_linked(&f->linger))
		reasm_list_add_tail(&r->linger, &f->linger);
}

static void reasm_check_fin(struct reasm *r, struct reasm_fl *f, int dir)
{
	struct reasm_dir *d = &f->d[dir];

	if (d->state != RD_OPEN || !d->fin || d->next < d->fin_off)
		return;
	d->state = RD_EOF;
	if (r->ops.eof)
		r->ops.eof(r->ctx, &f->pub, dir);
	reasm_half_closed(r, f);
}

/* Deliver buffered segments that have become contiguous. */
static void reasm_drain(struct reasm *r, struct reasm_fl *f, int dir)
{
	struct reasm_dir *d = &f->d[dir];
	struct reasm_node *n;
	int moved = 0;

	while ((n = d->head) && n->off <= d->next) {
		int64_t end = n->off + n->len;

		if (end > d->next) {
			uint32_t skip = (uint32_t)(d->next - n->off);

			reasm_emit(r, f, dir, n->data + skip, n->len - skip, n->ts_ns);
		}
		reasm_node_del(r, f, d, n);
		moved = 1;
	}
	/* keep the hole list roughly ordered by the age of each direction's first hole */
	if (moved && d->head)
		reasm_list_move_tail(&r->holes, &d->hole);
	reasm_check_fin(r, f, dir);
}

/* The bytes before upto are never coming: report them and move on. */
static void reasm_force(struct reasm *r, struct reasm_fl *f, int dir, int64_t upto)
{
	struct reasm_dir *d = &f->d[dir];

	if (upto > d->next)
		reasm_gap(r, f, dir, (uint64_t)(upto - d->next));
	reasm_drain(r, f, dir);
}

static void reasm_flush_dir(struct reasm *r, struct reasm_fl *f, int dir)
{
	struct reasm_dir *d = &f->d[dir];

	while (d->head)
		reasm_force(r, f, dir, d->head->off);
}

static void reasm_hash_del(struct reasm *r, struct reasm_fl *f)
{
	struct reasm_fl **pp = &r->buckets[f->hash & r->mask];

	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	f->hnext = NULL;
}

static void reasm_release(struct reasm *r, struct reasm_fl *f)
{
	reasm_hash_del(r, f);
	reasm_list_del(&f->lru);
	reasm_list_del(&f->linger);
	f->state = RF_FREE;
	f->hnext = r->free;
	r->free = f;
}

/* Deliver what is buffered (holes become gaps), tell the owner, then either keep the
 * flow as a tombstone or free its slot. */
static void reasm_close(struct reasm *r, struct reasm_fl *f, enum reasm_close_reason why,
			int tomb)
{
	reasm_flush_dir(r, f, REASM_C2S);
	if (f->d[REASM_S2C].ack_wait) {
		/* the client's bytes it waited for never came: it applies at the end */
		f->d[REASM_S2C].ack_wait = 0;
		reasm_ack(r, f, REASM_S2C, f->d[REASM_S2C].wait_ack);
	}
	reasm_flush_dir(r, f, REASM_S2C);
	if (f->state == RF_LIVE) {
		if (r->ops.close)
			r->ops.close(r->ctx, &f->pub, why);
		f->pub.user = NULL;
		r->st.flows_active--;
		switch (why) {
		case REASM_CLOSE_FIN:
			r->st.flows_closed_fin++;
			break;
		case REASM_CLOSE_RST:
			r->st.flows_closed_rst++;
			break;
		case REASM_CLOSE_IDLE:
			r->st.flows_expired++;
			break;
		case REASM_CLOSE_EVICT:
			r->st.flows_evicted++;
			break;
		case REASM_CLOSE_SHUTDOWN:
			break;
		}
	}
	if (!tomb) {
		reasm_release(r, f);
		return;
	}
	f->state = RF_TOMB;
	reasm_list_del(&f->linger);
	reasm_list_move_tail(&r->tombs, &f->lru);
}

static void reasm_maybe_done(struct reasm *r, struct reasm_fl *f)
{
	if (f->state == RF_LIVE && f->d[0].state == RD_EOF && f->d[1].state == RD_EOF)
		reasm_close(r, f, REASM_CLOSE_FIN, 1);
}

static struct reasm_fl *reasm_lookup(struct reasm *r, const struct reasm_key *k, uint64_t h)
{
	struct reasm_fl *f;

	for (f = r->buckets[h & r->mask]; f; f = f->hnext)
		if (f->hash == h && reasm_key_eq(&f->pub.key, k))
			return f;
	return NULL;
}

static struct reasm_fl *reasm_flow_alloc(struct reasm *r)
{
	struct reasm_fl *f;

	if (!r->free && r->fresh < r->cfg.max_flows) {
		r->pool[r->fresh].hnext = NULL;
		r->free = &r->pool[r->fresh++];
	}
	if (!r->free) {
		if (reasm_list_linked(&r->tombs)) {
			reasm_release(r, reasm_entry(r->tombs.next, struct reasm_fl, lru));
		} else if (reasm_list_linked(&r->lru)) {
			reasm_close(r, reasm_entry(r->lru.next, struct reasm_fl, lru),
				    REASM_CLOSE_EVICT, 0);
		}
	}
	f = r->free;
	if (!f)
		return NULL;
	r->free = f->hnext;
	memset(f, 0, sizeof(*f));
	reasm_list_init(&f->lru);
	reasm_list_init(&f->linger);
	reasm_list_init(&f->d[0].hole);
	reasm_list_init(&f->d[1].hole);
	f->d[0].fl = f;
	f->d[1].fl = f;
	f->d[0].idx = REASM_C2S;
	f->d[1].idx = REASM_S2C;
	return f;
}

/* Returns the new live flow, or NULL when its opening was refused. */
static struct reasm_fl *reasm_flow_new(struct reasm *r, const struct reasm_seg *seg, uint64_t h)
{
	struct reasm_fl *f = reasm_flow_alloc(r);
	struct reasm_key *k;

	if (!f)
		return NULL;
	k = &f->pub.key;
	k->family = seg->key.family;
	k->source = seg->key.source;
	memcpy(k->caddr, seg->key.caddr, sizeof(k->caddr));
	memcpy(k->saddr, seg->key.saddr, sizeof(k->saddr));
	k->cport = seg->key.cport;
	k->sport = seg->key.sport;
	f->hash = h;
	f->pub.flow_id = reasm_mix(reasm_hash_key(k, REASM_ID_SEED) ^
				   ((uint64_t)seg->dir << 32 | seg->seq));
	f->pub.first_ts_ns = seg->ts_ns;
	f->pub.last_ts_ns = seg->ts_ns;
	f->pub.mid_stream = !(seg->flags & ST_TCP_SYN);
	f->state = RF_LIVE;
	f->hnext = r->buckets[h & r->mask];
	r->buckets[h & r->mask] = f;
	reasm_list_add_tail(&r->lru, &f->lru);
	if (r->ops.open && r->ops.open(r->ctx, &f->pub) < 0) {
		r->st.flows_refused++;
		f->refused = 1;
		f->state = RF_TOMB;
		f->pub.user = NULL;
		reasm_list_move_tail(&r->tombs, &f->lru);
		return NULL;
	}
	r->st.flows_created++;
	r->st.flows_active++;
	if (f->pub.mid_stream)
		r->st.mid_stream_pickups++;
	return f;
}

/* Cost of buffering [off, off + len) next to what is already buffered, first copy
 * winning; with ins, also does it. Returns the cost, the overlapped bytes in *ovl. */
static uint64_t reasm_place(struct reasm *r, struct reasm_fl *f, struct reasm_dir *d,
			    int64_t off, const uint8_t *p, uint32_t len, uint64_t ts, int ins,
			    uint64_t *ovl)
{
	int64_t end = off + len, cur = off;
	struct reasm_node *n, *nn;
	uint64_t cost = 0;

	*ovl = 0;
	if (!d->tail || d->tail->off + d->tail->len <= off) {
		n = NULL;
	} else if (off - d->head->off < d->tail->off - off) {
		for (n = d->head; n && n->off + n->len <= off; n = n->next)
			;
	} else {
		for (n = d->tail; n->prev && n->prev->off + n->prev->len > off; n = n->prev)
			;
	}
	/* n: first buffered segment ending after off, or NULL */
	while (cur < end) {
		int64_t stop = n && n->off < end ? n->off : end;

		if (stop > cur) {
			uint32_t plen = (uint32_t)(stop - cur);

			cost += REASM_NODE_COST(plen);
			if (ins) {
				nn = malloc(sizeof(*nn) + plen);
				if (!nn) {
					r->st.nomem++;
				} else {
					nn->off = cur;
					nn->len = plen;
					nn->ts_ns = ts;
					memcpy(nn->data, p + (cur - off), plen);
					nn->next = n;
					nn->prev = n ? n->prev : d->tail;
					if (nn->prev)
						nn->prev->next = nn;
					else
						d->head = nn;
					if (n)
						n->prev = nn;
					else
						d->tail = nn;
					r->mem += REASM_NODE_COST(plen);
					f->mem += REASM_NODE_COST(plen);
					r->st.buffered_bytes += plen;
					if (!reasm_list_linked(&d->hole))
						reasm_list_add_tail(&r->holes, &d->hole);
				}
			}
			cur = stop;
		}
		if (!n || n->off >= end)
			break;
		{
			int64_t nend = n->off + n->len;
			int64_t oend = nend < end ? nend : end;

			*ovl += (uint64_t)(oend - cur);
			cur = oend;
		}
		n = n->next;
	}
	if (r->st.buffered_bytes > r->st.buffered_bytes_peak)
		r->st.buffered_bytes_peak = r->st.buffered_bytes;
	return cost;
}

/* A memory limit would be exceeded by buffering need more bytes for (f, dir): turn
 * one hole into a gap, the oldest one that frees memory where it is short. */
static void reasm_make_room(struct reasm *r, struct reasm_fl *f, int dir, int64_t off,
			    uint64_t need)
{
	struct reasm_fl *vf = f;
	int vdir = dir;
	struct reasm_dir *d = &f->d[dir], *o = &f->d[!dir];
	int64_t upto;

	r->st.buffer_overflows++;
	if (r->mem + need > r->cfg.max_total_bytes)
		r->st.buffer_overflows_total++;
	if (need > r->cfg.max_flow_bytes || need > r->cfg.max_total_bytes) {
		/* can never fit: skip to it through this direction's own holes */
	} else if (f->mem + need > r->cfg.max_flow_bytes) {
		if (o->head && (!d->head || d->head->off > off || o->head->ts_ns < d->head->ts_ns))
			vdir = !dir;
	} else if (reasm_list_linked(&r->holes)) {
		struct reasm_dir *vd = reasm_entry(r->holes.next, struct reasm_dir, hole);

		vf = vd->fl;
		vdir = vd->idx;
	}
	d = &vf->d[vdir];
	upto = d->head ? d->head->off : off;
	if (vf == f && vdir == dir && off < upto)
		upto = off;
	reasm_force(r, vf, vdir, upto);
	if (vf != f)
		reasm_maybe_done(r, vf);
}

static void reasm_dir_data(struct reasm *r, struct reasm_fl *f, int dir, int64_t off,
			   const uint8_t *p, uint32_t len, uint64_t ts)
{
	struct reasm_dir *d = &f->d[dir];
	int counted = 0;
	uint64_t need, ovl;

again:
	if (off + len <= d->next) {
		r->st.retrans_bytes += len;
		return;
	}
	if (off < d->next) {
		uint32_t k = (uint32_t)(d->next - off);

		r->st.retrans_bytes += k;
		p += k;
		len -= k;
		off = d->next;
	}
	if (d->fin && off + len > d->fin_off) {
		if (off >= d->fin_off) {
			r->st.after_close++;
			return;
		}
		len = (uint32_t)(d->fin_off - off);
	}
	if (off > d->next) {
		if (!counted) {
			r->st.ooo_segments++;
			counted = 1;
		}
		need = reasm_place(r, f, d, off, p, len, ts, 0, &ovl);
		if (need && (f->mem + need > r->cfg.max_flow_bytes ||
			     r->mem + need > r->cfg.max_total_bytes)) {
			reasm_make_room(r, f, dir, off, need);
			goto again;
		}
		reasm_place(r, f, d, off, p, len, ts, 1, &ovl);
		r->st.overlap_bytes += ovl;
		return;
	}
	/* in order: straight from the caller's buffer, around any buffered bytes */
	while (len) {
		struct reasm_node *n = d->head;
		uint32_t chunk = len;

		if (n && n->off <= d->next) {
			reasm_drain(r, f, dir);
			continue;
		}
		if (off < d->next) {
			uint32_t k = d->next - off < len ? (uint32_t)(d->next - off) : len;

			r->st.overlap_bytes += k;
			off += k;
			p += k;
			len -= k;
			continue;
		}
		if (n && n->off - off < chunk)
			chunk = (uint32_t)(n->off - off);
		reasm_emit(r, f, dir, p, chunk, ts);
		off += chunk;
		p += chunk;
		len -= chunk;
	}
	reasm_drain(r, f, dir);
}

/* Buffered bytes at or past a FIN can never be delivered. */
static void reasm_cut_at_fin(struct reasm *r, struct reasm_fl *f, struct reasm_dir *d)
{
	struct reasm_node *n;

	while ((n = d->tail) && n->off + n->len > d->fin_off) {
		if (n->off < d->fin_off) {
			uint32_t keep = (uint32_t)(d->fin_off - n->off);

			r->mem -= n->len - keep;
			f->mem -= n->len - keep;
			r->st.buffered_bytes -= n->len - keep;
			n->len = keep;
			break;
		}
		r->st.after_close++;
		reasm_node_del(r, f, d, n);
	}
}

/* The other side acknowledged dir's bytes up to ack: whatever of them was not captured
 * is gone for good (the peer has it and will not ask again), so each hole below ack
 * becomes a gap now instead of after hole_timeout, and buffered bytes behind it flow. */
static void reasm_ack(struct reasm *r, struct reasm_fl *f, int dir, uint32_t ack)
{
	struct reasm_dir *d = &f->d[dir];
	int64_t upto;

	/* The peer acknowledges a direction not seen yet (its SYN and first data were
	 * missed): remember where that direction's data started, so that when it opens
	 * mid-stream the bytes before its first captured segment count as a gap. */
	if (d->state == RD_NONE && !d->acked) {
		d->acked = 1;
		d->first_ack = ack;
	}
	if (d->state != RD_OPEN)
		return;
	upto = reasm_off(d, ack);
	/* the FIN takes a sequence number but is not data */
	if (d->fin && upto > d->fin_off)
		upto = d->fin_off;
	if (upto <= d->next || upto - d->next > REASM_ACK_MAX_GAP)
		return;
	r->st.ack_gaps++;
	while (d->state == RD_OPEN && d->next < upto) {
		int64_t stop = d->head && d->head->off < upto ? d->head->off : upto;

		if (stop <= d->next) {
			reasm_drain(r, f, dir);
			continue;
		}
		reasm_force(r, f, dir, stop);
	}
}

/* A segment of dir at stream offset off acknowledges the other direction up to ack.
 * The server's ACKs of client bytes apply at once (before the segment's data). The
 * client's ACKs of server bytes apply where the segment stands in the client's
 * stream: the server bytes the client had received when it sent this segment can
 * only answer requests it had sent before, so a gap the ACK declares must come after
 * those requests and before the ones that follow. When client bytes before the
 * segment are still missing (a hole, or a reordered segment: the highest byte seen
 * counts), the ACK waits for them; later waiting ACKs merge into one (the highest
 * ACK at the latest offset, which only delays the gap). Without this, a gap in the
 * server's bytes declared while the requests it answered sat behind a client hole
 * was taken for no lost answer, and each later response went to the request before
 * its own. */
static void reasm_seg_ack(struct reasm *r, struct reasm_fl *f, int dir, int64_t off, uint32_t ack)
{
	struct reasm_dir *d = &f->d[dir], *s = &f->d[!dir];
	int64_t at = off > d->hi ? off : d->hi;

	if (dir != REASM_C2S || s->state != RD_OPEN || d->state != RD_OPEN || at <= d->next) {
		reasm_ack(r, f, !dir, ack);
		return;
	}
	if (!s->ack_wait || (int32_t)(ack - s->wait_ack) > 0)
		s->wait_ack = ack;
	if (!s->ack_wait || at > s->wait_off)
		s->wait_off = at;
	s->ack_wait = 1;
}

void reasm_segment(struct reasm *r, const struct reasm_seg *seg)
{
	int syn, fin, rst, dir;
	struct reasm_fl *f;
	struct reasm_dir *d;
	uint32_t dseq;
	uint64_t h;
	int64_t off;

	r->st.segments++;
	if (seg->dir > REASM_S2C || (seg->len && !seg->data) || seg->len > REASM_MAX_SEG ||
	    (seg->key.family != 4 && seg->key.family != 6)) {
		r->st.bad_segments++;
		return;
	}
	dir = seg->dir;
	syn = !!(seg->flags & ST_TCP_SYN);
	fin = !!(seg->flags & ST_TCP_FIN);
	rst = !!(seg->flags & ST_TCP_RST);
	/* a SYN occupies one sequence number: data (TFO) starts after it */
	dseq = seg->seq + (uint32_t)syn;
	h = reasm_bucket_hash(r, &seg->key);
	f = reasm_lookup(r, &seg->key, h);

	if (f && f->state == RF_TOMB) {
		if (syn && (!f->d[dir].syn || f->d[dir].base != dseq)) {
			reasm_release(r, f);
			f = NULL;
		} else {
			if (f->refused)
				r->st.refused_segments++;
			else if (seg->len || (seg->flags & (ST_TCP_SYN | ST_TCP_FIN | ST_TCP_RST)))
				r->st.after_close++;
			return;
		}
	}
	if (f && syn) {
		d = &f->d[dir];
		/* a direction picked up mid-stream may see its SYN late (reordered capture):
		 * the same start, or one shortly before it, is the same connection */
		if (d->state == RD_OPEN && !d->syn && (uint32_t)(d->base - dseq) <= REASM_SYN_REORDER)
			d->syn = d->base == dseq;
		else if (d->state != RD_NONE && (!d->syn || d->base != dseq)) {
			int closing = f->d[0].fin || f->d[1].fin;

			r->st.flows_reused++;
			reasm_close(r, f, closing ? REASM_CLOSE_FIN : REASM_CLOSE_IDLE, 0);
			f = NULL;
		}
	}
	if (!f) {
		if (!syn && !seg->len) {
			r->st.no_flow++;
			return;
		}
		f = reasm_flow_new(r, seg, h);
		if (!f) {
			r->st.refused_segments++;
			f = reasm_lookup(r, &seg->key, h);
			/* a refused flow remembers its SYN so a retransmission is not retried */
			if (f && f->state == RF_TOMB) {
				f->d[dir].syn = (uint8_t)syn;
				f->d[dir].base = dseq;
			}
			return;
		}
	}
	if (seg->ts_ns > f->pub.last_ts_ns)
		f->pub.last_ts_ns = seg->ts_ns;
	reasm_list_move_tail(&r->lru, &f->lru);
	if (reasm_list_linked(&f->linger))
		reasm_list_move_tail(&r->linger, &f->linger);

	d = &f->d[dir];
	if (d->state == RD_NONE) {
		d->state = RD_OPEN;
		d->syn = (uint8_t)syn;
		d->base = dseq;
		/* opened mid-stream after the peer had acknowledged earlier bytes of it:
		 * those bytes were lost, and a response among them must not be taken for
		 * a later one (pairing counts on the gap being seen) */
		if (!syn && d->acked && (uint32_t)(dseq - d->first_ack) - 1u < (uint32_t)REASM_ACK_MAX_GAP)
			d->base = d->first_ack;
	}
	off = reasm_off(d, dseq);
	/* before this segment's data: a request sent after the client got bytes we
	 * missed must find their gap already declared (pairing counts on it) */
	if ((seg->flags & ST_TCP_ACK) && !rst)
		reasm_seg_ack(r, f, dir, off, seg->ack);
	if (d->state == RD_EOF) {
		/* the side that sent its FIN still ACKs the other's data: not a drop */
		if (rst)
			reasm_close(r, f, REASM_CLOSE_RST, 1);
		else {
			if (seg->len || syn || fin)
				r->st.after_close++;
			/* its ACK may have brought the other side to its FIN */
			reasm_maybe_done(r, f);
		}
		return;
	}
	if (seg->len) {
		reasm_dir_data(r, f, dir, off, seg->data, seg->len, seg->ts_ns);
		if (off + seg->len > d->hi)
			d->hi = off + seg->len;
	}
	if (fin && !d->fin && d->state == RD_OPEN) {
		d->fin = 1;
		/* a FIN behind delivered data is inconsistent; end the stream where it is */
		d->fin_off = off + seg->len > d->next ? off + seg->len : d->next;
		reasm_cut_at_fin(r, f, d);
		reasm_check_fin(r, f, dir);
	}
	if (rst) {
		reasm_close(r, f, REASM_CLOSE_RST, 1);
		return;
	}
	reasm_maybe_done(r, f);
}

void reasm_tick(struct reasm *r, uint64_t now_ns)
{
	struct reasm_list *l, *nl;
	struct reasm_fl *f;

	/* Walking with a saved next: forcing d closes no flow (reasm_maybe_done does, and
	 * only once both directions are at EOF, i.e. neither is on the hole list), but
	 * forcing the client's direction can apply a deferred ACK that empties the
	 * server's direction of the same flow, which may be the saved next: then the walk
	 * starts over (entries already seen are not due, or no longer hold a hole). */
	for (l = r->holes.next; l != &r->holes; l = nl) {
		struct reasm_dir *d = reasm_entry(l, struct reasm_dir, hole);

		nl = l->next;
		f = d->fl;
		if (!d->head || now_ns < d->head->ts_ns + r->cfg.hole_timeout_ns)
			continue;
		while (d->head && now_ns >= d->head->ts_ns + r->cfg.hole_timeout_ns)
			reasm_force(r, f, d->idx, d->head->off);
		if (nl != &r->holes && !reasm_list_linked(nl))
			nl = r->holes.next;
		reasm_maybe_done(r, f);
	}
	while (reasm_list_linked(&r->lru)) {
		f = reasm_entry(r->lru.next, struct reasm_fl, lru);
		if (now_ns < f->pub.last_ts_ns + r->cfg.idle_timeout_ns)
			break;
		reasm_close(r, f, REASM_CLOSE_IDLE, 0);
	}
	while (reasm_list_linked(&r->linger)) {
		f = reasm_entry(r->linger.next, struct reasm_fl, linger);
		if (now_ns < f->pub.last_ts_ns + r->cfg.linger_ns)
			break;
		reasm_close(r, f, REASM_CLOSE_FIN, 1);
	}
	while (reasm_list_linked(&r->tombs)) {
		f = reasm_entry(r->tombs.next, struct reasm_fl, lru);
		if (now_ns < f->pub.last_ts_ns + r->cfg.linger_ns)
			break;
		reasm_release(r, f);
	}
}

void reasm_flush_all(struct reasm *r)
{
	while (reasm_list_linked(&r->lru))
		reasm_close(r, reasm_entry(r->lru.next, struct reasm_fl, lru),
			    REASM_CLOSE_SHUTDOWN, 0);
	while (reasm_list_linked(&r->tombs))
		reasm_release(r, reasm_entry(r->tombs.next, struct reasm_fl, lru));
}

void reasm_free(struct reasm *r)
{
	if (!r)
		return;
	reasm_flush_all(r);
	free(r->pool);
	free(r->buckets);
	free(r);
}

void reasm_get_stats(const struct reasm *r, struct reasm_stats *st)
{
	*st = r->st;
}

static int reasm_check_flow(const struct reasm *r, const struct reasm_fl *f, uint64_t *mem,
			    uint64_t *bytes)
{
	uint64_t fmem = 0;
	int i;

	for (i = 0; i < 2; i++) {
		const struct reasm_dir *d = &f->d[i];
		const struct reasm_node *n, *prev = NULL;

		if (d->fl != f || d->idx != i)
			return -EUCLEAN;
		if (!!d->head != reasm_list_linked(&d->hole))
			return -EUCLEAN;
		if (d->head && (d->state != RD_OPEN || d->head->off <= d->next))
			return -EUCLEAN;
		if (d->fin && d->state == RD_OPEN && d->next > d->fin_off)
			return -EUCLEAN;
		for (n = d->head; n; prev = n, n = n->next) {
			if (n->prev != prev || !n->len)
				return -EUCLEAN;
			if (prev && prev->off + prev->len > n->off)
				return -EUCLEAN;
			if (d->fin && n->off + n->len > d->fin_off)
				return -EUCLEAN;
			fmem += REASM_NODE_COST(n->len);
			*bytes += n->len;
		}
		if (prev != d->tail)
			return -EUCLEAN;
	}
	if (fmem != f->mem || fmem > r->cfg.max_flow_bytes)
		return -EUCLEAN;
	/* a deferred ACK whose point the client's delivery has passed was not applied */
	if (f->d[REASM_S2C].ack_wait && f->d[REASM_C2S].next >= f->d[REASM_S2C].wait_off)
		return -EUCLEAN;
	*mem += fmem;
	return 0;
}

int reasm_check(const struct reasm *r)
{
	uint64_t mem = 0, bytes = 0, live = 0, used = 0, nfree = 0;
	const struct reasm_fl *f;
	size_t i;
	int err;

	for (i = 0; i < r->cfg.max_flows; i++) {
		f = &r->pool[i];
		if (i >= r->fresh && (f->state != RF_FREE || f->hnext))
			return -EUCLEAN;         /* never handed out: still zero */
		if (f->state == RF_FREE)
			continue;
		used++;
		if (f->state == RF_LIVE)
			live++;
		if (f->state == RF_TOMB && (f->mem || reasm_list_linked(&f->linger)))
			return -EUCLEAN;
		if (!reasm_list_linked(&f->lru) ||
		    reasm_lookup((struct reasm *)r, &f->pub.key, f->hash) != f)
			return -EUCLEAN;
		err = reasm_check_flow(r, f, &mem, &bytes);
		if (err)
			return err;
	}
	for (f = r->free; f; f = f->hnext)
		nfree++;
	if (used + nfree + (r->cfg.max_flows - r->fresh) != r->cfg.max_flows || live != r->st.flows_active)
		return -EUCLEAN;
	if (mem != r->mem || bytes != r->st.buffered_bytes || mem > r->cfg.max_total_bytes)
		return -EUCLEAN;
	return 0;
}
