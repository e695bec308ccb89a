/*
 * shadowtap: copy live HTTP traffic to a second server and store every exchange.
 *
 * Threads: this one captures (ring buffer or pcap -> reassembly -> HTTP pairing);
 * the replay engine has its own (replay.c); the sink thread here encodes records
 * once and writes NDJSON and hands documents to the Elasticsearch forwarder, which
 * has its own (sink_es.c). They meet at bounded queues; a full queue is a counted
 * drop, never a blocked capture path.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "util.h"
#include "exchange.h"
#include "log.h"
#include "parse.h"
#include "bq.h"
#include "record.h"
#include "recording.h"
#include "replay.h"
#include "sink_es.h"
#include "tcp_reasm.h"

#ifndef SHADOWTAP_VERSION
#define SHADOWTAP_VERSION "dev"
#endif

/* exit codes */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_BPF = 3 };

#define MAX_REDACT 32

struct config {
	struct capture_cfg cap;
	struct reasm_cfg reasm;
	struct exchange_cfg xcfg;
	struct replay_cfg replay;
	struct es_cfg es;
	const char *es_url;
	const char *output;
	const char *input_pcap;
	double exit_after;
	int stats_interval;
	size_t queue_cap;
	const char *redact[MAX_REDACT + 1];
	int nredact;
	int no_redact;
	char es_env_url[512];
	struct recording_cfg rec;
};

static const char *const default_redact[] = {
	"authorization", "cookie", "set-cookie", "proxy-authorization", NULL,
};

enum opt_id {
	O_IFACE = 'i', O_PORT = 'p', O_REPLAY = 'r', O_ES = 'e', O_OUTPUT = 'o', O_HELP = 'h',
	O_VERBOSE = 'v', O_QUIET = 'q',
	O_INPUT_PCAP = 256, O_EXIT_AFTER, O_STATS, O_VERSION,
	O_MAX_FLOWS, O_MAX_FLOW_BYTES, O_MAX_BUFFERED, O_IDLE_TIMEOUT, O_HOLE_TIMEOUT,
	O_BODY_LIMIT, O_MAX_HEAD, O_MAX_PENDING, O_QUEUE, O_RING_SIZE, O_WAKEUP_BYTES, O_PIN_DIR,
	O_REPLAY_CONNS, O_REPLAY_CTIMEOUT, O_REPLAY_TIMEOUT, O_REPLAY_QUEUE, O_REPLAY_MAX_BYTES,
	O_REPLAY_RATE, O_REPLAY_SAMPLE, O_REPLAY_HOST, O_REPLAY_HEADER, O_ALLOW_URL, O_DENY_URL,
	O_ALLOW_METHOD, O_DIFF_IGNORE,
	O_ES_INDEX, O_ES_BATCH_BYTES, O_ES_BATCH_MS, O_SPOOL_DIR, O_SPOOL_MAX, O_SPOOL_FSYNC,
	O_DEAD_LETTER, O_ES_CA, O_ES_INSECURE, O_NO_GZIP,
	O_REDACT, O_NO_REDACT, O_CAPTURE, O_XDP_GENERIC, O_MAX_HELD,
	O_OUTPUT_FILE, O_OUTPUT_FILE_SIZE, O_OUTPUT_FILE_INTERVAL, O_OUTPUT_FILE_COMPRESS,
	O_OUTPUT_DIR_MAX, O_OUTPUT_FORMAT, O_INPUT_FILE, O_REPLAY_SPEED, O_INPUT_LOOP,
};

struct opt_desc {
	const char *name;
	int has_arg;
	int id;
	const char *arg;
	const char *help;
};

