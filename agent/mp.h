/* Msgpack reading layer: a bounds-checked cursor over bytes in memory.
 * Owns: decoding one value at a time without allocation or recursion. */
#ifndef ST_MP_H
#define ST_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mp {
	const uint8_t *p, *end;
	bool bad;
};

enum { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_STR, MP_BIN, MP_ARR, MP_MAP, MP_OTHER };

struct mp_val {
	int type;
	uint64_t u;          /* UINT, BOOL; ARR/MAP count */
	int64_t i;           /* INT (and UINT fitting) */
	const uint8_t *s;    /* STR/BIN */
	size_t n;
};

/* Read one value's header (strings and binaries whole, containers by count);
 * false (and m->bad) when it runs past the end or is not msgpack. */
bool mp_read(struct mp *m, struct mp_val *v);
/* Skip one value, containers included. */
bool mp_skip(struct mp *m);
bool mp_key_is(const struct mp_val *k, const char *s);
bool mp_uint(const struct mp_val *v, uint64_t *out);
bool mp_int(const struct mp_val *v, int64_t *out);

#endif
