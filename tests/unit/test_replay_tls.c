/* The replay engine against https:// targets: an OpenSSL server in a thread of this
 * test with a certificate made here (EC P-256, SAN IP:127.0.0.1). Verification on
 * by default (a self-signed target fails, named), --replay-ca, the host name check,
 * --replay-insecure, byte-exact pipelined requests with a large body, and session
 * resumption across reconnects. A renegotiation the server starts in TLS 1.2: the
 * client's write then waits for the socket to be readable (replay_tls_wants says
 * EPOLLIN, not EPOLLOUT), and requests on either side of it are answered. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "record.h"
#include "replay.h"
#include "replay_tls.h"
#define REPLAY_SINK_MAX 64     /* records a test keeps; more are freed */
#define REPLAY_SINK_SLACK_MS 1000 /* as its own copy waited: 1 s more than asked */
#include "replay_sink.h"

#define BIG      (200 * 1024)

/* ---- the TLS test server: a thread per connection, answers "PATH LEN SUM" ---- */

struct tsrv {
	int lfd;
	uint16_t port;
	SSL_CTX *ctx;
	pthread_t thr;
	pthread_mutex_t mu;
	int requests, conns, resumed;
	int renegotiate;                 /* TLS 1.2: ask for a renegotiation after each answer */
	int renegotiations;              /* requests read after a completed renegotiation */
	unsigned long body_sum;          /* sum of every body byte received */
	char ca_path[64];
};

struct tconn {
	struct tsrv *s;
	int fd;
};

static int tsrv_get(struct tsrv *s, const int *field);

static void *tsrv_conn(void *arg)
{
	struct tconn *tc = arg;
	struct tsrv *s = tc->s;
	static char buf[BIG + 4096];
	size_t len = 0;
	int asked = 0;
	SSL *ssl = SSL_new(s->ctx);

	SSL_set_fd(ssl, tc->fd);
	if (SSL_accept(ssl) != 1)
		goto out;
	pthread_mutex_lock(&s->mu);
	s->conns++;
	s->resumed += SSL_session_reused(ssl);
	pthread_mutex_unlock(&s->mu);
	for (;;) {
		char *e = memmem(buf, len, "\r\n\r\n", 4), *cl, path[128] = "", out[256];
		size_t head, n = 0, i;
		unsigned long sum = 0;
		int r, close;

		if (e) {
			head = (size_t)(e - buf) + 4;
			cl = memmem(buf, head, "Content-Length: ", 16);
			if (cl)
				n = strtoul(cl + 16, NULL, 10);
			if (len >= head + n) {
				sscanf(buf, "%*s %127s", path);
				/* a request after the HelloRequest: the handshake is done */
				if (asked && !SSL_renegotiate_pending(ssl)) {
					pthread_mutex_lock(&s->mu);
					s->renegotiations++;
					pthread_mutex_unlock(&s->mu);
					asked = 0;
				}
				for (i = 0; i < n; i++)
					sum += (unsigned char)buf[head + i];
				pthread_mutex_lock(&s->mu);
				s->requests++;
				s->body_sum += sum;
				pthread_mutex_unlock(&s->mu);
				close = memmem(buf, head, " HTTP/1.0\r\n", 11) != NULL;
				r = snprintf(out, sizeof(out), "%s %zu %lu", path, n, sum);
				snprintf(out + r + 1, sizeof(out) - (size_t)r - 1,
					 "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n", r,
					 close ? "Connection: close\r\n" : "");
				SSL_write(ssl, out + r + 1, (int)strlen(out + r + 1));
				SSL_write(ssl, out, r);
				/* a HelloRequest; the blocking SSL_read below does the rest */
				if (tsrv_get(s, &s->renegotiate) && SSL_renegotiate(ssl) == 1) {
					SSL_do_handshake(ssl);
					asked = 1;
				}
				if (close)
					break;
				memmove(buf, buf + head + n, len - head - n);
				len -= head + n;
				continue;
			}
		}
		if (len == sizeof(buf))
			break;
		r = SSL_read(ssl, buf + len, (int)(sizeof(buf) - len));
		if (r <= 0)
			break;
		len += (size_t)r;
	}
out:
	SSL_free(ssl);
	close(tc->fd);
	free(tc);
	return NULL;
}

