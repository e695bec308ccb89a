/* bpf/tls.bpf.c + agent/tls.c against stand-in OpenSSL functions defined below: the
 * test attaches the uprobes to its own executable (as for a server that links
 * OpenSSL statically), runs SSL_set_fd/SSL_read/SSL_write/SSL_free over a real TCP
 * connection on loopback and checks the ring events: direction, 4-tuple, byte
 * offsets, SYN/FIN, splitting, and the SSL -> fd mapping through a syscall for a
 * connection whose SSL_set_fd was never seen. Needs root; skips otherwise. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "shadowtap.h"
#include "tls.h"

#define TT_PORT		24443
#define TT_MAX_EVENTS	256
#define TT_BIG		(100 * 1024 + 123)

/* Stand-ins with OpenSSL's signatures. noinline + an asm barrier keep each a real
 * function with its own symbol for the uprobes; "ssl" is any unique pointer. */
#define TT_FN __attribute__((noinline, used, visibility("default")))

TT_FN int SSL_set_fd(void *ssl, int fd)
{
	asm volatile("" ::"r"(ssl), "r"(fd) : "memory");
	return 1;
}

/* fd < 0: served from "OpenSSL's buffer" (no syscall), copies from src */
static int tt_fd_for_read = -1;
static const char *tt_src;

static int tt_fail;	/* SSL_read returns -1 (want read) */

TT_FN int SSL_read(void *ssl, void *buf, int num)
{
	asm volatile("" ::"r"(ssl) : "memory");
	if (tt_fail)
		return -1;
	if (tt_fd_for_read >= 0)
		return (int)read(tt_fd_for_read, buf, (size_t)num);
	memcpy(buf, tt_src, (size_t)num);
	return num;
}

static int tt_fd_for_write = -1;

TT_FN int SSL_write(void *ssl, const void *buf, int num)
{
	asm volatile("" ::"r"(ssl) : "memory");
	if (tt_fd_for_write >= 0)
		return (int)write(tt_fd_for_write, buf, (size_t)num);
	return num;
}

TT_FN void SSL_free(void *ssl)
{
	asm volatile("" ::"r"(ssl) : "memory");
}

struct tt_event {
	struct st_event ev;
	uint8_t data[ST_CHUNK_MAX];
};

static struct tt_event tt_evs[TT_MAX_EVENTS];
static int tt_nev;
static struct tls *tt_tls;
static struct ring_buffer *tt_rb;
static const char *tt_skip_why = "not run";
static int tt_lfd = -1;

static int tt_on_event(void *ctx, void *data, size_t sz)
{
	struct tt_event *e;

	if (tt_nev >= TT_MAX_EVENTS || sz < sizeof(struct st_event))
		return 0;
	e = &tt_evs[tt_nev++];
	memset(e, 0, sizeof(*e));
	memcpy(e, data, sz < sizeof(*e) ? sz : sizeof(*e));
	return 0;
}

static void tt_drain(void)
{
	tt_nev = 0;
	ring_buffer__consume(tt_rb);
}

static int tt_silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (getenv("TC_VERBOSE"))
		vfprintf(stderr, fmt, ap);
	return 0;
}

static int tt_setup(void **state)
{
	struct tls_cfg cfg = { .ports = { TT_PORT }, .nports = 1, .lib = "/proc/self/exe",
			       .ring_fd = -1, .wakeup_bytes = 1 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(TT_PORT),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, err;

	if (geteuid() != 0) {
		tt_skip_why = "needs root";
		return 0;
	}
	libbpf_set_print(tt_silent);
	err = tls_open(&tt_tls, &cfg);
	if (err) {
		tt_skip_why = "tls program does not load or attach here";
		return 0;
	}
	tt_rb = ring_buffer__new(tls_ring_fd(tt_tls), tt_on_event, NULL, NULL);
	tt_lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(tt_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!tt_rb || bind(tt_lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(tt_lfd, 8) < 0) {
		tt_skip_why = "cannot set up the loopback listener";
		ring_buffer__free(tt_rb);
		tt_rb = NULL;
		tls_close(tt_tls);
		tt_tls = NULL;
	}
	return 0;
}

static int tt_teardown(void **state)
{
	ring_buffer__free(tt_rb);
	tls_close(tt_tls);
	if (tt_lfd >= 0)
		close(tt_lfd);
	return 0;
}

#define TT_REQUIRE()                                                         \
	do {                                                                 \
		if (!tt_tls) {                                               \
			fprintf(stderr, "SKIP: %s\n", tt_skip_why);          \
			skip();                                              \
		}                                                            \
	} while (0)

/* A connected pair on loopback: *cli is the client end, *srv the accepted one. */
static void tt_pair(int *cli, int *srv, uint16_t *cport)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(TT_PORT),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	*cli = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*cli >= 0);
	assert_int_equal(connect(*cli, (struct sockaddr *)&a, sizeof(a)), 0);
	*srv = accept(tt_lfd, NULL, NULL);
	assert_true(*srv >= 0);
	assert_int_equal(getsockname(*cli, (struct sockaddr *)&a, &alen), 0);
	*cport = ntohs(a.sin_port);
}

