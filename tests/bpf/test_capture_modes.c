/* The tc and xdp programs of bpf/capture.bpf.c under BPF_PROG_TEST_RUN, against the
 * socket filter: the same Ethernet frame must give the same events (every field but
 * the timestamp, and the same payload bytes) in all three hooks, nothing for other
 * ports or protocols, and the hooks must always let the packet through unchanged
 * (TC_ACT_UNSPEC, i.e. TCX_NEXT, for tc; XDP_PASS for xdp). Needs root (SKIP
 * without); programs that do not load on a supported kernel FAIL (bt_kernel.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "shadowtap.h"
#include "capture.skel.h"
#include "bt_kernel.h"

#define CM_MAX_EVENTS	32
#define CM_FRAME_MAX	(70 * 1024)
#define CM_TC_UNSPEC	(-1)
#define CM_XDP_PASS	2

enum { CM_SOCKET, CM_TC, CM_XDP, CM_NHOOKS };
static const char *const cm_hook_name[CM_NHOOKS] = { "socket", "tc", "xdp" };

struct cm_event {
	size_t sz;
	struct st_event ev;
	uint8_t data[ST_CHUNK_BIG];
};

struct cm_run {
	struct cm_event evs[CM_MAX_EVENTS];
	int nev;
	int overflow;
	int retval;
};

static struct capture_bpf *cm_skel;
static struct ring_buffer *cm_rb;
static struct cm_run *cm_cur;
static struct cm_run cm_runs[CM_NHOOKS];
static int cm_root;
static int cm_load_err = -ENOEXEC;
static uint8_t cm_frame[CM_FRAME_MAX];
static uint8_t cm_payload[CM_FRAME_MAX];

static int cm_on_event(void *ctx, void *data, size_t sz)
{
	struct cm_event *e;

	if (cm_cur->nev >= CM_MAX_EVENTS) {
		cm_cur->overflow++;
		return 0;
	}
	e = &cm_cur->evs[cm_cur->nev++];
	memset(e, 0, sizeof(*e));
	e->sz = sz;
	memcpy(&e->ev, data, sz < sizeof(e->ev) + sizeof(e->data) ? sz : sizeof(e->ev) + sizeof(e->data));
	return 0;
}

static int cm_silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (getenv("TC_VERBOSE"))
		vfprintf(stderr, fmt, ap);
	return 0;
}

static int cm_setup(void **state)
{
	struct st_bpf_cfg *cfg;
	int err;

	cm_root = geteuid() == 0;
	if (!cm_root)
		return 0;
	libbpf_set_print(cm_silent);
	cm_skel = capture_bpf__open();
	if (!cm_skel) {
		cm_load_err = -errno;
		return 0;
	}
	cfg = &cm_skel->rodata->st_cfg;
	cfg->ports[0] = 80;
	cfg->ports[1] = 8080;
	cfg->nports = 2;
	cfg->lo_ifindex = if_nametoindex("lo");
	cfg->wakeup_bytes = 1 << 20;
	/* the smallest ring the agent gives a worker: each run below is drained before
	 * the next, and a 64 KiB segment must fit it whole (test_xdp_multibuffer_64k) */
	err = bpf_map__set_max_entries(cm_skel->maps.events, ST_RING_MIN);
	if (!err)
		err = capture_bpf__load(cm_skel);
	if (!err) {
		cm_rb = ring_buffer__new(bpf_map__fd(cm_skel->maps.events), cm_on_event, NULL, NULL);
		err = cm_rb ? 0 : -errno;
	}
	if (err) {
		fprintf(stderr, "test_capture_modes: load failed: %s\n", strerror(-err));
		cm_load_err = err;
		ring_buffer__free(cm_rb);
		capture_bpf__destroy(cm_skel);
		cm_rb = NULL;
		cm_skel = NULL;
	}
	return 0;
}

static int cm_teardown(void **state)
{
	ring_buffer__free(cm_rb);
	capture_bpf__destroy(cm_skel);
	return 0;
}

#define CM_REQUIRE_LOADED()                                                  \
	do {                                                                 \
		if (!cm_skel && !cm_root) {                                  \
			fprintf(stderr, "SKIP: needs root\n");               \
			skip();                                              \
		}                                                            \
		if (!cm_skel)                                                \
			BT_LOAD_FAILED("loading the tc/xdp programs", cm_load_err); \
	} while (0)

static int cm_prog_fd(int hook)
{
	if (hook == CM_TC)
		return bpf_program__fd(cm_skel->progs.st_tc_capture);
	if (hook == CM_XDP)
		return bpf_program__fd(cm_skel->progs.st_xdp_capture);
	return bpf_program__fd(cm_skel->progs.st_capture);
}

