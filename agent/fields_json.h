/* One pass over a JSON body: a flat array of nodes (first child / next sibling), each
 * with its value's text span and a canonical 64-bit hash computed bottom-up in the
 * same pass, so a comparison skips equal subtrees without walking them again and
 * judges array order on hashes it already has. Shared by diff.c (diff.body_paths)
 * and fields.c (diff.fields). Owns: the nodes, the decoded strings, member orders. */
#ifndef ST_FIELDS_JSON_H
#define ST_FIELDS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"

enum { FJ_NULL, FJ_BOOL, FJ_NUM, FJ_STR, FJ_ARR, FJ_OBJ };

struct fj_node {
	uint64_t h;              /* equal values have equal hashes (member order ignored) */
	uint32_t v, ve;          /* the value's text in src */
	uint32_t key, key_len;   /* decoded member key in the arena (objects' children) */
	uint32_t s, s_len;       /* FJ_STR: decoded text in the arena */
	int32_t first, next;     /* first child, next sibling; -1 = none */
	int32_t nchild;
	int32_t sorted;          /* FJ_OBJ: offset of its members sorted by key in order[],
				  * -1 until a comparison first needs it */
	uint8_t type;
	uint8_t depth;
	uint8_t flags;           /* FJ_KEY_SRC, FJ_S_SRC: the text is in src (no escapes) */
};

#define FJ_KEY_SRC 1
#define FJ_S_SRC   2

struct fj_doc {
	const char *src;
	size_t len;
	struct fj_node *n;
	int32_t nn, cap;
	char *arena;             /* decoded strings with escapes: never longer than the source,
				  * allocated at the first escaped string */
	size_t alen, acap;
	int32_t *order;          /* member orders of objects, filled lazily */
	int32_t norder, ocap;
	const struct fj_doc *twin;   /* fj_derive's source: the same keys in the same nodes,
				      * so its member orders are this doc's too */
	int32_t dpath[JSON_MAX_DEPTH + 2];   /* fj_derive: root .. the one string that */
	int32_t ndpath;                      /* differs from twin's (0: not derived) */
};

/* A member's key and a string's text, decoded (escapes resolved). */
static inline const char *fj_key(const struct fj_doc *d, const struct fj_node *n)
{
	return (n->flags & FJ_KEY_SRC ? d->src : d->arena) + n->key;
}

static inline const char *fj_s(const struct fj_doc *d, const struct fj_node *n)
{
	return (n->flags & FJ_S_SRC ? d->src : d->arena) + n->s;
}

/* Parses the whole of p[0..n) as one JSON value (surrounding spaces allowed).
 * 0, -EINVAL when it is not JSON (or nests deeper than JSON_MAX_DEPTH, or is larger
 * than 4 GiB), or -ENOMEM. The root is node 0. fj_free afterwards in every case. */
int fj_parse(struct fj_doc *d, const char *p, size_t n);
void fj_free(struct fj_doc *d);
/* fj_parse into a doc that was zeroed or parsed before, keeping its buffers. */
int fj_reparse(struct fj_doc *d, const char *p, size_t n);
/* d becomes what fj_parse(d, p, n) would make, derived from s (parsed from another
 * text) without parsing p, when the two texts differ only inside one string value
 * that has no escapes on either side: the nodes are copied, the offsets after it
 * shifted and the hashes on its path recomputed. Both are served by fj_reparse
 * otherwise. 0, -EAGAIN (not such a pair: parse p), or -ENOMEM. d is zeroed or
 * parsed before, like fj_reparse's. */
int fj_derive(struct fj_doc *d, const struct fj_doc *s, const char *p, size_t n);
/* Where two texts differ, found without building either doc: when fj_parse would
 * take a, the root is an object or an array, no string of a has escapes, and b
 * differs from a only inside one string value (fj_derive's pair), the containers
 * from the root down to that string (each one's type and the key or index of the
 * child on the way) and the string's span in a. fj_parse(a) and fj_derive(b) would
 * give the same path and spans; diff.c and fields.c report from it directly. */
struct fj_spot_lv {
	uint32_t key, key_len;       /* FJ_OBJ: the member's key in a (no escapes) */
	int32_t index;               /* FJ_ARR: the element's position */
	uint8_t type;
};
struct fj_spot {
	const char *a, *b;
	int32_t nlv;                 /* containers above the string */
	struct fj_spot_lv lv[JSON_MAX_DEPTH + 1];
	uint32_t v, ve;              /* the string's token in a, quotes included */
	int64_t delta;               /* b's length minus a's (the token's in b too) */
};
/* 0 and sp filled, or -EAGAIN: not such a pair (parse and compare the usual way). */
int fj_locate(struct fj_spot *sp, const char *a, size_t an, const char *b, size_t bn);

/* Docs kept per thread for the comparisons (4: two for diff.c, two for fields.c),
 * their buffers reused from one request to the next; NULL on allocation failure.
 * fj_scratch_done after each use frees what is above a bound (FJ_KEEP_*), so a
 * large body costs what it did before and the kept memory stays small. Freed when
 * the thread exits. */
struct fj_doc *fj_scratch(void);
void fj_scratch_done(struct fj_doc *d);
#define FJ_SCRATCH_DOCS 4
#define FJ_KEEP_NODES 512
#define FJ_KEEP_ARENA 16384
/* Members of object node i sorted by decoded key (ties in document order): the
 * offset in d->order of its nchild node indices, or -ENOMEM. Computed once per
 * node. An offset, not a pointer: sorting another object may move d->order. */
int32_t fj_sorted(struct fj_doc *d, int32_t i);
/* Numbers: the same text, or the same double when either has a fraction or an
 * exponent (integer texts that differ are different values past 2 digits). */
int fj_num_eq(const char *a, size_t an, const char *b, size_t bn);

#endif
