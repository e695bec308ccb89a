/* TLS plaintext source: loads bpf/tls.bpf.c, finds the libssl the servers on the TLS
 * ports map (or takes --tls-lib), attaches the uprobes and re-scans for new servers.
 * Owns: the TLS skeleton, its uprobe links and the list of libraries attached. Its
 * events go into the packet capture's ring and come out of capture_poll(). */
#ifndef ST_TLS_H
#define ST_TLS_H

#include <stdint.h>
#include <stdio.h>

#include "shadowtap.h"

#define TLS_MAX_LIBS 32

struct tls_cfg {
	uint16_t ports[ST_MAX_PORTS];    /* --tls-port: server ports (default 443) */
	int nports;
	const char *lib;                 /* --tls-lib PATH, or NULL to discover */
	int ring_fd;                     /* the packet capture's ring (shared), or -1 for
					  * the program's own (tests) */
	int rings_fd;                    /* --workers: the capture's ring array, when nrings > 0 */
	int nrings;                      /* rings in it; 0: ring 0 (ring_fd) only */
	uint64_t wakeup_bytes;           /* as the capture's; 0: 1 MiB */
	uint64_t rescan_ns;              /* how often the scanning thread re-scans; 0: 2 s */
};

struct tls;

struct tls_ustats {
	uint64_t libs;                   /* libraries (or static binaries) attached */
	uint64_t scans;                  /* /proc scans done */
	uint64_t full_scans;             /* of those, looking at every process again */
	uint64_t scan_ms_last;           /* how long the last scan took */
	uint64_t scan_ms_max;
	uint64_t servers;                /* processes found listening on a TLS port (last scan) */
	uint64_t attach_errors;
};

/* Load and attach. Returns 0 or a negative errno with one line printed saying what
 * is missing (no uprobe support, a capability, no libssl yet is not an error: the
 * re-scan finds it later). Without --tls-lib, scans once, then starts a thread that
 * re-scans /proc every rescan_ns for new server processes and libraries (never on
 * the caller's thread: a scan can take seconds on a host with many sockets, and the
 * caller drains the ring). */
int tls_open(struct tls **out, const struct tls_cfg *cfg);
int tls_read_stats(struct tls *t, struct st_tls_stats *sum);
void tls_get_ustats(struct tls *t, struct tls_ustats *st);
/* One "tls:" line of counters for --stats and the exit summary; with
 * kernel.bpf_stats_enabled also "tls: bpf_runs" and "tls: bpf_run_ns" (tls_print_cost):
 * each program's runs and kernel time, so ns per SSL call = (entry + rw_ret) / runs. */
void tls_print_stats(struct tls *t, FILE *f);
void tls_print_cost(struct tls *t, FILE *f);
/* The program's ring (its own when ring_fd was -1). */
int tls_ring_fd(struct tls *t);
/* Detach and free. Accepts NULL. */
void tls_close(struct tls *t);

#endif
