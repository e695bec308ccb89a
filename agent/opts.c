/* The option table and the one parser behind the command line, the SHADOWTAP_*
 * environment and --help. Every value is checked here, at parse time, so a bad
 * setting exits 2 with one line naming it instead of failing late or wrapping. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include "endpoint.h"
#include "log.h"
#include "metrics.h"
#include "opts.h"
#include "parse.h"
#include "selfloop.h"
#include "urlsafe.h"

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define COUNT(f) offsetof(struct config, f)
#define NS_S 1000000000ull
#define NS_MS 1000000ull

static const char *check_replay_url(const char *v)
{
	if (url_has_userinfo(v))
		return "user:password@ in a replay URL is not supported (and never printed)";
	return strncmp(v, "http://", 7) && strncmp(v, "https://", 8) ? "expected http(s)://HOST[:PORT]"
								      : NULL;
}

static const char *check_es_url(const char *v)
{
	return strncmp(v, "http://", 7) && strncmp(v, "https://", 8) ? "expected http(s)://HOST[:PORT]"
								      : NULL;
}

static const char *check_listen(const char *v)
{
	struct sockaddr_storage ss;
	unsigned len;

	return metrics_parse_addr(v, &ss, &len) ? "expected ADDR:PORT, [IPV6]:PORT or :PORT" : NULL;
}

static const char *check_index(const char *v)
{
	return strpbrk(v, " \"*\\<|,>/?#:") || *v == '_' || *v == '-' ? "not a valid index name prefix"
								       : NULL;
}

static const char *check_readable(const char *v)
{
	return access(v, R_OK) ? "file not readable" : NULL;
}

static const char *check_header(const char *v)
{
	return !strchr(v, ':') || *v == ':' ? "expected 'Name: value'" : NULL;
}

static const char *check_endpoint(const char *v)
{
	return endpoint_pattern_valid(v) ? NULL : "expected 'METHOD /path-glob' ('*' for any method)";
}

static const char *check_diff_ignore(const char *v)
{
	return endpoint_ignore_valid(v) ? NULL : "expected 'ENDPOINT PATH', e.g. '* $.meta.generated_at'";
}

static const struct opt_choice capture_modes[] = {
	{ "socket", CAPTURE_SOCKET }, { "tc", CAPTURE_TC }, { "xdp", CAPTURE_XDP }, { NULL, 0 },
};
static const struct opt_choice tls_modes[] = {
	{ "off", 0 }, { "openssl", 1 }, { NULL, 0 },
};
static const struct opt_choice fsync_policies[] = {
	{ "always", 0 }, { "batch", 0 }, { "never", 0 }, { NULL, 0 },
};
const struct opt_choice opts_redact_modes[] = {
	{ "mask", 0 }, { "hash", 0 }, { NULL, 0 },
};
static const struct opt_choice compressions[] = {
	{ "gzip", 1 }, { "none", 0 }, { NULL, 0 },
};
static const struct opt_choice rec_formats[] = {
	{ "native", REC_FMT_NATIVE }, { "stap", REC_FMT_NATIVE }, { "gor", REC_FMT_GOR }, { NULL, 0 },
};

static const struct opt_choice replay_orders[] = {
	{ "session", REPLAY_ORDER_SESSION }, { "session-parallel", REPLAY_ORDER_SESSION_PARALLEL },
	{ "request", REPLAY_ORDER_REQUEST }, { NULL, 0 },
};

#define SECS(lo, hi) .min = lo, .max = hi, .unit_ns = NS_S
#define MSECS(lo, hi) .min = lo, .max = hi, .unit_ns = NS_MS

const struct opt opts_table[] = {
	{ "interface", 'i', OPT_STRING, FIELD(cap.iface), .arg = "IFACE",
	  .help = "interface(s) to watch, comma-separated (default: all)" },
	{ "port", 'p', OPT_PORTS, FIELD(cap.ports), .def = "80", .arg = "PORTS",
	  .help = "server ports to capture, comma-separated, at most 16" },
	{ "capture", 0, OPT_ENUM, FIELD(cap.mode), .def = "socket", .arg = "socket|tc|xdp",
	  .choices = capture_modes, .help = "capture hook" },
	{ "xdp-generic", 0, OPT_FLAG, FIELD(cap.xdp_generic),
	  .help = "allow generic (skb-mode) XDP where the driver has no native XDP" },
	{ "tls", 0, OPT_ENUM, FIELD(tls_mode), .def = "off", .arg = "off|openssl",
	  .choices = tls_modes,
	  .help = "also capture HTTPS plaintext with uprobes on the servers' OpenSSL" },
	{ "tls-port", 0, OPT_PORTS, FIELD(tls.ports), .count_off = COUNT(tls.nports), .def = "443",
	  .arg = "PORTS", .help = "HTTPS server ports for --tls, comma-separated, at most 16" },
	{ "tls-lib", 0, OPT_STRING, FIELD(tls.lib), .arg = "PATH",
	  .help = "attach --tls to this libssl or binary instead of finding it in /proc" },
	{ "replay", 'r', OPT_LIST, FIELD(replay.targets), .max = REPLAY_MAX_TARGETS,
	  .count_off = COUNT(replay.ntargets), .check = check_replay_url, .arg = "URL",
	  .help = "replay target, e.g. http://127.0.0.1:81 (repeatable)" },
	{ "es", 'e', OPT_LIST, FIELD(es_urls), .max = ES_MAX_NODES, .count_off = COUNT(nes_urls),
	  .check = check_es_url, .arg = "URL",
	  .help = "Elasticsearch/OpenSearch node URL, repeatable for a cluster (default from "
		  "ELASTICSEARCH_URL, comma-separated, and ES_PORT); credentials belong in "
		  "ES_USERNAME/ES_PASSWORD, not the URL" },
	{ "output", 'o', OPT_STRING, FIELD(output), .arg = "FILE|-",
	  .help = "also write records as NDJSON to FILE (appended to, never truncated) or stdout" },
	{ "input-pcap", 0, OPT_STRING, FIELD(input_pcap), .arg = "FILE",
	  .help = "read packets from a pcap/pcapng file instead of the network" },
	{ "exit-after", 0, OPT_DURATION, FIELD(exit_after_ns), SECS(0.001, 366 * 86400.0),
	  .store_ns = 1, .arg = "SECS", .help = "stop after SECS, draining queues first" },
	{ "shutdown-timeout", 0, OPT_DURATION, FIELD(shutdown_timeout_ns), SECS(0.1, 3600.0),
	  .store_ns = 1, .def = "10", .arg = "SECS",
	  .help = "at exit, drain replay and Elasticsearch for at most SECS, then spool what is left and exit (a second SIGINT/SIGTERM: at once)" },
	{ "stats", 0, OPT_DURATION, FIELD(stats_interval_s), SECS(1, 86400), .store_ns = NS_S,
	  .arg = "SECS", .help = "print one line of per-second rates on stderr every SECS seconds (all counters: SIGUSR1, and at exit)" },
	{ "metrics", 0, OPT_STRING, FIELD(metrics_listen), .check = check_listen, .arg = "ADDR:PORT",
	  .help = "serve Prometheus /metrics, /healthz and /readyz on ADDR:PORT (off by default)" },
	{ "verbose", 'v', OPT_COUNT, FIELD(verbose), .help = "more messages (repeat for debug)" },
	{ "quiet", 'q', OPT_FLAG, FIELD(quiet), .help = "warnings only" },
	{ "memory-limit", 0, OPT_SIZE, FIELD(memory_limit), .min = 16u << 20, .max = 1ull << 44,
	  .def = "256M", .arg = "SIZE",
	  .help = "memory budget for what remote clients make the agent hold; the limits below "
		  "that are not given default from it: --replay-max-bytes 5/16, --max-held-bytes "
		  "1/16, --queue-bytes 1/16, --max-buffered-bytes 1/32, --max-conn-bytes 1/32, "
		  "--max-flow-bytes 1/512, --max-flows one per 32K, --queue and --replay-queue one per 4K "
		  "(records: their bytes are in the budgets above), "
		  "--ring-size 1/8 (at most 32M; its pages count twice in RSS); free record blocks "
		  "kept for reuse 1/128 (the exit summary's records: line). At the default 256M "
		  "all of them full at once stay under 256 MB of RSS" },
	{ "max-flows", 0, OPT_UINT, FIELD(reasm.max_flows), .min = 1, .max = 1u << 24,
	  .def = "8192", .arg = "N", .help = "TCP connections tracked at once (past it the least "
		  "recently active is evicted)" },
	{ "max-flow-bytes", 0, OPT_SIZE, FIELD(reasm.max_flow_bytes), .min = 1024, .max = 1ull << 30,
	  .def = "512K", .arg = "SIZE", .help = "out-of-order bytes buffered per connection" },
	{ "max-buffered-bytes", 0, OPT_SIZE, FIELD(reasm.max_total_bytes), .min = 1024,
	  .max = 1ull << 40, .def = "8M", .arg = "SIZE", .help = "out-of-order bytes buffered in all" },
	{ "idle-timeout", 0, OPT_DURATION, FIELD(reasm.idle_timeout_ns), SECS(0.001, 30 * 86400.0),
	  .store_ns = 1, .def = "120", .arg = "SECS", .help = "forget a connection idle this long" },
	{ "hole-timeout", 0, OPT_DURATION, FIELD(reasm.hole_timeout_ns), MSECS(1, 600000),
	  .store_ns = 1, .def = "500", .arg = "MS",
	  .help = "wait this long for a missing segment before a gap" },
	{ "body-limit", 0, OPT_SIZE, FIELD(xcfg.body_limit), .min = 0, .max = 1ull << 30,
	  .def = "64K", .arg = "SIZE", .help = "body bytes stored per message" },
	{ "max-head", 0, OPT_SIZE, FIELD(xcfg.max_head), .min = 256, .max = 16u << 20, .def = "64K",
	  .arg = "SIZE", .help = "largest HTTP head accepted" },
	{ "max-headers", 0, OPT_UINT, FIELD(xcfg.max_headers), .min = 1, .max = ST_MAX_HEADERS,
	  .def = "100", .arg = "N",
	  .help = "header fields a record lists per message; a message with more is still parsed, framed and replayed whole, and flagged (capture.headers_over_limit)" },
	{ "max-pending", 0, OPT_UINT, FIELD(xcfg.max_pending), .min = 1, .max = 4096, .def = "64",
	  .arg = "N", .help = "unanswered requests per connection" },
	{ "max-held-bytes", 0, OPT_SIZE, FIELD(xcfg.max_held_bytes), .min = 65536, .max = 1ull << 40,
	  .def = "16M", .arg = "SIZE", .help = "bytes held for connections (partial heads, records "
		  "awaiting a response), all connections; past it the oldest holders are evicted" },
	{ "max-conn-bytes", 0, OPT_SIZE, FIELD(xcfg.max_conn_bytes), .min = 16384, .max = 1ull << 40,
	  .def = "8M", .arg = "SIZE", .help = "the same for one connection; past it it is evicted" },
	{ "queue", 0, OPT_UINT, FIELD(queue_cap), .min = 1, .max = 1u << 24, .def = "65536",
	  .arg = "N", .help = "records queued for output" },
	{ "queue-bytes", 0, OPT_SIZE, FIELD(queue_bytes), .min = 65536, .max = 1ull << 40,
	  .def = "16M", .arg = "SIZE",
	  .help = "bytes the records queued for output may hold (past it a record is dropped, "
		  "counted in output: dropped_memory)" },
	{ "ring-size", 0, OPT_SIZE, FIELD(cap.ring_bytes), .min = ST_RING_MIN, .max = 1ull << 30,
	  .flags = OPTF_POW2, .def = "32M", .arg = "SIZE",
	  .help = "BPF ring buffer size, power of two; at least 128K per worker (one ring "
		  "then holds a whole 64 KiB segment)" },
	{ "workers", 0, OPT_UINT, FIELD(workers), .min = 1, .max = ST_MAX_WORKERS, .arg = "N",
	  .help = "worker threads, each with its own BPF ring, flows, pairing, replay connections "
		  "and output batches; connections are spread by a hash of their addresses and "
		  "ports (default: online CPUs / 4, at least 1, at most 8; --input-pcap and "
		  "--input-file run one). --ring-size and the memory limits are totals, split "
		  "among workers" },
	{ "wakeup-bytes", 0, OPT_SIZE, FIELD(cap.wakeup_bytes), .min = 1, .max = 1ull << 30,
	  .arg = "SIZE", .help = "pending ring bytes that force a wake-up (default ring/16)" },
	{ "pin-dir", 0, OPT_STRING, FIELD(cap.pin_dir), .def = "/sys/fs/bpf/shadowtap", .arg = "DIR",
	  .help = "bpffs directory for pinned maps" },
	{ "replay-connections", 0, OPT_UINT, FIELD(replay.connections), .min = 1, .max = 4096,
	  .def = "16", .arg = "N", .help = "keep-alive connections per replay target (the pool's floor)" },
	{ "replay-connections-max", 0, OPT_UINT, FIELD(replay.connections_max), .min = 1, .max = 4096,
	  .def = "256", .arg = "N",
	  .help = "the pool grows with demand up to N connections per replay target" },
	{ "replay-order", 0, OPT_ENUM, FIELD(replay.order), .def = "session",
	  .arg = "session|session-parallel|request", .choices = replay_orders,
	  .help = "per client connection: in order pipelined, in order over several connections, or independent" },
	{ "replay-pipeline", 0, OPT_UINT, FIELD(replay.pipeline), .min = 1, .max = 1024, .def = "16",
	  .arg = "N", .help = "requests of one client connection in flight to serverB at once" },
	{ "replay-gather", 0, OPT_UINT, FIELD(replay.gather_us), .min = 0, .max = 10000,
	  .def = "1000", .arg = "USEC",
	  .help = "while serverB answers pipelined requests, the replay thread lets its answers "
		  "gather for USEC microseconds before it reads them (0 = read at once); "
		  "replay.duration ends at the kernel's receive time of the read that completes "
		  "the answer, not after the pause (https:// targets: may include up to USEC)" },
	{ "replay-connect-timeout", 0, OPT_DURATION, FIELD(replay.connect_timeout_ms),
	  MSECS(1, 3600000), .store_ns = NS_MS, .def = "1000", .arg = "MS",
	  .help = "replay connect timeout" },
	{ "replay-timeout", 0, OPT_DURATION, FIELD(replay.response_timeout_ms), MSECS(1, 3600000),
	  .store_ns = NS_MS, .def = "5000", .arg = "MS", .help = "replay response timeout" },
	{ "replay-queue", 0, OPT_UINT, FIELD(replay.queue_cap), .min = 1, .max = 1u << 24,
	  .def = "65536", .arg = "N", .help = "records waiting for replay" },
	{ "replay-max-bytes", 0, OPT_SIZE, FIELD(replay.max_inflight_bytes), .min = 1024,
	  .max = 1ull << 40, .def = "80M", .arg = "SIZE",
	  .help = "bytes the records queued or in flight for replay hold" },
	{ "replay-rate", 0, OPT_REAL, FIELD(replay.rate), .min = 0, .max = 1e9, .def = "0",
	  .arg = "N", .help = "replay at most N requests/s (0 = unlimited)" },
	{ "replay-sample", 0, OPT_REAL, FIELD(replay.sample_pct), .min = 0, .max = 100,
	  .flags = OPTF_PERCENT, .def = "100%", .arg = "P%",
	  .help = "replay this share of client connections" },
	{ "replay-ca", 0, OPT_STRING, FIELD(replay.tls_ca), .arg = "FILE",
	  .help = "trust the PEM certificates in FILE for https:// replay targets (default: the system's)" },
	{ "replay-insecure", 0, OPT_FLAG, FIELD(replay.tls_insecure),
	  .help = "do not verify the certificate of https:// replay targets" },
	{ "replay-host", 0, OPT_STRING, FIELD(replay.host), .arg = "HOST",
	  .help = "rewrite the Host header of replayed requests" },
	{ "replay-header", 0, OPT_LIST, FIELD(replay.headers), .max = REPLAY_MAX_HEADERS,
	  .count_off = COUNT(replay.nheaders), .check = check_header, .arg = "'NAME: VALUE'",
	  .help = "set or replace a header when replaying (repeatable)" },
	{ "allow-url", 0, OPT_LIST, FIELD(replay.allow_url), .max = REPLAY_MAX_FILTERS,
	  .count_off = COUNT(replay.nallow_url), .arg = "REGEX",
	  .help = "replay only request-targets matching (repeatable)" },
	{ "deny-url", 0, OPT_LIST, FIELD(replay.deny_url), .max = REPLAY_MAX_FILTERS,
	  .count_off = COUNT(replay.ndeny_url), .arg = "REGEX",
	  .help = "never replay request-targets matching (repeatable)" },
	{ "allow-method", 0, OPT_LIST, FIELD(replay.allow_method), .max = REPLAY_MAX_FILTERS,
	  .count_off = COUNT(replay.nallow_method), .arg = "METHOD",
	  .help = "replay only these methods (repeatable)" },
	{ "diff-ignore-header", 0, OPT_LIST, FIELD(replay.diff_ignore), .max = 63,
	  .count_off = COUNT(replay.ndiff_ignore), .arg = "NAME",
	  .help = "header not compared (repeatable; replaces the default list)" },
	{ "endpoint", 0, OPT_LIST, FIELD(diff.endpoints), .max = FSUM_MAX_PATTERNS,
	  .count_off = COUNT(diff.nendpoints), .check = check_endpoint, .arg = "'METHOD GLOB'",
	  .help = "group requests matching into one endpoint, e.g. 'GET /api/user/*' (repeatable)" },
	{ "diff-ignore", 0, OPT_LIST, FIELD(diff.ignore), .max = FSUM_MAX_PATTERNS,
	  .count_off = COUNT(diff.nignore), .check = check_diff_ignore, .arg = "'ENDPOINT PATH'",
	  .help = "a field known to be noise, e.g. '* header:x-trace-id' (repeatable)" },
	{ "diff-threshold-relative", 0, OPT_REAL, FIELD(diff.rel_pct), .min = 0, .max = 100,
	  .flags = OPTF_PERCENT, .def = "20%", .arg = "P%",
	  .help = "a difference is real only if |raw-noise|/(raw+noise) exceeds P%" },
	{ "diff-threshold-absolute", 0, OPT_REAL, FIELD(diff.abs_pct), .min = 0, .max = 100,
	  .flags = OPTF_PERCENT, .def = "0.03%", .arg = "P%",
	  .help = "... and |raw-noise| exceeds P% of the endpoint's requests" },
	{ "diff-summary-interval", 0, OPT_DURATION, FIELD(diff.interval_s), SECS(1, 86400),
	  .store_ns = NS_S, .def = "60", .arg = "SECS",
	  .help = "write per-endpoint difference summaries every SECS" },
	{ "replay-baseline", 0, OPT_STRING, FIELD(diff.baseline), .check = check_replay_url,
	  .arg = "URL", .help = "a second copy of production: its differences from serverA are noise" },
	{ "noise-probe", 0, OPT_REAL, FIELD(diff.probe_pct), .min = 0, .max = 100,
	  .flags = OPTF_PERCENT, .def = "0%", .arg = "P%",
	  .help = "send P% of safe requests to serverB twice: what differs is noise" },
	{ "noise-probe-method", 0, OPT_LIST, FIELD(diff.probe_methods), .max = 16,
	  .count_off = COUNT(diff.nprobe_methods), .arg = "METHOD",
	  .help = "methods --noise-probe may send twice (repeatable; default GET, HEAD, OPTIONS)" },
	{ "es-index", 0, OPT_STRING, FIELD(es.index_prefix), .check = check_index, .def = "shadowtap",
	  .arg = "PREFIX", .help = "index name prefix" },
	{ "es-batch-bytes", 0, OPT_SIZE, FIELD(es.batch_bytes), .min = 1024, .max = 100u << 20,
	  .def = "5M", .arg = "SIZE", .help = "bulk request size" },
	{ "es-batch-ms", 0, OPT_DURATION, FIELD(es.batch_ms), MSECS(1, 600000), .store_ns = NS_MS,
	  .def = "1000", .arg = "MS", .help = "bulk flush interval" },
	{ "es-timeout", 0, OPT_DURATION, FIELD(es.request_timeout_ms), MSECS(100, 3600000),
	  .store_ns = NS_MS, .def = "30000", .arg = "MS",
	  .help = "one Elasticsearch request, answer included; past it the request is retried and its "
		  "records spool (an answer is read up to 8 MiB + 4 KiB per document, then cut)" },
	{ "spool-dir", 0, OPT_STRING, FIELD(es.spool_dir), .arg = "DIR",
	  .help = "disk spool while Elasticsearch is unreachable (default /var/lib/shadowtap/spool, "
		  "./spool when not root)" },
	{ "spool-max-bytes", 0, OPT_SIZE, FIELD(es.spool_max_bytes), .min = 65536, .max = 1ull << 50,
	  .def = "1G", .arg = "SIZE", .help = "spool size limit" },
	{ "spool-fsync", 0, OPT_ENUM, FIELD(es.fsync_policy), .flags = OPTF_STORE_NAME,
	  .choices = fsync_policies, .def = "batch", .arg = "always|batch|never",
	  .help = "spool fsync policy" },
	{ "dead-letter", 0, OPT_STRING, FIELD(es.dead_letter), .arg = "FILE",
	  .help = "file for documents Elasticsearch rejected (default <spool-dir>/dead-letter.ndjson)" },
	{ "dead-letter-max-bytes", 0, OPT_SIZE, FIELD(es.dead_letter_max_bytes), .min = 4096,
	  .max = 1ull << 50, .def = "64M", .arg = "SIZE",
	  .help = "rotate the dead-letter file to FILE.1 past SIZE (at most twice SIZE on disk)" },
	{ "es-ca", 0, OPT_STRING, FIELD(es.ca_file), .check = check_readable, .arg = "FILE",
	  .help = "extra CA certificate for TLS to Elasticsearch" },
	{ "es-insecure", 0, OPT_FLAG, FIELD(es.insecure),
	  .help = "do not verify Elasticsearch's TLS certificate" },
	{ "no-es-gzip", 0, OPT_FLAG, FIELD(no_es_gzip), .help = "send bulk requests uncompressed" },
	{ "es-body-limit", 0, OPT_SIZE, FIELD(es.body_limit), .min = 0, .max = 1ull << 40, .def = "0",
	  .arg = "SIZE", .help = "cut bodies in Elasticsearch documents to SIZE, marked truncated "
		  "(0: as recorded; --body-limit still applies to the diff and recordings)" },
	{ "es-retention-days", 0, OPT_UINT, FIELD(es.retention_days), .min = 0, .max = 36500, .def = "0",
	  .arg = "N", .help = "install a lifecycle policy (ILM, or ISM on OpenSearch) deleting indices "
		  "older than N days (0: none)" },
	{ "es-sniff", 0, OPT_FLAG, FIELD(es.sniff),
	  .help = "add the cluster's other nodes from _nodes/http (at start, then every minute)" },
	OPTS_REDACT_ROWS(struct config, red),
	{ "output-file", 0, OPT_STRING, FIELD(rec.out_path), .arg = "PATH",
	  .help = "record exchanges to PATH (strftime placeholders; see also convert)" },
	{ "record-secrets", 0, OPT_FLAG, FIELD(rec.keep_secrets),
	  .help = "keep secret header values in recordings (they are redacted like records otherwise)" },
	{ "record-pii", 0, OPT_FLAG, FIELD(rec.keep_pii),
	  .help = "keep bodies and query strings in recordings as captured (the --redact-json, "
		  "--redact-query and --redact-pattern rules apply to them like records otherwise)" },
	{ "output-file-size", 0, OPT_SIZE, FIELD(rec.out_file_max), .min = 4096, .max = 1ull << 50,
	  .arg = "SIZE", .help = "start a new recording file past SIZE" },
	{ "output-file-interval", 0, OPT_DURATION, FIELD(rec.out_interval_s), SECS(1, 30 * 86400.0),
	  .store_ns = NS_S, .arg = "SECS", .help = "start a new recording file every SECS" },
	{ "output-file-compress", 0, OPT_ENUM, FIELD(rec.out_gzip), .choices = compressions,
	  .def = "none", .arg = "gzip|none", .help = "compress recording files (gzip: .gz is appended to a name that does not end in it)" },
	{ "output-dir-max", 0, OPT_SIZE, FIELD(rec.out_dir_max), .min = 65536, .max = 1ull << 50,
	  .arg = "SIZE", .help = "cap the recording files; oldest are deleted first" },
	{ "output-format", 0, OPT_ENUM, FIELD(rec.out_format), .choices = rec_formats,
	  .def = "native", .arg = "native|gor", .help = "recording format" },
	{ "input-file", 0, OPT_STRING, FIELD(rec.in_pattern), .arg = "PATH|GLOB",
	  .help = "replay a recording (.stap/.gor, gzip or not) instead of capturing" },
	{ "replay-speed", 0, OPT_REAL, FIELD(rec.speed_pct), .min = 0.1, .max = 1e6,
	  .flags = OPTF_PERCENT | OPTF_MAX_IS_ZERO, .def = "100%", .arg = "P%|max",
	  .help = "pace of --input-file: 100% keeps the recorded timing" },
	{ "replay-max-wait", 0, OPT_DURATION, FIELD(rec.max_wait_ns), SECS(0.001, 86400), .store_ns = 1,
	  .def = "10", .arg = "SECS",
	  .help = "longest single pacing wait of --input-file; longer gaps are cut (reported)" },
	{ "input-loop", 0, OPT_FLAG, FIELD(rec.loop), .help = "replay --input-file over and over" },
	{ "help", 'h', OPT_ACTION, 0, 0, .flags = OPTF_NO_ENV, .help = "show this help" },
	{ "version", 0, OPT_ACTION, 0, 0, .flags = OPTF_NO_ENV, .help = "print the version" },
	{ NULL },
};

/* SHADOWTAP_* names read elsewhere (capture.c) or by the test scripts: not options,
 * but not misspellings either. */
