/* Option value parsing shared by the command line and the subcommands: plain
 * numbers, sizes with K/M/G/T suffixes (powers of two), non-negative reals.
 * Owns nothing; every function returns 0 or -EINVAL. */
#ifndef ST_PARSE_H
#define ST_PARSE_H

#include <stdint.h>

int st_parse_u64(const char *s, uint64_t *out);     /* decimal, no sign */
int st_parse_size(const char *s, uint64_t *out);    /* 64K, 16M, 1GiB, 2TB ... */
int st_parse_double(const char *s, double *out);    /* finite, >= 0 */

#endif
