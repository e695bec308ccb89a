/* Bounded multi-producer/single-consumer queue of pointers between pipeline
 * threads. Owns: the slot array. A full queue refuses (never blocks the producer). */
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
	uint64_t pushed, refused, peak;
};

int bq_init(struct bq *q, size_t cap);           /* 0 or -ENOMEM */
void bq_destroy(struct bq *q);
int bq_push(struct bq *q, void *p);              /* 0, -ENOSPC when full, -EPIPE when closed */
/* Pop up to max items; waits up to timeout_ms for the first one. Returns count;
 * 0 on timeout; -EPIPE once closed and empty. */
int bq_pop(struct bq *q, void **out, size_t max, int timeout_ms);
void bq_close(struct bq *q);                      /* wakes the consumer */
size_t bq_len(struct bq *q);

#endif