static const char *const env_known[] = {
	"SHADOWTAP_TC_LEGACY", "SHADOWTAP_SKIP_CONTAINER",
	"SHADOWTAP_REDACT_KEY", "SHADOWTAP_REDACT_KEY_FILE",    /* pii_key_from_env */
	NULL,
};

/* ---- value grammar: digits only, no sign, no spaces, no hex ---- */

static int opt_parse_real(const char *s, double *out)
{
	const char *p;
	char *end;
	double v;

	if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1])))
		return -EINVAL;
	for (p = s; *p; p++)
		if (!isdigit((unsigned char)*p) && !strchr(".eE+-", *p))
			return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

static void fmt_size(char *out, size_t n, double v)
{
	static const char sfx[] = "TGMK";
	int i;

	for (i = 0; i < 4; i++) {
		double u = ldexp(1, 10 * (4 - i));

		if (v >= u && fmod(v, u) == 0) {
			snprintf(out, n, "%.0f%c", v / u, sfx[i]);
			return;
		}
	}
	snprintf(out, n, "%.0f", v);
}

static int opt_bad(const struct opt *o, const char *src, const char *v, const char *why)
{
	char safe[512];

	/* a URL's user:password@ is never echoed (issue 15 item 3) */
	if (v && strstr(v, "://"))
		v = url_list_printable(v, safe, sizeof(safe));
	if (src && strncmp(src, "--", 2))
		fprintf(stderr, "shadowtap: invalid value '%s' for %s (--%s): %s\n", v ? v : "", src,
			o->name, why);
	else
		fprintf(stderr, "shadowtap: invalid value '%s' for --%s: %s\n", v ? v : "", o->name, why);
	return -EINVAL;
}

