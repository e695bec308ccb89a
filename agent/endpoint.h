/* Endpoints: requests grouped by method and path template ("GET /api/user/{int}"),
 * with user patterns first, and the --diff-ignore rules that name endpoints and
 * fields. Pure functions; owns nothing. */
#ifndef ST_ENDPOINT_H
#define ST_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#define ENDPOINT_MAX 160            /* bytes of an endpoint name, NUL included */

/* The endpoint of a request into out (always NUL-terminated, cut to outlen):
 * the first of patterns[0..npat) that matches "METHOD PATH" (a pattern is
 * "METHOD PATH-GLOB", '*' for any method, '*' in the glob matching any run of
 * characters, '/' included), else the method and the path (query dropped, an
 * absolute-form target's scheme and host dropped) with each segment that is a
 * number, UUID, long hex id or date replaced by {int}, {uuid}, {hex} or {date}. */
void endpoint_name(const char *method, size_t mlen, const char *target, size_t tlen,
		   const char *const *patterns, int npat, char *out, size_t outlen);
/* The placeholder for one path segment, or NULL when it stays as it is. */
const char *endpoint_segment_kind(const char *s, size_t n);
/* A pattern ("GET /api/user/ then a star"): a method, one space, a path starting with '/' or '*'. */
bool endpoint_pattern_valid(const char *pattern);

/* --diff-ignore 'ENDPOINT PATH': the endpoint part ("*", a name, or a glob) and
 * the field path (exact, or a prefix when it ends in '*'), split at the last space. */
bool endpoint_ignore_valid(const char *rule);
bool endpoint_ignore_match(const char *rule, const char *endpoint, const char *path);

#endif
