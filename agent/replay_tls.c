/* See replay_tls.h. Everything except the counters runs on the replay thread, so
 * the context's cached session needs no lock. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "replay_tls.h"

#define REPLAY_TLS_WARN_S 10   /* a failing target is reported at most this often */

struct replay_tls {
	SSL_CTX *ctx;
	char *url;                 /* for messages */
	char host[256];
	bool host_is_ip;
	bool verify;
	SSL_SESSION *sess;         /* newest session the target gave us, for resumption */
	time_t warned;
	uint64_t handshakes, resumed, verify_failures, failures, sessions;   /* atomic */
};

#define TLS_ADD(tt, f) __atomic_fetch_add(&(tt)->f, 1, __ATOMIC_RELAXED)
#define TLS_GET(tt, f) __atomic_load_n(&(tt)->f, __ATOMIC_RELAXED)

/* TLS 1.3 sends tickets after the handshake, TLS 1.2 ends it with one: either way
 * the newest session is kept and offered by the next connection. */
static int replay_tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct replay_tls *tt = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	if (!tt || !SSL_SESSION_is_resumable(sess))
		return 0;
	SSL_SESSION_free(tt->sess);
	tt->sess = sess;
	TLS_ADD(tt, sessions);
	return 1;   /* the reference is ours now */
}

static void replay_tls_warn(struct replay_tls *tt, const char *what, const char *detail)
{
	time_t now = time(NULL);

	if (tt->warned && now - tt->warned < REPLAY_TLS_WARN_S)
		return;
	tt->warned = now;
	pr_warn("replay: target %s: %s: %s (reported at most every %d s; the records say "
		"replay.error)\n", tt->url, what, detail, REPLAY_TLS_WARN_S);
}

int replay_tls_init(struct replay_tls **out, const char *url, const char *host, const char *ca,
		    bool insecure)
{
	struct in6_addr a6;
	struct replay_tls *tt;
	int err = -EINVAL;

	*out = NULL;
	tt = calloc(1, sizeof(*tt));
	if (!tt)
		return -ENOMEM;
	tt->url = strdup(url);
	if (!tt->url || strlen(host) >= sizeof(tt->host)) {
		err = tt->url ? -EINVAL : -ENOMEM;
		goto fail;
	}
	strcpy(tt->host, host);
	tt->host_is_ip = inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
	tt->verify = !insecure;
	tt->ctx = SSL_CTX_new(TLS_client_method());
	if (!tt->ctx) {
		pr_warn("replay: target %s: cannot create a TLS context\n", url);
		err = -ENOMEM;
		goto fail;
	}
	SSL_CTX_set_min_proto_version(tt->ctx, TLS1_2_VERSION);
	/* partial writes: SSL_write reports what went out, as sendmsg does; the buffer
	 * it retries may sit at another address after the queue changed */
	SSL_CTX_set_mode(tt->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* a serverB closing without close_notify ends a close-delimited body, as on
	 * plain HTTP */
	SSL_CTX_set_options(tt->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_app_data(tt->ctx, tt);
	SSL_CTX_set_session_cache_mode(tt->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(tt->ctx, replay_tls_new_session);
	if (tt->verify) {
		SSL_CTX_set_verify(tt->ctx, SSL_VERIFY_PEER, NULL);
		if (ca ? SSL_CTX_load_verify_locations(tt->ctx, ca, NULL) != 1
		       : SSL_CTX_set_default_verify_paths(tt->ctx) != 1) {
			pr_warn("replay: target %s: cannot load %s: %s\n", url,
				ca ? ca : "the system's CA certificates",
				ERR_reason_error_string(ERR_peek_last_error()) ?: "unknown error");
			goto fail;
		}
	}
	ERR_clear_error();
	*out = tt;
	return 0;
fail:
	replay_tls_destroy(tt);
	return err;
}

void replay_tls_destroy(struct replay_tls *tt)
{
	if (!tt)
		return;
	SSL_SESSION_free(tt->sess);
	SSL_CTX_free(tt->ctx);
	free(tt->url);
	free(tt);
}

static SSL *replay_tls_new(struct replay_tls *tt, int fd)
{
	SSL *ssl = SSL_new(tt->ctx);

	if (!ssl)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1)
		goto fail;
	/* RFC 6066: no SNI for an address */
	if (!tt->host_is_ip && SSL_set_tlsext_host_name(ssl, tt->host) != 1)
		goto fail;
	if (tt->verify && (tt->host_is_ip
			   ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), tt->host) != 1
			   : SSL_set1_host(ssl, tt->host) != 1))
		goto fail;
	if (tt->sess)
		SSL_set_session(ssl, tt->sess);
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

int replay_tls_handshake(struct replay_tls *tt, struct ssl_st **sslp, int fd, uint32_t *events,
			 const char **why)
{
	SSL *ssl = *sslp;
	unsigned long e;
	long vr;
	int r, se;

	if (!ssl) {
		ssl = replay_tls_new(tt, fd);
		if (!ssl) {
			TLS_ADD(tt, failures);
			ERR_clear_error();
			*why = "dropped: memory limit";
			return -EPROTO;
		}
		*sslp = ssl;
	}
	ERR_clear_error();
	errno = 0;
	r = SSL_connect(ssl);
	if (r == 1) {
		TLS_ADD(tt, handshakes);
		if (SSL_session_reused(ssl))
			TLS_ADD(tt, resumed);
		return 1;
	}
	se = SSL_get_error(ssl, r);
	if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
		*events = se == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		return 0;
	}
	vr = SSL_get_verify_result(ssl);
	if (tt->verify && vr != X509_V_OK) {
		TLS_ADD(tt, verify_failures);
		*why = "tls: certificate verify failed";
		replay_tls_warn(tt, "tls: certificate verify failed", X509_verify_cert_error_string(vr));
	} else {
		const char *d;

		TLS_ADD(tt, failures);
		*why = "tls: handshake failed";
		e = ERR_peek_last_error();
		d = e ? ERR_reason_error_string(e) : NULL;
		if (!d)
			d = se == SSL_ERROR_SYSCALL && errno ? strerror(errno)
			    : "connection closed during the handshake";
		replay_tls_warn(tt, "tls: handshake failed", d);
	}
	ERR_clear_error();
	return -EPROTO;
}

