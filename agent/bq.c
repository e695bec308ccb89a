/* Bounded queue; see bq.h. A full queue refuses: it never blocks a producer. The
 * consumer is woken once per batch, on the empty -> non-empty edge, and takes what is
 * there in one pop; a napping consumer (bq_set_nap) only when a push is urgent. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bq.h"

int bq_init(struct bq *q, size_t cap)
{
	pthread_condattr_t ca;

	q->slots = calloc(cap ? cap : 1, sizeof(void *));
	if (!q->slots)
		return -ENOMEM;
	q->cap = cap ? cap : 1;
	q->head = q->len = 0;
	q->closed = 0;
	q->efd = -1;
	q->efd_set = 0;
	q->awake = 0;
	q->efd_writes = q->efd_skips = 0;
	q->nap_ms = q->warm = q->napping = 0;
	q->nap_wake_bytes = 0;
	q->naps = q->nap_wakes = 0;
	q->pushed = q->refused = q->peak = 0;
	q->item_bytes = NULL;
	q->sizes = NULL;
	q->max_bytes = q->bytes = q->peak_bytes = 0;
	q->refused_bytes = 0;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void bq_destroy(struct bq *q)
{
	if (!q->slots)
		return;
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	if (q->efd >= 0)
		close(q->efd);
	q->efd = -1;
	free(q->slots);
	q->slots = NULL;
	free(q->sizes);
	q->sizes = NULL;
}

/* Called with the lock held, on the empty -> non-empty edge. The eventfd is written
 * and read at most once per empty -> non-empty -> empty cycle, so a batch costs two
 * syscalls, not two per item; it is written under the lock, so the pop that empties
 * the queue always finds it written. The condition variable is signalled by the
 * caller after the unlock (bq_wake_after).
 *
 * Not at all while the consumer is awake (issue 19): it looks at the queue before it
 * blocks (bq_wait_begin). No wake-up is lost, by a seq_cst store -> seq_cst load on
 * both sides: here the new length was stored (bq_put, seq_cst) and `awake` is loaded
 * after it (seq_cst); bq_wait_begin stores awake = 0 and then loads the length, both
 * seq_cst. All four are in one total order: if the length's store comes before the
 * consumer's load, the consumer sees the item and does not block; otherwise its store
 * of awake = 0 came first and this load sees it, so the eventfd is written. With
 * relaxed accesses each side's store could still sit in its CPU's store buffer while
 * it loads (x86 lets a load pass an earlier store), and both would miss the other.
 * (seq_cst accesses rather than fences: ThreadSanitizer does not support fences, and
 * a seq_cst store on x86 is one xchg, under the lock here.) */
static void bq_wake_efd(struct bq *q)
{
	if (q->efd < 0 || q->efd_set)
		return;
	if (__atomic_load_n(&q->awake, __ATOMIC_SEQ_CST)) {
		q->efd_skips++;
		return;
	}
	q->efd_set = 1;
	q->efd_writes++;
	(void)eventfd_write(q->efd, 1);
}

size_t bq_wait_begin(struct bq *q)
{
	size_t n;

	__atomic_store_n(&q->awake, 0, __ATOMIC_SEQ_CST);      /* see bq_wake_efd */
	n = __atomic_load_n(&q->len, __ATOMIC_SEQ_CST);
	if (n)
		__atomic_store_n(&q->awake, 1, __ATOMIC_RELAXED);
	return n;
}

/* A push that still sees awake == 0 writes the eventfd once more: harmless (the next
 * pop that empties the queue reads it). */
void bq_wait_end(struct bq *q)
{
	__atomic_store_n(&q->awake, 1, __ATOMIC_RELAXED);
}

/* Called after the lock is released (issue 19): a consumer signalled while the
 * producer still held the mutex woke only to block on it, and the producer's unlock
 * then had to wake it a second time (a second futex wake and context switch per
 * batch). A consumer that starts waiting after the unlock sees the items first. */
static void bq_wake_after(struct bq *q, bool wake)
{
	if (wake)
		pthread_cond_signal(&q->cv);
}