static const struct opt_desc opts[] = {
	{ "interface", 1, O_IFACE, "IFACE", "interface to watch (default: all)" },
	{ "port", 1, O_PORT, "PORTS", "server ports to capture, comma-separated (default 80)" },
	{ "capture", 1, O_CAPTURE, "socket|tc|xdp", "capture hook (default socket)" },
	{ "xdp-generic", 0, O_XDP_GENERIC, NULL, "allow generic (skb-mode) XDP where the driver has no native XDP" },
	{ "replay", 1, O_REPLAY, "URL", "replay target, e.g. http://127.0.0.1:81 (repeatable)" },
	{ "es", 1, O_ES, "URL", "Elasticsearch/OpenSearch base URL (default from ELASTICSEARCH_URL, ES_PORT)" },
	{ "output", 1, O_OUTPUT, "FILE|-", "also write records as NDJSON to FILE or stdout" },
	{ "input-pcap", 1, O_INPUT_PCAP, "FILE", "read packets from a pcap/pcapng file instead of the network" },
	{ "exit-after", 1, O_EXIT_AFTER, "SECS", "stop after SECS, draining queues first" },
	{ "stats", 1, O_STATS, "N", "print counters on stderr every N seconds" },
	{ "verbose", 0, O_VERBOSE, NULL, "more messages (repeat for debug)" },
	{ "quiet", 0, O_QUIET, NULL, "warnings only" },
	{ "max-flows", 1, O_MAX_FLOWS, "N", "TCP connections tracked at once (default 65536)" },
	{ "max-flow-bytes", 1, O_MAX_FLOW_BYTES, "SIZE", "out-of-order bytes buffered per connection (default 4M)" },
	{ "max-buffered-bytes", 1, O_MAX_BUFFERED, "SIZE", "out-of-order bytes buffered in all (default 256M)" },
	{ "idle-timeout", 1, O_IDLE_TIMEOUT, "SECS", "forget a connection idle this long (default 120)" },
	{ "hole-timeout", 1, O_HOLE_TIMEOUT, "MS", "wait this long for a missing segment before a gap (default 500)" },
	{ "body-limit", 1, O_BODY_LIMIT, "SIZE", "body bytes stored per message (default 64K)" },
	{ "max-head", 1, O_MAX_HEAD, "SIZE", "largest HTTP head accepted (default 64K)" },
	{ "max-pending", 1, O_MAX_PENDING, "N", "unanswered requests per connection (default 64)" },
	{ "max-held-bytes", 1, O_MAX_HELD, "SIZE", "bytes held in unfinished records, all connections (default 512M)" },
	{ "queue", 1, O_QUEUE, "N", "records queued for output (default 65536)" },
	{ "ring-size", 1, O_RING_SIZE, "SIZE", "BPF ring buffer size, power of two (default 16M)" },
	{ "wakeup-bytes", 1, O_WAKEUP_BYTES, "SIZE", "pending ring bytes that force a wake-up (default ring/16)" },
	{ "pin-dir", 1, O_PIN_DIR, "DIR", "bpffs directory for pinned maps (default /sys/fs/bpf/shadowtap)" },
	{ "replay-connections", 1, O_REPLAY_CONNS, "N", "keep-alive connections per replay target (default 16)" },
	{ "replay-connect-timeout", 1, O_REPLAY_CTIMEOUT, "MS", "replay connect timeout (default 1000)" },
	{ "replay-timeout", 1, O_REPLAY_TIMEOUT, "MS", "replay response timeout (default 5000)" },
	{ "replay-queue", 1, O_REPLAY_QUEUE, "N", "records waiting for replay (default 65536)" },
	{ "replay-max-bytes", 1, O_REPLAY_MAX_BYTES, "SIZE", "request bytes queued or in flight for replay (default 256M)" },
	{ "replay-rate", 1, O_REPLAY_RATE, "N", "replay at most N requests/s (default unlimited)" },
	{ "replay-sample", 1, O_REPLAY_SAMPLE, "P%", "replay this share of client connections (default 100%)" },
	{ "replay-host", 1, O_REPLAY_HOST, "HOST", "rewrite the Host header of replayed requests" },
	{ "replay-header", 1, O_REPLAY_HEADER, "'NAME: VALUE'", "set or replace a header when replaying (repeatable)" },
	{ "allow-url", 1, O_ALLOW_URL, "REGEX", "replay only request-targets matching (repeatable)" },
	{ "deny-url", 1, O_DENY_URL, "REGEX", "never replay request-targets matching (repeatable)" },
	{ "allow-method", 1, O_ALLOW_METHOD, "METHOD", "replay only these methods (repeatable)" },
	{ "diff-ignore-header", 1, O_DIFF_IGNORE, "NAME", "header not compared (repeatable; replaces the default list)" },
	{ "es-index", 1, O_ES_INDEX, "PREFIX", "index name prefix (default shadowtap)" },
	{ "es-batch-bytes", 1, O_ES_BATCH_BYTES, "SIZE", "bulk request size (default 5M)" },
	{ "es-batch-ms", 1, O_ES_BATCH_MS, "MS", "bulk flush interval (default 1000)" },
	{ "spool-dir", 1, O_SPOOL_DIR, "DIR", "disk spool while Elasticsearch is unreachable" },
	{ "spool-max-bytes", 1, O_SPOOL_MAX, "SIZE", "spool size limit (default 1G)" },
	{ "spool-fsync", 1, O_SPOOL_FSYNC, "always|batch|never", "spool fsync policy (default batch)" },
	{ "dead-letter", 1, O_DEAD_LETTER, "FILE", "file for documents Elasticsearch rejected" },
	{ "es-ca", 1, O_ES_CA, "FILE", "extra CA certificate for TLS to Elasticsearch" },
	{ "es-insecure", 0, O_ES_INSECURE, NULL, "do not verify Elasticsearch's TLS certificate" },
	{ "no-es-gzip", 0, O_NO_GZIP, NULL, "send bulk requests uncompressed" },
	{ "redact-header", 1, O_REDACT, "NAME", "also redact this header's value (repeatable)" },
	{ "no-redact", 0, O_NO_REDACT, NULL, "store sensitive header values as captured" },
	{ "output-file", 1, O_OUTPUT_FILE, "PATH", "record exchanges to PATH (strftime placeholders; see also convert)" },
	{ "output-file-size", 1, O_OUTPUT_FILE_SIZE, "SIZE", "start a new recording file past SIZE" },
	{ "output-file-interval", 1, O_OUTPUT_FILE_INTERVAL, "SECS", "start a new recording file every SECS" },
	{ "output-file-compress", 1, O_OUTPUT_FILE_COMPRESS, "gzip|none", "compress recording files (default none)" },
	{ "output-dir-max", 1, O_OUTPUT_DIR_MAX, "SIZE", "cap the recording files; oldest are deleted first" },
	{ "output-format", 1, O_OUTPUT_FORMAT, "native|gor", "recording format (default native)" },
	{ "input-file", 1, O_INPUT_FILE, "PATH|GLOB", "replay a recording (.stap/.gor, gzip or not) instead of capturing" },
	{ "replay-speed", 1, O_REPLAY_SPEED, "P%|max", "pace of --input-file: 100% keeps the recorded timing (default)" },
	{ "input-loop", 0, O_INPUT_LOOP, NULL, "replay --input-file over and over" },
	{ "help", 0, O_HELP, NULL, "show this help" },
	{ "version", 0, O_VERSION, NULL, "print the version" },
	{ NULL, 0, 0, NULL, NULL },
};

