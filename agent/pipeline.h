/* The pipeline: what the capture side feeds (flow table -> HTTP pairing), where
 * records go (recording writer, replay, the output thread -> NDJSON and
 * Elasticsearch), and the one event loop that drives every input.
 * Owns: the app state, the output thread and its queue, start/stop order. */
#ifndef ST_PIPELINE_H
#define ST_PIPELINE_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "bq.h"
#include "counters.h"
#include "metrics.h"
#include "opts.h"
#include "record.h"

struct pcapin;
struct input_file;

/* Everything the hot path touches, per worker. --workers N gives each its own shard
 * of connections (the BPF program picks the worker's ring from a symmetric hash of the
 * connection's addresses and ports), its own flow table, pairing, replay engine with
 * its connections, and its own output batches; nothing is shared on the hot path but
 * the (atomic) counters, the output queue (a batch per hand-off) and the recording
 * writer. With one worker (and for --input-pcap/--input-file) it runs on the loop
 * thread, as before workers existed; with more, each runs a thread of its own. */
struct worker {
	struct pipeline *p;
	int id;
	struct reasm *reasm;             /* flow table */
	struct exchange *x;              /* HTTP pairing */
	struct replay *replay;           /* replay engine and its connections, or NULL */
	struct replay *replay2;          /* a second engine (thread, pool) that takes
					  * one-request connections while replay has a
					  * backlog; NULL without replay or with --replay-rate */
	struct reasm_cfg rcfg;           /* the configured limits, divided among workers */
	struct exchange_cfg xcfg;
	struct replay_cfg rpcfg;
	uint64_t next_tick;
	pthread_t thr;
	int started;
};

struct pipeline {
	struct config cfg;
	struct worker *w;                /* nworkers of them */
	int nworkers;
	int wstop;                       /* the worker threads' stop flag (atomic) */
	struct capture *cap;             /* live input: BPF program and rings, or NULL */
	struct tls *tls;                 /* --tls: uprobes feeding the same rings, or NULL */
	struct pcapin *pcap;             /* --input-pcap, or NULL (worker 0) */
	struct input_file *file;         /* --input-file, or NULL (worker 0) */
	struct bq sinkq;                 /* encoded batches for the output thread, from every worker */
	uint64_t sink_records;           /* records in those batches (atomic): the --queue bound */
	uint64_t replay_held;            /* atomic: bytes all workers' replays hold (--replay-max-bytes) */
	uint64_t sink_records_peak;      /* its high-water mark: the exit summary's queue_peak */
	struct counters ctr;             /* every thread adds, stats.c prints */
	struct es_sink *es;
	struct rec_writer *recw;
	struct fields_sum *fsum;         /* difference counters, when replaying */
	struct replay *noise;            /* --replay-baseline / --noise-probe replays */
	struct es_sink *es_diff;         /* difference summaries: <prefix>-diff-YYYY.MM.DD */
	char es_diff_prefix[128], es_diff_spool[512];
	pthread_t sink_thr;
	int sink_started, sinkq_ready;
	FILE *out;
	struct record_json_opts jopts;
	int stop;                        /* set by the loop only (signal, deadline) */
	uint64_t start_ns;
	/* the event loop: epoll, signalfd, periodic timer, input wake-up timer */
	int epfd, sfd, tfd, wfd;
	uint64_t next_tick, next_stats, deadline;
	uint64_t offline_inflight;       /* bound on records in flight from a pcap */
	/* --metrics: the loop renders the exposition into msnap once a second; the
	 * metrics thread serves copies of it (no stage is read off the loop thread) */
	struct metrics *metrics;
	pthread_mutex_t msnap_mu;
	struct buf msnap;
	char not_ready[128];             /* "" when ready */
	uint64_t next_metrics;
	uint64_t next_bounds;             /* stats_bounds_check, once a second */
	struct metrics_hist h_servera, h_serverb;   /* observed by the output thread */
};

/* Zeroes p and sets its config to the defaults. */
void pipeline_init(struct pipeline *p);

/* Opens outputs, starts the output, replay and recording threads and builds the
 * flow table. Returns 0 or an exit code (EXIT_*), with a message printed. */
int pipeline_start(struct pipeline *p);
/* Runs the input (live, pcap or file) until it ends, a signal or --exit-after.
 * Returns 0 or an exit code. */
int pipeline_run(struct pipeline *p);
/* Flushes the flow table and drains and joins every thread, in data-flow order. */
void pipeline_stop(struct pipeline *p);
/* Frees everything; accepts a pipeline that never started. */
void pipeline_free(struct pipeline *p);
/* Which of w's replay engines takes r (the worker's thread, before replay_submit):
 * replay2 for a request that is its connection's only one while replay holds a
 * backlog and replay2 holds less, else replay. */
struct replay *pipeline_replay_for(struct worker *w, const struct st_record *r);

#endif
