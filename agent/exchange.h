/* HTTP exchange assembly: runs the HTTP/1.x parser over each reassembled direction,
 * pairs requests with serverA's responses in order, and emits one st_record per
 * exchange. Owns: per-flow parser state and records until they are emitted. */
#ifndef ST_EXCHANGE_H
#define ST_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "tcp_reasm.h"

struct exchange_cfg {
	size_t body_limit;       /* body bytes stored per message, default 64 KiB */
	size_t max_head;         /* largest message head, default 64 KiB */
	size_t max_headers;      /* header fields kept per message, 1..ST_MAX_HEADERS (default) */
	size_t max_pending;      /* requests awaiting a response per connection, default 64 */
	size_t replay_max;       /* raw request bytes kept for replay per request, default 16 MiB */
	size_t max_held_bytes;   /* all bytes held for connections (records waiting for their
				  * response, partial heads, Upgrade holds), default 512 MiB;
				  * past it the connections holding bytes longest are evicted */
	size_t max_conn_bytes;   /* the same for one connection, default 16 MiB (at most
				  * max_held_bytes); past it the connection is evicted */
	int keep_raw;            /* keep raw request bytes (replay or recording enabled) */
	int64_t clock_offset_ns; /* capture clock -> wall clock */
};

struct exchange_stats {
	uint64_t requests;           /* request heads parsed */
	uint64_t responses;          /* final response heads parsed */
	uint64_t informational;      /* 1xx responses skipped (100-continue, 103) */
	uint64_t records;            /* records emitted */
	uint64_t complete;           /* ... with both messages whole */
	uint64_t malformed_requests, malformed_responses;
	uint64_t resyncs;            /* parser restarted at the next message after a gap/error */
	uint64_t resync_skipped_bytes;
	uint64_t no_response;        /* connection ended with a request unanswered */
	uint64_t orphan_responses;   /* response without a request seen (mid-stream, gap) */
	uint64_t upgrades;           /* 101 / CONNECT tunnels: parsing stopped */
	uint64_t pending_overflow;   /* too many unanswered requests: oldest emitted early */
	uint64_t unpairable;         /* connections where a gap or an overflow made pairing
				      * ambiguous: later requests recorded without responses */
	uint64_t framing_abandoned;  /* request framing ambiguous: rest of the connection's requests ignored */
	uint64_t upgrade_unanswered; /* an Upgrade/CONNECT with no answer before --max-head bytes of
				      * later client data: the rest of the connection's requests ignored */
	uint64_t upgrade_unanswered_bytes;   /* the client bytes dropped with them */
	uint64_t head_too_large;
	uint64_t headers_over_limit; /* messages with more header fields than max_headers */
	uint64_t raw_truncated;      /* raw request not kept whole (replay_max/held limit) */
	uint64_t body_unstored;      /* body bytes not stored because of max_held_bytes */
	uint64_t gap_records;        /* records marked with a gap */
	uint64_t held_bytes, held_bytes_peak;
	uint64_t unfinished_heads;   /* heads the connection's end (or eviction) cut short */
	uint64_t evicted_budget;     /* connections evicted: max_held_bytes reached */
	uint64_t evicted_conn_cap;   /* connections evicted: max_conn_bytes reached */
	uint64_t evicted_flow_table; /* connections evicted by reassembly (flow table full) */
	uint64_t evicted_records;    /* records written early by an eviction (any reason) */
	uint64_t evicted_bytes;      /* held bytes freed by evictions */
};

struct exchange;

typedef void (*exchange_emit_cb)(void *ctx, struct st_record *rec);

void exchange_cfg_default(struct exchange_cfg *cfg);
struct exchange *exchange_new(const struct exchange_cfg *cfg, exchange_emit_cb emit, void *ctx);
void exchange_free(struct exchange *x);
/* Callbacks to hand to reasm_new with the exchange as ctx. */
extern const struct reasm_ops exchange_reasm_ops;
void exchange_get_stats(const struct exchange *x, struct exchange_stats *st);

#endif