static void usage(FILE *f)
{
	const struct opt_desc *o;
	char left[64];

	fprintf(f, "usage: shadowtap [OPTIONS]\n"
		   "Capture HTTP on the server ports with eBPF, replay each request to serverB,\n"
		   "and store every exchange (NDJSON, Elasticsearch).\n\n");
	for (o = opts; o->name; o++) {
		if (o->id < 256 && isalpha(o->id))
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->id, o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
		fprintf(f, "  %-34s %s\n", left, o->help);
	}
	fprintf(f, "\nEvery option can also be set as SHADOWTAP_<LONG_NAME> in the environment\n"
		   "(e.g. SHADOWTAP_PORT=80,8080); the command line wins. ELASTICSEARCH_URL and\n"
		   "ES_PORT configure --es as in the GoReplay demo. Credentials for Elasticsearch\n"
		   "come only from ES_USERNAME/ES_PASSWORD or ES_API_KEY (or their _FILE forms).\n");
}

static int bad_value(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "shadowtap: invalid value '%s' for --%s: %s\n", val, opt, why);
	return -EINVAL;
}

static int parse_ports(struct config *c, const char *s, const char *name)
{
	char tmp[256], *tok, *save = NULL;
	uint64_t v;

	if (strlen(s) >= sizeof(tmp))
		return bad_value(name, s, "too long");
	strcpy(tmp, s);
	c->cap.nports = 0;
	for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (st_parse_u64(tok, &v) || v == 0 || v > 65535)
			return bad_value(name, s, "ports are 1-65535, comma-separated");
		if (c->cap.nports == ST_MAX_PORTS)
			return bad_value(name, s, "at most 16 ports");
		c->cap.ports[c->cap.nports++] = (uint16_t)v;
	}
	if (!c->cap.nports)
		return bad_value(name, s, "no port given");
	return 0;
}

#define ADD_LIST(arr, n, max, v, name)                                             \
	do {                                                                       \
		if ((n) >= (max))                                                  \
			return bad_value(name, v, "repeated too many times");      \
		(arr)[(n)++] = (v);                                                \
	} while (0)

