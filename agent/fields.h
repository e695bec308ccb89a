/* Field-level comparison of two HTTP responses: status, headers and bodies (JSON by
 * path, form-encoded by key, text by line) become a list of (path, kind) differences,
 * plus Diffy's noise verdict on counts of them. Owns: nothing past each call. */
#ifndef ST_FIELDS_H
#define ST_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "record.h"

#define FIELDS_MAX 32          /* distinct differences kept per comparison */
#define FIELDS_PATH_MAX 200
#define FIELDS_VAL_MAX 80      /* bytes of each side's value kept as an example */

enum fields_kind {
	FK_VALUE,      /* same type, other value */
	FK_TYPE,       /* other JSON type */
	FK_MISSING,    /* in serverA's answer, not in serverB's */
	FK_EXTRA,      /* in serverB's answer, not in serverA's */
	FK_LENGTH,     /* array (or line list) of another length */
	FK_ORDER,      /* the same elements in another order */
	FK_NKINDS
};

const char *fields_kind_name(int kind);
int fields_kind_parse(const char *s, size_t n);   /* -1 when unknown */

/* Compares status a_status/b_status and messages a and b. Header names in ignore
 * (lower case, NULL-terminated, may be NULL) are skipped, as diff.c skips them.
 * Paths: "status", "header:NAME", "$.a.b[*].c" (array indices fold to [*] so a
 * field counts once per request), "form.KEY", "line[N]", "lines", "body".
 * Fills *out (empty on entry: NULL, 0) with at most FIELDS_MAX distinct (path,
 * kind) pairs, each string on the heap (fields_free); *total counts all. 0 or
 * -ENOMEM. */
int fields_compare(int a_status, const struct st_msg *a, int b_status, const struct st_msg *b,
		   const char *const *ignore, struct st_field **out, size_t *nout, size_t *total);
void fields_free(struct st_field *f, size_t n);

/* The strings of one comparison's output in one buffer, reused per thread
 * (fields_text_scratch), so that a comparison does not allocate per string: diff.c
 * packs them with the rest of its diff into one allocation. Strings are kept by
 * offset (the buffer moves as it grows), each followed by a NUL. */
struct fields_text {
	char *p;
	size_t len, cap;
	int err;                     /* -ENOMEM once an append failed */
};
/* Appends s[0..n) and a NUL (lower-cased when lower); its offset, meaningless once
 * t->err is set. */
size_t fields_text_add(struct fields_text *t, const char *s, size_t n, bool lower);
/* This thread's buffer, emptied, or NULL (then use a zeroed one and free its p). */
struct fields_text *fields_text_scratch(void);
/* After each use: the buffer is freed when it grew above 16 KiB (bounded per thread). */
void fields_text_done(struct fields_text *t);

/* The differences of one comparison, their strings in t. */
struct fields_ent {
	size_t path, a, b;           /* offsets in t; a and b only when has_a, has_b */
	size_t path_len;
	uint8_t kind;
	bool has_a, has_b;
};
struct fields_acc {
	struct fields_text *t;
	struct fields_ent e[FIELDS_MAX];
	size_t n, total;
};

/* fields_compare into acc (acc->t set, acc->n and acc->total as counted so far),
 * with the bodies already flattened by the caller (fj_parse succeeded on each;
 * diff.c parses them once for diff.body_paths and passes them on): NULL for either
 * makes it parse both itself when they look like JSON. The docs' member orders are
 * filled in as needed (hence not const). ax, bx: a's and b's headers indexed with
 * the same ignore list (fields_hdrs_index), or NULL. sp: fj_locate's answer for
 * the two bodies (then da and db are not needed), or NULL. 0 or -ENOMEM. */
struct fj_doc;
struct fj_spot;
struct fields_hdrs;
int fields_compare_acc(int a_status, const struct st_msg *a, struct fj_doc *da, int b_status,
		       const struct st_msg *b, struct fj_doc *db, const char *const *ignore,
		       const struct fields_hdrs *ax, const struct fields_hdrs *bx,
		       const struct fj_spot *sp, struct fields_acc *acc);

/* The fast paths of the comparisons (hashed header names, a body that differs from
 * the other inside one string); false only in tests, which check that both ways
 * give the same differences. */
extern bool fields_fast;

/* One message's header names hashed once, case-insensitively, and matched once
 * against an ignore list, so the header comparisons (here and in diff.c) do not
 * strncasecmp every pair of names. A hash only narrows: equal names are confirmed
 * with strncasecmp. */