static void *tsrv_thread(void *arg)
{
	struct tsrv *s = arg;

	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);
		struct tconn *tc;
		pthread_t t;

		if (fd < 0)
			return NULL;
		tc = malloc(sizeof(*tc));
		assert_non_null(tc);
		tc->s = s;
		tc->fd = fd;
		/* one connection at a time is enough here and keeps the buffer static */
		pthread_create(&t, NULL, tsrv_conn, tc);
		pthread_join(t, NULL);
	}
}

/* A self-signed EC certificate for 127.0.0.1 (SAN), written to ca_path too. */
static void tsrv_cert(struct tsrv *s)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	FILE *f;
	int fd;

	assert_non_null(key);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"shadowtap-unit", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(SSL_CTX_use_certificate(s->ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, key), 1);
	strcpy(s->ca_path, "/tmp/st-replay-tls-ca.XXXXXX");
	fd = mkstemp(s->ca_path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

static struct tsrv *tsrv_start(void)
{
	struct tsrv *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int one = 1;

	assert_non_null(s);
	pthread_mutex_init(&s->mu, NULL);
	s->ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(s->ctx);
	tsrv_cert(s);
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 64), 0);
	getsockname(s->lfd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->thr, NULL, tsrv_thread, s);
	return s;
}

static int tsrv_get(struct tsrv *s, const int *field)
{
	int v;

	pthread_mutex_lock(&s->mu);
	v = *field;
	pthread_mutex_unlock(&s->mu);
	return v;
}

static void tsrv_stop(struct tsrv *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->thr, NULL);
	close(s->lfd);
	unlink(s->ca_path);
	SSL_CTX_free(s->ctx);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static char url[64];

static void cfg_https(struct replay_cfg *cfg, const char *host, uint16_t port)
{
	replay_cfg_default(cfg);
	snprintf(url, sizeof(url), "https://%s:%u", host, port);
	cfg->targets[0] = url;
	cfg->ntargets = 1;
	cfg->connections = 1;
	cfg->connections_max = 1;
	cfg->connect_timeout_ms = 2000;
	cfg->response_timeout_ms = 2000;
}

/* run n GETs of one flow through a fresh engine; returns the records' sink */
static void run_gets(struct replay_cfg *cfg, struct sink *k, int n)
{
	struct replay *rp = NULL;
	char raw[128];
	int i;

	sink_init(k);
	assert_int_equal(replay_start(&rp, cfg, sink_done, k), 0);
	for (i = 0; i < n; i++) {
		int l = snprintf(raw, sizeof(raw), "GET /g/%d HTTP/1.1\r\nHost: h\r\n\r\n", i);

		replay_submit(rp, sink_rec(1, (uint32_t)i, raw, (size_t)l));
	}
	assert_int_equal(sink_wait(k, n, 5000), n);
	replay_stop(rp);
	replay_free(rp);
}

static void test_verify_fails_without_ca(void **state)
{
	struct tsrv *s = tsrv_start();
	struct replay_cfg cfg;
	struct sink k;
	int i;

	(void)state;
	cfg_https(&cfg, "127.0.0.1", s->port);
	run_gets(&cfg, &k, 3);
	for (i = 0; i < 3; i++) {
		assert_non_null(k.recs[i]->replay);
		assert_string_equal(k.recs[i]->replay->error, "tls: certificate verify failed");
	}
	assert_int_equal(tsrv_get(s, &s->requests), 0);
	sink_free(&k);
	tsrv_stop(s);
}

static void test_name_check_and_insecure(void **state)
{
	struct tsrv *s = tsrv_start();
	struct replay_cfg cfg;
	struct sink k;

	(void)state;
	/* trusted, but the certificate names 127.0.0.1, not localhost */
	cfg_https(&cfg, "localhost", s->port);
	cfg.tls_ca = s->ca_path;
	run_gets(&cfg, &k, 1);
	assert_string_equal(k.recs[0]->replay->error, "tls: certificate verify failed");
	sink_free(&k);
	/* --replay-insecure: no check at all */
	cfg.tls_ca = NULL;
	cfg.tls_insecure = 1;
	run_gets(&cfg, &k, 2);
	assert_null(k.recs[0]->replay->error);
	assert_int_equal(k.recs[0]->replay->status_code, 200);
	assert_int_equal(tsrv_get(s, &s->requests), 2);
	sink_free(&k);
	tsrv_stop(s);
}

