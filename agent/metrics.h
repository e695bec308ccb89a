/* Prometheus text exposition (/metrics) and health endpoints (/healthz, /readyz) on a
 * small HTTP/1.1 server with its own thread. Owns: the listening socket, its client
 * connections and the latency histogram type; the numbers come from a render callback. */
#ifndef ST_METRICS_H
#define ST_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Latency histogram, updated lock-free from any thread; buckets in seconds are
 * metrics_hist_bounds[] (+Inf implied). */
#define METRICS_HIST_BUCKETS 16
extern const double metrics_hist_bounds[METRICS_HIST_BUCKETS];

struct metrics_hist {
	_Atomic uint64_t bucket[METRICS_HIST_BUCKETS + 1];   /* not cumulative; last is +Inf */
	_Atomic uint64_t sum_ns;
};

void metrics_hist_observe_ns(struct metrics_hist *h, uint64_t ns);

/* Exposition writers (text format 0.0.4). A family's HELP/TYPE first, then its
 * samples; labels is NULL or a preformatted `name="value",...` list. */
void metrics_family(struct buf *b, const char *name, const char *type, const char *help);
void metrics_sample(struct buf *b, const char *name, const char *labels, uint64_t v);
void metrics_sample_f(struct buf *b, const char *name, const char *labels, double v);
/* One family with one sample: counters must be named *_total. */
void metrics_counter(struct buf *b, const char *name, const char *help, uint64_t v);
void metrics_gauge(struct buf *b, const char *name, const char *help, double v);
void metrics_histogram(struct buf *b, const char *name, const char *help,
		       const struct metrics_hist *h);

/* Fills out with the whole exposition. Runs on the metrics thread. */
typedef void (*metrics_render_fn)(void *ctx, struct buf *out);
/* NULL when ready, else a short reason (a static or ctx-owned string). */
typedef const char *(*metrics_ready_fn)(void *ctx);

struct metrics_cfg {
	const char *listen;              /* "ADDR:PORT", "[V6]:PORT" or ":PORT" (all addresses) */
	metrics_render_fn render;
	metrics_ready_fn ready;
	void *ctx;
	int max_conns;                   /* default 1024; more are accepted and closed */
	int timeout_ms;                  /* per connection, default 5000 */
};

struct metrics_stats {
	uint64_t requests, bad_requests, timeouts, refused_conns, renders;
};

struct metrics;

/* Binds and starts the thread. 0 or a negative errno (message printed). */
int metrics_start(struct metrics **out, const struct metrics_cfg *cfg);
int metrics_port(const struct metrics *m);      /* the bound port (useful with :0) */
void metrics_get_stats(struct metrics *m, struct metrics_stats *st);
void metrics_stop(struct metrics *m);            /* accepts NULL */

/* Parses a listen address; 0 or -EINVAL. Exposed for option validation. */
struct sockaddr_storage;
int metrics_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *len);

#endif