static void store_uint(void *p, size_t width, uint64_t v)
{
	switch (width) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = v; break;
	}
}

static int set_ports(const struct opt *o, void *base, const char *v, const char *src)
{
	struct capture_cfg *cap = (struct capture_cfg *)((char *)base + o->off -
							  offsetof(struct capture_cfg, ports));
	uint16_t ports[ST_MAX_PORTS];
	int n = 0;
	const char *p = v;

	for (;;) {
		size_t len = strcspn(p, ",");
		char tok[8];
		uint64_t u;

		if (len == 0 || len >= sizeof(tok))
			return opt_bad(o, src, v, "ports are 1-65535, comma-separated");
		memcpy(tok, p, len);
		tok[len] = '\0';
		if (st_parse_u64(tok, &u) || u == 0 || u > 65535)
			return opt_bad(o, src, v, "ports are 1-65535, comma-separated");
		if (n == ST_MAX_PORTS)
			return opt_bad(o, src, v, "at most 16 ports");
		ports[n++] = (uint16_t)u;
		if (!p[len])
			break;
		p += len + 1;
	}
	/* other port lists (--tls-port) name their count field */
	if (o->count_off) {
		memcpy((char *)base + o->off, ports, sizeof(ports[0]) * (size_t)n);
		*(int *)((char *)base + o->count_off) = n;
		return 0;
	}
	memcpy(cap->ports, ports, sizeof(ports[0]) * (size_t)n);
	cap->nports = n;
	return 0;
}