static void tt_check_tuple(const struct st_event *ev, uint16_t cport)
{
	uint32_t lo = htonl(INADDR_LOOPBACK);

	assert_int_equal(ev->family, 4);
	assert_int_equal(ev->source, ST_SRC_OPENSSL);
	assert_int_equal(ev->saddr[0], lo);
	assert_int_equal(ev->daddr[0], lo);
	if (ev->dir == ST_DIR_TO_SERVER) {
		assert_int_equal(ev->sport, cport);
		assert_int_equal(ev->dport, TT_PORT);
	} else {
		assert_int_equal(ev->sport, TT_PORT);
		assert_int_equal(ev->dport, cport);
	}
}

/* SSL_set_fd seen: SYNs, data both ways with offsets from isn + 1, FINs on free. */
static void test_fresh_connection(void **state)
{
	char ssl_obj, buf[64];
	int cli, srv;
	uint16_t cport;
	uint32_t isn;

	TT_REQUIRE();
	tt_pair(&cli, &srv, &cport);
	tt_drain();
	SSL_set_fd(&ssl_obj, srv);
	assert_int_equal(write(cli, "GET / HTTP/1.1\r\n\r\n", 18), 18);
	tt_fd_for_read = srv;
	assert_int_equal(SSL_read(&ssl_obj, buf, sizeof(buf)), 18);
	tt_fd_for_read = -1;
	tt_fd_for_write = srv;
	assert_int_equal(SSL_write(&ssl_obj, "HTTP/1.1 200 OK\r\n", 17), 17);
	assert_int_equal(SSL_write(&ssl_obj, "\r\n", 2), 2);
	tt_fd_for_write = -1;
	SSL_free(&ssl_obj);
	tt_drain();

	assert_int_equal(tt_nev, 7);
	assert_int_equal(tt_evs[0].ev.dir, ST_DIR_TO_SERVER);
	assert_int_equal(tt_evs[0].ev.tcp_flags & ST_TCP_SYN, ST_TCP_SYN);
	isn = tt_evs[0].ev.seq;
	assert_int_equal(tt_evs[1].ev.dir, ST_DIR_FROM_SERVER);
	assert_int_equal(tt_evs[1].ev.tcp_flags & ST_TCP_SYN, ST_TCP_SYN);
	assert_int_equal(tt_evs[2].ev.dir, ST_DIR_TO_SERVER);
	assert_int_equal(tt_evs[2].ev.seq, isn + 1);
	assert_int_equal(tt_evs[2].ev.data_len, 18);
	assert_memory_equal(tt_evs[2].data, "GET / HTTP/1.1\r\n\r\n", 18);
	assert_int_equal(tt_evs[3].ev.dir, ST_DIR_FROM_SERVER);
	assert_int_equal(tt_evs[3].ev.seq, isn + 1);
	assert_memory_equal(tt_evs[3].data, "HTTP/1.1 200 OK\r\n", 17);
	/* ACKs as TCP's: the server's bytes acknowledge the 18 request bytes, and every
	 * event carries the ACK flag with a meaningful number (reassembly uses it) */
	assert_int_equal(tt_evs[3].ev.ack, isn + 1 + 18);
	assert_int_equal(tt_evs[2].ev.ack, isn + 1);
	assert_int_equal(tt_evs[1].ev.ack, isn + 1);
	assert_int_equal(tt_evs[5].ev.ack, isn + 1 + 19);
	assert_int_equal(tt_evs[6].ev.ack, isn + 1 + 18);
	assert_int_equal(tt_evs[4].ev.seq, isn + 1 + 17);
	assert_int_equal(tt_evs[4].ev.data_len, 2);
	assert_int_equal(tt_evs[5].ev.tcp_flags & ST_TCP_FIN, ST_TCP_FIN);
	assert_int_equal(tt_evs[5].ev.seq, isn + 1 + 18);
	assert_int_equal(tt_evs[6].ev.tcp_flags & ST_TCP_FIN, ST_TCP_FIN);
	assert_int_equal(tt_evs[6].ev.seq, isn + 1 + 19);
	for (int i = 0; i < tt_nev; i++)
		tt_check_tuple(&tt_evs[i].ev, cport);
	close(cli);
	close(srv);
}

/* No SSL_set_fd (connection older than the agent): the read() inside SSL_read names
 * the fd; later calls served from the buffer (no syscall) stay mapped. Before that,
 * a call with no syscall is counted as unmapped. */
