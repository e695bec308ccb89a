/* Per-thread free lists of BLK_SIZE blocks (blkpool.h). */
#include "blkpool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define BLK_POISON(h) ASAN_POISON_MEMORY_REGION((char *)(h) + BLK_HDR, BLK_MAX)
#define BLK_UNPOISON(h) ASAN_UNPOISON_MEMORY_REGION((char *)(h) + BLK_HDR, BLK_MAX)
#else
#define BLK_POISON(h) ((void)(h))
#define BLK_UNPOISON(h) ((void)(h))
#endif

struct blk_cache;

struct blk {
	struct blk_cache *owner;   /* the thread whose list takes it back */
	struct blk *next;          /* while on that list */
};

_Static_assert(sizeof(struct blk) <= BLK_HDR, "the link fits its header");

struct blk_cache {
	struct blk *free;
	size_t n;
	bool keyed;                /* blk_cache_exit will empty it at thread exit */
};

/* only its own thread reads or writes it; other threads compare its address */
static __thread struct blk_cache blk_tc;
static pthread_once_t blk_once = PTHREAD_ONCE_INIT;
static pthread_key_t blk_key;
static bool blk_key_ok;

static void blk_cache_exit(void *v)
{
	struct blk_cache *c = v;
	struct blk *h;

	while ((h = c->free)) {
		c->free = h->next;
		BLK_UNPOISON(h);
		free(h);
	}
	c->n = 0;
	c->keyed = false;
}

static void blk_key_init(void)
{
	blk_key_ok = pthread_key_create(&blk_key, blk_cache_exit) == 0;
}

void *blk_get(size_t size)
{
	struct blk_cache *c = &blk_tc;
	struct blk *h;

	if (size > BLK_MAX)
		return NULL;
	h = c->free;
	if (h) {
		BLK_UNPOISON(h);
		c->free = h->next;
		c->n--;
	} else {
		h = malloc(BLK_SIZE);
		if (!h)
			return NULL;
	}
	h->owner = c;
	return (char *)h + BLK_HDR;
}

void blk_put(void *p)
{
	struct blk_cache *c = &blk_tc;
	struct blk *h;

	if (!p)
		return;
	h = (struct blk *)(void *)((char *)p - BLK_HDR);
	if (h->owner != c || c->n >= BLK_KEEP)
		goto out;
	if (!c->keyed) {
		/* the list is emptied at thread exit; without the key it is not kept */
		pthread_once(&blk_once, blk_key_init);
		if (!blk_key_ok || pthread_setspecific(blk_key, c))
			goto out;
		c->keyed = true;
	}
	h->next = c->free;
	c->free = h;
	c->n++;
	BLK_POISON(h);
	return;
out:
	free(h);
}

size_t blk_kept(void)
{
	return blk_tc.n;
}