int opt_set(const struct opt *o, void *base, const char *v, const char *src)
{
	void *field = (char *)base + o->off;
	char why[128], lo[32], hi[32];
	uint64_t u;
	double d;
	const char *w;
	int i, *count;

	switch (o->type) {
	case OPT_FLAG:
		*(int *)field = 1;
		return 0;
	case OPT_COUNT:
		(*(int *)field)++;
		return 0;
	case OPT_ACTION:
		return 0;
	default:
		break;
	}
	if (!v || !*v)
		return opt_bad(o, src, v, "must not be empty");
	switch (o->type) {
	case OPT_UINT:
		if (st_parse_u64(v, &u) || (double)u < o->min || (double)u > o->max) {
			snprintf(why, sizeof(why), "expected an integer from %.0f to %.0f", o->min, o->max);
			return opt_bad(o, src, v, why);
		}
		store_uint(field, o->width, u);
		return 0;
	case OPT_SIZE:
		if (st_parse_size(v, &u) || (double)u < o->min || (double)u > o->max ||
		    ((o->flags & OPTF_POW2) && (u & (u - 1)))) {
			fmt_size(lo, sizeof(lo), o->min);
			fmt_size(hi, sizeof(hi), o->max);
			snprintf(why, sizeof(why), "expected a size%s from %s to %s (K, M, G suffixes)",
				 o->flags & OPTF_POW2 ? " (power of two)" : "", lo, hi);
			return opt_bad(o, src, v, why);
		}
		store_uint(field, o->width, u);
		return 0;
	case OPT_DURATION:
		/* the range check in the given unit is also the overflow check: max * unit
		 * fits the field (tests/unit/test_opts.c checks every entry) */
		if (opt_parse_real(v, &d) || d < o->min || d > o->max) {
			snprintf(why, sizeof(why), "expected %s from %.15g to %.15g",
				 o->unit_ns == NS_S ? "seconds" : "milliseconds", o->min, o->max);
			return opt_bad(o, src, v, why);
		}
		store_uint(field, o->width, (uint64_t)llround(d * (double)o->unit_ns) / o->store_ns);
		return 0;
	case OPT_REAL: {
		char tmp[64];
		size_t n = strlen(v);

		if ((o->flags & OPTF_MAX_IS_ZERO) && !strcasecmp(v, "max")) {
			*(double *)field = 0;
			return 0;
		}
		if (n >= sizeof(tmp))
			n = sizeof(tmp) - 1;
		memcpy(tmp, v, n);
		tmp[n] = '\0';
		if ((o->flags & OPTF_PERCENT) && n > 1 && tmp[n - 1] == '%')
			tmp[n - 1] = '\0';
		if (opt_parse_real(tmp, &d) || d < o->min || d > o->max) {
			snprintf(why, sizeof(why), "expected %s from %.15g%s to %.15g%s%s",
				 o->flags & OPTF_PERCENT ? "a percentage" : "a number", o->min,
				 o->flags & OPTF_PERCENT ? "%" : "", o->max,
				 o->flags & OPTF_PERCENT ? "%" : "",
				 o->flags & OPTF_MAX_IS_ZERO ? ", or max" : "");
			return opt_bad(o, src, v, why);
		}
		*(double *)field = d;
		return 0;
	}
	case OPT_STRING:
		if (o->check && (w = o->check(v)))
			return opt_bad(o, src, v, w);
		*(const char **)field = v;
		return 0;
	case OPT_LIST:
		count = (int *)((char *)base + o->count_off);
		if (o->check && (w = o->check(v)))
			return opt_bad(o, src, v, w);
		if (*count >= (int)o->max) {
			snprintf(why, sizeof(why), "repeated too many times (at most %.0f)", o->max);
			return opt_bad(o, src, v, why);
		}
		((const char **)field)[(*count)++] = v;
		return 0;
	case OPT_PORTS:
		return set_ports(o, base, v, src);
	case OPT_ENUM: {
		size_t k = 0;

		for (i = 0; o->choices[i].name; i++) {
			if (!strcmp(v, o->choices[i].name)) {
				if (o->flags & OPTF_STORE_NAME)
					*(const char **)field = o->choices[i].name;
				else
					*(int *)field = o->choices[i].value;
				return 0;
			}
		}
		k = (size_t)snprintf(why, sizeof(why), "expected");
		for (i = 0; o->choices[i].name && k < sizeof(why); i++)
			k += (size_t)snprintf(why + k, sizeof(why) - k, "%s %s",
					      i == 0 ? "" : o->choices[i + 1].name ? "," : " or",
					      o->choices[i].name);
		return opt_bad(o, src, v, why);
	}
	default:
		return opt_bad(o, src, v, "unsupported option type");
	}
}