/* Runs one frame through one hook; the events land in cm_runs[hook]. */
static void cm_run_hook(int hook, const void *frame, size_t len)
{
	struct xdp_md xctx = { .ingress_ifindex = if_nametoindex("lo") };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (uint32_t)len,
		    .repeat = 1);
	struct cm_run *r = &cm_runs[hook];
	int err;

	if (hook == CM_XDP) {
		opts.ctx_in = &xctx;
		opts.ctx_size_in = sizeof(xctx);
	}
	memset(r, 0, sizeof(*r));
	cm_cur = r;
	err = bpf_prog_test_run_opts(cm_prog_fd(hook), &opts);
	if (err)
		fprintf(stderr, "test_run %s (%zu bytes): %s\n", cm_hook_name[hook], len,
			strerror(errno));
	assert_int_equal(err, 0);
	r->retval = (int)opts.retval;
	assert_true(ring_buffer__consume(cm_rb) >= 0);
	assert_int_equal(r->overflow, 0);
}

static void cm_run_all(const void *frame, size_t len)
{
	int h;

	for (h = 0; h < CM_NHOOKS; h++)
		cm_run_hook(h, frame, len);
	/* whatever the packet, every hook lets it through */
	assert_int_equal(cm_runs[CM_SOCKET].retval, 0);
	assert_int_equal(cm_runs[CM_TC].retval, CM_TC_UNSPEC);
	assert_int_equal(cm_runs[CM_XDP].retval, CM_XDP_PASS);
}

/* tc and xdp must match the socket filter event for event. */
static void cm_assert_same(void)
{
	const struct cm_run *ref = &cm_runs[CM_SOCKET];
	int h, i;

	for (h = CM_TC; h < CM_NHOOKS; h++) {
		const struct cm_run *r = &cm_runs[h];

		assert_int_equal(r->nev, ref->nev);
		for (i = 0; i < r->nev; i++) {
			struct st_event a = ref->evs[i].ev, b = r->evs[i].ev;

			assert_true(b.ts_ns > 0);
			a.ts_ns = b.ts_ns = 0;
			assert_memory_equal(&a, &b, sizeof(a));
			assert_int_equal(r->evs[i].sz, ref->evs[i].sz);
			assert_memory_equal(r->evs[i].data, ref->evs[i].data, a.data_len);
		}
	}
}

static size_t cm_put_tcp(uint8_t *p, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
			 const uint8_t *pl, size_t plen)
{
	uint16_t v16;
	uint32_t v32;

	memset(p, 0, 20);
	v16 = htons(sport);
	memcpy(p, &v16, 2);
	v16 = htons(dport);
	memcpy(p + 2, &v16, 2);
	v32 = htonl(seq);
	memcpy(p + 4, &v32, 4);
	v32 = htonl(seq ^ 0x5a5a);
	memcpy(p + 8, &v32, 4);
	p[12] = 5 << 4;
	p[13] = flags;
	p[14] = 0xff;
	if (plen)
		memcpy(p + 20, pl, plen);
	return 20 + plen;
}

static size_t cm_put_eth(uint8_t *p, uint16_t proto, int zero_mac)
{
	static const uint8_t mac[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2 };

	memcpy(p, mac, 12);
	if (zero_mac)	/* lo's header */
		memset(p, 0, 12);
	p[12] = proto >> 8;
	p[13] = proto & 0xff;
	return 14;
}

static size_t cm_v4(uint8_t *buf, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
		    const uint8_t *pl, size_t plen, int zero_mac)
{
	uint8_t *ip = buf + cm_put_eth(buf, 0x0800, zero_mac);
	size_t l4;
	uint16_t v16;

	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[8] = 64;
	ip[9] = 6;
	assert_int_equal(inet_pton(AF_INET, "198.18.0.2", ip + 12), 1);
	assert_int_equal(inet_pton(AF_INET, "198.18.0.1", ip + 16), 1);
	l4 = cm_put_tcp(ip + 20, sport, dport, seq, flags, pl, plen);
	/* tot_len 0 stands for BIG TCP past 64 KiB: the packet length counts then */
	v16 = 20 + l4 > 0xffff ? 0 : htons((uint16_t)(20 + l4));
	memcpy(ip + 2, &v16, 2);
	return 14 + 20 + l4;
}

