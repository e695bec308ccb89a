/* Prometheus exposition of the --stats numbers. The text comes from stats_print
 * itself, so /metrics can never disagree with --stats, SIGUSR1 or the exit summary:
 * every "group: [subgroup] key=value ..." line becomes samples named
 *   shadowtap_<group>_<key>_total                  counters
 *   shadowtap_<group>_<subgroup>_total{reason=key}  counters of a subgroup line
 *   shadowtap_<group>_<key>, ..._<subgroup>_<key>   gauges (levels, peaks)
 * Values with an "s" suffix are seconds; "_kb" keys become "_bytes". */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "pipeline.h"
#include "stats.h"

/* Keys that are levels, not running totals. */
static int stats_prom_is_gauge(const char *k)
{
	static const char *const g[] = {
		"active", "buffered", "held_bytes", "in_flight", "queued", "open", "ready",
		"rss_kb", "maxrss_kb", "spool_pending_bytes", "spool_disk_bytes", "spool_segments",
		/* settings shown beside the numbers: the worker count and the replay pool's
		 * ceiling, floor and pipeline depth */
		"threads", "max", "floor", "pipeline",
		/* the record pools' free blocks (records: line) */
		"pools", "idle_blocks", "idle_bytes", "cap_blocks",
		NULL,
	};
	size_t n = strlen(k), i;

	for (i = 0; g[i]; i++)
		if (!strcmp(k, g[i]))
			return 1;
	return (n > 5 && !strcmp(k + n - 5, "_peak")) || !strncmp(k, "peak_", 5) ||
	       (n > 4 && !strcmp(k + n - 4, "_now"));
}

struct prom_sample {
	char family[96];
	char labels[96];
	int gauge, is_int;
	uint64_t u;                      /* exact when is_int (counters pass 2^53) */
	double v;
};

#define PROM_MAX 512

static void prom_name(char *out, size_t n, const char *a, const char *b, const char *c)
{
	size_t i;

	snprintf(out, n, "shadowtap_%s%s%s%s%s", a, b ? "_" : "", b ? b : "", c ? "_" : "", c ? c : "");
	for (i = 0; out[i]; i++)
		if (!isalnum((unsigned char)out[i]) && out[i] != '_')
			out[i] = '_';
}

/* One "group: ..." line into samples. */
static size_t prom_line(char *line, struct prom_sample *s, size_t ns, size_t max)
{
	char *colon = strchr(line, ':'), *tok, *save = NULL, *sub = NULL;
	const char *group = line;

	if (!colon || colon == line)
		return ns;
	*colon = '\0';
	for (tok = strtok_r(colon + 1, " \n", &save); tok && ns < max; tok = strtok_r(NULL, " \n", &save)) {
		char *eq = strchr(tok, '='), *end, key[64];
		double v;
		int seconds = 0;

		if (!eq) {
			sub = tok;          /* "failed", "dropped": the keys after it are reasons */
			continue;
		}
		*eq = '\0';
		v = strtod(eq + 1, &end);
		if (end == eq + 1)
			continue;           /* not a number (url=, server=) */
		if (*end == 's' && end[1] == '\0')
			seconds = 1;
		else if (*end)
			continue;
		memset(&s[ns], 0, sizeof(s[ns]));
		if (!seconds && !strchr(eq + 1, '.') && eq[1] != '-') {
			s[ns].is_int = 1;
			s[ns].u = strtoull(eq + 1, NULL, 10);
		}
		snprintf(key, sizeof(key), "%s", tok);
		if (strlen(key) > 3 && !strcmp(key + strlen(key) - 3, "_kb")) {
			strcpy(key + strlen(key) - 3, "_bytes");
			v *= 1024;
			s[ns].u *= 1024;
		}
		s[ns].v = v;
		if (stats_prom_is_gauge(tok)) {
			s[ns].gauge = 1;
			prom_name(s[ns].family, sizeof(s[ns].family), group, sub, key);
		} else if (sub) {
			prom_name(s[ns].family, sizeof(s[ns].family), group, sub, "total");
			snprintf(s[ns].labels, sizeof(s[ns].labels), "reason=\"%s\"", key);
		} else {
			char k2[80];

			snprintf(k2, sizeof(k2), "%s%s_total", key, seconds ? "_seconds" : "");
			prom_name(s[ns].family, sizeof(s[ns].family), group, k2, NULL);
		}
		ns++;
	}
	return ns;
}

void stats_prometheus(struct pipeline *p, struct buf *out)
{
	struct prom_sample *s = calloc(PROM_MAX, sizeof(*s));
	char *txt = NULL, *line, *save = NULL;
	size_t len = 0, n = 0, i, j;
	FILE *f;

	if (!s)
		return;
	f = open_memstream(&txt, &len);
	if (!f) {
		free(s);
		return;
	}
	stats_print(p, f, "metrics");
	fclose(f);
	for (line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "---", 3))
			n = prom_line(line, s, n, PROM_MAX);
	/* a family's samples together, HELP/TYPE once, in first-seen order */
	for (i = 0; i < n; i++) {
		char help[160];

		if (!s[i].family[0])
			continue;
		snprintf(help, sizeof(help), "shadowtap --stats counter (see README, Operations)");
		metrics_family(out, s[i].family, s[i].gauge ? "gauge" : "counter", help);
		for (j = i; j < n; j++) {
			if (strcmp(s[j].family, s[i].family))
				continue;
			if (s[j].is_int)
				metrics_sample(out, s[j].family, s[j].labels, s[j].u);
			else
				metrics_sample_f(out, s[j].family, s[j].labels, s[j].v);
			if (j != i)
				s[j].family[0] = '\0';
		}
		s[i].family[0] = '\0';
	}
	metrics_histogram(out, "shadowtap_servera_duration_seconds",
			  "serverA: first request byte to last response byte, as captured", &p->h_servera);
	metrics_histogram(out, "shadowtap_serverb_duration_seconds",
			  "serverB: replayed request sent to last response byte", &p->h_serverb);
	free(txt);
	free(s);
}