int opt_parse_bool(const char *v)
{
	static const char *const yes[] = { "1", "true", "yes", "on", NULL };
	static const char *const no[] = { "0", "false", "no", "off", NULL };
	int i;

	for (i = 0; yes[i]; i++) {
		if (!strcasecmp(v, yes[i]))
			return 1;
		if (!strcasecmp(v, no[i]))
			return 0;
	}
	return -1;
}

const struct opt *opt_find(const struct opt *table, const char *name)
{
	for (; table->name; table++)
		if (!strcmp(table->name, name))
			return table;
	return NULL;
}

void opt_env_name(const char *prefix, const char *name, char *out, size_t n)
{
	char *p;

	snprintf(out, n, "%s%s", prefix, name);
	for (p = out + strlen(prefix); *p; p++)
		*p = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
}

void opt_print_help(FILE *f, const struct opt *o)
{
	char left[64];

	for (; o->name; o++) {
		const char *arg = o->arg ? o->arg : "";
		const char *sp = o->arg ? " " : "";

		if (o->short_name)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name, sp, arg);
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name, sp, arg);
		if (o->def)
			fprintf(f, "  %-34s %s (default %s)\n", left, o->help, o->def);
		else
			fprintf(f, "  %-34s %s\n", left, o->help);
	}
}

