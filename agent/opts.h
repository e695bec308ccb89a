/* Options: one table (name, short name, type, field, range, default, help) drives
 * command-line parsing, range checks, --help and the SHADOWTAP_* environment.
 * Owns: struct config and the copies of environment list values it points at. */
#ifndef ST_OPTS_H
#define ST_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "capture.h"
#include "pii.h"
#include "exchange.h"
#include "fields_sum.h"
#include "recording.h"
#include "replay.h"
#include "sink_es.h"
#include "tcp_reasm.h"
#include "tls.h"

/* exit codes */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_BPF = 3 };

#define OPTS_MAX_REDACT 32
#define OPTS_MAX_ENV_COPIES 64

/* The redaction options the agent and `shadowtap convert` share: one struct, one set
 * of table rows (OPTS_REDACT_ROWS) and one finishing step (redact_opts_finish). */
struct redact_opts {
	const char *header[OPTS_MAX_REDACT + 1];   /* --redact-header, then the defaults
						     * unless no_redact; NULL-terminated */
	int nheader;
	int no_redact;
	const char *mode;                /* "mask" | "hash" */
	const char *json[OPTS_MAX_REDACT];
	int njson;
	const char *query[OPTS_MAX_REDACT];
	int nquery;
	const char *pattern[OPTS_MAX_REDACT];
	int npattern;
};

struct config {
	struct capture_cfg cap;
	struct reasm_cfg reasm;
	struct exchange_cfg xcfg;
	struct replay_cfg replay;
	struct es_cfg es;
	struct recording_cfg rec;
	struct tls_cfg tls;
	int tls_mode;                    /* --tls: 0 off, 1 openssl */
	struct fields_sum_cfg diff;      /* endpoints, noise, summaries */
	const char *es_url;              /* comma-separated base URLs, NULL = no ES */
	const char *es_urls[ES_MAX_NODES];   /* -e, repeatable */
	int nes_urls;
	const char *output;
	const char *input_pcap;
	const char *metrics_listen;      /* --metrics ADDR:PORT, NULL = off */
	uint64_t exit_after_ns;          /* 0 = run until a signal */
	uint64_t shutdown_timeout_ns;    /* bound on draining at exit (pipeline_stop) */
	uint32_t stats_interval_s;       /* 0 = no periodic stats */
	size_t queue_cap;                /* records waiting for the output thread */
	uint64_t queue_bytes;            /* --queue-bytes: what those records hold, bytes */
	uint64_t memory_limit;           /* --memory-limit: the limits not given default from it */
	uint32_t workers;                /* --workers: capture/replay shards (rings, threads) */
	uint8_t given[128];               /* opts_table entries set by the user (OPTS_MAX_TABLE) */
	struct redact_opts red;          /* --redact-*, --no-redact */
	struct pii_cfg pii;              /* built from red by opts_finish */
	int no_es_gzip;
	int verbose, quiet;
	char es_env_url[2048];           /* the -e list joined, or ELASTICSEARCH_URL's */
	/* comma-split copies of SHADOWTAP_* list values; config strings point into them */
	char *env_copies[OPTS_MAX_ENV_COPIES];
	int nenv_copies;
};

enum opt_type {
	OPT_FLAG,        /* no value: sets an int to 1; env: 1/0 true/false yes/no on/off */
	OPT_COUNT,       /* no value: increments an int (-v -v) */
	OPT_UINT,        /* decimal integer in [min, max] */
	OPT_SIZE,        /* integer with K/M/G/T suffix (powers of two) in [min, max] bytes */
	OPT_DURATION,    /* number (fractions allowed) of unit_ns, in [min, max] units,
			  * stored as a count of store_ns in an integer field */
	OPT_REAL,        /* finite number in [min, max], stored as a double */
	OPT_STRING,      /* non-empty string, optionally checked */
	OPT_LIST,        /* repeatable string: array of const char * + int count */
	OPT_PORTS,       /* comma-separated TCP ports into capture_cfg */
	OPT_ENUM,        /* one of choices[]; stores the value (int) or the name */
	OPT_ACTION,      /* --help, --version: handled by the caller */
};

enum {
	OPTF_POW2 = 1,         /* OPT_SIZE: power of two */
	OPTF_PERCENT = 2,      /* OPT_REAL: a trailing '%' is allowed */
	OPTF_MAX_IS_ZERO = 4,  /* OPT_REAL: "max" (any case) stores 0 */
	OPTF_STORE_NAME = 8,   /* OPT_ENUM: store the choice's name (const char *) */
	OPTF_NO_ENV = 16,      /* no SHADOWTAP_* variable */
};

struct opt_choice {
	const char *name;
	int value;
};

