/* Live capture on lo through agent/capture.c: a 256 KiB send() becomes GSO segments
 * of up to 64 KiB, each split into several ring events; reassembling them by sequence
 * number must give every byte (once, but for real TCP retransmissions; lo's
 * duplicate copy skipped). Also checks
 * the stats pin and its removal. Needs root (SKIP without); a capture that does not
 * open on a supported kernel FAILs (bt_kernel.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>

#include "capture.h"
#include "log.h"
#include "bt_kernel.h"

#define TL_PORT		18080
#define TL_REQ_BYTES	(256 * 1024 + 1)	/* one 256 KiB send() and a 1-byte write */
#define TL_RESP_BYTES	(100 * 1024)
#define TL_PIN_DIR	"/sys/fs/bpf/shadowtap"
#define TL_PIN		TL_PIN_DIR "/stats"

/* One direction of the test connection, rebuilt from the captured slices. */
struct tl_stream {
	uint32_t isn;
	int have_isn;
	int fin;
	size_t total;
	uint8_t *bytes;
	uint8_t *count;		/* how many times each byte was captured */
	uint64_t outside;	/* bytes outside [0, total) */
	uint64_t slices;
};

struct tl_ctx {
	uint16_t cport;		/* client port of the test connection */
	struct tl_stream dir[2];
	uint64_t other_flows;
};

struct tl_server {
	int lfd;
	size_t got;
	int err;
};

/* Open capture of the running test; the teardown closes it if an assertion fired. */
static struct capture *tl_cap;

static int tl_teardown(void **state)
{
	capture_close(tl_cap);
	tl_cap = NULL;
	return 0;
}

static uint8_t tl_pattern(size_t i, int dir)
{
	return (uint8_t)((i * 131 + (i >> 8) + (size_t)dir * 17) & 0xff);
}

static int tl_skip_reason(const char **why)
{
	if (geteuid() != 0) {
		*why = "needs root";
		return 1;
	}
	return 0;
}

static void tl_on_seg(void *vctx, const struct reasm_seg *seg)
{
	struct tl_ctx *c = vctx;
	struct tl_stream *s;
	uint32_t i, rel;

	if (seg->key.sport != TL_PORT || seg->key.cport != c->cport || seg->dir > 1) {
		c->other_flows++;
		return;
	}
	s = &c->dir[seg->dir];
	if (seg->flags & ST_TCP_SYN) {
		s->isn = seg->seq;
		s->have_isn = 1;
	}
	if (seg->flags & ST_TCP_FIN)
		s->fin = 1;
	if (!seg->len)
		return;
	s->slices++;
	if (!s->have_isn) {
		s->outside += seg->len;
		return;
	}
	for (i = 0; i < seg->len; i++) {
		rel = seg->seq + i - s->isn - 1;
		if (rel >= s->total) {
			s->outside++;
			continue;
		}
		s->bytes[rel] = seg->data[i];
		if (s->count[rel] < 255)
			s->count[rel]++;
	}
}