void opts_usage(FILE *f)
{
	fprintf(f, "usage: shadowtap [OPTIONS]\n"
		   "       shadowtap convert [OPTIONS] IN OUT\n"
		   "Capture HTTP on the server ports with eBPF, replay each request to serverB,\n"
		   "and store every exchange (NDJSON, Elasticsearch).\n\n");
	opt_print_help(f, opts_table);
	fprintf(f, "\nSIZE takes K, M, G or T (powers of two); SECS and MS take fractions.\n"
		   "Every option can also be set as SHADOWTAP_<LONG_NAME> in the environment\n"
		   "(e.g. SHADOWTAP_PORT=80,8080); the command line wins. Repeatable options take\n"
		   "comma-separated lists there, flags take 1/0, true/false, yes/no or on/off, an\n"
		   "empty value counts as unset, and an unknown SHADOWTAP_ name is warned about.\n"
		   "ELASTICSEARCH_URL and ES_PORT configure --es as in the GoReplay demo.\n"
		   "Credentials for Elasticsearch belong in ES_USERNAME/ES_PASSWORD or ES_API_KEY\n"
		   "(or their _FILE forms), not in the URL: user:password@ in --es is used but\n"
		   "never printed, and warned about.\n");
}

uint32_t opts_default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN) / 4;

	return n < 1 ? 1 : n > 8 ? 8 : (uint32_t)n;
}

void opts_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->cap.ports[0] = 80;
	c->cap.nports = 1;
	c->cap.ring_bytes = 32u << 20;
	c->cap.pin_dir = "/sys/fs/bpf/shadowtap";
	c->red.mode = "mask";
	reasm_cfg_default(&c->reasm);
	exchange_cfg_default(&c->xcfg);
	replay_cfg_default(&c->replay);
	c->replay.body_limit = c->xcfg.body_limit;
	es_cfg_default(&c->es);
	c->queue_cap = 65536;
	c->queue_bytes = 16ull << 20;
	c->shutdown_timeout_ns = 10ull * 1000000000ull;
	c->memory_limit = 256ull << 20;
	recording_cfg_default(&c->rec);
	fields_sum_cfg_default(&c->diff);
	c->tls.ports[0] = 443;
	c->tls.nports = 1;
	c->tls.ring_fd = -1;
	/* a few workers on a big host, one on a small one (where the load and the
	 * servers need the cores more than a second worker does) */
	c->workers = opts_default_workers();
}