static void test_pipelined_big_body(void **state)
{
	struct tsrv *s = tsrv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	static char raw[BIG + 256];
	unsigned long sum = 0;
	int i, hl, n = 0;

	(void)state;
	cfg_https(&cfg, "127.0.0.1", s->port);
	cfg.tls_ca = s->ca_path;
	sink_init(&k);
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	/* a 200 KiB body (many TLS records, partial writes) between small requests, all
	 * pipelined on the one connection */
	for (i = 0; i < 9; i++) {
		if (i == 4) {
			hl = snprintf(raw, sizeof(raw), "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", BIG);
			for (int j = 0; j < BIG; j++) {
				raw[hl + j] = (char)(j * 31 + 7);
				sum += (unsigned char)raw[hl + j];
			}
			replay_submit(rp, sink_rec(5, (uint32_t)i, raw, (size_t)hl + BIG));
		} else {
			hl = snprintf(raw, sizeof(raw), "POST /s/%d HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nab%c",
				      i, 'a' + i);
			sum += 'a' + 'b' + (unsigned char)('a' + i);
			replay_submit(rp, sink_rec(5, (uint32_t)i, raw, (size_t)hl));
		}
		n++;
	}
	assert_int_equal(sink_wait(&k, n, 10000), n);
	replay_stop(rp);
	for (i = 0; i < n; i++) {
		struct st_record *r = k.recs[i];
		char want[64];

		/* done in order, each answered by its own request's echo */
		assert_int_equal(r->index, (uint32_t)i);
		assert_null(r->replay->error);
		assert_int_equal(r->replay->status_code, 200);
		if (i == 4)
			snprintf(want, sizeof(want), "/big %d ", BIG);
		else
			snprintf(want, sizeof(want), "/s/%d 3 ", i);
		assert_true(r->replay->resp.body_stored >= strlen(want));
		assert_memory_equal(r->replay->resp.body, want, strlen(want));
	}
	assert_int_equal(tsrv_get(s, &s->requests), n);
	assert_int_equal(tsrv_get(s, &s->conns), 1);
	pthread_mutex_lock(&s->mu);
	assert_int_equal(s->body_sum, sum);
	pthread_mutex_unlock(&s->mu);
	replay_free(rp);
	sink_free(&k);
	tsrv_stop(s);
}

static void test_resumption(void **state)
{
	struct tsrv *s = tsrv_start();
	struct replay_cfg cfg;
	struct replay *rp = NULL;
	struct sink k;
	int i;

	(void)state;
	cfg_https(&cfg, "127.0.0.1", s->port);
	cfg.tls_ca = s->ca_path;
	sink_init(&k);
	assert_int_equal(replay_start(&rp, &cfg, sink_done, &k), 0);
	/* HTTP/1.0 without keep-alive: the target closes after each answer, so every
	 * request needs a new connection, which offers the previous session */
	for (i = 0; i < 4; i++) {
		const char *raw = "GET /one HTTP/1.0\r\n\r\n";

		replay_submit(rp, sink_rec((uint64_t)i + 1, 0, raw, strlen(raw)));
		assert_int_equal(sink_wait(&k, i + 1, 5000), i + 1);
	}
	replay_stop(rp);
	for (i = 0; i < 4; i++)
		assert_null(k.recs[i]->replay->error);
	assert_int_equal(tsrv_get(s, &s->conns), 4);
	assert_true(tsrv_get(s, &s->resumed) >= 2);
	replay_free(rp);
	sink_free(&k);
	tsrv_stop(s);
}

static void nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* OpenSSL's own calls, no engine: after the server's HelloRequest the client's read
 * answers with a ClientHello, and its next write must wait for the ServerHello, i.e.
 * for EPOLLIN. Polling that write for EPOLLOUT (always true here) would spin. */
