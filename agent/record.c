#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf_sse.h"
#include "fields.h"
#include "pii.h"
#include "record.h"
#include "blkpool.h"
#include "shadowtap.h"
#include "util.h"

const char *const record_redact_default[] = {
	"authorization", "cookie", "set-cookie", "proxy-authorization", NULL,
};

/* The 8 hex digits of x, lower case, first digit in the lowest byte: the nibbles
 * spread one per byte, then each turned into its character without a branch or a
 * table (a digit above 9 gets 'a' - '0' - 10 more). */
static inline uint64_t record_hex8(uint32_t x)
{
	uint64_t v = x, above9;

	v = (v | (v << 16)) & 0x0000ffff0000ffffull;
	v = (v | (v << 8)) & 0x00ff00ff00ff00ffull;
	v = (v | (v << 4)) & 0x0f0f0f0f0f0f0f0full;
	v = __builtin_bswap64(v);            /* the most significant digit first */
	above9 = ((v + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
	return v + 0x3030303030303030ull + above9 * ('a' - '0' - 10);
}

void record_event_id(uint64_t flow_id, uint32_t index, char out[33])
{
	uint64_t a = st_mix64(flow_id ^ st_mix64(index));
	uint64_t b = st_mix64(a ^ 0x5348414457544150ull);
	uint64_t w[4] = {
		record_hex8((uint32_t)(a >> 32)), record_hex8((uint32_t)a),
		record_hex8((uint32_t)(b >> 32)), record_hex8((uint32_t)b),
	};

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "record_hex8 lays the digits out for a little-endian store"
#endif
	memcpy(out, w, 32);
	out[32] = '\0';
}

_Static_assert(sizeof(struct st_record) == RECORD_BLOCK, "st_record is one RECORD_BLOCK");

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* a block waiting in a pool is poisoned but for its link: a use after record_free
 * still stops an ASan build as it did when records were freed */
#define RECORD_POISON(r)                                                              \
	ASAN_POISON_MEMORY_REGION((char *)(r) + sizeof((r)->pool_next),              \
				  sizeof(*(r)) - sizeof((r)->pool_next))
#define RECORD_UNPOISON(r) ASAN_UNPOISON_MEMORY_REGION((r), sizeof(*(r)))
#else
#define RECORD_POISON(r) ((void)(r))
#define RECORD_UNPOISON(r) ((void)(r))
#endif

/* Free record blocks of one thread (issue 19). Records are made on the capture thread
 * and, replaying, freed on the replay thread: through malloc each free was a locked
 * return to the other thread's arena (_int_free, unlink_chunk) and each record_new a
 * search of it. Here the freeing thread pushes the block onto its maker's remote
 * list (one compare-and-swap) and the maker takes the whole list at once when its
 * own list runs out (one exchange), so only the maker ever pops: no ABA. A pool
 * whose thread ended is kept for the next thread that makes records. */
struct record_pool {
	struct st_record *local;         /* the owner's free blocks */
	/* written by the owner only; atomic so record_pool_get_stats may read it */
	atomic_size_t nlocal;
	/* every pool made, kept reachable until exit: LeakSanitizer sees pooled blocks
	 * as reachable through it, and record_pool_get_stats counts idle blocks on it */
	struct record_pool *all_next;
	struct record_pool *orphan_next; /* pools whose thread ended */
	atomic_ullong trimmed;           /* blocks freed because the pool was at its cap */
	_Alignas(64) _Atomic(struct st_record *) remote;   /* pushed by other threads */
	atomic_size_t nremote;
};

static __thread struct record_pool *record_tpool;
static pthread_once_t record_pool_once = PTHREAD_ONCE_INIT;
static pthread_key_t record_pool_key;
static bool record_pool_key_ok;
static pthread_mutex_t record_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct record_pool *record_pools_all, *record_pools_orphan;
/* free blocks a pool keeps, both lists together (its own thread's frees and others'):
 * record_pool_set_limit, from --memory-limit. One count for both because, replaying,
 * nearly every block comes back from the replay or output thread: with half the cap
 * for each list the returned half overflowed in bursts (up to 26,553 blocks back to
 * malloc per 3 s at the GET maximum) while the own half sat empty. */
static atomic_size_t record_pool_cap = 2 * RECORD_POOL_MAX;

void record_pool_set_limit(size_t bytes)
{
	size_t n = bytes / RECORD_BLOCK;

	atomic_store_explicit(&record_pool_cap, n < 2 * RECORD_POOL_MAX ? n : 2 * RECORD_POOL_MAX,
			      memory_order_relaxed);
}

void record_pool_get_stats(struct record_pool_stats *s)
{
	const struct record_pool *p;

	memset(s, 0, sizeof(*s));
	s->cap_blocks = atomic_load_explicit(&record_pool_cap, memory_order_relaxed);
	pthread_mutex_lock(&record_pool_mu);
	for (p = record_pools_all; p; p = p->all_next) {
		s->pools++;
		s->idle_blocks += atomic_load_explicit(&p->nlocal, memory_order_relaxed) +
				  atomic_load_explicit(&p->nremote, memory_order_relaxed);
		s->trimmed += atomic_load_explicit(&p->trimmed, memory_order_relaxed);
	}
	pthread_mutex_unlock(&record_pool_mu);
	s->idle_bytes = s->idle_blocks * RECORD_BLOCK;
}

/* thread exit: the pool, with its blocks, waits for the next thread that needs one */
static void record_pool_exit(void *v)
{
	struct record_pool *p = v;

	record_tpool = NULL;
	pthread_mutex_lock(&record_pool_mu);
	p->orphan_next = record_pools_orphan;
	record_pools_orphan = p;
	pthread_mutex_unlock(&record_pool_mu);
}

static void record_pool_key_init(void)
{
	record_pool_key_ok = pthread_key_create(&record_pool_key, record_pool_exit) == 0;
}

/* The calling thread's pool; NULL when none can be made (plain malloc then). */
static struct record_pool *record_pool_get(void)
{
	struct record_pool *p;

	if (record_tpool)
		return record_tpool;
	pthread_once(&record_pool_once, record_pool_key_init);
	if (!record_pool_key_ok)
		return NULL;
	pthread_mutex_lock(&record_pool_mu);
	p = record_pools_orphan;
	if (p)
		record_pools_orphan = p->orphan_next;
	pthread_mutex_unlock(&record_pool_mu);
	if (!p) {
		p = aligned_alloc(64, sizeof(*p));
		if (!p)
			return NULL;
		memset(p, 0, sizeof(*p));
		atomic_init(&p->nlocal, 0);
		atomic_init(&p->trimmed, 0);
		atomic_init(&p->remote, NULL);
		atomic_init(&p->nremote, 0);
		pthread_mutex_lock(&record_pool_mu);
		p->all_next = record_pools_all;
		record_pools_all = p;
		pthread_mutex_unlock(&record_pool_mu);
	}
	if (pthread_setspecific(record_pool_key, p)) {
		record_pool_exit(p);
		return NULL;
	}
	record_tpool = p;
	return p;
}

/* A free block of p (its owner thread only), or NULL. The remote list is taken
 * without walking it (a walk was a cache miss per block, most of record_new's
 * samples): its count is nremote's, which pushes still under way can leave one short
 * per thread, so the cap is a bound give or take the number of threads. */
static struct st_record *record_pool_take(struct record_pool *p)
{
	struct st_record *r = p->local, *next;
	size_t i;

	if (!r) {
		size_t n = atomic_exchange_explicit(&p->nremote, 0, memory_order_relaxed);

		r = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
		if (!r)
			return NULL;
		atomic_store_explicit(&p->nlocal, n, memory_order_relaxed);
	}
	next = r->pool_next;
	p->local = next;
	i = atomic_load_explicit(&p->nlocal, memory_order_relaxed);
	if (i)
		atomic_store_explicit(&p->nlocal, i - 1, memory_order_relaxed);
	RECORD_UNPOISON(r);
	/* the next block's cleared part was last written on another core: fetched now,
	 * while this record is built, not when record_new clears it */
	if (next)
		for (i = 0; i < offsetof(struct st_record, room); i += 64)
			__builtin_prefetch((char *)next + i, 1);
	return r;
}

/* r back to its pool, from any thread; freed when the pool (both lists) is at its cap */
static void record_pool_put(struct st_record *r)
{
	struct record_pool *p = r->pool;
	struct st_record *head;
	size_t cap, n;

	if (!p) {
		free(r);
		return;
	}
	cap = atomic_load_explicit(&record_pool_cap, memory_order_relaxed);
	if (p == record_tpool) {
		n = atomic_load_explicit(&p->nlocal, memory_order_relaxed);
		if (n + atomic_load_explicit(&p->nremote, memory_order_relaxed) >= cap)
			goto trim;
		r->pool_next = p->local;
		RECORD_POISON(r);
		p->local = r;
		atomic_store_explicit(&p->nlocal, n + 1, memory_order_relaxed);
		return;
	}
	/* the other list's count read relaxed: a bound give or take the blocks being
	 * moved by record_pool_take or pushed by other threads at that moment */
	if (atomic_fetch_add_explicit(&p->nremote, 1, memory_order_relaxed) +
	    atomic_load_explicit(&p->nlocal, memory_order_relaxed) >= cap) {
		atomic_fetch_sub_explicit(&p->nremote, 1, memory_order_relaxed);
		goto trim;
	}
	RECORD_POISON(r);
	head = atomic_load_explicit(&p->remote, memory_order_relaxed);
	do {
		r->pool_next = head;
	} while (!atomic_compare_exchange_weak_explicit(&p->remote, &head, r, memory_order_release,
						       memory_order_relaxed));
	return;
trim:
	atomic_fetch_add_explicit(&p->trimmed, 1, memory_order_relaxed);
	free(r);
}

struct st_record *record_new(void)
{
	struct record_pool *p = record_pool_get();
	struct st_record *r = p ? record_pool_take(p) : NULL;

	if (!r)
		r = malloc(sizeof(*r));
	/* the room is written before it is read: not cleared */
	if (r) {
		memset(r, 0, offsetof(struct st_record, room));
		r->pool = p;
	}
	return r;
}

static inline bool record_in_room(const struct st_record *r, const void *p)
{
	return (const char *)p >= r->room && (const char *)p < r->room + sizeof(r->room);
}

void record_msg_free(struct st_msg *m)
{
	if (!m->head_inline)
		free(m->head);
	if (!m->body_borrowed && !m->body_inline)
		free(m->body);
	m->body_borrowed = m->head_inline = m->body_inline = false;
	m->head = NULL;
	m->hdrs = NULL;
	m->body = NULL;
	m->head_len = m->body_stored = m->body_cap = 0;
	m->nhdrs = 0;
}

void record_replay_free(struct st_replay *rp)
{
	if (!rp)
		return;
	if (!rp->target_borrowed)
		free(rp->target);
	free(rp->error);
	record_msg_free(&rp->resp);
	if (rp->pooled)
		blk_put(rp);
	else
		free(rp);
}

/* What a diff owns outside its own block (diff_compare's single allocation): every
 * string (bytes RECORD_DIFF_STR: sized by its length) and list (bytes: its size, 0
 * for an empty one), one list for record_diff_free and record_diff_bytes. */
#define RECORD_DIFF_STR SIZE_MAX
typedef void (*record_diff_fn)(void *p, size_t bytes, void *ctx);

static void record_diff_visit(const struct st_diff *d, void *p, size_t bytes, record_diff_fn fn,
			      void *ctx)
{
	uintptr_t x = (uintptr_t)p, lo = (uintptr_t)d;

	if (p && (x < lo || x >= lo + d->block))
		fn(p, bytes, ctx);
}

static void record_diff_each(const struct st_diff *d, record_diff_fn fn, void *ctx)
{
	size_t i;

	for (i = 0; i < d->nheaders; i++)
		record_diff_visit(d, d->headers[i], RECORD_DIFF_STR, fn, ctx);
	record_diff_visit(d, d->headers, d->nheaders * sizeof(char *), fn, ctx);
	for (i = 0; i < d->nbody_paths; i++)
		record_diff_visit(d, d->body_paths[i], RECORD_DIFF_STR, fn, ctx);
	record_diff_visit(d, d->body_paths, d->nbody_paths * sizeof(char *), fn, ctx);
	record_diff_visit(d, d->reason, RECORD_DIFF_STR, fn, ctx);
	for (i = 0; i < d->nfields; i++) {
		record_diff_visit(d, d->fields[i].path, RECORD_DIFF_STR, fn, ctx);
		record_diff_visit(d, d->fields[i].a, RECORD_DIFF_STR, fn, ctx);
		record_diff_visit(d, d->fields[i].b, RECORD_DIFF_STR, fn, ctx);
	}
	record_diff_visit(d, d->fields, d->nfields * sizeof(struct st_field), fn, ctx);
	record_diff_visit(d, d->endpoint, RECORD_DIFF_STR, fn, ctx);
	for (i = 0; i < d->nnoise; i++)
		record_diff_visit(d, d->noise_paths[i], RECORD_DIFF_STR, fn, ctx);
	record_diff_visit(d, d->noise_paths, d->nnoise * sizeof(char *), fn, ctx);
}

static void record_diff_free_one(void *p, size_t bytes, void *ctx)
{
	(void)bytes;
	(void)ctx;
	free(p);
}

static void record_diff_count_one(void *p, size_t bytes, void *ctx)
{
	*(size_t *)ctx += bytes == RECORD_DIFF_STR ? strlen(p) + 1 : bytes;
}

/* What d holds in memory: its block, or the struct, and what lies outside it. */
static size_t record_diff_bytes(const struct st_diff *d)
{
	size_t n;

	if (!d)
		return 0;
	n = d->block ? d->block : sizeof(*d);
	record_diff_each(d, record_diff_count_one, &n);
	return n;
}

void record_diff_free(struct st_diff *d)
{
	if (!d)
		return;
	/* diff_compare's block holds every list and string but the endpoint (in its
	 * room unless too long) and the noise paths: nothing else to walk */
	if (!d->block || d->noise_paths || (d->endpoint && !(d->endpoint >= (char *)d &&
							    d->endpoint < (char *)d + d->block)))
		record_diff_each(d, record_diff_free_one, NULL);
	if (d->pooled)
		blk_put(d);
	else
		free(d);
}

void record_free(struct st_record *r)
{
	if (!r)
		return;
	record_msg_free(&r->req);
	record_msg_free(&r->resp);
	record_raw_free(r);
	record_replay_free(r->replay);
	record_diff_free(r->diff);
	record_replay_free(r->noise);
	record_diff_free(r->noise_diff);
	record_replay_free(r->held_replay);
	record_diff_free(r->held_diff);
	record_pool_put(r);
}

static size_t record_msg_bytes(const struct st_msg *m)
{
	return m->head_len + m->nhdrs * sizeof(*m->hdrs) + m->body_cap;
}

static size_t record_replay_bytes(const struct st_replay *rp)
{
	return rp ? sizeof(*rp) + record_msg_bytes(&rp->resp) : 0;
}

size_t record_msg_held_bytes(const struct st_msg *m)
{
	size_t n = m->head_inline ? 0 : m->head_len + m->nhdrs * sizeof(*m->hdrs);

	/* a body inline behind an inline head is in the room too (record_resp_set_head) */
	return m->head_inline && m->body_inline ? n : n + m->body_cap;
}

size_t record_held_bytes(const struct st_record *r)
{
	return sizeof(*r) + (record_in_room(r, r->raw) ? 0 : r->raw_cap) +
	       record_msg_held_bytes(&r->req) + record_msg_held_bytes(&r->resp);
}

size_t record_bytes(const struct st_record *r)
{
	return record_held_bytes(r) + record_replay_bytes(r->replay) + record_replay_bytes(r->noise) +
	       record_replay_bytes(r->held_replay) + record_diff_bytes(r->diff) +
	       record_diff_bytes(r->noise_diff) + record_diff_bytes(r->held_diff);
}

int record_msg_body_own(struct st_msg *m)
{
	uint8_t *p = NULL;

	if (!m->body_borrowed)
		return 0;
	m->body_borrowed = false;
	if (m->body_stored) {
		p = malloc(m->body_stored);
		if (p)
			memcpy(p, m->body, m->body_stored);
	}
	m->body = p;
	m->body_cap = p ? m->body_stored : 0;
	if (!p && m->body_stored) {
		m->body_stored = 0;
		return -ENOMEM;
	}
	return 0;
}

int record_msg_body_append(struct st_msg *m, const char *data, size_t len, size_t limit)
{
	size_t room, n, cap;
	uint8_t *p;

	if (m->body_borrowed && record_msg_body_own(m))
		return -ENOMEM;
	m->body_bytes += len;
	if (m->body_stored >= limit)
		return 0;
	room = limit - m->body_stored;
	n = len < room ? len : room;
	if (m->body_stored + n > m->body_cap) {
		/* first size 512: glibc serves it from a small bin, where 1024 and up is a
		 * "large" request that consolidates every fast bin first */
		cap = m->body_cap ? m->body_cap : 512;
		while (cap < m->body_stored + n)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		if (m->body_inline) {
			p = malloc(cap);
			if (p && m->body_stored)
				memcpy(p, m->body, m->body_stored);
		} else {
			p = realloc(m->body, cap);
		}
		if (!p)
			return -ENOMEM;
		m->body = p;
		m->body_cap = cap;
		m->body_inline = false;
	}
	memcpy(m->body + m->body_stored, data, n);
	m->body_stored += n;
	return 0;
}

#define RECORD_ALIGN(n, a) (((n) + (a) - 1) & ~(size_t)((a) - 1))

/* Bytes a head copy takes: the head and its NUL, then the header array, aligned. */
static size_t record_head_size(size_t head_len, size_t nhdrs)
{
	return RECORD_ALIGN(head_len + 1, _Alignof(struct http1_header)) +
	       nhdrs * sizeof(struct http1_header);
}

/* The head copied to p (record_head_size bytes) and m pointed at it. */
static void record_head_copy(struct st_msg *m, char *p, const char *head, size_t head_len,
			     const struct http1_header *hdrs, size_t nhdrs)
{
	size_t i, off = RECORD_ALIGN(head_len + 1, _Alignof(struct http1_header));
	struct http1_header *h = (struct http1_header *)(void *)(p + off);

	memcpy(p, head, head_len);
	p[head_len] = '\0';
	for (i = 0; i < nhdrs; i++) {
		h[i].name = p + (hdrs[i].name - head);
		h[i].name_len = hdrs[i].name_len;
		h[i].value = p + (hdrs[i].value - head);
		h[i].value_len = hdrs[i].value_len;
	}
	m->head = p;
	m->head_len = head_len;
	m->hdrs = nhdrs ? h : NULL;
	m->nhdrs = nhdrs;
}

int record_msg_set_head(struct st_msg *m, const char *head, size_t head_len,
			const struct http1_header *hdrs, size_t nhdrs)
{
	char *p;

	if (nhdrs > ST_MAX_HEADERS)
		nhdrs = ST_MAX_HEADERS;
	/* one allocation: the head bytes, then the header array */
	p = malloc(record_head_size(head_len, nhdrs));
	if (!p)
		return -ENOMEM;
	if (!m->head_inline)
		free(m->head);
	m->head_inline = false;
	record_head_copy(m, p, head, head_len, hdrs, nhdrs);
	return 0;
}

/* n bytes of r->room (aligned for a header array), or NULL when they do not fit */
static char *record_room_take(struct st_record *r, size_t n)
{
	size_t off = RECORD_ALIGN(r->room_used, _Alignof(struct http1_header));
	char *p;

	if (n > sizeof(r->room) || off > sizeof(r->room) - n)
		return NULL;
	p = r->room + off;
	r->room_used = off + n;
	return p;
}

/* m's head (m is r->req or r->resp) in r's room, else in its own allocation; nhdrs
 * already capped. The room is only taken, never given back: the source may lie in it
 * (a head set twice), the copy goes behind it. */
static int record_room_set_head(struct st_record *r, struct st_msg *m, const char *head,
				size_t head_len, const struct http1_header *hdrs, size_t nhdrs)
{
	char *p = record_room_take(r, record_head_size(head_len, nhdrs));

	if (!p)
		return record_msg_set_head(m, head, head_len, hdrs, nhdrs);
	if (!m->head_inline)
		free(m->head);
	record_head_copy(m, p, head, head_len, hdrs, nhdrs);
	m->head_inline = true;
	return 0;
}

int record_req_set_head(struct st_record *r, const char *head, size_t head_len,
			const struct http1_header *hdrs, size_t nhdrs)
{
	if (nhdrs > ST_MAX_HEADERS)
		nhdrs = ST_MAX_HEADERS;
	return record_room_set_head(r, &r->req, head, head_len, hdrs, nhdrs);
}

uint8_t *record_raw_realloc(struct st_record *r, size_t cap)
{
	uint8_t *q;

	if (!r->raw) {
		q = (uint8_t *)record_room_take(r, cap);
		return q ? q : malloc(cap);
	}
	if (!record_in_room(r, r->raw))
		return realloc(r->raw, cap);
	/* out of the room: a heap copy (the room it leaves is not taken again) */
	if (cap <= r->raw_cap)
		return r->raw;
	q = malloc(cap);
	if (q && r->raw_len)
		memcpy(q, r->raw, r->raw_len);
	return q;
}

void record_raw_free(struct st_record *r)
{
	if (!record_in_room(r, r->raw))
		free(r->raw);
}

int record_resp_set_head(struct st_record *r, const char *head, size_t head_len,
			 const struct http1_header *hdrs, size_t nhdrs, size_t body_room)
{
	struct st_msg *m = &r->resp;
	size_t hs;
	char *p;

	if (nhdrs > ST_MAX_HEADERS)
		nhdrs = ST_MAX_HEADERS;
	hs = record_head_size(head_len, nhdrs);
	if (body_room) {
		if (m->head || m->body)
			return -EINVAL;
		p = hs <= sizeof(r->room) && body_room <= sizeof(r->room) - hs ?
		    record_room_take(r, hs + body_room) : NULL;
		if (!p)
			return record_msg_set_head_room(m, head, head_len, hdrs, nhdrs, body_room);
		record_head_copy(m, p, head, head_len, hdrs, nhdrs);
		m->head_inline = true;
		m->body = (uint8_t *)p + hs;
		m->body_cap = body_room;
		m->body_inline = true;
		return 0;
	}
	return record_room_set_head(r, m, head, head_len, hdrs, nhdrs);
}

int record_msg_set_head_room(struct st_msg *m, const char *head, size_t head_len,
			     const struct http1_header *hdrs, size_t nhdrs, size_t body_room)
{
	size_t hs;
	char *p;

	if (m->head || m->body)
		return -EINVAL;
	if (nhdrs > ST_MAX_HEADERS)
		nhdrs = ST_MAX_HEADERS;
	hs = record_head_size(head_len, nhdrs);
	if (body_room > SIZE_MAX - hs)
		return -EINVAL;
	p = malloc(hs + body_room);
	if (!p)
		return -ENOMEM;
	record_head_copy(m, p, head, head_len, hdrs, nhdrs);
	if (body_room) {
		m->body = (uint8_t *)p + hs;
		m->body_cap = body_room;
		m->body_inline = true;
	}
	return 0;
}

struct st_replay *record_replay_new(const char *target, const char *head, size_t head_len,
				    const struct http1_header *hdrs, size_t nhdrs, size_t body_room)
{
	size_t head_off = RECORD_ALIGN(sizeof(struct st_replay), _Alignof(struct http1_header));
	size_t body_off, hs;
	struct st_replay *rp;
	bool pooled;
	char *p;

	if (nhdrs > ST_MAX_HEADERS)
		nhdrs = ST_MAX_HEADERS;
	hs = record_head_size(head_len, nhdrs);
	body_off = head_off + hs;
	if (body_room > SIZE_MAX - body_off)
		return NULL;
	/* a block of the thread's own when it fits (blkpool.h): made and, for the
	 * usual replayed record, freed on the replay thread */
	p = blk_get(body_off + body_room);
	pooled = p != NULL;
	if (!p)
		p = malloc(body_off + body_room);
	if (!p)
		return NULL;
	rp = (struct st_replay *)(void *)p;
	memset(rp, 0, sizeof(*rp));
	rp->pooled = pooled;
	rp->target = (char *)target;
	rp->target_borrowed = true;
	record_head_copy(&rp->resp, p + head_off, head, head_len, hdrs, nhdrs);
	rp->resp.head_inline = true;
	if (body_room) {
		rp->resp.body = (uint8_t *)p + body_off;
		rp->resp.body_cap = body_room;
		rp->resp.body_inline = true;
	}
	return rp;
}

/* ---- JSON ---- */

static inline __attribute__((always_inline)) void record_put_key_n(struct buf *b, const char *k, size_t n, int *first)
{
	char *o;

	if (buf_reserve(b, n + 4))
		return;
	o = b->data + b->len;
	if (!*first)
		*o++ = ',';
	*first = 0;
	*o++ = '"';
	memcpy(o, k, n);
	o += n;
	*o++ = '"';
	*o++ = ':';
	*o = '\0';
	b->len = (size_t)(o - b->data);
}

/* every key is a string literal: its length is known at compile time */
#define record_put_key(b, k, first) record_put_key_n(b, k, __builtin_strlen(k), first)

static inline __attribute__((always_inline)) void record_put_str(struct buf *b, const char *k, const char *s, size_t n, int *first)
{
	record_put_key(b, k, first);
	buf_json_str(b, s, n);
}

/* A string value known at compile time to need no escaping, written with its quotes */
#define record_put_lit(b, k, v, first)                                   \
	do {                                                             \
		record_put_key(b, k, first);                             \
		buf_append(b, "\"" v "\"", __builtin_strlen(v) + 2);     \
	} while (0)

static inline __attribute__((always_inline)) void record_put_u64(struct buf *b, const char *k, uint64_t v, int *first)
{
	record_put_key(b, k, first);
	buf_put_u64_inl(b, v);
}

/* true or false, no key */
static inline __attribute__((always_inline)) void record_put_tf(struct buf *b, unsigned v)
{
	if (v)
		buf_append(b, "true", 4);
	else
		buf_append(b, "false", 5);
}

static inline __attribute__((always_inline)) void record_put_bool(struct buf *b, const char *k, int v, int *first)
{
	record_put_key(b, k, first);
	record_put_tf(b, (unsigned)v);
}

/* What header encoding needs to know about the redaction list, worked out once per
 * record: each name's length, and a 64-bit set of name signatures, so a header whose
 * signature is not in it is ruled out without a comparison. */
#define RECORD_RED_MAX 64

struct record_red {
	const char *const *names;
	size_t n;
	uint64_t sigs;
	size_t len[RECORD_RED_MAX];
	bool slow;               /* a longer list than len[] holds: lengths by strlen */
};

static inline unsigned char record_lc(unsigned char c)
{
	return (unsigned char)((unsigned)c - 'A' < 26u ? c | 0x20 : c);
}

/* Equal (ASCII case-insensitive) names have equal signatures: length, first and last
 * byte with 0x20 set (letters of either case alike; a hash, so the other bytes it
 * merges only cost a search). n > 0. */
static inline uint64_t record_name_sig(const char *s, size_t n)
{
	return 1ull << ((n + 3u * ((unsigned char)s[0] | 0x20u) +
			 5u * ((unsigned char)s[n - 1] | 0x20u)) & 63);
}

/* s and t (n bytes each) equal but for ASCII case */
static inline bool record_ncase_eq(const char *s, const char *t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != t[i] && record_lc((unsigned char)s[i]) != record_lc((unsigned char)t[i]))
			return false;
	return true;
}

static void record_red_init(struct record_red *rd, const struct record_json_opts *o)
{
	const char *const *r;

	rd->names = o ? o->redact : NULL;
	rd->n = 0;
	rd->sigs = 0;
	rd->slow = false;
	if (!rd->names)
		return;
	for (r = rd->names; *r; r++) {
		size_t l = strlen(*r);

		if (l)
			rd->sigs |= record_name_sig(*r, l);
		if (rd->n < RECORD_RED_MAX)
			rd->len[rd->n++] = l;
		else
			rd->slow = true;
	}
}

/* sig: record_name_sig(name, n), which the caller has already worked out */
static int record_is_redacted(const struct record_red *rd, const char *name, size_t n, uint64_t sig)
{
	size_t i;

	if (!rd->names || !n || !(rd->sigs & sig))
		return 0;
	for (i = 0; rd->names[i]; i++) {
		size_t l = i < RECORD_RED_MAX ? rd->len[i] : strlen(rd->names[i]);

		if (l == n && record_ncase_eq(rd->names[i], name, n))
			return 1;
	}
	return 0;
}

static inline bool record_hdr_name_eq(const struct http1_header *a, const struct http1_header *b)
{
	return a->name_len == b->name_len && record_ncase_eq(a->name, b->name, a->name_len);
}

/* A header name as a JSON key: lower case, at most 127 bytes. Names are tokens
 * (http1.c checks), written as they are; any other byte takes buf_json_str. */
static void record_put_name(struct buf *b, const char *s, size_t n)
{
	char name[128];
	size_t i;

	if (n > sizeof(name) - 1)
		n = sizeof(name) - 1;
	if (buf_json_token_lower(b, s, n) != 1)
		return;
	for (i = 0; i < n; i++)
		name[i] = (char)record_lc((unsigned char)s[i]);
	buf_json_str(b, name, n);
}

/* Headers as an object of lower-cased names; repeated names are joined with ", "
 * (RFC 9110 list semantics) so every value is one keyword in Elasticsearch. */
static void record_put_headers(struct buf *b, const char *k, const struct st_msg *m,
			       const struct record_json_opts *o, const struct record_red *rd,
			       int *first)
{
	uint64_t once = 0, twice = 0, sig[ST_MAX_HEADERS];
	size_t i, j, nh = m->nhdrs < ST_MAX_HEADERS ? m->nhdrs : ST_MAX_HEADERS;
	int f = 1;

	record_put_key(b, k, first);
	buf_putc(b, '{');
	/* a name whose signature no other header shares is unique: no search for its
	 * repeats (nearly every header) */
	for (i = 0; i < nh; i++) {
		sig[i] = m->hdrs[i].name_len ? record_name_sig(m->hdrs[i].name, m->hdrs[i].name_len) : 1;
		twice |= once & sig[i];
		once |= sig[i];
	}
	if (m->nhdrs > ST_MAX_HEADERS)
		twice = ~0ull;      /* not from http1.c: no signatures past the array, search all */
	nh = m->nhdrs;
	for (i = 0; i < nh; i++) {
		const struct http1_header *h = &m->hdrs[i];
		bool shared = i >= ST_MAX_HEADERS || (twice & sig[i]);
		int seen = 0, redacted;

		for (j = 0; shared && j < i && !seen; j++)
			seen = record_hdr_name_eq(&m->hdrs[j], h);
		if (seen)
			continue;
		redacted = record_is_redacted(rd, h->name, h->name_len,
					      i < ST_MAX_HEADERS ? sig[i] :
					      h->name_len ? record_name_sig(h->name, h->name_len) : 1);
		/* join repeats; a name seen once (nearly all) is encoded straight from the head */
		j = nh;
		if (shared && !redacted)
			for (j = i + 1; j < nh; j++)
				if (record_hdr_name_eq(&m->hdrs[j], h))
					break;
		/* the usual header, "name":"value" with one reserve */
		if (!redacted && j == nh &&
		    buf_json_member_lower_inl(b, !f, h->name, h->name_len, h->value, h->value_len) != 1) {
			f = 0;
			continue;
		}
		if (!f)
			buf_putc(b, ',');
		f = 0;
		record_put_name(b, h->name, h->name_len);
		buf_putc(b, ':');
		if (redacted) {
			char tok[PII_TOKEN_LEN + 1];
			size_t tl = pii_replacement(o->pii ? o->pii->mode : PII_MASK, o->pii ? &o->pii->key : NULL,
						    h->value, h->value_len, tok);

			buf_json_str(b, tok, tl);
			continue;
		}
		if (j == nh) {
			buf_json_str(b, h->value, h->value_len);
		} else {
			struct buf v = { 0 };

			buf_append(&v, h->value, h->value_len);
			for (; j < nh; j++)
				if (record_hdr_name_eq(&m->hdrs[j], h)) {
					buf_append(&v, ", ", 2);
					buf_append(&v, m->hdrs[j].value, m->hdrs[j].value_len);
				}
			buf_json_str(b, v.data ? v.data : "", v.len);
			buf_free(&v);
		}
	}
	buf_putc(b, '}');
}

/* Text if it is valid UTF-8 without NUL or C0 controls other than \t \r \n; a
 * sequence cut by the body limit at the very end does not count against it. */
static int record_body_is_text(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c;
		size_t len, k;

		i += buf_text_ascii_prefix(p + i, n - i);
		if (i >= n)
			break;
		c = p[i];
		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
				return 0;
			if (c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			len = 2;
		else if ((c & 0xf0) == 0xe0)
			len = 3;
		else if ((c & 0xf8) == 0xf0)
			len = 4;
		else
			return 0;
		if (i + len > n)
			return n - i < 4;   /* cut at the limit */
		for (k = 1; k < len; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

static void record_put_body(struct buf *b, const char *k, const struct st_msg *m,
			    const struct st_record *r, const struct record_json_opts *o, int *first)
{
	struct buf red = { 0 };
	int f = 1;

	record_put_key(b, k, first);
	buf_putc(b, '{');
	record_put_u64(b, "bytes", m->body_bytes, &f);
	if (m->body_stored) {
		size_t n = m->body_stored;

		if (record_body_is_text(m->body, n)) {
			/* drop a UTF-8 sequence cut by the limit, only if it is cut: find the
			 * last lead byte and keep it when its sequence is whole */
			size_t lead = n, want;

			while (lead && n - lead < 4 && (m->body[lead - 1] & 0xc0) == 0x80)
				lead--;
			if (lead && m->body[lead - 1] >= 0xc0) {
				uint8_t c = m->body[lead - 1];

				want = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
				if (n - (lead - 1) < want)
					n = lead - 1;
			}
			struct pii_lit lits[8];
			size_t nl = 0;
			bool rewrites = o && pii_cfg_rewrites(o->pii);

			/* a redacted query value the server echoes is scrubbed from bodies too
			 * (the values are looked for only when something rewrites) */
			if (rewrites && r->target)
				nl = pii_query_values(o->pii, r->target, r->target_len, lits, 8);
			if (rewrites &&
			    pii_redact_text_lits(o->pii, (const char *)m->body, n, lits, nl, &red) > 0)
				record_put_str(b, "content", red.data, red.len, &f);
			else
				record_put_str(b, "content", (const char *)m->body, n, &f);
			if (red.data)
				buf_free(&red);
		} else {
			record_put_key(b, "content", &f);
			buf_putc(b, '"');
			buf_base64(b, m->body, m->body_stored);
			buf_putc(b, '"');
			record_put_lit(b, "encoding", "base64", &f);
		}
	}
	if (m->body_stored < m->body_bytes)
		record_put_bool(b, "truncated", 1, &f);
	buf_putc(b, '}');
}

/* The address as a JSON string */
static void record_put_ip_val(struct buf *b, uint8_t family, const uint32_t *a)
{
	char s[INET6_ADDRSTRLEN];
	size_t n = 0;

	if (family != 6) {
		/* dotted quad by hand (inet_ntop formats IPv4 with sprintf), quoted and
		 * written in place: digits and dots need no escaping */
		const uint8_t *q = (const uint8_t *)a;
		char *o;
		int i;

		if (buf_reserve(b, 17))
			return;
		o = b->data + b->len;
		*o++ = '"';
		for (i = 0; i < 4; i++) {
			unsigned v = q[i];

			if (v >= 100) {
				*o++ = (char)('0' + v / 100);
				v %= 100;
				*o++ = (char)('0' + v / 10);
			} else if (v >= 10) {
				*o++ = (char)('0' + v / 10);
			}
			*o++ = (char)('0' + v % 10);
			*o++ = '.';
		}
		o[-1] = '"';
		*o = '\0';
		b->len = (size_t)(o - b->data);
		return;
	}
	if (inet_ntop(AF_INET6, a, s, sizeof(s))) {
		n = strlen(s);
	} else {
		s[n++] = '?';
	}
	buf_json_str(b, s, n);
}

/* A run of keys and punctuation known at compile time, written in one copy (issue
 * 19: a record's fixed parts were a reserve, a comma test and a copy per key) */
#define record_put_raw(b, lit) buf_append(b, lit, sizeof(lit) - 1)

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (quoted) without stdio: the part down to the second
 * is formatted once per second and thread (records arrive in time order). */
static void record_put_time_val(struct buf *b, uint64_t ns)
{
	static __thread time_t cached_sec = -1;
	static __thread char cached[24];
	static __thread size_t cached_len;
	time_t sec = (time_t)(ns / 1000000000ull);

	if (sec != cached_sec) {
		struct tm tm;

		gmtime_r(&sec, &tm);
		if (strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S.", &tm) == 0)
			strcpy(cached, "1970-01-01T00:00:00.");
		cached_len = strlen(cached);
		cached_sec = sec;
	}
	buf_putc(b, '"');
	buf_append(b, cached, cached_len);
	buf_put_u_fixed(b, ns % 1000000000ull / 1000, 6);
	buf_append(b, "Z\"", 2);
}

static void record_put_url(struct buf *b, const struct st_record *r, const struct record_json_opts *o,
			   int *first)
{
	const char *t = r->target, *end, *path, *q;
	size_t tlen = r->target_len;
	struct buf red = { 0 };
	int f = 1;

	if (o && pii_cfg_rewrites(o->pii) && pii_redact_target(o->pii, t, tlen, &red) > 0) {
		t = red.data;
		tlen = red.len;
	}
	end = t + tlen;
	path = t;
	/* absolute-form (proxies): the path starts after scheme://authority */
	if (tlen > 7 && (t[0] | 0x20) == 'h' && (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0)) {
		const char *s = memchr(t, ':', tlen) + 3;

		path = memchr(s, '/', (size_t)(end - s));
		if (!path)
			path = end;
	}
	q = memchr(path, '?', (size_t)(end - path));
	record_put_key(b, "url", first);
	buf_putc(b, '{');
	record_put_str(b, "original", t, tlen, &f);
	record_put_str(b, "path", path, (size_t)((q ? q : end) - path), &f);
	if (q)
		record_put_str(b, "query", q + 1, (size_t)(end - q - 1), &f);
	buf_putc(b, '}');
	buf_free(&red);
}

static void record_put_replay(struct buf *b, const struct st_record *r,
			      const struct record_json_opts *o, const struct record_red *rd, int *first)
{
	const struct st_replay *rp = r->replay;
	int f = 1;

	record_put_key(b, "replay", first);
	buf_putc(b, '{');
	if (!rp) {
		record_put_str(b, "skipped", r->replay_skip, strlen(r->replay_skip), &f);
		buf_putc(b, '}');
		return;
	}
	if (rp->target)
		record_put_str(b, "target", rp->target, strlen(rp->target), &f);
	if (rp->error) {
		record_put_str(b, "error", rp->error, strlen(rp->error), &f);
	} else {
		record_put_u64(b, "status_code", (uint64_t)rp->status_code, &f);
		record_put_headers(b, "headers", &rp->resp, o, rd, &f);
		record_put_body(b, "body", &rp->resp, r, o, &f);
		record_put_u64(b, "duration", rp->duration_ns, &f);
	}
	buf_putc(b, '}');
}

static void record_put_str_array(struct buf *b, const char *k, char *const *v, size_t n, int *first)
{
	size_t i;

	record_put_key(b, k, first);
	buf_putc(b, '[');
	for (i = 0; i < n; i++) {
		if (i)
			buf_putc(b, ',');
		buf_json_str(b, v[i], strlen(v[i]));
	}
	buf_putc(b, ']');
}

static void record_put_diff(struct buf *b, const struct st_diff *d, int *first)
{
	size_t i;
	int f = 1;

	record_put_key(b, "diff", first);
	buf_putc(b, '{');
	record_put_bool(b, "match", d->match, &f);
	record_put_bool(b, "status", d->status_same, &f);
	record_put_str_array(b, "headers", d->headers, d->nheaders, &f);
	record_put_bool(b, "body", d->body_same, &f);
	if (d->body_json)
		record_put_bool(b, "body_json", 1, &f);
	if (d->nbody_paths)
		record_put_str_array(b, "body_paths", d->body_paths, d->nbody_paths, &f);
	if (d->reason)
		record_put_str(b, "reason", d->reason, strlen(d->reason), &f);
	if (d->endpoint)
		record_put_str(b, "endpoint", d->endpoint, strlen(d->endpoint), &f);
	if (d->nfields) {
		record_put_key(b, "fields", &f);
		buf_putc(b, '[');
		for (i = 0; i < d->nfields; i++) {
			const struct st_field *fl = &d->fields[i];
			int g = 1;

			if (i)
				buf_putc(b, ',');
			buf_putc(b, '{');
			record_put_str(b, "path", fl->path, strlen(fl->path), &g);
			record_put_str(b, "kind", fields_kind_name(fl->kind),
				       strlen(fields_kind_name(fl->kind)), &g);
			if (fl->a)
				record_put_str(b, "a", fl->a, strlen(fl->a), &g);
			if (fl->b)
				record_put_str(b, "b", fl->b, strlen(fl->b), &g);
			if (fl->noise)
				record_put_bool(b, "noise", 1, &g);
			if (fl->ignored)
				record_put_bool(b, "ignored", 1, &g);
			buf_putc(b, '}');
		}
		buf_putc(b, ']');
		if (d->fields_total > d->nfields)
			record_put_u64(b, "fields_total", d->fields_total, &f);
	}
	if (d->noise_source) {
		int g = 1;

		record_put_key(b, "noise", &f);
		buf_putc(b, '{');
		record_put_str(b, "source", d->noise_source, strlen(d->noise_source), &g);
		record_put_str_array(b, "fields", d->noise_paths, d->nnoise, &g);
		buf_putc(b, '}');
	}
	buf_putc(b, '}');
}

int record_to_json(const struct st_record *r, const struct record_json_opts *o, struct buf *out)
{
	uint64_t t0 = r->req.ts_first_ns ? r->req.ts_first_ns : r->resp.ts_first_ns;
	uint64_t t1 = r->resp.ts_last_ns ? r->resp.ts_last_ns : r->req.ts_last_ns;
	size_t start_len = out->len;
	int f = 1, g, h;
	struct record_red rd;

	record_red_init(&rd, o);

	/* the fixed keys between the values written as one literal each */
	record_put_raw(out, "{\"@timestamp\":");
	record_put_time_val(out, (uint64_t)((int64_t)t0 + r->clock_offset_ns));
	record_put_raw(out, ",\"event\":{\"id\":");
	buf_json_str(out, r->event_id, strlen(r->event_id));
	record_put_raw(out, ",\"duration\":");
	buf_put_u64_inl(out, t1 > t0 ? t1 - t0 : 0);
	record_put_raw(out, ",\"kind\":\"event\",\"dataset\":\"shadowtap.exchange\"},"
		       "\"source\":{\"ip\":");
	record_put_ip_val(out, r->family, r->caddr);
	record_put_raw(out, ",\"port\":");
	buf_put_u64_inl(out, r->cport);
	record_put_raw(out, "},\"destination\":{\"ip\":");
	record_put_ip_val(out, r->family, r->saddr);
	record_put_raw(out, ",\"port\":");
	buf_put_u64_inl(out, r->sport);
	/* connection_id is a JSON string: above 2^53 a JSON number is rounded by jq, Kibana
	 * and any reader that parses numbers as doubles, and the rounded id then matches
	 * nothing */
	if (r->family == 6)
		record_put_raw(out, "},\"network\":{\"transport\":\"tcp\",\"type\":\"ipv6\","
			       "\"connection_id\":\"");
	else
		record_put_raw(out, "},\"network\":{\"transport\":\"tcp\",\"type\":\"ipv4\","
			       "\"connection_id\":\"");
	buf_put_u64_inl(out, r->flow_id);
	record_put_raw(out, "\",\"request_index\":");
	buf_put_u64_inl(out, r->index);
	buf_putc(out, '}');
	f = 0;

	if (!r->method) {
		record_put_raw(out, ",\"http\":{");
		g = 1;
	} else if (r->http_minor < 0) {
		record_put_raw(out, ",\"http\":{\"version\":\"0.9\"");
		g = 0;
	} else {
		char ver[] = ",\"http\":{\"version\":\"1.x\"";

		ver[sizeof(ver) - 3] = (char)('0' + (r->http_minor % 10));
		buf_append(out, ver, sizeof(ver) - 1);
		g = 0;
	}
	record_put_key(out, "request", &g);
	h = 1;
	buf_putc(out, '{');
	if (r->method)
		record_put_str(out, "method", r->method, r->method_len, &h);
	record_put_headers(out, "headers", &r->req, o, &rd, &h);
	record_put_body(out, "body", &r->req, r, o, &h);
	record_put_u64(out, "bytes", r->req.wire_bytes, &h);
	buf_putc(out, '}');
	/* an HTTP/0.9 reply has neither head nor status: its bytes make it a response */
	if (r->resp.head || r->status_code || r->resp.wire_bytes || r->resp.complete) {
		record_put_key(out, "response", &g);
		h = 1;
		buf_putc(out, '{');
		if (r->status_code)
			record_put_u64(out, "status_code", (uint64_t)r->status_code, &h);
		record_put_headers(out, "headers", &r->resp, o, &rd, &h);
		record_put_body(out, "body", &r->resp, r, o, &h);
		record_put_u64(out, "bytes", r->resp.wire_bytes, &h);
		buf_putc(out, '}');
	}
	buf_putc(out, '}');

	if (r->target)
		record_put_url(out, r, o, &f);
	if (r->replay || r->replay_skip)
		record_put_replay(out, r, o, &rd, &f);
	if (r->diff)
		record_put_diff(out, r->diff, &f);

	if (r->source == ST_SRC_OPENSSL) {
		record_put_key(out, "tls", &f);
		g = 1;
		buf_putc(out, '{');
		record_put_bool(out, "established", 1, &g);
		buf_putc(out, '}');
	}

	if (r->source == ST_SRC_OPENSSL)
		record_put_raw(out, ",\"capture\":{\"source\":\"openssl\",\"complete\":");
	else
		record_put_raw(out, ",\"capture\":{\"source\":\"packet\",\"complete\":");
	record_put_tf(out, !(r->cap_flags & ST_CAP_INCOMPLETE) && r->req.complete && r->resp.complete);
	record_put_raw(out, ",\"incomplete\":");
	record_put_tf(out, r->cap_flags & ST_CAP_INCOMPLETE);
	record_put_raw(out, ",\"gap\":");
	record_put_tf(out, r->cap_flags & ST_CAP_GAP);
	g = 0;
	if (r->gap_bytes)
		record_put_u64(out, "gap_bytes", r->gap_bytes, &g);
	record_put_bool(out, "truncated", !!(r->cap_flags & ST_CAP_TRUNCATED), &g);
	if (r->cap_flags & ST_CAP_MALFORMED)
		record_put_str(out, "malformed", r->malformed ? r->malformed : "malformed",
			strlen(r->malformed ? r->malformed : "malformed"), &g);
	if (r->cap_flags & ST_CAP_NO_RESPONSE)
		record_put_bool(out, "no_response", 1, &g);
	if (r->evicted)
		record_put_str(out, "evicted", r->evicted, strlen(r->evicted), &g);
	if (r->cap_flags & ST_CAP_MID_STREAM)
		record_put_bool(out, "mid_stream", 1, &g);
	if (r->cap_flags & ST_CAP_UPGRADED)
		record_put_bool(out, "upgraded", 1, &g);
	if (r->cap_flags & ST_CAP_REPLAY_TRUNC)
		record_put_bool(out, "replay_truncated", 1, &g);
	if (r->cap_flags & ST_CAP_HEADERS_OVER)
		record_put_bool(out, "headers_over_limit", 1, &g);
	buf_putc(out, '}');
	buf_putc(out, '}');

	/* every buf_* call above fails only on ENOMEM; check once */
	if (!out->data || out->len <= start_len || out->data[out->len - 1] != '}')
		return -ENOMEM;
	return 0;
}