static int apply_opt(struct config *c, int id, const char *name, const char *v)
{
	uint64_t u;
	double d;

	switch (id) {
	case O_IFACE: c->cap.iface = v; break;
	case O_PORT: return parse_ports(c, v, name);
	case O_CAPTURE:
		if (!strcmp(v, "socket"))
			c->cap.mode = CAPTURE_SOCKET;
		else if (!strcmp(v, "tc"))
			c->cap.mode = CAPTURE_TC;
		else if (!strcmp(v, "xdp"))
			c->cap.mode = CAPTURE_XDP;
		else
			return bad_value(name, v, "expected socket, tc or xdp");
		break;
	case O_XDP_GENERIC: c->cap.xdp_generic = 1; break;
	case O_REPLAY:
		if (strncmp(v, "http://", 7) != 0)
			return bad_value(name, v, "expected http://HOST[:PORT]");
		ADD_LIST(c->replay.targets, c->replay.ntargets, REPLAY_MAX_TARGETS, v, name);
		break;
	case O_ES:
		if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
			return bad_value(name, v, "expected http(s)://HOST[:PORT]");
		c->es_url = v;
		break;
	case O_OUTPUT: c->output = v; break;
	case O_INPUT_PCAP: c->input_pcap = v; break;
	case O_EXIT_AFTER:
		if (st_parse_double(v, &d) || d <= 0)
			return bad_value(name, v, "expected a positive number of seconds");
		c->exit_after = d;
		break;
	case O_STATS:
		if (st_parse_u64(v, &u) || u == 0 || u > 86400)
			return bad_value(name, v, "expected seconds, 1-86400");
		c->stats_interval = (int)u;
		break;
	case O_VERBOSE: st_log_level++; break;
	case O_QUIET: st_log_level = ST_LOG_WARN; break;
	case O_MAX_FLOWS:
		if (st_parse_u64(v, &u) || u < 1 || u > (1u << 24))
			return bad_value(name, v, "expected 1-16777216");
		c->reasm.max_flows = u;
		break;
	case O_MAX_FLOW_BYTES:
		if (st_parse_size(v, &u) || u < 1024)
			return bad_value(name, v, "expected a size of at least 1K");
		c->reasm.max_flow_bytes = u;
		break;
	case O_MAX_BUFFERED:
		if (st_parse_size(v, &u) || u < 1024)
			return bad_value(name, v, "expected a size of at least 1K");
		c->reasm.max_total_bytes = u;
		break;
	case O_IDLE_TIMEOUT:
		if (st_parse_double(v, &d) || d <= 0)
			return bad_value(name, v, "expected a positive number of seconds");
		c->reasm.idle_timeout_ns = (uint64_t)(d * 1e9);
		break;
	case O_HOLE_TIMEOUT:
		if (st_parse_u64(v, &u) || u == 0)
			return bad_value(name, v, "expected milliseconds > 0");
		c->reasm.hole_timeout_ns = u * 1000000ull;
		break;
	case O_BODY_LIMIT:
		if (st_parse_size(v, &u) || u > (1ull << 30))
			return bad_value(name, v, "expected a size up to 1G");
		c->xcfg.body_limit = u;
		c->replay.body_limit = u;
		break;
	case O_MAX_HEAD:
		if (st_parse_size(v, &u) || u < 256 || u > (16u << 20))
			return bad_value(name, v, "expected a size from 256 to 16M");
		c->xcfg.max_head = u;
		break;
	case O_MAX_PENDING:
		if (st_parse_u64(v, &u) || u < 1 || u > 4096)
			return bad_value(name, v, "expected 1-4096");
		c->xcfg.max_pending = u;
		break;
	case O_MAX_HELD:
		if (st_parse_size(v, &u) || u < 65536)
			return bad_value(name, v, "expected a size of at least 64K");
		c->xcfg.max_held_bytes = u;
		break;
	case O_QUEUE:
		if (st_parse_u64(v, &u) || u < 1 || u > (1u << 24))
			return bad_value(name, v, "expected 1-16777216");
		c->queue_cap = u;
		break;
	case O_RING_SIZE:
		if (st_parse_size(v, &u) || u < 4096 || (u & (u - 1)) || u > (1ull << 30))
			return bad_value(name, v, "expected a power of two from 4K to 1G");
		c->cap.ring_bytes = u;
		break;
	case O_WAKEUP_BYTES:
		if (st_parse_size(v, &u) || u == 0)
			return bad_value(name, v, "expected a size > 0");
		c->cap.wakeup_bytes = u;
		break;
	case O_PIN_DIR: c->cap.pin_dir = v; break;
	case O_REPLAY_CONNS:
		if (st_parse_u64(v, &u) || u < 1 || u > 4096)
			return bad_value(name, v, "expected 1-4096");
		c->replay.connections = (int)u;
		break;
	case O_REPLAY_CTIMEOUT:
	case O_REPLAY_TIMEOUT:
		if (st_parse_u64(v, &u) || u < 1 || u > 3600000)
			return bad_value(name, v, "expected milliseconds, 1-3600000");
		if (id == O_REPLAY_CTIMEOUT)
			c->replay.connect_timeout_ms = (int)u;
		else
			c->replay.response_timeout_ms = (int)u;
		break;
	case O_REPLAY_QUEUE:
		if (st_parse_u64(v, &u) || u < 1 || u > (1u << 24))
			return bad_value(name, v, "expected 1-16777216");
		c->replay.queue_cap = u;
		break;
	case O_REPLAY_MAX_BYTES:
		if (st_parse_size(v, &u) || u < 1024)
			return bad_value(name, v, "expected a size of at least 1K");
		c->replay.max_inflight_bytes = u;
		break;
	case O_REPLAY_RATE:
		if (st_parse_double(v, &d))
			return bad_value(name, v, "expected requests per second (0 = unlimited)");
		c->replay.rate = d;
		break;
	case O_REPLAY_SAMPLE: {
		char tmp[32];
		size_t n = strlen(v);

		if (n == 0 || n >= sizeof(tmp))
			return bad_value(name, v, "expected a percentage, e.g. 10%");
		strcpy(tmp, v);
		if (tmp[n - 1] == '%')
			tmp[n - 1] = '\0';
		if (st_parse_double(tmp, &d) || d > 100)
			return bad_value(name, v, "expected a percentage from 0 to 100");
		c->replay.sample_pct = d;
		break;
	}
	case O_REPLAY_HOST: c->replay.host = v; break;
	case O_REPLAY_HEADER:
		if (!strchr(v, ':') || *v == ':')
			return bad_value(name, v, "expected 'Name: value'");
		ADD_LIST(c->replay.headers, c->replay.nheaders, REPLAY_MAX_HEADERS, v, name);
		break;
	case O_ALLOW_URL:
		ADD_LIST(c->replay.allow_url, c->replay.nallow_url, REPLAY_MAX_FILTERS, v, name);
		break;
	case O_DENY_URL:
		ADD_LIST(c->replay.deny_url, c->replay.ndeny_url, REPLAY_MAX_FILTERS, v, name);
		break;
	case O_ALLOW_METHOD:
		ADD_LIST(c->replay.allow_method, c->replay.nallow_method, REPLAY_MAX_FILTERS, v, name);
		break;
	case O_DIFF_IGNORE:
		ADD_LIST(c->replay.diff_ignore, c->replay.ndiff_ignore, 63, v, name);
		break;
	case O_ES_INDEX:
		if (!*v || strpbrk(v, " \"*\\<|,>/?#:") || *v == '_' || *v == '-')
			return bad_value(name, v, "not a valid index name prefix");
		c->es.index_prefix = v;
		break;
	case O_ES_BATCH_BYTES:
		if (st_parse_size(v, &u) || u < 1024 || u > (100u << 20))
			return bad_value(name, v, "expected a size from 1K to 100M");
		c->es.batch_bytes = u;
		break;
	case O_ES_BATCH_MS:
		if (st_parse_u64(v, &u) || u < 1 || u > 600000)
			return bad_value(name, v, "expected milliseconds, 1-600000");
		c->es.batch_ms = (int)u;
		break;
	case O_SPOOL_DIR: c->es.spool_dir = v; break;
	case O_SPOOL_MAX:
		if (st_parse_size(v, &u) || u < 65536)
			return bad_value(name, v, "expected a size of at least 64K");
		c->es.spool_max_bytes = u;
		break;
	case O_SPOOL_FSYNC:
		if (strcmp(v, "always") && strcmp(v, "batch") && strcmp(v, "never"))
			return bad_value(name, v, "expected always, batch or never");
		c->es.fsync_policy = v;
		break;
	case O_DEAD_LETTER: c->es.dead_letter = v; break;
	case O_ES_CA:
		if (access(v, R_OK))
			return bad_value(name, v, "file not readable");
		c->es.ca_file = v;
		break;
	case O_ES_INSECURE: c->es.insecure = 1; break;
	case O_NO_GZIP: c->es.gzip = 0; break;
	case O_REDACT:
		ADD_LIST(c->redact, c->nredact, MAX_REDACT, v, name);
		break;
	case O_NO_REDACT: c->no_redact = 1; break;
	case O_OUTPUT_FILE: case O_OUTPUT_FILE_SIZE: case O_OUTPUT_FILE_INTERVAL:
	case O_OUTPUT_FILE_COMPRESS: case O_OUTPUT_DIR_MAX: case O_OUTPUT_FORMAT:
	case O_INPUT_FILE: case O_REPLAY_SPEED: case O_INPUT_LOOP:
		return recording_parse_opt(&c->rec, name, v);
	default:
		return -EINVAL;
	}
	return 0;
}

