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

/* Everything the hot path touches, in one place: today there is one worker on the
 * main thread; --workers N would give each its own shard of flows, ring, replay
 * connections and output queue, with nothing shared but the counters. */
struct worker {
	struct reasm *reasm;             /* flow table */
	struct exchange *x;              /* HTTP pairing */
	struct capture *cap;             /* live input: BPF ring, or NULL */
	struct tls *tls;                 /* --tls: uprobes feeding the same ring, or NULL */
	struct pcapin *pcap;             /* --input-pcap, or NULL */
	struct input_file *file;         /* --input-file, or NULL */
	struct replay *replay;           /* replay engine and its connections, or NULL */
	struct bq sinkq;                 /* records for the output thread */
};

struct pipeline {
	struct config cfg;
	struct worker w;
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

#endif
