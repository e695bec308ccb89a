/* Personal data in records: correlatable tokens (HMAC-SHA256 of a value under a secret
 * key), query-parameter redaction and a free-text scanner for credit-card numbers
 * (Luhn-checked), e-mail addresses and user patterns. Pure functions, no I/O.
 * Owns: nothing beyond its arguments; the key is the caller's. */
#ifndef ST_PII_H
#define ST_PII_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum pii_mode {
	PII_MASK = 0,                    /* "[REDACTED]" */
	PII_HASH,                        /* "REDACTED-" + 16 hex digits of HMAC-SHA256(key, value) */
};

#define PII_MASK_STR   "[REDACTED]"
#define PII_TOKEN_LEN  25                 /* "REDACTED-" + 16 hex */

struct pii_key {
	uint8_t bytes[256];
	size_t len;
};

/* What replaces a value: the mask, or the value's token. out gets PII_TOKEN_LEN + 1
 * bytes at most (NUL-terminated); returns the length written. A value that already
 * is the mask or a token (bare or JSON-quoted) stays itself: redaction is idempotent. */
size_t pii_replacement(enum pii_mode mode, const struct pii_key *key, const char *v, size_t n,
		       char out[PII_TOKEN_LEN + 1]);

/* Loads the key from SHADOWTAP_REDACT_KEY, or from the file SHADOWTAP_REDACT_KEY_FILE
 * names (one trailing newline dropped). 0, -ENOENT when neither is set, -EINVAL for an
 * empty or over-long key, or -errno reading the file. */
int pii_key_from_env(struct pii_key *key);

/* Luhn check over the digits of s (other characters ignored). */
bool pii_luhn_ok(const char *s, size_t n);

/* Free-text detectors for pii_scan. */
enum {
	PII_SCAN_CARD  = 1u << 0,        /* 13-19 digits, single spaces/dashes between, Luhn-valid */
	PII_SCAN_EMAIL = 1u << 1,        /* local@domain.tld */
};

struct pii_span {
	size_t off, len;
};

/* Finds what to redact in s[0..n): the kinds asked for plus matches of each regex in
 * res (POSIX extended; may be NULL/0). Spans are sorted and disjoint. Returns the
 * number found (at most max; the rest are not reported, so redact and scan again if
 * it returns max). Regexes need a NUL-terminated copy: s must have s[n] == '\0'. */
size_t pii_scan(const char *s, size_t n, unsigned kinds, const regex_t *res, size_t nres,
		struct pii_span *spans, size_t max);

/* Appends s with each span replaced (mask or token). 0 or -ENOMEM. */
int pii_apply(struct buf *out, const char *s, size_t n, const struct pii_span *spans, size_t nspans,
	      enum pii_mode mode, const struct pii_key *key);

/* Appends the request-target t with the values of the named query parameters
 * replaced (names compared exactly, after nothing is decoded: `card` matches `card=`
 * but not `ca%72d=`). Returns the number of values replaced, or -ENOMEM. */
int pii_redact_query(struct buf *out, const char *t, size_t n, const char *const *names,
		     enum pii_mode mode, const struct pii_key *key);

/* Everything the --redact-* options configure, built once at start. */
struct pii_cfg {
	enum pii_mode mode;
	struct pii_key key;
	struct pii_json_path *paths;
	size_t npaths;
	const char **query;              /* NULL-terminated, or NULL */
	unsigned scan;                   /* PII_SCAN_* */
	regex_t *res;
	size_t nres;
};

/* mode: "mask" or "hash" (hash needs the key from the environment); json, query and
 * pattern are the option values (pattern: "credit-card", "email" or a POSIX ERE).
 * 0, or -EINVAL with one line printed naming the option. */
int pii_cfg_build(struct pii_cfg *pc, const char *mode, const char *const *json, int njson,
		  const char *const *query, int nquery, const char *const *pattern, int npattern);
void pii_cfg_free(struct pii_cfg *pc);     /* accepts NULL and a zeroed struct */
/* Anything to do on bodies or request-targets (beyond header names)? */
bool pii_cfg_rewrites(const struct pii_cfg *pc);
/* Text with the body rules applied (JSON paths when it parses as JSON, then the
 * scanners), appended to out. Returns how many values were replaced, or -ENOMEM. */
int pii_redact_text(const struct pii_cfg *pc, const char *s, size_t n, struct buf *out);
/* The same, also replacing every occurrence of the given values (secrets already
 * found elsewhere in the exchange, e.g. a redacted query value that the server echoes
 * in its body). Values shorter than PII_LIT_MIN are ignored. */
#define PII_LIT_MIN 4
struct pii_lit {
	const char *p;
	size_t n;
};
int pii_redact_text_lits(const struct pii_cfg *pc, const char *s, size_t n, const struct pii_lit *lits,
			 size_t nlits, struct buf *out);
/* The values of the --redact-query parameters in a request-target, at most max. */
size_t pii_query_values(const struct pii_cfg *pc, const char *t, size_t n, struct pii_lit *out, size_t max);
/* A request-target with the query rules and the scanners applied. */
int pii_redact_target(const struct pii_cfg *pc, const char *t, size_t n, struct buf *out);

/* JSON body redaction. Paths: `$.a.b` (members from the root), `$..name` (member
 * name at any depth), `[*]` for every element of an array (`$.items[*].card`). A
 * matched value, scalar or container, becomes one JSON string (mask or token; a
 * token is the HMAC of the value's JSON text). */
#define PII_JSON_MAX_SEGS 16
struct pii_json_path {
	int nseg;
	struct { int kind; const char *name; size_t len; } seg[PII_JSON_MAX_SEGS];
};

/* Parses p (which must outlive the result). 0 or -EINVAL. */
int pii_json_path_parse(struct pii_json_path *jp, const char *p);
/* Appends body with the matched values replaced. Returns the number replaced,
 * -EBADMSG when the body is not JSON (nothing appended), or -ENOMEM. */
int pii_redact_json(struct buf *out, const char *body, size_t n, const struct pii_json_path *paths,
		    size_t npaths, enum pii_mode mode, const struct pii_key *key);

#endif
