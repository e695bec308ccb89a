/* The Prometheus exposition writers and the metrics HTTP server: format of each metric
 * type, the endpoints' status codes, and the bounds a hostile client meets (garbage,
 * oversized heads, slow clients, a thousand concurrent scrapes). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "metrics.h"
#include "util.h"

static void test_exposition(void **state)
{
	struct metrics_hist h = { 0 };
	struct buf b = { 0 };

	metrics_counter(&b, "shadowtap_records_total", "Records written.", 42);
	metrics_gauge(&b, "shadowtap_queue_depth", "Records waiting.", 3);
	metrics_family(&b, "shadowtap_replay_errors_total", "counter", "Replay failures by reason.");
	metrics_sample(&b, "shadowtap_replay_errors_total", "reason=\"timeout\"", 7);
	metrics_hist_observe_ns(&h, 50000);        /* 50 us: first bucket */
	metrics_hist_observe_ns(&h, 3000000);      /* 3 ms: le 0.005 */
	metrics_hist_observe_ns(&h, 20000000000);  /* 20 s: +Inf only */
	metrics_histogram(&b, "shadowtap_replay_duration_seconds", "serverB latency.", &h);
	buf_putc(&b, '\0');
	assert_non_null(strstr(b.data, "# HELP shadowtap_records_total Records written.\n"
					"# TYPE shadowtap_records_total counter\n"
					"shadowtap_records_total 42\n"));
	assert_non_null(strstr(b.data, "# TYPE shadowtap_queue_depth gauge\nshadowtap_queue_depth 3\n"));
	assert_non_null(strstr(b.data, "shadowtap_replay_errors_total{reason=\"timeout\"} 7\n"));
	assert_non_null(strstr(b.data, "# TYPE shadowtap_replay_duration_seconds histogram\n"));
	assert_non_null(strstr(b.data, "shadowtap_replay_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
	assert_non_null(strstr(b.data, "shadowtap_replay_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
	assert_non_null(strstr(b.data, "shadowtap_replay_duration_seconds_bucket{le=\"0.005\"} 2\n"));
	assert_non_null(strstr(b.data, "shadowtap_replay_duration_seconds_bucket{le=\"10\"} 2\n"));
	assert_non_null(strstr(b.data, "shadowtap_replay_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(b.data, "shadowtap_replay_duration_seconds_sum 20.003050000\n"));
	assert_non_null(strstr(b.data, "shadowtap_replay_duration_seconds_count 3\n"));
	buf_free(&b);
}

static void test_parse_addr(void **state)
{
	struct sockaddr_storage ss;
	unsigned len;

	assert_int_equal(metrics_parse_addr("127.0.0.1:9100", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9100);
	assert_int_equal(metrics_parse_addr(":9100", &ss, &len), 0);
	assert_int_equal(metrics_parse_addr("[::1]:9100", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(metrics_parse_addr("127.0.0.1:0", &ss, &len), 0);
	assert_int_equal(metrics_parse_addr("127.0.0.1", &ss, &len), -EINVAL);
	assert_int_equal(metrics_parse_addr("127.0.0.1:", &ss, &len), -EINVAL);
	assert_int_equal(metrics_parse_addr("127.0.0.1:65536", &ss, &len), -EINVAL);
	assert_int_equal(metrics_parse_addr("127.0.0.1: 80", &ss, &len), -EINVAL);
	assert_int_equal(metrics_parse_addr("127.0.0.1:-1", &ss, &len), -EINVAL);
	assert_int_equal(metrics_parse_addr("localhost:80", &ss, &len), -EINVAL);
	assert_int_equal(metrics_parse_addr("::1:80", &ss, &len), -EINVAL);
	assert_int_equal(metrics_parse_addr("", &ss, &len), -EINVAL);
}

/* ---- server ---- */

static const char *ready_reason;
static int renders;

static void render(void *ctx, struct buf *out)
{
	renders++;
	metrics_counter(out, "shadowtap_test_total", "A test counter.", 5);
}

static const char *ready(void *ctx)
{
	return ready_reason;
}

static int dial(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Reads until the server closes (or 3 s pass); returns bytes read. */
static size_t read_all(int fd, char *out, size_t cap)
{
	uint64_t deadline = st_mono_ns() + 3000000000ull;
	size_t n = 0;

	while (n < cap - 1 && st_mono_ns() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(fd, out + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	return n;
}

static void exchange(int port, const char *req, char *resp, size_t cap)
{
	int fd = dial(port);

	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	read_all(fd, resp, cap);
	close(fd);
}

static struct metrics *start(int timeout_ms, int max_conns)
{
	struct metrics_cfg cfg = { .listen = "127.0.0.1:0", .render = render, .ready = ready,
				   .timeout_ms = timeout_ms, .max_conns = max_conns };
	struct metrics *m;

	assert_int_equal(metrics_start(&m, &cfg), 0);
	assert_true(metrics_port(m) > 0);
	return m;
}

static void test_endpoints(void **state)
{
	struct metrics *m = start(0, 0);
	int port = metrics_port(m);
	char r[8192];

	exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
	assert_non_null(strstr(r, "\r\n\r\n# HELP shadowtap_test_total A test counter.\n"));
	exchange(port, "HEAD /metrics HTTP/1.0\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	assert_null(strstr(r, "# HELP"));
	exchange(port, "GET /healthz HTTP/1.1\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	ready_reason = "capture not attached";
	exchange(port, "GET /readyz HTTP/1.1\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 503 ", 13) == 0);
	assert_non_null(strstr(r, "not ready: capture not attached"));
	ready_reason = NULL;
	exchange(port, "GET /readyz?verbose HTTP/1.1\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	exchange(port, "GET /nope HTTP/1.1\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 404 ", 13) == 0);
	exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 405 ", 13) == 0);
	metrics_stop(m);
}

static void test_garbage(void **state)
{
	struct metrics *m = start(0, 0);
	int port = metrics_port(m), fd, i;
	struct metrics_stats st;
	char r[8192], big[6000];

	exchange(port, "\x16\x03\x01\x02\x01\xfc\x03\x03\r\n\r\n", r, sizeof(r));   /* a TLS hello */
	assert_true(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
	exchange(port, "GET /metrics\r\n\r\n", r, sizeof(r));           /* HTTP/0.9 */
	assert_true(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
	exchange(port, "GET /metrics HTTP/2.0\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
	/* a head that never ends within the 4 KiB limit */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	exchange(port, big, r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
	/* NUL bytes */
	fd = dial(port);
	assert_int_equal(write(fd, "GET /metrics\0 HTTP/1.1\r\n\r\n", 26), 26);
	read_all(fd, r, sizeof(r));
	close(fd);
	assert_true(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
	/* connections that close at once, or half-way, leave nothing behind */
	for (i = 0; i < 50; i++) {
		fd = dial(port);
		if (i & 1)
			assert_int_equal(write(fd, "GET /met", 8), 8);
		close(fd);
	}
	exchange(port, "GET /metrics HTTP/1.1\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	metrics_get_stats(m, &st);
	assert_true(st.bad_requests >= 5);
	metrics_stop(m);
}

static void test_slow_client(void **state)
{
	struct metrics *m = start(300, 0);
	int port = metrics_port(m), fd = dial(port);
	uint64_t t0 = st_mono_ns();
	struct metrics_stats st;
	char r[256];

	/* one byte, then silence: the server must hang up after its timeout */
	assert_int_equal(write(fd, "G", 1), 1);
	assert_int_equal(read_all(fd, r, sizeof(r)), 0);
	assert_true(st_mono_ns() - t0 >= 250000000ull);
	assert_true(st_mono_ns() - t0 < 2500000000ull);
	close(fd);
	metrics_get_stats(m, &st);
	assert_int_equal(st.timeouts, 1);
	metrics_stop(m);
}

static void test_many_concurrent(void **state)
{
	enum { N = 1000 };
	static int fds[N];
	struct rlimit rl;
	struct metrics *m;
	int port, i, ok = 0;
	char r[4096];

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 2 * N + 64) {
		rl.rlim_cur = rl.rlim_max < 2 * N + 64 ? rl.rlim_max : 2 * N + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < 2 * N + 64)
		skip();
	m = start(10000, 0);
	port = metrics_port(m);
	renders = 0;
	for (i = 0; i < N; i++)
		fds[i] = dial(port);
	for (i = 0; i < N; i++)
		assert_int_equal(write(fds[i], "GET /metrics HTTP/1.1\r\n\r\n", 25), 25);
	for (i = 0; i < N; i++) {
		read_all(fds[i], r, sizeof(r));
		ok += strncmp(r, "HTTP/1.1 200 ", 13) == 0 && strstr(r, "shadowtap_test_total 5\n");
		close(fds[i]);
	}
	assert_int_equal(ok, N);
	/* renders are shared between scrapes that arrive together */
	assert_true(renders < N / 2);
	metrics_stop(m);
}

static void test_over_max_conns(void **state)
{
	struct metrics *m = start(2000, 4);
	int port = metrics_port(m), fds[6], i;
	struct metrics_stats st;
	uint64_t deadline;
	char r[4096];

	for (i = 0; i < 6; i++)
		fds[i] = dial(port);
	deadline = st_mono_ns() + 2000000000ull;
	do {
		metrics_get_stats(m, &st);
		if (st.refused_conns >= 2)
			break;
		usleep(10000);
	} while (st_mono_ns() < deadline);
	assert_int_equal(st.refused_conns, 2);
	for (i = 0; i < 6; i++)
		close(fds[i]);
	/* the slots come back */
	exchange(port, "GET /healthz HTTP/1.1\r\n\r\n", r, sizeof(r));
	assert_true(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	metrics_stop(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exposition),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_slow_client),
		cmocka_unit_test(test_many_concurrent),
		cmocka_unit_test(test_over_max_conns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