/* SHADOWTAP_<LONG_NAME>: list options take comma-separated values (ports are
 * already a list), flags take 1/true/yes. */
static int apply_env(struct config *c)
{
	const struct opt_desc *o;
	char env[96], *p;
	int err;

	for (o = opts; o->name; o++) {
		const char *v;

		if (o->id == O_HELP || o->id == O_VERSION)
			continue;
		snprintf(env, sizeof(env), "SHADOWTAP_%s", o->name);
		for (p = env; *p; p++)
			*p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
		v = getenv(env);
		if (!v || !*v)
			continue;
		if (!o->has_arg) {
			if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no"))
				continue;
			err = apply_opt(c, o->id, o->name, NULL);
		} else if (o->id == O_REPLAY || o->id == O_REPLAY_HEADER || o->id == O_ALLOW_URL ||
			   o->id == O_DENY_URL || o->id == O_ALLOW_METHOD || o->id == O_DIFF_IGNORE ||
			   o->id == O_REDACT) {
			/* split on commas; the strings must live as long as the config */
			char *dup = strdup(v), *tok, *save = NULL;

			if (!dup)
				return -ENOMEM;
			err = 0;
			for (tok = strtok_r(dup, ",", &save); tok && !err; tok = strtok_r(NULL, ",", &save))
				err = apply_opt(c, o->id, o->name, tok);
		} else {
			err = apply_opt(c, o->id, o->name, v);
		}
		if (err) {
			fprintf(stderr, "shadowtap: (from environment variable %s)\n", env);
			return err;
		}
	}
	return 0;
}

