/* Bounded multi-producer/single-consumer pointer queue: the hand-off between threads.
 * Owns: the slots and the consumer's wake-up (condition variable or eventfd). */
#ifndef ST_BQ_H
#define ST_BQ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct bq {
	void **slots;
	size_t cap, head, len;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int closed;
	int efd;                 /* bq_event_fd, or -1 */
	int efd_set;             /* efd holds an unread wake-up */
	int awake;               /* bq_wait_end .. bq_wait_begin: the efd consumer will look */
	uint64_t efd_writes, efd_skips;   /* edge wake-ups written; skipped (consumer awake) */
	/* bq_set_nap: a busy consumer naps instead of being woken per push */
	int nap_ms;
	size_t nap_wake_bytes;   /* queued bytes that end a nap; 0: off */
	int warm;                /* the consumer's last pop took items */
	int napping;             /* the consumer naps: only an urgent push wakes it */
	uint64_t naps, nap_wakes;   /* naps taken; naps cut short by an urgent push */
	uint64_t pushed, refused, peak;
	/* optional byte bound (bq_set_max_bytes): what the queued items hold */
	size_t (*item_bytes)(const void *item);
	size_t *sizes;           /* each slot's item_bytes, taken once at push (or NULL) */
	size_t max_bytes, bytes, peak_bytes;
	uint64_t refused_bytes;  /* of refused: refused by the byte bound */
};

struct bq_stats {
	uint64_t pushed, refused, peak;
	size_t len, cap;
	uint64_t refused_bytes;
	size_t bytes, peak_bytes, max_bytes;
	uint64_t naps, nap_wakes;
	uint64_t efd_writes, efd_skips;
};

int bq_init(struct bq *q, size_t cap);           /* 0 or -ENOMEM */
void bq_destroy(struct bq *q);                    /* accepts a zeroed or destroyed queue */
/* Bound the queue in bytes as well as items: item_bytes(item) is what an item holds
 * (it must not change while queued); an item that would take the total over max_bytes
 * is refused unless the queue is empty (so one large item still passes). Call before
 * any push; max_bytes 0 leaves the queue bounded in items only. */
void bq_set_max_bytes(struct bq *q, size_t max_bytes, size_t (*item_bytes)(const void *item));
/* 0, -ENOSPC when full of items, -ENOBUFS when full in bytes, -EPIPE when closed */
int bq_push(struct bq *q, void *p);
/* Push up to n items under one lock and one wake-up (a producer's batch). Returns how
 * many were taken, in order (the rest did not fit; they count as refused), or -EPIPE
 * when closed. */
int bq_push_many(struct bq *q, void *const *items, size_t n);
/* The same, and *full says why the rest was refused: -ENOSPC (items) or -ENOBUFS (bytes). */
int bq_push_many_why(struct bq *q, void *const *items, size_t n, int *full);
/* A consumer that pops with a timeout (not through bq_event_fd) may nap: after a pop
 * that took items, the next pop that finds the queue empty sleeps up to nap_ms, and
 * pushes during that nap do not wake it unless they are urgent (bq_push_many_ex with
 * urgent, or the queue at a quarter of its item or byte bound). A busy consumer then
 * wakes about once per nap_ms instead of once per push; an item waits at most nap_ms
 * longer for it. A nap that ends with nothing queued ends the busy period: the next
 * push wakes the consumer at once, as without a nap. nap_ms 0 (the default): off.
 * A push that brings the queued bytes (bq_set_max_bytes' item_bytes) to wake_bytes
 * also ends a nap: large items (POST records) are then written while they are still
 * in the caches instead of piling up for nap_ms. wake_bytes 0: only the quarter of
 * max_bytes does. */
void bq_set_nap(struct bq *q, int nap_ms, size_t wake_bytes);
/* bq_push_many_why, and urgent wakes a napping consumer at once. */
int bq_push_many_ex(struct bq *q, void *const *items, size_t n, int *full, int urgent);
/* Pop up to max items; waits up to timeout_ms for the first one. Returns count;
 * 0 on timeout; -EPIPE once closed and empty. */
int bq_pop(struct bq *q, void **out, size_t max, int timeout_ms);
void bq_close(struct bq *q);                      /* wakes the consumer */
size_t bq_len(struct bq *q);
void bq_get_stats(struct bq *q, struct bq_stats *st);   /* zeros before init / after destroy */
/* An eventfd, made on first call, for a consumer that waits in epoll and pops with
 * timeout 0: readable while the queue holds items, and once closed until a pop has
 * returned -EPIPE. The bq_pop that leaves the queue empty reads it. Returns the fd
 * or -errno. */
int bq_event_fd(struct bq *q);
/* For the consumer of bq_event_fd, around its blocking wait (epoll_wait): an awake
 * consumer is not woken. bq_wait_end, after the wait returned, says it will look at
 * the queue again before it next blocks; pushes until then skip the eventfd write (a
 * system call, plus an epoll event and a read for the consumer). bq_wait_begin, right
 * before the wait, says it is about to block: it returns 0 when the queue is empty
 * (block: from now on the empty -> non-empty push writes the eventfd), else how many
 * items are queued (do not block: take them; the consumer stays awake). A consumer that
 * never calls bq_wait_end is woken by every such push, as without these. */
size_t bq_wait_begin(struct bq *q);
void bq_wait_end(struct bq *q);

#endif
