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
 * excluded (counted as unbound). Returns 0 or a negative errno. */
int ownsock_prepare(int fd, const struct sockaddr *peer, socklen_t plen);
/* Call before close(fd) of a socket passed to ownsock_prepare (any other fd is
 * ignored). The exclusion lasts OWNSOCK_GRACE_MS longer, for the FIN/ACK and RST
 * segments that follow a close. */
void ownsock_release(int fd);

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
};
void ownsock_get_stats(struct ownsock_stats *st);

/* Tests only: the grace period in ms (default OWNSOCK_GRACE_MS). */
void ownsock_set_grace_ms(unsigned ms);

/* libcurl's open/close socket callbacks on an easy handle, so every connection it
 * makes goes through ownsock_prepare/ownsock_release. Set again after
 * curl_easy_reset. The argument is a CURL *. */
void ownsock_curl(void *easy);

#endif