static int parse_args(struct config *c, int argc, char **argv)
{
	struct option lopts[sizeof(opts) / sizeof(opts[0])];
	char shorts[64], *sp = shorts;
	const struct opt_desc *o;
	int i, ch, err;

	/* leading ':' makes getopt report a missing value as ':' rather than '?' */
	*sp++ = ':';

	for (i = 0, o = opts; o->name; o++, i++) {
		lopts[i] = (struct option){ o->name, o->has_arg ? required_argument : no_argument, NULL, o->id };
		if (o->id < 256) {
			*sp++ = (char)o->id;
			if (o->has_arg)
				*sp++ = ':';
		}
	}
	lopts[i] = (struct option){ 0 };
	*sp = '\0';
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, lopts, NULL)) != -1) {
		const char *name = NULL;

		if (ch == '?') {
			if (optopt && optopt < 256)
				fprintf(stderr, "shadowtap: unknown option '-%c' (see --help)\n", optopt);
			else
				fprintf(stderr, "shadowtap: unknown option '%s' (see --help)\n", argv[optind - 1]);
			return -EINVAL;
		}
		if (ch == ':') {
			fprintf(stderr, "shadowtap: option '%s' needs a value\n", argv[optind - 1]);
			return -EINVAL;
		}
		if (ch == O_HELP) {
			usage(stdout);
			exit(EXIT_OK);
		}
		if (ch == O_VERSION) {
			printf("shadowtap %s\n", SHADOWTAP_VERSION);
			exit(EXIT_OK);
		}
		for (o = opts; o->name; o++)
			if (o->id == ch)
				name = o->name;
		err = apply_opt(c, ch, name ? name : "?", optarg);
		if (err)
			return err;
	}
	if (optind < argc) {
		fprintf(stderr, "shadowtap: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ---- pipeline ---- */

struct app {
	struct config cfg;
	struct reasm *reasm;
	struct exchange *x;
	struct capture *cap;
	struct replay *replay;
	struct es_sink *es;
	struct rec_writer *recw;
	struct bq sinkq;
	pthread_t sink_thr;
	int sink_started;
	FILE *out;
	struct record_json_opts jopts;
	volatile int stop;
	/* sink counters (sink thread writes, others read for stats) */
	uint64_t sink_written, sink_dropped_full, sink_encode_errors, sink_write_errors;
	uint64_t dropped_no_memory;
	struct pcapin_stats pstats;
	uint64_t start_ns;
};

static void sink_submit(struct app *a, struct st_record *r)
{
	if (bq_push(&a->sinkq, r)) {
		__atomic_add_fetch(&a->sink_dropped_full, 1, __ATOMIC_RELAXED);
		record_free(r);
	}
}

static void on_replayed(void *ctx, struct st_record *r)
{
	sink_submit(ctx, r);
}

static void on_record(void *ctx, struct st_record *r)
{
	struct app *a = ctx;

	if (a->recw)
		rec_writer_submit(a->recw, r);
	if (a->replay)
		replay_submit(a->replay, r);
	else
		sink_submit(a, r);
}

/* Records the pipeline has finished with: --input-file paces itself on this. */
static uint64_t file_input_finished(void *ctx)
{
	struct app *a = ctx;

	return __atomic_load_n(&a->sink_written, __ATOMIC_RELAXED) +
	       __atomic_load_n(&a->sink_dropped_full, __ATOMIC_RELAXED) +
	       __atomic_load_n(&a->sink_encode_errors, __ATOMIC_RELAXED);
}

static void *sink_main(void *arg)
{
	struct app *a = arg;
	struct buf b = { 0 };
	void *items[256];
	int n, i;

	for (;;) {
		n = bq_pop(&a->sinkq, items, 256, 200);
		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			struct st_record *r = items[i];
			uint64_t ts = (uint64_t)((int64_t)(r->req.ts_first_ns ? r->req.ts_first_ns
									      : r->resp.ts_first_ns) +
						 r->clock_offset_ns);

			buf_reset(&b);
			if (record_to_json(r, &a->jopts, &b)) {
				a->sink_encode_errors++;
				record_free(r);
				continue;
			}
			if (a->es)
				es_sink_submit(a->es, r->event_id, ts, b.data, b.len);
			if (a->out) {
				buf_putc(&b, '\n');
				if (fwrite(b.data, 1, b.len, a->out) != b.len)
					a->sink_write_errors++;
			}
			__atomic_add_fetch(&a->sink_written, 1, __ATOMIC_RELAXED);
			record_free(r);
		}
		if (a->out && n)
			fflush(a->out);
	}
	buf_free(&b);
	return NULL;
}

static void on_segment(void *ctx, const struct reasm_seg *seg)
{
	struct app *a = ctx;

	reasm_segment(a->reasm, seg);
}

static void on_tick(void *ctx, uint64_t now_ns)
{
	struct app *a = ctx;

	reasm_tick(a->reasm, now_ns);
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void print_stats(struct app *a, FILE *f, const char *when)
{
	struct reasm_stats rs;
	struct exchange_stats xs;
	struct rusage ru;

	fprintf(f, "--- shadowtap %s: %.1f s ---\n", when, (double)(st_mono_ns() - a->start_ns) / 1e9);
	if (a->cap) {
		struct st_stats s = { 0 };
		struct capture_ustats us = { 0 };

		capture_read_stats(a->cap, &s);
		capture_get_ustats(a->cap, &us);
		fprintf(f,
			"bpf: packets=%llu matched=%llu payload_segments=%llu control=%llu events=%llu "
			"bytes=%llu dup_skipped=%llu ringbuf_full=%llu bytes_lost_ringbuf=%llu "
			"bytes_too_large=%llu load_errors=%llu wakeups=%llu\n",
			(unsigned long long)s.packets, (unsigned long long)s.matched,
			(unsigned long long)s.payload_segments, (unsigned long long)s.control_events,
			(unsigned long long)s.events, (unsigned long long)s.bytes_captured,
			(unsigned long long)s.dup_skipped, (unsigned long long)s.ringbuf_full,
			(unsigned long long)s.bytes_lost_ringbuf, (unsigned long long)s.bytes_too_large,
			(unsigned long long)s.load_errors, (unsigned long long)s.wakeups);
		fprintf(f, "ring: events=%llu bad_events=%llu\n", (unsigned long long)us.events,
			(unsigned long long)us.bad_events);
	}
	if (a->cfg.input_pcap)
		fprintf(f,
			"pcap: packets=%llu segments=%llu other=%llu malformed=%llu fragments=%llu "
			"snap_truncated=%llu unsupported_link=%llu\n",
			(unsigned long long)a->pstats.packets, (unsigned long long)a->pstats.segments,
			(unsigned long long)a->pstats.not_tcp, (unsigned long long)a->pstats.malformed,
			(unsigned long long)a->pstats.fragments, (unsigned long long)a->pstats.snap_truncated,
			(unsigned long long)a->pstats.unsupported_link);
	if (a->reasm) {
		reasm_get_stats(a->reasm, &rs);
		fprintf(f,
			"tcp: segments=%llu flows=%llu active=%llu fin=%llu rst=%llu expired=%llu "
			"evicted=%llu refused=%llu mid_stream=%llu delivered=%llu retrans=%llu "
			"overlap=%llu ooo=%llu gaps=%llu gap_bytes=%llu overflows=%llu buffered=%llu "
			"buffered_peak=%llu after_close=%llu reused=%llu no_flow=%llu refused_segments=%llu "
			"bad_segments=%llu nomem=%llu\n",
			(unsigned long long)rs.segments, (unsigned long long)rs.flows_created,
			(unsigned long long)rs.flows_active, (unsigned long long)rs.flows_closed_fin,
			(unsigned long long)rs.flows_closed_rst, (unsigned long long)rs.flows_expired,
			(unsigned long long)rs.flows_evicted, (unsigned long long)rs.flows_refused,
			(unsigned long long)rs.mid_stream_pickups, (unsigned long long)rs.bytes_delivered,
			(unsigned long long)rs.retrans_bytes, (unsigned long long)rs.overlap_bytes,
			(unsigned long long)rs.ooo_segments, (unsigned long long)rs.gaps,
			(unsigned long long)rs.gap_bytes, (unsigned long long)rs.buffer_overflows,
			(unsigned long long)rs.buffered_bytes, (unsigned long long)rs.buffered_bytes_peak,
			(unsigned long long)rs.after_close, (unsigned long long)rs.flows_reused,
			(unsigned long long)rs.no_flow, (unsigned long long)rs.refused_segments,
			(unsigned long long)rs.bad_segments, (unsigned long long)rs.nomem);
	}
	if (a->x) {
		exchange_get_stats(a->x, &xs);
		fprintf(f,
			"http: requests=%llu responses=%llu informational=%llu records=%llu complete=%llu "
			"malformed_requests=%llu malformed_responses=%llu resyncs=%llu "
			"resync_skipped_bytes=%llu no_response=%llu orphan_responses=%llu upgrades=%llu "
			"pending_overflow=%llu framing_abandoned=%llu head_too_large=%llu raw_truncated=%llu body_unstored=%llu gap_records=%llu "
			"held_bytes=%llu held_peak=%llu\n",
			(unsigned long long)xs.requests, (unsigned long long)xs.responses,
			(unsigned long long)xs.informational, (unsigned long long)xs.records,
			(unsigned long long)xs.complete, (unsigned long long)xs.malformed_requests,
			(unsigned long long)xs.malformed_responses, (unsigned long long)xs.resyncs,
			(unsigned long long)xs.resync_skipped_bytes, (unsigned long long)xs.no_response,
			(unsigned long long)xs.orphan_responses, (unsigned long long)xs.upgrades,
			(unsigned long long)xs.pending_overflow, (unsigned long long)xs.framing_abandoned,
			(unsigned long long)xs.head_too_large,
			(unsigned long long)xs.raw_truncated, (unsigned long long)xs.body_unstored,
			(unsigned long long)xs.gap_records,
			(unsigned long long)xs.held_bytes, (unsigned long long)xs.held_bytes_peak);
	}
	if (a->replay)
		replay_print_stats(a->replay, f);
	if (a->recw) {
		struct rec_writer_stats ws;

		rec_writer_get_stats(a->recw, &ws);
		fprintf(f, "recording: submitted=%llu written=%llu files=%llu bytes=%llu "
			"dropped_queue_full=%llu dropped_memory=%llu dropped_dir_full=%llu write_errors=%llu\n",
			(unsigned long long)ws.submitted, (unsigned long long)ws.written,
			(unsigned long long)ws.files, (unsigned long long)ws.bytes,
			(unsigned long long)ws.dropped_queue_full, (unsigned long long)ws.dropped_memory,
			(unsigned long long)ws.dropped_dir_full, (unsigned long long)ws.write_errors);
	}
	fprintf(f, "output: written=%llu dropped_queue_full=%llu encode_errors=%llu write_errors=%llu queue_peak=%llu\n",
		(unsigned long long)__atomic_load_n(&a->sink_written, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&a->sink_dropped_full, __ATOMIC_RELAXED),
		(unsigned long long)a->sink_encode_errors, (unsigned long long)a->sink_write_errors,
		(unsigned long long)a->sinkq.peak);
	if (a->es)
		es_sink_print_stats(a->es, f);
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "process: cpu_user=%.2fs cpu_sys=%.2fs rss_kb=%ld maxrss_kb=%ld\n",
		(double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, rss_kb(), ru.ru_maxrss);
	fflush(f);
}

static int setup_signals(sigset_t *set)
{
	int fd;

	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGUSR1);
	/* block before any thread starts so only the signalfd sees them */
	if (pthread_sigmask(SIG_BLOCK, set, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Non-blocking: 1 if asked to stop, 0 otherwise; SIGUSR1 prints stats. */
static int check_signals(struct app *a, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			print_stats(a, stderr, "stats");
			continue;
		}
		pr_info("signal %u: draining and exiting\n", si.ssi_signo);
		a->stop = 1;
	}
	return a->stop;
}

static void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->cap.ports[0] = 80;
	c->cap.nports = 1;
	c->cap.ring_bytes = 16u << 20;
	c->cap.pin_dir = "/sys/fs/bpf/shadowtap";
	reasm_cfg_default(&c->reasm);
	exchange_cfg_default(&c->xcfg);
	replay_cfg_default(&c->replay);
	c->replay.body_limit = c->xcfg.body_limit;
	es_cfg_default(&c->es);
	c->queue_cap = 65536;
	recording_cfg_default(&c->rec);
}

int main(int argc, char **argv)
{
	struct app *a;
	struct config *c;
	uint64_t deadline = 0, next_stats = 0, next_tick = 0;
	struct timespec rt, mt;
	sigset_t sigs;
	int sfd = -1, err = 0, rc = EXIT_OK, i;

	if (argc > 1 && !strcmp(argv[1], "convert"))
		return recording_convert_main(argc - 1, argv + 1);
	a = calloc(1, sizeof(*a));
	if (!a) {
		fprintf(stderr, "shadowtap: out of memory\n");
		return EXIT_RUNTIME;
	}
	c = &a->cfg;
	config_defaults(c);
	if (apply_env(c) || parse_args(c, argc, argv)) {
		rc = EXIT_USAGE;
		goto cleanup;
	}
	if (!c->es_url && es_url_from_env(c->es_env_url, sizeof(c->es_env_url)) == 0 && c->es_env_url[0])
		c->es_url = c->es_env_url;
	c->es.url = c->es_url;

	/* redaction list: defaults plus --redact-header, or nothing with --no-redact */
	if (!c->no_redact) {
		int n = c->nredact;

		for (i = 0; default_redact[i] && n < MAX_REDACT; i++)
			c->redact[n++] = default_redact[i];
		c->redact[n] = NULL;
		a->jopts.redact = c->redact;
	}
	a->jopts.body_limit = c->xcfg.body_limit;
	c->xcfg.keep_raw = c->replay.ntargets > 0 || c->rec.out_path;
	c->rec.body_limit = c->xcfg.body_limit;
	c->rec.meta_iface = c->cap.iface;
	c->rec.meta_source = c->rec.in_pattern ? "file" : c->input_pcap ? "pcap" : "live";
	if (c->rec.in_pattern && c->input_pcap) {
		fprintf(stderr, "shadowtap: --input-file and --input-pcap exclude each other\n");
		rc = EXIT_USAGE;
		goto cleanup;
	}

	sfd = setup_signals(&sigs);
	if (sfd < 0) {
		pr_warn("cannot set up signal handling: %s\n", strerror(-sfd));
		rc = EXIT_RUNTIME;
		goto cleanup;
	}
	a->start_ns = st_mono_ns();

	if (c->output) {
		if (!strcmp(c->output, "-")) {
			a->out = stdout;
		} else {
			a->out = fopen(c->output, "w");
			if (!a->out) {
				pr_warn("cannot open output file %s: %s\n", c->output, strerror(errno));
				rc = EXIT_RUNTIME;
				goto cleanup;
			}
		}
	}
	if (!c->output && !c->es_url)
		pr_info("no --output or --es given: records are only counted\n");

	err = bq_init(&a->sinkq, c->queue_cap);
	if (err) {
		rc = EXIT_RUNTIME;
		goto cleanup;
	}
	if (c->es_url) {
		err = es_sink_start(&a->es, &c->es);
		if (err) {
			rc = EXIT_RUNTIME;
			goto cleanup;
		}
	}
	if (pthread_create(&a->sink_thr, NULL, sink_main, a)) {
		pr_warn("cannot start the output thread\n");
		rc = EXIT_RUNTIME;
		goto cleanup;
	}
	a->sink_started = 1;
	if (c->replay.ntargets) {
		err = replay_start(&a->replay, &c->replay, on_replayed, a);
		if (err) {
			rc = err == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
			goto cleanup;
		}
	}

	/* capture clock -> wall clock: live events carry CLOCK_MONOTONIC, pcaps wall time */
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	if (!c->input_pcap)
		c->xcfg.clock_offset_ns = ((int64_t)rt.tv_sec - mt.tv_sec) * 1000000000ll +
					  (rt.tv_nsec - mt.tv_nsec);
	a->x = exchange_new(&c->xcfg, on_record, a);
	a->reasm = a->x ? reasm_new(&c->reasm, &exchange_reasm_ops, a->x) : NULL;
	if (!a->reasm) {
		pr_warn("out of memory setting up the flow table\n");
		rc = EXIT_RUNTIME;
		goto cleanup;
	}

	if (c->exit_after > 0)
		deadline = st_mono_ns() + (uint64_t)(c->exit_after * 1e9);
	if (c->stats_interval)
		next_stats = st_mono_ns() + (uint64_t)c->stats_interval * 1000000000ull;

	if (c->rec.out_path && rec_writer_start(&a->recw, &c->rec)) {
		rc = EXIT_RUNTIME;
		goto cleanup;
	}
	if (c->rec.in_pattern) {
		struct recording_input in = {
			.rc = &c->rec, .submit = on_record, .finished = file_input_finished, .ctx = a,
			.signal_fd = sfd, .stop = &a->stop,
			/* stay well inside replay's and the sink's queue bounds */
			.max_in_flight = c->replay.queue_cap / 2 < 1024 ? c->replay.queue_cap / 2 + 1 : 1024,
		};

		if (recording_input_run(&in))
			rc = EXIT_RUNTIME;
	} else if (c->input_pcap) {
		err = pcapin_run(c->input_pcap, c->cap.ports, c->cap.nports, on_segment, on_tick, a,
				 &a->pstats, &a->stop);
		if (err)
			rc = EXIT_RUNTIME;
	} else {
		err = capture_open(&a->cap, &c->cap, on_segment, a);
		if (err) {
			rc = EXIT_BPF;
			goto cleanup;
		}
		{
			char plist[16 * 6 + 1] = "";
			size_t pl = 0;

			for (i = 0; i < c->cap.nports; i++)
				pl += (size_t)snprintf(plist + pl, sizeof(plist) - pl, "%s%u", i ? "," : "",
						       c->cap.ports[i]);
			pr_info("capturing TCP port%s %s on %s\n", c->cap.nports > 1 ? "s" : "", plist,
				c->cap.iface ? c->cap.iface : "all interfaces");
		}
		while (!check_signals(a, sfd)) {
			uint64_t now;

			err = capture_poll(a->cap, 20);
			if (err < 0 && err != -EINTR) {
				pr_warn("ring buffer poll failed: %s\n", strerror(-err));
				rc = EXIT_RUNTIME;
				break;
			}
			now = st_mono_ns();
			if (now >= next_tick) {
				reasm_tick(a->reasm, now);
				next_tick = now + 100000000ull;
			}
			if (next_stats && now >= next_stats) {
				print_stats(a, stderr, "stats");
				next_stats = now + (uint64_t)c->stats_interval * 1000000000ull;
			}
			if (deadline && now >= deadline)
				break;
		}
		/* drain what the kernel already queued */
		capture_poll(a->cap, 0);
	}

cleanup:
	if (a->reasm) {
		reasm_flush_all(a->reasm);
	}
	/* prints its own stats line and frees: the exit summary does not repeat it */
	rec_writer_stop(a->recw, stderr);
	a->recw = NULL;
	if (a->replay)
		replay_stop(a->replay);
	if (a->sink_started) {
		bq_close(&a->sinkq);
		pthread_join(a->sink_thr, NULL);
	}
	if (a->es)
		es_sink_stop(a->es, 30000);
	if (a->x && rc != EXIT_USAGE)
		print_stats(a, stderr, "exit");
	if (a->out && a->out != stdout)
		fclose(a->out);
	else if (a->out)
		fflush(a->out);
	reasm_free(a->reasm);
	exchange_free(a->x);
	replay_free(a->replay);
	es_sink_free(a->es);
	capture_close(a->cap);
	bq_destroy(&a->sinkq);
	if (sfd >= 0)
		close(sfd);
	free(a);
	return rc;
}
