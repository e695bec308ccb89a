/* The agent's own TCP connections (replay to serverB, Elasticsearch), told to the
 * capture program so that it never captures them (own_conns in common/shadowtap.h).
 * Owns: the registry of own sockets and the user side of the own_conns map. Every
 * function is thread-safe and cheap to call without a live capture (pcap input). */
#ifndef ST_OWNSOCK_H
#define ST_OWNSOCK_H

#include <stdint.h>
#include <sys/socket.h>

/* Call between socket() and connect() of a TCP socket of the agent's: binds it to
 * port 0 of the unspecified address (the kernel picks the port now instead of at
 * connect, so the SYN is already excluded) and registers (peer, local port). A
 * socket that cannot be bound is left as it was, connects as usual and is not
 * excluded (counted as unbound). Once ownsock_watch_ports has been told the capture's
 * ports, a connection none of whose segments the capture can match (its peer port is
 * not a captured port and no captured port lies in the local port range) is left
 * alone: no bind, no registration (counted as unneeded). Returns 0 or a negative
 * errno. */
int ownsock_prepare(int fd, const struct sockaddr *peer, socklen_t plen);
/* Call before close(fd) of a socket passed to ownsock_prepare (any other fd is
 * ignored). The exclusion lasts OWNSOCK_GRACE_MS longer, for the FIN/ACK and RST
 * segments that follow a close. */
void ownsock_release(int fd);

/* The ports the capture program matches (either end of a segment; capture.c calls
 * it before ownsock_attach). Until then, and after a call with nports < 0, every
 * connection is registered. */
void ownsock_watch_ports(const uint16_t *ports, int nports);
/* 1 if a segment of a connection to rport from a local port in [eph_lo, eph_hi]
 * (ip_local_port_range) can match one of the nports ports, so it must be excluded. */
int ownsock_may_match(const uint16_t *ports, int nports, uint16_t rport, unsigned eph_lo,
		      unsigned eph_hi);

/* The capture's own_conns map (capture.c): entries registered before are added. */
void ownsock_attach(int map_fd);
void ownsock_detach(void);
/* Ends expired grace periods; the capture's poll calls it. */
void ownsock_tick(void);

struct ownsock_stats {
	uint64_t registered;    /* sockets registered (excluded from capture) */
	uint64_t active;        /* registered and not yet released */
	uint64_t unbound;       /* bind to port 0 failed: connected as usual, not excluded */
	uint64_t untracked;     /* registry or map full, or a map update failed: not excluded */
	uint64_t unneeded;      /* no segment of it could match the capture's ports: left alone */
};
void ownsock_get_stats(struct ownsock_stats *st);

/* Tests only: the grace period in ms (default OWNSOCK_GRACE_MS). */
void ownsock_set_grace_ms(unsigned ms);
/* Tests only: the file read for the local port range (default
 * /proc/sys/net/ipv4/ip_local_port_range); NULL restores the default. */
void ownsock_set_range_path(const char *path);

/* libcurl's open/close socket callbacks on an easy handle, so every connection it
 * makes goes through ownsock_prepare/ownsock_release. Set again after
 * curl_easy_reset. The argument is a CURL *. */
void ownsock_curl(void *easy);

#endif