static void *tl_server_main(void *arg)
{
	struct tl_server *sv = arg;
	static uint8_t buf[65536];
	uint8_t *resp = NULL;
	ssize_t n;
	size_t i, off;
	int fd;

	fd = accept(sv->lfd, NULL, NULL);
	if (fd < 0) {
		sv->err = errno;
		return NULL;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		sv->got += (size_t)n;
	resp = malloc(TL_RESP_BYTES);
	if (!resp) {
		sv->err = ENOMEM;
		goto out;
	}
	for (i = 0; i < TL_RESP_BYTES; i++)
		resp[i] = tl_pattern(i, 1);
	for (off = 0; off < TL_RESP_BYTES; off += (size_t)n) {
		n = write(fd, resp + off, TL_RESP_BYTES - off);
		if (n <= 0) {
			sv->err = errno;
			break;
		}
	}
out:
	free(resp);
	close(fd);
	return NULL;
}

static uint64_t tl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int tl_stream_done(const struct tl_stream *s)
{
	size_t i;

	if (!s->fin)
		return 0;
	for (i = 0; i < s->total; i++)
		if (!s->count[i])
			return 0;
	return 1;
}

static int tl_pinned_dump_has_names(void)
{
	char line[512];
	FILE *p;
	int found = 0;

	p = popen("bpftool map dump pinned " TL_PIN " 2>&1", "r");
	if (!p)
		return 0;
	while (fgets(line, sizeof(line), p))
		if (strstr(line, "dup_skipped") || strstr(line, "bytes_captured"))
			found = 1;
	pclose(p);
	return found;
}

static void test_live_gso_captured_whole(void **state)
{
	struct capture_cfg cfg = { .iface = "lo", .ports = { TL_PORT }, .nports = 1 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(TL_PORT) };
	struct tl_server sv = { .lfd = -1 };
	struct capture_ustats us;
	struct st_stats st;
	struct tl_ctx *c;
	struct stat sb;
	pthread_t thr;
	socklen_t slen = sizeof(sa);
	uint8_t *req, rbuf[65536];
	const char *why;
	uint64_t deadline;
	size_t i, resp_got = 0;
	ssize_t n;
	int one = 1, cfd, d, err;

	if (tl_skip_reason(&why)) {
		fprintf(stderr, "SKIP: %s\n", why);
		skip();
	}
	c = calloc(1, sizeof(*c));
	req = malloc(TL_REQ_BYTES);
	assert_non_null(c);
	assert_non_null(req);
	c->dir[0].total = TL_REQ_BYTES;
	c->dir[1].total = TL_RESP_BYTES;
	for (d = 0; d < 2; d++) {
		c->dir[d].bytes = calloc(1, c->dir[d].total);
		c->dir[d].count = calloc(1, c->dir[d].total);
		assert_non_null(c->dir[d].bytes);
		assert_non_null(c->dir[d].count);
	}
	for (i = 0; i < TL_REQ_BYTES; i++)
		req[i] = tl_pattern(i, 0);

	err = capture_open(&tl_cap, &cfg, tl_on_seg, c);
	if (err)
		BT_LOAD_FAILED("capture_open on lo", err);
	assert_int_equal(stat(TL_PIN, &sb), 0);
	assert_true(tl_pinned_dump_has_names());

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(sv.lfd >= 0);
	assert_int_equal(setsockopt(sv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(bind(sv.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(sv.lfd, 4), 0);
	assert_int_equal(pthread_create(&thr, NULL, tl_server_main, &sv), 0);

	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(cfd >= 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(cfd, (struct sockaddr *)&sa, &slen), 0);
	c->cport = ntohs(sa.sin_port);
	/* one big send() so the stack builds 64 KiB GSO segments */
	assert_int_equal(send(cfd, req, TL_REQ_BYTES - 1, 0), TL_REQ_BYTES - 1);
	assert_int_equal(send(cfd, req + TL_REQ_BYTES - 1, 1, 0), 1);
	assert_int_equal(shutdown(cfd, SHUT_WR), 0);
	while ((n = read(cfd, rbuf, sizeof(rbuf))) > 0)
		resp_got += (size_t)n;
	close(cfd);
	pthread_join(thr, NULL);
	close(sv.lfd);
	assert_int_equal(sv.err, 0);
	assert_int_equal(sv.got, TL_REQ_BYTES);
	assert_int_equal(resp_got, TL_RESP_BYTES);

	deadline = tl_now_ms() + 5000;
	while (tl_now_ms() < deadline && !(tl_stream_done(&c->dir[0]) && tl_stream_done(&c->dir[1])))
		assert_true(capture_poll(tl_cap, 50) >= 0);
	/* late duplicates would show up in one more drain */
	assert_true(capture_poll(tl_cap, 50) >= 0);

	assert_int_equal(capture_read_stats(tl_cap, &st), 0);
	capture_get_ustats(tl_cap, &us);
	fprintf(stderr,
		"test_capture_live: packets %llu dup_skipped %llu payload_segments %llu events %llu "
		"bytes %llu wakeups %llu ring_full %llu; slices c2s %llu s2c %llu\n",
		(unsigned long long)st.packets, (unsigned long long)st.dup_skipped,
		(unsigned long long)st.payload_segments, (unsigned long long)st.events,
		(unsigned long long)st.bytes_captured, (unsigned long long)st.wakeups,
		(unsigned long long)st.ringbuf_full, (unsigned long long)c->dir[0].slices,
		(unsigned long long)c->dir[1].slices);

	for (d = 0; d < 2; d++) {
		struct tl_stream *s = &c->dir[d];
		size_t dups = 0;

		assert_true(s->have_isn);
		assert_true(s->fin);
		assert_int_equal(s->outside, 0);
		for (i = 0; i < s->total; i++) {
			if (s->count[i] == 0 || s->bytes[i] != tl_pattern(i, d)) {
				fprintf(stderr, "dir %d byte %zu captured %u times, value %u\n", d, i,
					s->count[i], s->bytes[i]);
				fail();
			}
			dups += s->count[i] - 1u;
		}
		/* A real TCP retransmission (a loaded machine) shows a byte twice, and
		 * that is right; lo's duplicate copy would double everything. */
		if (dups)
			fprintf(stderr, "dir %d: %zu bytes seen again (TCP retransmission)\n", d, dups);
		assert_true(dups * 4 < s->total);
	}
	assert_int_equal(st.ringbuf_full, 0);
	assert_int_equal(st.bytes_too_large, 0);
	assert_int_equal(st.load_errors, 0);
	assert_int_equal(us.bad_events, 0);
	/* every packet on lo is seen twice; the outgoing copy is skipped */
	assert_true(st.dup_skipped > 0);
	assert_true(st.dup_skipped * 2 >= st.packets - 2);
	/* GSO: segments larger than one event were split (more events than segments) */
	assert_true(st.events > st.payload_segments);
	assert_true(st.bytes_captured >= TL_REQ_BYTES + TL_RESP_BYTES);

	capture_close(tl_cap);
	tl_cap = NULL;
	assert_int_equal(stat(TL_PIN, &sb), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(TL_PIN_DIR, &sb), -1);
	for (d = 0; d < 2; d++) {
		free(c->dir[d].bytes);
		free(c->dir[d].count);
	}
	free(c);
	free(req);
}

static void tl_ignore_seg(void *ctx, const struct reasm_seg *seg)
{
}

/* A pin left by a crashed run is replaced, and removed again on close. */
static void test_live_stale_pin_replaced(void **state)
{
	struct capture_cfg cfg = { .iface = "lo", .ports = { TL_PORT }, .nports = 1 };
	struct stat sb;
	const char *why;
	int fd, err;

	if (tl_skip_reason(&why)) {
		fprintf(stderr, "SKIP: %s\n", why);
		skip();
	}
	/* as root on a supported kernel bpffs is there (setup.sh mounts it) */
	assert_true(mkdir(TL_PIN_DIR, 0700) == 0 || errno == EEXIST);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "stale", 4, 8, 1, NULL);
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_pin(fd, TL_PIN), 0);
	close(fd);

	err = capture_open(&tl_cap, &cfg, tl_ignore_seg, NULL);
	assert_int_equal(err, 0);
	/* the pin is now the real stats map: its dump has the st_stats field names */
	assert_true(tl_pinned_dump_has_names());
	capture_close(tl_cap);
	tl_cap = NULL;
	assert_int_equal(stat(TL_PIN, &sb), -1);
	/* it held a stale pin: the agent took it over and removes it like its own */
	assert_int_equal(stat(TL_PIN_DIR, &sb), -1);
}

static void test_live_bad_interface(void **state)
{
	struct capture_cfg cfg = { .iface = "st-no-such0", .ports = { TL_PORT }, .nports = 1 };
	struct capture *cap = (struct capture *)&cfg;
	struct stat sb;
	const char *why;

	if (tl_skip_reason(&why)) {
		fprintf(stderr, "SKIP: %s\n", why);
		skip();
	}
	assert_int_equal(capture_open(&cap, &cfg, tl_ignore_seg, NULL), -ENODEV);
	assert_null(cap);
	/* a failed open leaves no pin behind */
	assert_int_equal(stat(TL_PIN, &sb), -1);
	cfg.iface = "lo";
	cfg.nports = 0;
	assert_int_equal(capture_open(&cap, &cfg, tl_ignore_seg, NULL), -EINVAL);
	cfg.nports = 1;
	cfg.ring_bytes = 3 << 20;
	assert_int_equal(capture_open(&cap, &cfg, tl_ignore_seg, NULL), -EINVAL);
	capture_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_live_gso_captured_whole, tl_teardown),
		cmocka_unit_test_teardown(test_live_stale_pin_replaced, tl_teardown),
		cmocka_unit_test(test_live_bad_interface),
	};

	return cmocka_run_group_tests_name("bpf_capture_live", tests, NULL, NULL);
}