struct opt {
	const char *name;                /* long name, also SHADOWTAP_<NAME> */
	int short_name;                  /* 0 = none */
	enum opt_type type;
	size_t off;                      /* offsetof(<base struct>, field) */
	size_t width;                    /* sizeof the field */
	double min, max;                 /* range in the unit given; lists: max entries */
	const char *def;                 /* default shown in --help, parsed by the tests */
	const char *arg;                 /* value placeholder in --help */
	const char *help;
	unsigned flags;                  /* OPTF_* */
	uint64_t unit_ns, store_ns;      /* OPT_DURATION */
	size_t count_off;                /* OPT_LIST: offsetof the int count */
	const struct opt_choice *choices;   /* OPT_ENUM, NULL-terminated */
	/* extra validation of a string value: NULL if fine, else why not */
	const char *(*check)(const char *v);
};

/* The rows for struct redact_opts member M of struct T, in T's table. */
extern const struct opt_choice opts_redact_modes[];
#define OPTS_RF(T, f) offsetof(T, f), sizeof(((T *)0)->f)
#define OPTS_REDACT_ROWS(T, M) \
	{ "redact-header", 0, OPT_LIST, OPTS_RF(T, M.header), .max = OPTS_MAX_REDACT, \
	  .count_off = offsetof(T, M.nheader), .arg = "NAME", \
	  .help = "also redact this header's value (repeatable)" }, \
	{ "no-redact", 0, OPT_FLAG, OPTS_RF(T, M.no_redact), \
	  .help = "store sensitive header values as captured" }, \
	{ "redact-mode", 0, OPT_ENUM, OPTS_RF(T, M.mode), .flags = OPTF_STORE_NAME, \
	  .choices = opts_redact_modes, .def = "mask", .arg = "mask|hash", \
	  .help = "mask: [REDACTED]; hash: REDACTED-<HMAC-SHA256 of the value> keyed by " \
		  "SHADOWTAP_REDACT_KEY(_FILE), so equal values still correlate" }, \
	{ "redact-json", 0, OPT_LIST, OPTS_RF(T, M.json), .max = OPTS_MAX_REDACT, \
	  .count_off = offsetof(T, M.njson), .arg = "PATH", \
	  .help = "redact this JSON body field: $.a.b, $..name, $.list[*].name (repeatable)" }, \
	{ "redact-query", 0, OPT_LIST, OPTS_RF(T, M.query), .max = OPTS_MAX_REDACT, \
	  .count_off = offsetof(T, M.nquery), .arg = "NAME", \
	  .help = "redact this query parameter's value (repeatable)" }, \
	{ "redact-pattern", 0, OPT_LIST, OPTS_RF(T, M.pattern), .max = OPTS_MAX_REDACT, \
	  .count_off = offsetof(T, M.npattern), .arg = "credit-card|email|RE", \
	  .help = "redact matches in text bodies and URLs: Luhn-checked card numbers, e-mail " \
		  "addresses or an extended regex (repeatable)" }

/* After parsing: the header list (--redact-header, then the defaults unless
 * --no-redact, NULL-terminated) and pii built from the body/query/pattern rules.
 * 0, or -EINVAL with one line printed (pii_cfg_build). */
int redact_opts_finish(struct redact_opts *r, struct pii_cfg *pii);

/* The agent's table, terminated by an entry with name NULL. */
extern const struct opt opts_table[];

/* Apply one value to the field o describes in base. src names where it came from
 * for the error line ("--port" or "SHADOWTAP_PORT"); NULL means "--<name>".
 * Returns 0, or -EINVAL after printing one line naming the option. */
int opt_set(const struct opt *o, void *base, const char *v, const char *src);
/* getopt_long over table into base: 0 with *first the index of the first operand
 * (operands are moved to the end), OPTS_HELP / OPTS_VERSION, or -EINVAL with one
 * line printed. */
#define OPTS_MAX_TABLE 128
int opt_parse_argv(const struct opt *table, void *base, int argc, char **argv, int *first);
/* Boolean environment values: 1 true, 0 false, -1 anything else. */
int opt_parse_bool(const char *v);
const struct opt *opt_find(const struct opt *table, const char *name);
/* "SHADOWTAP_" + NAME upper-cased with '-' -> '_' */
void opt_env_name(const char *prefix, const char *name, char *out, size_t n);
/* Print the option lines of table to f. */
void opt_print_help(FILE *f, const struct opt *table);

/* --workers' default: online CPUs / 4, clamped to 1..8. */
uint32_t opts_default_workers(void);
/* Module defaults (the table's def strings agree with them: tests/unit/test_opts.c). */
void opts_defaults(struct config *c);
enum { OPTS_RUN = 0, OPTS_HELP = 1, OPTS_VERSION = 2 };
/* SHADOWTAP_* from envp (may be NULL), then argv (argv wins). Returns OPTS_RUN,
 * OPTS_HELP or OPTS_VERSION (nothing printed), or -EINVAL with one line printed. */
int opts_parse(struct config *c, int argc, char **argv, char *const *envp);
/* Settings derived after parsing (ES URL from ELASTICSEARCH_URL/ES_PORT, redaction
 * list, body limits, log level). 0 or -EINVAL with one line printed. */
int opts_finish(struct config *c);
void opts_usage(FILE *f);
/* Frees the environment copies. Accepts NULL. */
void opts_free(struct config *c);

#endif