/* IPv6 with a hop-by-hop header in front of TCP */
static size_t cm_v6(uint8_t *buf, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
		    const uint8_t *pl, size_t plen)
{
	uint8_t *ip = buf + cm_put_eth(buf, 0x86DD, 0);
	size_t l4;
	uint16_t v16;

	memset(ip, 0, 48);
	ip[0] = 0x60;
	ip[6] = 0;
	ip[7] = 64;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::2", ip + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", ip + 24), 1);
	ip[40] = 6;
	ip[41] = 0;
	ip[42] = 1;
	ip[43] = 4;
	l4 = cm_put_tcp(ip + 48, sport, dport, seq, flags, pl, plen);
	v16 = htons((uint16_t)(8 + l4));
	memcpy(ip + 4, &v16, 2);
	return 14 + 48 + l4;
}

static void cm_fill(size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		cm_payload[i] = (uint8_t)(i * 13 + (i >> 9));
}

static void test_ipv4_request_same_in_all_hooks(void **state)
{
	static const uint8_t get[] = "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t len;

	CM_REQUIRE_LOADED();
	len = cm_v4(cm_frame, 40000, 80, 1000, 0x18, get, sizeof(get) - 1, 0);
	cm_run_all(cm_frame, len);
	assert_int_equal(cm_runs[CM_SOCKET].nev, 1);
	assert_int_equal(cm_runs[CM_SOCKET].evs[0].ev.dir, ST_DIR_TO_SERVER);
	assert_int_equal(cm_runs[CM_SOCKET].evs[0].ev.ifindex, if_nametoindex("lo"));
	assert_memory_equal(cm_runs[CM_XDP].evs[0].data, get, sizeof(get) - 1);
	cm_assert_same();
}

/* lo's all-zero MAC header changes nothing */
static void test_ipv4_lo_header_response(void **state)
{
	size_t len;

	CM_REQUIRE_LOADED();
	cm_fill(3000);
	len = cm_v4(cm_frame, 8080, 40001, 0xfffffff0u, 0x19, cm_payload, 3000, 1);
	cm_run_all(cm_frame, len);
	assert_int_equal(cm_runs[CM_SOCKET].nev, 1);
	assert_int_equal(cm_runs[CM_TC].evs[0].ev.dir, ST_DIR_FROM_SERVER);
	assert_int_equal(cm_runs[CM_TC].evs[0].ev.data_len, 3000);
	assert_memory_equal(cm_runs[CM_TC].evs[0].data, cm_payload, 3000);
	cm_assert_same();
}

static void test_ipv6_ext_header_same(void **state)
{
	size_t len;

	CM_REQUIRE_LOADED();
	cm_fill(700);
	len = cm_v6(cm_frame, 80, 40002, 42, 0x10, cm_payload, 700);
	cm_run_all(cm_frame, len);
	assert_int_equal(cm_runs[CM_SOCKET].nev, 1);
	assert_int_equal(cm_runs[CM_XDP].evs[0].ev.family, 6);
	assert_int_equal(cm_runs[CM_XDP].evs[0].ev.seg_len, 700);
	cm_assert_same();
}

static void test_control_events_same(void **state)
{
	static const uint8_t flags[] = { 0x02, 0x12, 0x11, 0x04 };
	size_t i, len;

	CM_REQUIRE_LOADED();
	for (i = 0; i < sizeof(flags); i++) {
		len = cm_v4(cm_frame, 40003, 80, 7 + (uint32_t)i, flags[i], NULL, 0, 0);
		cm_run_all(cm_frame, len);
		assert_int_equal(cm_runs[CM_SOCKET].nev, 1);
		assert_int_equal(cm_runs[CM_SOCKET].evs[0].ev.data_len, 0);
		cm_assert_same();
		len = cm_v6(cm_frame, 80, 40003, 9, flags[i], NULL, 0);
		cm_run_all(cm_frame, len);
		assert_int_equal(cm_runs[CM_SOCKET].nev, 1);
		cm_assert_same();
	}
}