static void test_write_waits_for_read(void **state)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	struct tsrv cert = { 0 };
	struct replay_tls *tt = NULL;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct iovec iov = { .iov_base = "GET", .iov_len = 3 };
	SSL *cs = NULL, *ss;
	const char *why = NULL;
	char buf[64];
	size_t got = 0;
	uint32_t ev = 0;
	int lfd, cfd, sfd, i, cdone = 0, sdone = 0, sent = 0;

	(void)state;
	assert_non_null(sctx);
	cert.ctx = sctx;
	tsrv_cert(&cert);
	unlink(cert.ca_path);
	SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	nonblock(cfd);
	nonblock(sfd);
	ss = SSL_new(sctx);
	SSL_set_fd(ss, sfd);
	snprintf(url, sizeof(url), "https://127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(replay_tls_init(&tt, url, "127.0.0.1", NULL, true), 0);
	for (i = 0; i < 10000 && !(cdone && sdone); i++) {
		if (!cdone)
			cdone = replay_tls_handshake(tt, &cs, cfd, &ev, &why) == 1;
		if (!sdone)
			sdone = SSL_accept(ss) == 1;
	}
	assert_true(cdone && sdone);
	assert_string_equal(SSL_get_version(cs), "TLSv1.2");

	assert_int_equal(SSL_renegotiate(ss), 1);
	SSL_do_handshake(ss);                    /* sends the HelloRequest */
	for (i = 0; i < 2000; i++) {            /* until the client has seen it */
		errno = 0;
		assert_int_equal(replay_tls_read(cs, buf, sizeof(buf)), -1);
		assert_int_equal(errno, EAGAIN);
		if (SSL_renegotiate_pending(cs) || !SSL_is_init_finished(cs))
			break;
		usleep(1000);
	}
	assert_false(SSL_is_init_finished(cs));
	errno = 0;
	assert_int_equal(replay_tls_writev(cs, &iov, 1), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(replay_tls_wants(cs), EPOLLIN);

	/* the server goes on; the same write then completes, byte-exact */
	for (i = 0; i < 20000 && !got; i++) {   /* 2 s at most */
		if (i)
			usleep(100);
		if (!sent) {
			ssize_t n = replay_tls_writev(cs, &iov, 1);

			if (n < 0)
				assert_int_equal(errno, EAGAIN);
			sent = n == 3;
		}
		else if (replay_tls_read(cs, buf, sizeof(buf)) < 0)
			assert_int_equal(errno, EAGAIN);   /* the handshake's next flight */
		if (SSL_read_ex(ss, buf, sizeof(buf), &got) != 1)
			got = 0;
	}
	assert_int_equal(got, 3);
	assert_memory_equal(buf, "GET", 3);
	assert_false(SSL_renegotiate_pending(ss));
	replay_tls_free(&cs, false);
	SSL_free(ss);
	replay_tls_destroy(tt);
	SSL_CTX_free(sctx);
	close(cfd);
	close(sfd);
	close(lfd);
}

/* The engine across renegotiations: keep-alive requests, each answer followed by the
 * server's HelloRequest, all answered in order on the one connection. */
static void test_renegotiation_in_engine(void **state)
{
	struct tsrv *s = tsrv_start();
	struct replay_cfg cfg;
	struct sink k;
	int i;

	(void)state;
	SSL_CTX_set_max_proto_version(s->ctx, TLS1_2_VERSION);
	pthread_mutex_lock(&s->mu);
	s->renegotiate = 1;
	pthread_mutex_unlock(&s->mu);
	cfg_https(&cfg, "127.0.0.1", s->port);
	cfg.tls_ca = s->ca_path;
	run_gets(&cfg, &k, 6);
	for (i = 0; i < 6; i++) {
		char want[32];

		snprintf(want, sizeof(want), "/g/%d 0 ", i);
		assert_null(k.recs[i]->replay->error);
		assert_true(k.recs[i]->replay->resp.body_stored >= strlen(want));
		assert_memory_equal(k.recs[i]->replay->resp.body, want, strlen(want));
	}
	assert_int_equal(tsrv_get(s, &s->requests), 6);
	assert_int_equal(tsrv_get(s, &s->conns), 1);
	/* at least one request came over a renegotiated session (how many depends on
	 * whether the client had read the HelloRequest before sending the next) */
	assert_true(tsrv_get(s, &s->renegotiations) >= 1);
	sink_free(&k);
	tsrv_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_fails_without_ca),
		cmocka_unit_test(test_name_check_and_insecure),
		cmocka_unit_test(test_pipelined_big_body),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_write_waits_for_read),
		cmocka_unit_test(test_renegotiation_in_engine),
	};

	/* the agent ignores SIGPIPE (pipeline.c); OpenSSL writes with write(2) */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
