/* Msgpack reading layer: a bounds-checked cursor over bytes in memory.
 * Owns: decoding one value at a time without allocation or recursion. */
#include <string.h>

#include "mp.h"

static bool mp_take(struct mp *m, size_t n, const uint8_t **out)
{
	if (m->bad || (size_t)(m->end - m->p) < n) {
		m->bad = true;
		return false;
	}
	*out = m->p;
	m->p += n;
	return true;
}

/* A w-byte big-endian number (a length, count or integer) from the cursor. */
static bool mp_take_be(struct mp *m, int w, uint64_t *out)
{
	const uint8_t *q;
	int i;

	if (!mp_take(m, (size_t)w, &q))
		return false;
	*out = 0;
	for (i = 0; i < w; i++)
		*out = *out << 8 | q[i];
	return true;
}

bool mp_read(struct mp *m, struct mp_val *v)
{
	const uint8_t *q;
	uint64_t n;
	uint8_t c;
	int w;

	memset(v, 0, sizeof(*v));
	if (!mp_take(m, 1, &q))
		return false;
	c = q[0];
	if (c <= 0x7f) { v->type = MP_UINT; v->u = c; v->i = c; return true; }
	if (c >= 0xe0) { v->type = MP_INT; v->i = (int8_t)c; return true; }
	if ((c & 0xf0) == 0x80) { v->type = MP_MAP; v->u = c & 0x0f; return true; }
	if ((c & 0xf0) == 0x90) { v->type = MP_ARR; v->u = c & 0x0f; return true; }
	if ((c & 0xe0) == 0xa0) {
		v->type = MP_STR;
		v->n = c & 0x1f;
		return mp_take(m, v->n, &v->s);
	}
	switch (c) {
	case 0xc0: v->type = MP_NIL; return true;
	case 0xc2: case 0xc3: v->type = MP_BOOL; v->u = c & 1; return true;
	case 0xc4: case 0xc5: case 0xc6:
	case 0xd9: case 0xda: case 0xdb:
		w = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
		if (!mp_take_be(m, w, &n))
			return false;
		v->type = c <= 0xc6 ? MP_BIN : MP_STR;
		v->n = (size_t)n;
		return mp_take(m, v->n, &v->s);
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		if (!mp_take_be(m, 1 << (c - 0xcc), &v->u))
			return false;
		v->type = MP_UINT;
		v->i = (int64_t)v->u;
		return true;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		w = 1 << (c - 0xd0);
		if (!mp_take_be(m, w, &v->u))
			return false;
		v->type = MP_INT;
		/* sign-extend from w bytes */
		v->i = w == 8 ? (int64_t)v->u : (int64_t)(v->u << (64 - 8 * w)) >> (64 - 8 * w);
		return true;
	case 0xdc: case 0xdd: case 0xde: case 0xdf:
		if (!mp_take_be(m, (c == 0xdc || c == 0xde) ? 2 : 4, &v->u))
			return false;
		v->type = c <= 0xdd ? MP_ARR : MP_MAP;
		return true;
	case 0xca: case 0xcb:
		v->type = MP_OTHER;
		return mp_take(m, c == 0xca ? 4 : 8, &q);
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		v->type = MP_OTHER;
		return mp_take(m, 1 + ((size_t)1 << (c - 0xd4)), &q);
	case 0xc7: case 0xc8: case 0xc9:
		if (!mp_take_be(m, 1 << (c - 0xc7), &n))
			return false;
		v->type = MP_OTHER;
		v->n = (size_t)n;
		return mp_take(m, v->n + 1, &q);
	default:
		m->bad = true;
		return false;
	}
}

/* Skip one value (containers included), iteratively with a count of pending
 * values, so hostile nesting cannot exhaust the stack. */
bool mp_skip(struct mp *m)
{
	uint64_t pending = 1;
	struct mp_val v;

	while (pending) {
		if (!mp_read(m, &v))
			return false;
		pending--;
		if (v.type == MP_ARR || v.type == MP_MAP) {
			uint64_t add = v.type == MP_MAP ? v.u * 2 : v.u;

			/* every element takes at least a byte */
			if (add > (uint64_t)(m->end - m->p)) {
				m->bad = true;
				return false;
			}
			pending += add;
		}
	}
	return true;
}

bool mp_key_is(const struct mp_val *k, const char *s)
{
	size_t n = strlen(s);

	return k->type == MP_STR && k->n == n && !memcmp(k->s, s, n);
}

bool mp_uint(const struct mp_val *v, uint64_t *out)
{
	if (v->type == MP_UINT) {
		*out = v->u;
		return true;
	}
	if (v->type == MP_INT && v->i >= 0) {
		*out = (uint64_t)v->i;
		return true;
	}
	return false;
}

bool mp_int(const struct mp_val *v, int64_t *out)
{
	if (v->type == MP_INT || (v->type == MP_UINT && v->u <= INT64_MAX)) {
		*out = v->i;
		return true;
	}
	return false;
}