/* errno for an SSL_get_error result that is not a success */
static int replay_tls_errno(int se, int sys)
{
	switch (se) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		/* which readiness it waits for: replay_tls_wants */
		return EAGAIN;
	case SSL_ERROR_SYSCALL:
		return sys ? sys : ECONNRESET;
	default:
		return EPROTO;
	}
}

ssize_t replay_tls_read(struct ssl_st *ssl, void *buf, size_t len)
{
	size_t got = 0;
	int se;

	ERR_clear_error();
	errno = 0;
	if (SSL_read_ex(ssl, buf, len, &got) == 1)
		return (ssize_t)got;
	se = SSL_get_error(ssl, 0);
	if (se == SSL_ERROR_ZERO_RETURN)
		return 0;
	errno = replay_tls_errno(se, errno);
	ERR_clear_error();
	return -1;
}

ssize_t replay_tls_writev(struct ssl_st *ssl, const struct iovec *iov, int niov)
{
	size_t total = 0, w;
	int i, se;

	for (i = 0; i < niov; i++) {
		if (!iov[i].iov_len)
			continue;
		ERR_clear_error();
		errno = 0;
		w = 0;
		if (SSL_write_ex(ssl, iov[i].iov_base, iov[i].iov_len, &w) == 1) {
			total += w;
			if (w < iov[i].iov_len)
				break;
			continue;
		}
		se = SSL_get_error(ssl, 0);
		ERR_clear_error();
		if (total)
			break;
		errno = replay_tls_errno(se, errno);
		return -1;
	}
	return (ssize_t)total;
}

uint32_t replay_tls_wants(struct ssl_st *ssl)
{
	return SSL_want_write(ssl) ? EPOLLOUT : EPOLLIN;
}

void replay_tls_free(struct ssl_st **sslp, bool clean)
{
	if (!sslp || !*sslp)
		return;
	if (SSL_is_init_finished(*sslp)) {
		/* one non-blocking close_notify when idle */
		if (clean)
			SSL_shutdown(*sslp);
		/* without a close_notify both ways OpenSSL marks the session not resumable;
		 * since TLS 1.1 a connection that ended without one may still be resumed
		 * (RFC 5246 7.2.1), and serverB closing after an answer is normal */
		SSL_set_shutdown(*sslp, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	}
	SSL_free(*sslp);
	ERR_clear_error();
	*sslp = NULL;
}

void replay_tls_print_stats(struct replay_tls *const *tts, int n, FILE *f)
{
	unsigned long long v[5] = { 0 };
	int i, any = 0;

	for (i = 0; i < n; i++) {
		if (!tts[i])
			continue;
		any = 1;
		v[0] += TLS_GET(tts[i], handshakes);
		v[1] += TLS_GET(tts[i], resumed);
		v[2] += TLS_GET(tts[i], sessions);
		v[3] += TLS_GET(tts[i], verify_failures);
		v[4] += TLS_GET(tts[i], failures);
	}
	if (any)
		fprintf(f, "replay: tls handshakes=%llu resumed=%llu sessions=%llu verify_failures=%llu "
			"handshake_failures=%llu\n", v[0], v[1], v[2], v[3], v[4]);
}