static void bq_quiet(struct bq *q)
{
	eventfd_t v;

	if (q->efd >= 0 && q->efd_set && q->len == 0) {
		q->efd_set = 0;
		(void)eventfd_read(q->efd, &v);
	}
}

void bq_set_max_bytes(struct bq *q, size_t max_bytes, size_t (*item_bytes)(const void *item))
{
	/* the pop takes an item's size from here, not from the item again (without it,
	 * item_bytes is called at pop too) */
	size_t *sizes = item_bytes && max_bytes ? calloc(q->cap, sizeof(*sizes)) : NULL;

	pthread_mutex_lock(&q->mu);
	q->max_bytes = item_bytes ? max_bytes : 0;
	q->item_bytes = max_bytes ? item_bytes : NULL;
	free(q->sizes);
	q->sizes = sizes;
	pthread_mutex_unlock(&q->mu);
}

void bq_set_nap(struct bq *q, int nap_ms, size_t wake_bytes)
{
	pthread_mutex_lock(&q->mu);
	q->nap_ms = nap_ms > 0 ? nap_ms : 0;
	q->nap_wake_bytes = wake_bytes;
	pthread_mutex_unlock(&q->mu);
}

/* Called with the lock held after items were added (was: the length before): whether
 * to signal the consumer. A napping consumer is woken only for an urgent push or a
 * queue at a quarter of a bound, so the bounds are not reached while it naps. */
static bool bq_wake_needed(struct bq *q, size_t was, int urgent)
{
	if (q->napping) {
		if (!urgent && q->len < q->cap / 4 + 1 &&
		    !(q->max_bytes && q->bytes >= q->max_bytes / 4) &&
		    !(q->nap_wake_bytes && q->bytes >= q->nap_wake_bytes))
			return false;
		q->napping = 0;
		q->nap_wakes++;
		return true;
	}
	if (was != 0 || !q->len)
		return false;
	bq_wake_efd(q);
	return true;
}

/* Called with the lock held: append p, or say why not (-ENOSPC, -ENOBUFS). */
static int bq_put(struct bq *q, void *p)
{
	size_t b;

	if (q->len == q->cap)
		return -ENOSPC;
	if (q->item_bytes) {
		b = q->item_bytes(p);
		if (q->len && (b > q->max_bytes || q->bytes > q->max_bytes - b))
			return -ENOBUFS;
		q->bytes += b;
		if (q->bytes > q->peak_bytes)
			q->peak_bytes = q->bytes;
		if (q->sizes)
			q->sizes[(q->head + q->len) % q->cap] = b;
	}
	q->slots[(q->head + q->len) % q->cap] = p;
	/* read unlocked by bq_len and bq_wait_begin; seq_cst: see bq_wake_efd */
	__atomic_store_n(&q->len, q->len + 1, __ATOMIC_SEQ_CST);
	return 0;
}

int bq_push(struct bq *q, void *p)
{
	int err;
	bool w = false;

	pthread_mutex_lock(&q->mu);
	if (q->closed) {
		err = -EPIPE;
	} else {
		err = bq_put(q, p);
		if (err) {
			q->refused++;
			q->refused_bytes += err == -ENOBUFS;
		} else {
			q->pushed++;
			if (q->len > q->peak)
				q->peak = q->len;
			/* wake only on the empty -> non-empty edge: the consumer drains in batches */
			w = bq_wake_needed(q, q->len - 1, 0);
		}
	}
	pthread_mutex_unlock(&q->mu);
	bq_wake_after(q, w);
	return err;
}

int bq_push_many_ex(struct bq *q, void *const *items, size_t n, int *full, int urgent)
{
	size_t k = 0, was;
	int err = 0;
	bool w = false;

	if (full)
		*full = 0;
	if (!n)
		return 0;
	pthread_mutex_lock(&q->mu);
	if (q->closed) {
		pthread_mutex_unlock(&q->mu);
		return -EPIPE;
	}
	was = q->len;
	while (k < n && !(err = bq_put(q, items[k])))
		k++;
	q->pushed += k;
	q->refused += n - k;
	if (err == -ENOBUFS)
		q->refused_bytes += n - k;
	if (full)
		*full = err;
	if (q->len > q->peak)
		q->peak = q->len;
	w = bq_wake_needed(q, was, urgent);
	pthread_mutex_unlock(&q->mu);
	bq_wake_after(q, w);
	return (int)k;
}