static void test_nothing_for_other_traffic(void **state)
{
	static const uint8_t x[] = "GET / HTTP/1.1\r\n\r\n";
	size_t len;
	int h;

	CM_REQUIRE_LOADED();
	/* other ports, v4 and v6 */
	len = cm_v4(cm_frame, 40004, 443, 1, 0x18, x, sizeof(x) - 1, 0);
	cm_run_all(cm_frame, len);
	for (h = 0; h < CM_NHOOKS; h++)
		assert_int_equal(cm_runs[h].nev, 0);
	len = cm_v6(cm_frame, 22, 40004, 1, 0x18, x, sizeof(x) - 1);
	cm_run_all(cm_frame, len);
	for (h = 0; h < CM_NHOOKS; h++)
		assert_int_equal(cm_runs[h].nev, 0);
	/* UDP to port 80, ARP, a pure ACK */
	len = cm_v4(cm_frame, 40004, 80, 1, 0x18, x, sizeof(x) - 1, 0);
	cm_frame[14 + 9] = 17;
	cm_run_all(cm_frame, len);
	for (h = 0; h < CM_NHOOKS; h++)
		assert_int_equal(cm_runs[h].nev, 0);
	cm_put_eth(cm_frame, 0x0806, 0);
	cm_run_all(cm_frame, len);
	for (h = 0; h < CM_NHOOKS; h++)
		assert_int_equal(cm_runs[h].nev, 0);
	len = cm_v4(cm_frame, 40004, 80, 1, 0x10, NULL, 0, 0);
	cm_run_all(cm_frame, len);
	for (h = 0; h < CM_NHOOKS; h++)
		assert_int_equal(cm_runs[h].nev, 0);
	/* a bare MAC header claiming IPv4 (test_run refuses shorter skbs) */
	cm_put_eth(cm_frame, 0x0800, 0);
	cm_run_hook(CM_XDP, cm_frame, 14);
	assert_int_equal(cm_runs[CM_XDP].nev, 0);
	assert_int_equal(cm_runs[CM_XDP].retval, CM_XDP_PASS);
}

/* The program's loss counters summed over the CPUs (a per-CPU map). */
static void cm_stats(struct st_stats *sum)
{
	int ncpus = libbpf_num_possible_cpus(), cpu;
	struct st_stats *pc;
	uint32_t key = 0;
	size_t f;

	assert_true(ncpus > 0);
	pc = calloc((size_t)ncpus, sizeof(*pc));
	assert_non_null(pc);
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(cm_skel->maps.stats), &key, pc), 0);
	memset(sum, 0, sizeof(*sum));
	for (cpu = 0; cpu < ncpus; cpu++)
		for (f = 0; f < sizeof(*sum) / 8; f++)
			((uint64_t *)sum)[f] += ((uint64_t *)&pc[cpu])[f];
	free(pc);
}

/* A 64 KiB GSO-sized frame only fits test_run as multi-buffer XDP (skb test runs
 * are one page): it must come out whole, in 16 KiB slices while more than 16 KiB is
 * left, then 8 KiB, then 4 KiB, then the tail (common/shadowtap.h, ST_CHUNK_BIG),
 * into a ring of ST_RING_MIN, the smallest the agent accepts, with none counted in
 * ringbuf_full (a 16 KiB ring, which --ring-size accepted before, took none of the
 * 16 KiB slices). Frames past 64 KiB fail bpf_xdp_load_bytes under test_run here, so
 * ST_SEG_MAX itself is checked at build time (agent/capture.c). */
static void test_xdp_multibuffer_64k(void **state)
{
	static const size_t want[] = { 16384, 16384, 16384, 8192, 4096, 3560 };
	size_t plen = 65000, len, got = 0;
	struct cm_run *r = &cm_runs[CM_XDP];
	int i;

	struct st_stats s0, s1;

	CM_REQUIRE_LOADED();
	cm_fill(plen);
	len = cm_v4(cm_frame, 40005, 80, 0x80000000u, 0x18, cm_payload, plen, 0);
	cm_stats(&s0);
	cm_run_hook(CM_XDP, cm_frame, len);
	cm_stats(&s1);
	assert_int_equal(s1.ringbuf_full - s0.ringbuf_full, 0);
	assert_int_equal(r->retval, CM_XDP_PASS);
	assert_int_equal(r->nev, (int)(sizeof(want) / sizeof(want[0])));
	for (i = 0; i < r->nev; i++) {
		assert_int_equal(r->evs[i].ev.data_len, want[i]);
		assert_int_equal(r->evs[i].sz, sizeof(struct st_event) + want[i]);
		assert_int_equal(r->evs[i].ev.seg_len, plen);
		assert_int_equal(r->evs[i].ev.off, got);
		assert_int_equal(r->evs[i].ev.seq, 0x80000000u);
		assert_memory_equal(r->evs[i].data, cm_payload + got, r->evs[i].ev.data_len);
		got += r->evs[i].ev.data_len;
	}
	assert_int_equal(got, plen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_request_same_in_all_hooks),
		cmocka_unit_test(test_ipv4_lo_header_response),
		cmocka_unit_test(test_ipv6_ext_header_same),
		cmocka_unit_test(test_control_events_same),
		cmocka_unit_test(test_nothing_for_other_traffic),
		cmocka_unit_test(test_xdp_multibuffer_64k),
	};

	return cmocka_run_group_tests_name("bpf_capture_modes", tests, cm_setup, cm_teardown);
}