#define FIELDS_HDRS_MAX ST_MAX_HEADERS
struct fields_hdrs {
	const struct st_msg *m;
	size_t n;
	bool clean;                  /* set by fields_hdrs_pair: not indexed, see there */
	bool cl_diff;
	bool same;                   /* set by fields_hdrs_pair: the same head bytes */
	uint64_t h[FIELDS_HDRS_MAX];
	bool ign[FIELDS_HDRS_MAX];   /* named in the ignore list (never an empty name) */
};
/* 0, or -E2BIG when m has more than FIELDS_HDRS_MAX headers (then compare the slow way). */
int fields_hdrs_index(struct fields_hdrs *x, const struct st_msg *m, const char *const *ignore);
/* A JSON key written as .key in a path: letters, digits, '_', '-', '$' (isalnum in the
 * C locale, which the agent never leaves), one table load a byte instead of a
 * __ctype_b_loc call and four compares. */
extern const uint8_t fields_ident_tab[256];
static inline bool fields_key_ident(const char *k, size_t n)
{
	size_t i;

	if (!n)
		return false;
	for (i = 0; i < n; i++)
		if (!fields_ident_tab[(uint8_t)k[i]])
			return false;
	return true;
}

/* a[0..n) == b[0..n) without a call, for short texts (header names and values):
 * eight bytes a step, the tail as one overlapping word. */
static inline bool fields_bytes_eq(const char *a, const char *b, size_t n)
{
	uint64_t x, y;
	uint32_t u, v;
	size_t i;

	if (n >= 8) {
		for (i = 0; i + 8 <= n; i += 8) {
			memcpy(&x, a + i, 8);
			memcpy(&y, b + i, 8);
			if (x != y)
				return false;
		}
		memcpy(&x, a + n - 8, 8);
		memcpy(&y, b + n - 8, 8);
		return x == y;
	}
	if (n >= 4) {
		memcpy(&u, a, 4);
		memcpy(&v, b, 4);
		if (u != v)
			return false;
		memcpy(&u, a + n - 4, 4);
		memcpy(&v, b + n - 4, 4);
		return u == v;
	}
	for (i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* s[0..n) equals lc, a lower-case constant of length n, letters in either case
 * (strncasecmp's answer, without the call): a word of s with 0x20 set where lc
 * has a letter must equal lc's word; lc's other bytes must match exactly. */
static inline uint64_t fields_lc_mask(uint64_t c)
{
	/* 0x20 in each byte of c that is 'a'..'z' (c's bytes are ASCII) */
	uint64_t ge = c + 0x1f1f1f1f1f1f1f1full, gt = c + 0x0505050505050505ull;

	return ((ge & ~gt) & 0x8080808080808080ull) >> 2;
}

static inline bool fields_lc_eq(const char *s, const char *lc, size_t n)
{
	uint64_t x, c;
	size_t i;

	if (n < 8) {
		for (i = 0; i < n; i++) {
			unsigned char y = (unsigned char)s[i], l = (unsigned char)lc[i];

			if (y != l && !((y | 0x20) == l && l >= 'a' && l <= 'z'))
				return false;
		}
		return true;
	}
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&x, s + i, 8);
		memcpy(&c, lc + i, 8);
		if ((x | fields_lc_mask(c)) != c)
			return false;
	}
	memcpy(&x, s + n - 8, 8);
	memcpy(&c, lc + n - 8, 8);
	return (x | fields_lc_mask(c)) == c;
}

/* ASCII case-insensitive equality of two names of length n */
static inline bool fields_name_eq(const char *a, const char *b, size_t n)
{
	return strncasecmp(a, b, n) == 0;
}

/* Both messages' headers for the comparisons. When they carry the same names in
 * the same order (the same server software, the usual case) and every header whose
 * values differ is ignored or is Content-Length, no header differs in either
 * comparison but for Content-Length: then nothing is indexed, ax->clean is set and
 * ax->cl_diff says whether a Content-Length value differed. Otherwise both are
 * indexed as by fields_hdrs_index. 0 or -E2BIG. */
int fields_hdrs_pair(struct fields_hdrs *ax, struct fields_hdrs *bx, const struct st_msg *a,
		     const struct st_msg *b, const char *const *ignore);

/* Is header i of x named like header j of y (case-insensitively)? */
static inline bool fields_hdrs_same(const struct fields_hdrs *x, size_t i,
				    const struct fields_hdrs *y, size_t j)
{
	const struct http1_header *a = &x->m->hdrs[i], *b = &y->m->hdrs[j];

	return x->h[i] == y->h[j] && a->name_len == b->name_len &&
	       (a->name == b->name || fields_name_eq(a->name, b->name, a->name_len));
}

/* Diffy's rule: a field is a real difference only if raw > noise,
 * |raw - noise| / (raw + noise) > rel and |raw - noise| / requests > abs. */
bool fields_real(double raw, double noise, double requests, double rel, double abs);

#define FIELDS_DEFAULT_REL 0.20
#define FIELDS_DEFAULT_ABS 0.0003

#endif
