/* JSON scanning shared by the diff's JSON reader and the Elasticsearch response
 * parser: pure, no allocation, nesting bounded by JSON_MAX_DEPTH. Owns: the grammar.
 *
 * Every function takes the text as [p, e) and returns the position just past what
 * it scanned, or NULL when the text there is not what it expects; none reads past e. */
#ifndef ST_JSON_H
#define ST_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 64

/* Past any spaces, tabs, CRs and LFs. Never NULL. */
const char *json_ws(const char *p, const char *e);
/* p on '"': past the closing quote. The raw contents (escapes as written) in *s,
 * *sn when s is not NULL. Escapes and control characters are checked. */
const char *json_string(const char *p, const char *e, const char **s, size_t *sn);
/* p on '"': decodes the string into out, which must have room for the raw
 * contents (decoding never makes text longer); *outlen bytes are written. */
const char *json_string_decode(const char *p, const char *e, char *out, size_t *outlen);
/* -?digits(.digits)?([eE][+-]?digits)? */
const char *json_number(const char *p, const char *e);
/* The literal lit ("true", "false", "null") at p. */
const char *json_literal(const char *p, const char *e, const char *lit);
/* One value after optional whitespace, containers included; depth is the nesting
 * of p (a value deeper than JSON_MAX_DEPTH fails). */
const char *json_skip(const char *p, const char *e, int depth);
/* Walking the elements of an object or array without recursion of one's own:
 * json_iter_init with p on the opening bracket (open '{' or '[' to require one, 0
 * for either; depth its nesting), then json_iter_next gives each element's value
 * as [*v, *ve) (and an object member's raw key as *k, *kn; any pointer may be NULL)
 * with 1, then 0 at the end (it->p is then past the closing bracket), or -EBADMSG. */
struct json_iter {
	const char *p, *e;
	char close;
	bool done;
	int depth;
	size_t n;
};

int json_iter_init(struct json_iter *it, const char *p, const char *e, char open, int depth);
int json_iter_next(struct json_iter *it, const char **k, size_t *kn, const char **v,
		   const char **ve);

/* The value of member key (kn bytes, compared raw) of the object at p, as [*v, *ve).
 * 0, -ENOENT when the object has no such member, -EBADMSG when p is no object. */
int json_member(const char *p, const char *e, const char *key, size_t kn,
		const char **v, const char **ve);
/* The value at a dotted path ("version.number") of the object text [p, p+len). */
int json_path(const char *p, size_t len, const char *path, const char **v, const char **ve);

#endif