static void test_mapped_by_syscall(void **state)
{
	struct st_tls_stats before, after;
	char ssl_obj, buf[64];
	int cli, srv;
	uint16_t cport;

	TT_REQUIRE();
	tt_pair(&cli, &srv, &cport);
	assert_int_equal(tls_read_stats(tt_tls, &before), 0);
	tt_drain();
	tt_src = "early";
	assert_int_equal(SSL_read(&ssl_obj, buf, 5), 5);
	assert_int_equal(write(cli, "abc", 3), 3);
	tt_fd_for_read = srv;
	assert_int_equal(SSL_read(&ssl_obj, buf, sizeof(buf)), 3);
	tt_fd_for_read = -1;
	tt_src = "defg";
	assert_int_equal(SSL_read(&ssl_obj, buf, 4), 4);
	tt_drain();
	assert_int_equal(tls_read_stats(tt_tls, &after), 0);

	assert_int_equal(after.unmapped_calls - before.unmapped_calls, 1);
	assert_int_equal(after.unmapped_bytes - before.unmapped_bytes, 5);
	assert_int_equal(after.fd_from_syscall - before.fd_from_syscall, 1);
	assert_int_equal(tt_nev, 2);
	assert_int_equal(tt_evs[0].ev.tcp_flags & ST_TCP_SYN, 0);
	assert_memory_equal(tt_evs[0].data, "abc", 3);
	assert_memory_equal(tt_evs[1].data, "defg", 4);
	assert_int_equal(tt_evs[1].ev.seq, tt_evs[0].ev.seq + 3);
	tt_check_tuple(&tt_evs[0].ev, cport);
	tt_check_tuple(&tt_evs[1].ev, cport);
	SSL_free(&ssl_obj);
	close(cli);
	close(srv);
}

/* A failed SSL_read (-1: want read) returns an int whose register's upper half is
 * zero: it must count as no data, not 4 GiB. */
static void test_error_return(void **state)
{
	struct st_tls_stats before, after;
	char ssl_obj, buf[64];
	int cli, srv;
	uint16_t cport;

	TT_REQUIRE();
	tt_pair(&cli, &srv, &cport);
	assert_int_equal(tls_read_stats(tt_tls, &before), 0);
	tt_drain();
	SSL_set_fd(&ssl_obj, srv);
	tt_fail = 1;
	assert_int_equal(SSL_read(&ssl_obj, buf, sizeof(buf)), -1);
	tt_fail = 0;
	tt_drain();
	assert_int_equal(tls_read_stats(tt_tls, &after), 0);
	assert_int_equal(tt_nev, 2);	/* the two SYNs only */
	assert_int_equal(after.bytes, before.bytes);
	assert_int_equal(after.bytes_too_large, before.bytes_too_large);
	assert_int_equal(after.calls, before.calls);
	SSL_free(&ssl_obj);
	close(cli);
	close(srv);
}

/* A write larger than one event is split into contiguous slices, every byte kept. */
static void test_large_write_split(void **state)
{
	static char big[TT_BIG];
	char ssl_obj;
	int cli, srv, i;
	uint16_t cport;
	uint32_t isn, next;
	size_t total = 0;

	TT_REQUIRE();
	for (i = 0; i < TT_BIG; i++)
		big[i] = (char)('a' + i % 26);
	tt_pair(&cli, &srv, &cport);
	tt_drain();
	SSL_set_fd(&ssl_obj, srv);
	assert_int_equal(SSL_write(&ssl_obj, big, TT_BIG), TT_BIG);
	tt_drain();
	assert_int_equal(tt_nev, 2 + (TT_BIG + ST_CHUNK_MAX - 1) / ST_CHUNK_MAX);
	isn = tt_evs[1].ev.seq;
	next = isn + 1;
	for (i = 2; i < tt_nev; i++) {
		assert_int_equal(tt_evs[i].ev.dir, ST_DIR_FROM_SERVER);
		assert_int_equal(tt_evs[i].ev.seq, next);
		assert_memory_equal(tt_evs[i].data, big + (next - isn - 1), tt_evs[i].ev.data_len);
		next += tt_evs[i].ev.data_len;
		total += tt_evs[i].ev.data_len;
	}
	assert_int_equal(total, TT_BIG);
	SSL_free(&ssl_obj);
	close(cli);
	close(srv);
}

/* The same library serves clients too: an SSL object whose socket's local port is
 * not a TLS port emits nothing. */
static void test_client_side_ignored(void **state)
{
	struct st_tls_stats before, after;
	char ssl_obj, buf[8];
	int cli, srv;
	uint16_t cport;

	TT_REQUIRE();
	tt_pair(&cli, &srv, &cport);
	assert_int_equal(tls_read_stats(tt_tls, &before), 0);
	tt_drain();
	SSL_set_fd(&ssl_obj, cli);
	assert_int_equal(write(srv, "xy", 2), 2);
	tt_fd_for_read = cli;
	assert_int_equal(SSL_read(&ssl_obj, buf, sizeof(buf)), 2);
	tt_fd_for_read = -1;
	SSL_free(&ssl_obj);
	tt_drain();
	assert_int_equal(tls_read_stats(tt_tls, &after), 0);
	assert_int_equal(tt_nev, 0);
	assert_int_equal(after.conns_other - before.conns_other, 1);
	close(cli);
	close(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_connection),
		cmocka_unit_test(test_mapped_by_syscall),
		cmocka_unit_test(test_error_return),
		cmocka_unit_test(test_large_write_split),
		cmocka_unit_test(test_client_side_ignored),
	};

	return cmocka_run_group_tests(tests, tt_setup, tt_teardown);
}
