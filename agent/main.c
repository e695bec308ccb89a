/*
 * shadowtap: copy live HTTP traffic to a second server and store every exchange.
 *
 * main parses the options (opts.c), starts the pipeline (pipeline.c), runs its
 * event loop until the input ends, a signal or --exit-after, stops the pipeline in
 * data-flow order and prints the exit summary (stats.c). The threads and queues are
 * described in the README's architecture section.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "pipeline.h"
#include "record.h"
#include "recording.h"
#include "report.h"
#include "stats.h"

#ifndef SHADOWTAP_VERSION
#define SHADOWTAP_VERSION "dev"
#endif
#ifndef SHADOWTAP_RELEASE
#define SHADOWTAP_RELEASE "0.0.0"
#endif

extern char **environ;

int main(int argc, char **argv)
{
	struct pipeline *p;
	int rc, err, started;

	if (argc > 1 && !strcmp(argv[1], "convert"))
		return recording_convert_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "report"))
		return report_main(argc - 1, argv + 1);
	p = malloc(sizeof(*p));
	if (!p) {
		fprintf(stderr, "shadowtap: out of memory\n");
		return EXIT_RUNTIME;
	}
	pipeline_init(p);
	err = opts_parse(&p->cfg, argc, argv, environ);
	if (err == OPTS_HELP || err == OPTS_VERSION) {
		if (err == OPTS_HELP)
			opts_usage(stdout);
		else
			printf("shadowtap %s (commit %s)\n", SHADOWTAP_RELEASE, SHADOWTAP_VERSION);
		rc = EXIT_OK;
	} else if (err || opts_finish(&p->cfg)) {
		rc = EXIT_USAGE;
	} else {
		rc = pipeline_start(p);
		started = rc == EXIT_OK;
		/* free record blocks kept for reuse: --memory-limit/128 in all, split among
		 * the threads that make records (2 MiB at the default 256M: docs/cost.md,
		 * memory table) */
		record_pool_set_limit(p->cfg.memory_limit / 128 / (p->nworkers > 1 ? p->nworkers : 1));
		if (started) {
			rc = pipeline_run(p);
			/* the run opens the input first: a failure there is a start-up one */
			started = p->cap || p->pcap || p->file;
		}
		pipeline_stop(p);
		/* after a start-up failure every counter is zero: the error line says it all */
		if (p->nworkers && p->w[0].x && started) {
			stats_bounds_check(p);  /* a bound that bit since the last second */
			stats_print(p, stderr, "exit");
		}
	}
	pipeline_free(p);
	free(p);
	return rc;
}