static int env_is_known(const struct opt *table, const char *entry)
{
	char name[96];
	size_t len = strcspn(entry, "=");
	int i;

	for (i = 0; env_known[i]; i++)
		if (strlen(env_known[i]) == len && !strncmp(entry, env_known[i], len))
			return 1;
	for (; table->name; table++) {
		if (table->flags & OPTF_NO_ENV)
			continue;
		opt_env_name("SHADOWTAP_", table->name, name, sizeof(name));
		if (strlen(name) == len && !strncmp(entry, name, len))
			return 1;
	}
	return 0;
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (!strncmp(*envp, name, n) && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* A list value from the environment: comma-separated, every item non-empty. The
 * copy lives in c->env_copies as long as the config. */
static int env_list(struct config *c, const struct opt *o, const char *env, const char *v)
{
	char *dup, *p;
	int err;

	if (c->nenv_copies == OPTS_MAX_ENV_COPIES || !(dup = strdup(v)))
		return -ENOMEM;
	c->env_copies[c->nenv_copies++] = dup;
	for (p = dup;;) {
		char *comma = strchr(p, ',');

		if (comma)
			*comma = '\0';
		if (!*p)
			return opt_bad(o, env, v, "empty item in the comma-separated list");
		err = opt_set(o, c, p, env);
		if (err || !comma)
			return err;
		p = comma + 1;
	}
}

int opt_parse_argv(const struct opt *table, void *base, int argc, char **argv, int *first)
{
	struct option lopts[OPTS_MAX_TABLE + 1];
	char shorts[2 * OPTS_MAX_TABLE + 2], *sp = shorts;
	const struct opt *o;
	int i, ch, err;

	/* leading ':' makes getopt report a missing value as ':' rather than '?' */
	*sp++ = ':';
	for (i = 0, o = table; o->name; o++, i++) {
		int has_arg = o->type != OPT_FLAG && o->type != OPT_COUNT && o->type != OPT_ACTION;

		if (i == OPTS_MAX_TABLE) {
			fprintf(stderr, "shadowtap: internal error: more than %d options in the table\n",
				OPTS_MAX_TABLE);
			return -E2BIG;
		}
		lopts[i] = (struct option){ o->name, has_arg ? required_argument : no_argument, NULL,
					    256 + i };
		if (o->short_name) {
			*sp++ = (char)o->short_name;
			if (has_arg)
				*sp++ = ':';
		}
	}
	lopts[i] = (struct option){ 0 };
	*sp = '\0';
	opterr = 0;
	optind = 0;     /* full re-initialisation: parsing may run more than once (tests) */
	while ((ch = getopt_long(argc, argv, shorts, lopts, NULL)) != -1) {
		if (ch == '?') {
			if (optopt && optopt < 256)
				fprintf(stderr, "shadowtap: unknown option '-%c' (see --help)\n", optopt);
			else
				fprintf(stderr, "shadowtap: unknown option '%s' (see --help)\n",
					argv[optind - 1]);
			return -EINVAL;
		}
		if (ch == ':') {
			fprintf(stderr, "shadowtap: option '%s' needs a value\n", argv[optind - 1]);
			return -EINVAL;
		}
		if (ch >= 256) {
			o = &table[ch - 256];
		} else {
			for (o = table; o->name && o->short_name != ch; o++)
				;
			if (!o->name)
				return -EINVAL;
		}
		if (!strcmp(o->name, "help"))
			return OPTS_HELP;
		if (!strcmp(o->name, "version"))
			return OPTS_VERSION;
		err = opt_set(o, base, optarg, NULL);
		if (err)
			return err;
		if (table == opts_table && o - table < (int)sizeof(((struct config *)0)->given))
			((struct config *)base)->given[o - table] = 1;
	}
	*first = optind;
	return 0;
}

int opts_parse(struct config *c, int argc, char **argv, char *const *envp)
{
	char env[96];
	const struct opt *o;
	int i, err, b, first;

	/* environment first, so the command line wins */
	for (i = 0; envp && envp[i]; i++)
		if (!strncmp(envp[i], "SHADOWTAP_", 10) && !env_is_known(opts_table, envp[i]))
			fprintf(stderr, "shadowtap: warning: unknown environment variable %.*s ignored\n",
				(int)strcspn(envp[i], "="), envp[i]);
	for (o = opts_table; o->name; o++) {
		const char *v;

		if (o->flags & OPTF_NO_ENV)
			continue;
		opt_env_name("SHADOWTAP_", o->name, env, sizeof(env));
		v = env_get(envp, env);
		if (!v || !*v)
			continue;
		if (o->type == OPT_FLAG || o->type == OPT_COUNT) {
			b = opt_parse_bool(v);
			if (b < 0)
				return opt_bad(o, env, v, "expected 1/0, true/false, yes/no or on/off");
			err = b ? opt_set(o, c, NULL, env) : 0;
		} else if (o->type == OPT_LIST) {
			err = env_list(c, o, env, v);
		} else {
			err = opt_set(o, c, v, env);
		}
		if (err)
			return err == -ENOMEM ? opt_bad(o, env, v, "out of memory") : err;
		if (o - opts_table < (int)sizeof(c->given))
			c->given[o - opts_table] = 1;
	}

	err = opt_parse_argv(opts_table, c, argc, argv, &first);
	if (err)
		return err;
	if (first < argc) {
		fprintf(stderr, "shadowtap: unexpected argument '%s' (see --help)\n", argv[first]);
		return -EINVAL;
	}
	return OPTS_RUN;
}

_Static_assert(sizeof(((struct config *)0)->given) == OPTS_MAX_TABLE,
	       "one 'given' flag per opts_table entry");
/* opt_parse_argv refuses a table longer than OPTS_MAX_TABLE (-E2BIG) at run time, which
 * would make every start fail: a new row past it must fail the build instead. */
_Static_assert(sizeof(opts_table) / sizeof(opts_table[0]) <= OPTS_MAX_TABLE + 1,
	       "opts_table has more rows than OPTS_MAX_TABLE (and config.given) allow");

static int opts_given(const struct config *c, const char *name)
{
	const struct opt *o = opt_find(opts_table, name);

	return o && o - opts_table < (int)sizeof(c->given) && c->given[o - opts_table];
}

/* the largest ring --memory-limit gives when --ring-size is not given */
#define ST_RING_DEF_MAX (32u << 20)

/* The smallest --ring-size total that gives each of the workers ST_RING_MIN. */
static uint64_t opts_ring_min_total(uint32_t workers)
{
	uint64_t t = ST_RING_MIN;

	while (capture_ring_share(t, (int)workers) < ST_RING_MIN)
		t *= 2;
	return t;
}

/* --memory-limit: each limit the user did not give is a share of it. The shares
 * (the ring's twice: libbpf maps its pages twice, both count in RSS) add up to 3/4 of
 * the budget, leaving room for the flow table, the connections' own state and the
 * process itself: at the default 256M every bound full at once stays under 256 MB of
 * RSS (docs/cost.md, memory bounds). The shares follow what each part needs at the
 * benchmark's maximum rates: the replay budget most (it fills when serverB falls
 * behind), the held and out-of-order bytes, which a remote client controls, little
 * (their peaks at the POST maximum: 2.9 MB and 16 KB). */
static void opts_memory_limit(struct config *c)
{
	uint64_t m = c->memory_limit, n;

	if (!m)
		return;
	if (!opts_given(c, "max-held-bytes"))
		c->xcfg.max_held_bytes = m / 16;
	if (!opts_given(c, "max-conn-bytes"))
		c->xcfg.max_conn_bytes = m / 32;     /* half the held bytes: a 5 MB upload is kept */
	if (!opts_given(c, "max-buffered-bytes"))
		c->reasm.max_total_bytes = m / 32;
	if (!opts_given(c, "max-flow-bytes"))
		c->reasm.max_flow_bytes = m / 512 < 1024 ? 1024 : m / 512;
	/* 5/16: at the POST maximum on a loaded machine the replay budget filled 128 MiB
	 * (docs/cost.md, session 8); 1/16: the output queue's peak at the POST maximum
	 * was 210 records, POST bodies up to 256 KiB */
	if (!opts_given(c, "replay-max-bytes"))
		c->replay.max_inflight_bytes = m / 16 * 5;
	if (!opts_given(c, "queue-bytes"))
		c->queue_bytes = m / 16;
	n = m >> 15;
	if (n > 1u << 24)
		n = 1u << 24;
	if (!opts_given(c, "max-flows"))
		c->reasm.max_flows = n;
	/* record counts: a queued record's bytes are already in --queue-bytes or
	 * --replay-max-bytes, so the count only guards the queues' slot arrays; one per
	 * 32K (8,192) dropped GETs at the GET maximum when the replay thread fell ~0.4 s
	 * behind (docs/cost.md, session 10, helper Q), one per 4K gives 65,536 at 256M */
	n = m >> 12;
	if (n > 1u << 24)
		n = 1u << 24;
	if (!opts_given(c, "queue"))
		c->queue_cap = n;
	if (!opts_given(c, "replay-queue"))
		c->replay.queue_cap = n;
	if (!opts_given(c, "ring-size")) {
		/* 1/8, at most 32 MiB: at the POST maximum a 16 MiB ring overflowed while
		 * the loop thread waited for a CPU (docs/cost.md, session 7, helper S), and
		 * 32 MiB did not; a bigger ring is not memory remote clients make the
		 * agent hold, so a bigger budget does not grow it */
		for (n = 4096; n * 2 <= m / 8 && n < ST_RING_DEF_MAX; n *= 2)
			;
		/* never below ST_RING_MIN per worker (a small --memory-limit over many) */
		if (n < opts_ring_min_total(c->workers))
			n = opts_ring_min_total(c->workers);
		c->cap.ring_bytes = n;
	}
}

int redact_opts_finish(struct redact_opts *r, struct pii_cfg *pii)
{
	int n = r->nheader, i;

	if (!r->no_redact)
		for (i = 0; record_redact_default[i] && n < OPTS_MAX_REDACT; i++)
			r->header[n++] = record_redact_default[i];
	r->header[n] = NULL;
	pii_cfg_free(pii);
	if (pii_cfg_build(pii, r->mode, r->json, r->njson, r->query, r->nquery, r->pattern,
			  r->npattern))
		return -EINVAL;
	return 0;
}

int opts_finish(struct config *c)
{
	int i, n, err;

	if (c->quiet)
		st_log_level = ST_LOG_WARN;
	else
		st_log_level = ST_LOG_INFO + c->verbose;
	if (c->nes_urls) {
		size_t o = 0;

		for (i = 0; i < c->nes_urls; i++) {
			n = snprintf(c->es_env_url + o, sizeof(c->es_env_url) - o, "%s%s", i ? "," : "",
				     c->es_urls[i]);
			if (n < 0 || (size_t)n >= sizeof(c->es_env_url) - o) {
				fprintf(stderr, "shadowtap: --es: the URLs are too long together\n");
				return -EINVAL;
			}
			o += (size_t)n;
		}
		c->es_url = c->es_env_url;
	} else {
		err = es_url_from_env(c->es_env_url, sizeof(c->es_env_url));
		if (err) {
			const char *u = getenv("ELASTICSEARCH_URL"), *p = getenv("ES_PORT");
			char safe[512];

			fprintf(stderr, "shadowtap: invalid ELASTICSEARCH_URL='%s' / ES_PORT='%s': expected "
				"http(s)://HOST[:PORT] or HOST and a port 1-65535\n",
				url_list_printable(u ? u : "", safe, sizeof(safe)), p ? p : "");
			return -EINVAL;
		}
		if (c->es_env_url[0])
			c->es_url = c->es_env_url;
	}
	c->es.url = c->es_url;
	c->es.gzip = !c->no_es_gzip;
	if (redact_opts_finish(&c->red, &c->pii))
		return -EINVAL;
	c->rec.redact = c->rec.keep_secrets ? NULL : c->red.header;
	c->rec.pii = &c->pii;
	opts_memory_limit(c);
	c->replay.body_limit = c->xcfg.body_limit;
	c->rec.body_limit = c->xcfg.body_limit;
	c->xcfg.keep_raw = c->replay.ntargets > 0 || c->rec.out_path;
	c->rec.meta_iface = c->cap.iface;
	c->rec.meta_source = c->rec.in_pattern ? "file" : c->input_pcap ? "pcap" : "live";
	if ((c->diff.baseline || c->diff.probe_pct > 0) && !c->replay.ntargets) {
		fprintf(stderr, "shadowtap: --replay-baseline and --noise-probe need --replay\n");
		return -EINVAL;
	}
	if (c->diff.baseline && c->diff.probe_pct > 0) {
		fprintf(stderr, "shadowtap: --replay-baseline and --noise-probe exclude each other\n");
		return -EINVAL;
	}
	/* a ring that cannot take one maximal segment loses bytes of every one that size
	 * (common/shadowtap.h, ST_RING_MIN); offline inputs have no ring */
	if (!c->input_pcap && !c->rec.in_pattern &&
	    capture_ring_share(c->cap.ring_bytes, (int)c->workers) < ST_RING_MIN) {
		fprintf(stderr, "shadowtap: --ring-size %llu over %u workers gives each a ring of "
			"%llu bytes; each needs at least %u (--ring-size %llu or more, or fewer "
			"--workers)\n", (unsigned long long)c->cap.ring_bytes, c->workers,
			(unsigned long long)capture_ring_share(c->cap.ring_bytes, (int)c->workers),
			ST_RING_MIN, (unsigned long long)opts_ring_min_total(c->workers));
		return -EINVAL;
	}
	if (c->rec.in_pattern && c->input_pcap) {
		fprintf(stderr, "shadowtap: --input-file and --input-pcap exclude each other\n");
		return -EINVAL;
	}
	/* a live agent replaying to a port it captures on this host would capture its own
	 * replays, and replay those again, without end */
	for (i = 0; !c->input_pcap && !c->rec.in_pattern && i < c->replay.ntargets; i++)
		if (selfloop_is_captured(c->replay.targets[i], c->cap.ports, c->cap.nports)) {
			fprintf(stderr, "shadowtap: --replay %s is a port this agent captures on this "
				"host (--port): it would capture its own replays; replay to another "
				"port or host\n", c->replay.targets[i]);
			return -EINVAL;
		}
	/* the same through --tls: serverB's own SSL_read on a --tls-port is captured */
	for (i = 0; c->tls_mode && !c->input_pcap && !c->rec.in_pattern && i < c->replay.ntargets; i++)
		if (selfloop_is_captured(c->replay.targets[i], c->tls.ports, c->tls.nports)) {
			fprintf(stderr, "shadowtap: --replay %s is a port this agent captures on this "
				"host (--tls-port): it would capture its own replays; replay to another "
				"port or host\n", c->replay.targets[i]);
			return -EINVAL;
		}
	return 0;
}

int recording_parse_opt(struct recording_cfg *rc, const char *name, const char *v)
{
	const struct opt *o = opt_find(opts_table, name);
	size_t lo = offsetof(struct config, rec), hi = lo + sizeof(struct recording_cfg);

	if (!o || o->off < lo || o->off >= hi) {
		fprintf(stderr, "shadowtap: --%s is not a recording option\n", name);
		return -EINVAL;
	}
	/* the table's offsets are from struct config: rebase onto the caller's cfg */
	return opt_set(o, (char *)rc - lo, v, NULL);
}

void opts_free(struct config *c)
{
	int i;

	if (!c)
		return;
	for (i = 0; i < c->nenv_copies; i++)
		free(c->env_copies[i]);
	c->nenv_copies = 0;
	pii_cfg_free(&c->pii);
}
