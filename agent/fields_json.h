/* One pass over a JSON body: a flat array of nodes (first child / next sibling), each
 * with its value's text span and a canonical 64-bit hash computed bottom-up in the
 * same pass, so a comparison skips equal subtrees without walking them again and
 * judges array order on hashes it already has. Shared by diff.c (diff.body_paths)
 * and fields.c (diff.fields). Owns: the nodes, the decoded strings, member orders. */
#ifndef ST_FIELDS_JSON_H
#define ST_FIELDS_JSON_H

#include <stddef.h>
#include <stdint.h>

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
	char *arena;             /* decoded strings with escapes: never longer than the source */
	size_t alen;
	int32_t *order;          /* member orders of objects, filled lazily */
	int32_t norder, ocap;
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
/* Members of object node i sorted by decoded key (ties in document order): the
 * offset in d->order of its nchild node indices, or -ENOMEM. Computed once per
 * node. An offset, not a pointer: sorting another object may move d->order. */
int32_t fj_sorted(struct fj_doc *d, int32_t i);
/* Numbers: the same text, or the same double when either has a fraction or an
 * exponent (integer texts that differ are different values past 2 digits). */
int fj_num_eq(const char *a, size_t an, const char *b, size_t bn);

#endif
