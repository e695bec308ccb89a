/* TLS client of the replay engine for https:// targets: one OpenSSL context per
 * target (verification, SNI, the session kept for resumption), and non-blocking
 * handshake, read and write steps that the replay thread's epoll loop drives.
 * Owns: the SSL_CTX, the cached session and the TLS counters; an SSL object is
 * owned by its replay_conn and freed through replay_tls_free. */
#ifndef ST_REPLAY_TLS_H
#define ST_REPLAY_TLS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ssl_st;
struct replay_tls;

/* host is the URL's host: SNI (unless an IP address) and the name or address the
 * certificate must carry. ca: --replay-ca, PEM file of trusted certificates (NULL:
 * the system's store). insecure: --replay-insecure, no verification at all.
 * 0 or a negative errno with one line printed. */
int replay_tls_init(struct replay_tls **out, const char *url, const char *host, const char *ca,
		    bool insecure);
void replay_tls_destroy(struct replay_tls *tt);   /* accepts NULL */

/* One handshake step on the connected socket fd; *sslp is created on the first
 * call. Returns 1 when done, 0 when it waits for *events (EPOLLIN or EPOLLOUT), or
 * -EPROTO with *why the record's replay.error (a static string). */
int replay_tls_handshake(struct replay_tls *tt, struct ssl_st **sslp, int fd, uint32_t *events,
			 const char **why);
/* As read(2) on a non-blocking socket: bytes, 0 at the end, or -1 with errno
 * (EAGAIN when OpenSSL needs more bytes from the socket). */
ssize_t replay_tls_read(struct ssl_st *ssl, void *buf, size_t len);
/* As sendmsg(2) of iov: bytes taken (possibly fewer), or -1 with errno. A call after
 * -1/EAGAIN must start with the same bytes (OpenSSL retries the record it built). */
ssize_t replay_tls_writev(struct ssl_st *ssl, const struct iovec *iov, int niov);
/* After -1/EAGAIN from replay_tls_read or replay_tls_writev: the readiness OpenSSL
 * waits for, EPOLLIN or EPOLLOUT. A read can wait to write (a handshake record for a
 * renegotiation the server asked for, behind a full send buffer) and a write to read
 * (the server's next handshake flight): polling for the usual direction would hang
 * the read or spin the write. */
uint32_t replay_tls_wants(struct ssl_st *ssl);
/* Free *sslp (a close_notify is sent only when clean; the session stays resumable
 * either way) and set it NULL. Accepts NULL or *sslp NULL. */
void replay_tls_free(struct ssl_st **sslp, bool clean);

/* One "replay: tls ..." counters line summed over the https:// targets among tts[n]
 * (NULL entries are http:// ones); nothing when there is none. One line, not one per
 * target, so /metrics gets no duplicate series; failures name their target in the log. */
void replay_tls_print_stats(struct replay_tls *const *tts, int n, FILE *f);

#endif