int bq_push_many_why(struct bq *q, void *const *items, size_t n, int *full)
{
	return bq_push_many_ex(q, items, n, full, 0);
}

int bq_push_many(struct bq *q, void *const *items, size_t n)
{
	return bq_push_many_why(q, items, n, NULL);
}

int bq_pop(struct bq *q, void **out, size_t max, int timeout_ms)
{
	struct timespec ts;
	size_t n = 0;
	bool nap;

	pthread_mutex_lock(&q->mu);
	if (q->len == 0 && !q->closed && timeout_ms > 0) {
		/* busy (the last pop took items): nap, and let the items gather */
		nap = q->nap_ms && q->warm;
		if (nap && q->nap_ms < timeout_ms)
			timeout_ms = q->nap_ms;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (nap) {
			q->napping = 1;
			q->naps++;
			while (q->napping && !q->closed)
				if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT)
					break;
			q->napping = 0;
		} else {
			while (q->len == 0 && !q->closed)
				if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT)
					break;
		}
	}
	while (n < max && q->len) {
		out[n] = q->slots[q->head];
		if (q->item_bytes)
			q->bytes -= q->sizes ? q->sizes[q->head] : q->item_bytes(out[n]);
		n++;
		q->head = (q->head + 1) % q->cap;
		__atomic_store_n(&q->len, q->len - 1, __ATOMIC_RELAXED);
	}
	/* a pop with a timeout is the consumer's wait: it stays warm while it finds items */
	if (timeout_ms > 0)
		q->warm = n > 0;
	/* once closed, the fd stays readable until a pop has returned -EPIPE */
	if (!q->closed || n == 0)
		bq_quiet(q);
	if (n == 0 && q->closed) {
		pthread_mutex_unlock(&q->mu);
		return -EPIPE;
	}
	pthread_mutex_unlock(&q->mu);
	return (int)n;
}

void bq_close(struct bq *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = 1;
	pthread_cond_broadcast(&q->cv);
	if (q->efd >= 0 && !q->efd_set) {
		q->efd_set = 1;
		(void)eventfd_write(q->efd, 1);
	}
	pthread_mutex_unlock(&q->mu);
}

/* Without the lock: the replay thread asks twice per pass whether records wait, and
 * taking the mutex there made the loop thread's push wait for it (a futex wait and
 * wake) when they met. Changed only under the lock, so the answer is exact for the
 * consumer (only it pops) as far as items already pushed; a push racing with it is
 * found by the consumer's next look, or wakes it through the eventfd. */
size_t bq_len(struct bq *q)
{
	return __atomic_load_n(&q->len, __ATOMIC_RELAXED);
}

void bq_get_stats(struct bq *q, struct bq_stats *st)
{
	if (!q->slots) {                /* never initialised, or destroyed */
		memset(st, 0, sizeof(*st));
		return;
	}
	pthread_mutex_lock(&q->mu);
	st->pushed = q->pushed;
	st->refused = q->refused;
	st->peak = q->peak;
	st->len = q->len;
	st->cap = q->cap;
	st->refused_bytes = q->refused_bytes;
	st->bytes = q->bytes;
	st->peak_bytes = q->peak_bytes;
	st->max_bytes = q->max_bytes;
	st->naps = q->naps;
	st->nap_wakes = q->nap_wakes;
	st->efd_writes = q->efd_writes;
	st->efd_skips = q->efd_skips;
	pthread_mutex_unlock(&q->mu);
}

int bq_event_fd(struct bq *q)
{
	int fd;

	pthread_mutex_lock(&q->mu);
	if (q->efd < 0) {
		q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->efd < 0) {
			fd = -errno;
			pthread_mutex_unlock(&q->mu);
			return fd;
		}
		/* items pushed before the fd existed must still wake the consumer */
		if (q->len || q->closed) {
			q->efd_set = 1;
			(void)eventfd_write(q->efd, 1);
		}
	}
	fd = q->efd;
	pthread_mutex_unlock(&q->mu);
	return fd;
}
