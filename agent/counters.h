/* Counter registry: one enum, one name table, one array of relaxed atomics. Stages
 * count with ctr_add() from any thread; stats.c prints them for --stats, SIGUSR1
 * and the exit summary (and metrics can render the same array).
 * Owns: the counter ids and names; the array lives in the pipeline. */
#ifndef ST_COUNTERS_H
#define ST_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define CTR_LIST(X)                                                   \
	X(RING_EVENTS, "ring", "events")                               \
	X(RING_BAD_EVENTS, "ring", "bad_events")                       \
	X(PCAP_PACKETS, "pcap", "packets")                             \
	X(PCAP_SEGMENTS, "pcap", "segments")                           \
	X(PCAP_OTHER, "pcap", "other")                                 \
	X(PCAP_MALFORMED, "pcap", "malformed")                         \
	X(PCAP_FRAGMENTS, "pcap", "fragments")                         \
	X(PCAP_SNAP_TRUNCATED, "pcap", "snap_truncated")               \
	X(PCAP_UNSUPPORTED_LINK, "pcap", "unsupported_link")           \
	X(PIPE_RECORDS, "pipeline", "records")                         \
	X(OUT_WRITTEN, "output", "written")                            \
	X(OUT_DROPPED_QUEUE_FULL, "output", "dropped_queue_full")      \
	X(OUT_DROPPED_MEMORY, "output", "dropped_memory")              \
	X(OUT_ENCODE_ERRORS, "output", "encode_errors")                \
	X(OUT_WRITE_ERRORS, "output", "write_errors")                  \
	X(LOOP_ITERATIONS, "loop", "iterations")                       \
	X(LOOP_SIGNALS, "loop", "signals")

enum ctr_id {
#define CTR_ENUM(id, group, name) CTR_##id,
	CTR_LIST(CTR_ENUM)
#undef CTR_ENUM
	CTR_N
};

struct ctr_desc {
	const char *group;               /* the stats line it is printed on */
	const char *name;                /* key on that line; metrics: shadowtap_<group>_<name>_total */
};

extern const struct ctr_desc ctr_desc[CTR_N];

struct counters {
	_Atomic uint64_t v[CTR_N];
};

static inline void ctr_add(struct counters *c, enum ctr_id id, uint64_t n)
{
	atomic_fetch_add_explicit(&c->v[id], n, memory_order_relaxed);
}

static inline uint64_t ctr_get(const struct counters *c, enum ctr_id id)
{
	return atomic_load_explicit(&c->v[id], memory_order_relaxed);
}

/* " name=value" for every counter of group, in registry order (no newline). */
void ctr_print_group(FILE *f, const struct counters *c, const char *group);

#endif
