/* Small helpers shared by every stage: the monotonic clock (ns and ms) and a 64-bit
 * mixer (splitmix64's finaliser) for deterministic ids and hash buckets. */
#ifndef ST_UTIL_H
#define ST_UTIL_H

#include <stdint.h>
#include <time.h>

static inline uint64_t st_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* the same clock in milliseconds, for timeouts and back-off */
static inline uint64_t st_mono_ms(void)
{
	return st_mono_ns() / 1000000ull;
}

static inline uint64_t st_mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif
