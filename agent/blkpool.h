/* Blocks of one size kept per thread for serverB's answer and the diff (issue 19).
 * Replaying, both are made on the replay thread and, for the usual record, freed on
 * it too (the record is encoded and freed where it was finished): a free list of
 * the thread's own blocks replaces a malloc and a free each. A block freed on
 * another thread goes back to malloc (free), as before. */
#ifndef SHADOWTAP_BLKPOOL_H
#define SHADOWTAP_BLKPOOL_H

#include <stdbool.h>
#include <stddef.h>

#define BLK_SIZE 2048u        /* bytes of a block, its link included */
#define BLK_HDR 16u           /* the link before the caller's bytes */
#define BLK_MAX (BLK_SIZE - BLK_HDR)
#define BLK_KEEP 512u         /* free blocks a thread keeps (1 MiB); past that, free */

/* size bytes (16-aligned) from the calling thread's blocks, or NULL when size is
 * over BLK_MAX or no memory: the caller then allocates it itself. */
void *blk_get(size_t size);
/* a block of blk_get back, from any thread (NULL accepted) */
void blk_put(void *p);
/* the calling thread's kept blocks (tests) */
size_t blk_kept(void);

#endif
