/* bpf/capture.bpf.c under BPF_PROG_TEST_RUN: crafted Ethernet frames go in (the
 * kernel strips the MAC header for socket filters), ring events and per-CPU
 * statistics come out. Needs root (SKIP without); a program that does not load on a
 * supported kernel is a FAIL (bt_kernel.h). */
#include <arpa/inet.h>
#include <errno.h>
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
/* after shadowtap.h: the skeleton names its rodata type */
#include "capture.skel.h"
#include "bt_kernel.h"

#define TC_MAX_EVENTS	64
#define TC_PKT_MAX	(1 << 17)
#define TC_WATCH_PORT	80
#define TC_WATCH_PORT2	8080

struct tc_event {
	size_t data_sz;		/* size of the ring record: the size class, or exact */
	struct st_event ev;
	uint8_t data[ST_CHUNK_BIG];
};

struct tc_ring {
	struct capture_bpf *skel;
	struct ring_buffer *rb;
	int ncpus;
	struct tc_event evs[TC_MAX_EVENTS];
	int nev;
	int overflow;
};

static struct tc_ring tc_main;
static int tc_loaded;
static int tc_root;
static int tc_load_err = -ENOEXEC;
static uint8_t tc_pkt[TC_PKT_MAX];
static int tc_open_no_own;	/* st_cfg.no_own_conns of the next tc_ring_open */

static int tc_on_event(void *ctx, void *data, size_t sz)
{
	struct tc_ring *r = ctx;
	struct tc_event *e;
	size_t copy;

	if (r->nev >= TC_MAX_EVENTS) {
		r->overflow++;
		return 0;
	}
	e = &r->evs[r->nev++];
	memset(e, 0, sizeof(*e));
	e->data_sz = sz;
	copy = sz < sizeof(e->ev) + sizeof(e->data) ? sz : sizeof(e->ev) + sizeof(e->data);
	memcpy(&e->ev, data, copy);
	return 0;
}

static int tc_silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (getenv("TC_VERBOSE"))
		vfprintf(stderr, fmt, ap);
	return 0;
}

static int tc_ring_open(struct tc_ring *r, uint32_t ring_bytes, uint64_t wakeup_bytes)
{
	struct st_bpf_cfg *cfg;
	int err;

	memset(r, 0, sizeof(*r));
	r->ncpus = libbpf_num_possible_cpus();
	r->skel = capture_bpf__open();
	if (!r->skel)
		return -errno;
	cfg = &r->skel->rodata->st_cfg;
	cfg->ports[0] = TC_WATCH_PORT;
	cfg->ports[1] = TC_WATCH_PORT2;
	cfg->nports = 2;
	cfg->lo_ifindex = if_nametoindex("lo");
	cfg->wakeup_bytes = wakeup_bytes;
	cfg->no_own_conns = (__u32)tc_open_no_own;
	err = bpf_map__set_max_entries(r->skel->maps.events, ring_bytes);
	if (!err)
		err = capture_bpf__load(r->skel);
	if (err)
		return err;
	r->rb = ring_buffer__new(bpf_map__fd(r->skel->maps.events), tc_on_event, r, NULL);
	if (!r->rb)
		return -errno;
	return 0;
}

static void tc_ring_close(struct tc_ring *r)
{
	ring_buffer__free(r->rb);
	capture_bpf__destroy(r->skel);
	memset(r, 0, sizeof(*r));
}

static int tc_setup(void **state)
{
	int err;

	tc_root = geteuid() == 0;
	if (!tc_root)
		return 0;
	libbpf_set_print(tc_silent);
	err = tc_ring_open(&tc_main, 1 << 20, 1);
	if (err) {
		tc_load_err = err;
		fprintf(stderr, "test_capture: load failed: %s\n", strerror(-err));
		tc_ring_close(&tc_main);
		return 0;
	}
	tc_loaded = 1;
	return 0;
}

static int tc_teardown(void **state)
{
	if (tc_loaded)
		tc_ring_close(&tc_main);
	return 0;
}

#define TC_REQUIRE_LOADED()                                                  \
	do {                                                                 \
		if (!tc_loaded && !tc_root) {                                \
			fprintf(stderr, "SKIP: needs root\n");               \
			skip();                                              \
		}                                                            \
		if (!tc_loaded)                                              \
			BT_LOAD_FAILED("loading bpf/capture.bpf.c", tc_load_err); \
	} while (0)

static void tc_stats(struct tc_ring *r, struct st_stats *sum)
{
	struct st_stats *pc = calloc((size_t)r->ncpus, sizeof(*pc));
	uint32_t key = 0;
	size_t f;
	int cpu;

	assert_non_null(pc);
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(r->skel->maps.stats), &key, pc), 0);
	memset(sum, 0, sizeof(*sum));
	for (cpu = 0; cpu < r->ncpus; cpu++)
		for (f = 0; f < sizeof(*sum) / 8; f++)
			((uint64_t *)sum)[f] += ((uint64_t *)&pc[cpu])[f];
	free(pc);
}

/* Runs one frame; returns the test_run error (0 on success). Events land in r->evs. */
static int tc_run(struct tc_ring *r, const void *frame, size_t len)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = (uint32_t)len,
		    .repeat = 1);
	int err;

	r->nev = 0;
	r->overflow = 0;
	err = bpf_prog_test_run_opts(bpf_program__fd(r->skel->progs.st_capture), &opts);
	if (err)
		return err;
	assert_int_equal(opts.retval, 0);	/* never queue anything to the socket */
	assert_true(ring_buffer__consume(r->rb) >= 0);
	return 0;
}

struct tc_tcp {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	const uint8_t *payload;
	size_t plen;
};

static size_t tc_put_tcp(uint8_t *p, const struct tc_tcp *t)
{
	uint16_t v16;
	uint32_t v32;

	memset(p, 0, 20);
	v16 = htons(t->sport);
	memcpy(p, &v16, 2);
	v16 = htons(t->dport);
	memcpy(p + 2, &v16, 2);
	v32 = htonl(t->seq);
	memcpy(p + 4, &v32, 4);
	v32 = htonl(t->ack);
	memcpy(p + 8, &v32, 4);
	p[12] = 5 << 4;
	p[13] = t->flags;
	p[14] = 0xff;
	p[15] = 0xff;
	if (t->plen)
		memcpy(p + 20, t->payload, t->plen);
	return 20 + t->plen;
}

static size_t tc_put_eth(uint8_t *p, uint16_t proto)
{
	memset(p, 0, 12);	/* lo's MAC address is all zero: PACKET_HOST */
	p[12] = proto >> 8;
	p[13] = proto & 0xff;
	return 14;
}

/* frag_field: the IPv4 frag_off field in host order; pad: link-layer padding bytes */
static size_t tc_build_v4(uint8_t *buf, const char *src, const char *dst, const struct tc_tcp *t,
			  uint16_t frag_field, size_t pad)
{
	uint8_t *ip;
	size_t l4;
	uint16_t v16;

	ip = buf + tc_put_eth(buf, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[8] = 64;
	ip[9] = 6;
	v16 = htons(frag_field);
	memcpy(ip + 6, &v16, 2);
	assert_int_equal(inet_pton(AF_INET, src, ip + 12), 1);
	assert_int_equal(inet_pton(AF_INET, dst, ip + 16), 1);
	l4 = tc_put_tcp(ip + 20, t);
	v16 = htons((uint16_t)(20 + l4));
	memcpy(ip + 2, &v16, 2);
	memset(ip + 20 + l4, 0xee, pad);
	return 14 + 20 + l4 + pad;
}

enum { TC_V6_PLAIN, TC_V6_HOPOPTS, TC_V6_FRAG_FIRST, TC_V6_FRAG_LATER, TC_V6_UNKNOWN_EXT };

static size_t tc_build_v6(uint8_t *buf, const char *src, const char *dst, const struct tc_tcp *t,
			  int ext)
{
	uint8_t *ip, *p;
	size_t l4, ext_len = 0;
	uint16_t v16;

	ip = buf + tc_put_eth(buf, 0x86DD);
	memset(ip, 0, 40);
	ip[0] = 0x60;
	ip[7] = 64;
	assert_int_equal(inet_pton(AF_INET6, src, ip + 8), 1);
	assert_int_equal(inet_pton(AF_INET6, dst, ip + 24), 1);
	p = ip + 40;
	switch (ext) {
	case TC_V6_PLAIN:
		ip[6] = 6;
		break;
	case TC_V6_HOPOPTS:
		/* hop-by-hop (16 bytes: PadN) then destination options (8 bytes) */
		ip[6] = 0;
		memset(p, 0, 24);
		p[0] = 60;
		p[1] = 1;
		p[2] = 1;
		p[3] = 12;
		p[16] = 6;
		p[17] = 0;
		p[18] = 1;
		p[19] = 4;
		ext_len = 24;
		break;
	case TC_V6_FRAG_FIRST:
	case TC_V6_FRAG_LATER:
		ip[6] = 44;
		memset(p, 0, 8);
		p[0] = 6;
		v16 = htons(ext == TC_V6_FRAG_LATER ? (185 << 3) : 1 /* M flag */);
		memcpy(p + 2, &v16, 2);
		ext_len = 8;
		break;
	case TC_V6_UNKNOWN_EXT:
		ip[6] = 253;	/* experimental: not walked */
		memset(p, 0, 8);
		p[0] = 6;
		ext_len = 8;
		break;
	}
	l4 = tc_put_tcp(p + ext_len, t);
	v16 = htons((uint16_t)(ext_len + l4));
	memcpy(ip + 4, &v16, 2);
	return 14 + 40 + ext_len + l4;
}

static const uint8_t tc_get[] = "GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n";
#define TC_GET_LEN (sizeof(tc_get) - 1)

static void tc_check_event(const struct tc_event *e, uint8_t family, const char *src,
			   const char *dst, const struct tc_tcp *t, uint8_t dir)
{
	uint32_t a[4] = { 0 }, b[4] = { 0 };

	assert_int_equal(inet_pton(family == 4 ? AF_INET : AF_INET6, src, a), 1);
	assert_int_equal(inet_pton(family == 4 ? AF_INET : AF_INET6, dst, b), 1);
	assert_int_equal(e->ev.family, family);
	assert_memory_equal(e->ev.saddr, a, sizeof(a));
	assert_memory_equal(e->ev.daddr, b, sizeof(b));
	assert_int_equal(e->ev.sport, t->sport);
	assert_int_equal(e->ev.dport, t->dport);
	assert_int_equal(e->ev.seq, t->seq);
	assert_int_equal(e->ev.ack, t->ack);
	assert_int_equal(e->ev.dir, dir);
	assert_int_equal(e->ev.tcp_flags, t->flags);
	assert_int_equal(e->ev.seg_len, t->plen);
	assert_true(e->ev.ts_ns > 0);
	assert_int_equal(e->ev.ifindex, if_nametoindex("lo"));
	assert_true(e->data_sz >= sizeof(e->ev) + e->ev.data_len);
}

static void test_ipv4_request(void **state)
{
	struct tc_tcp t = { 40000, 80, 1000, 77, ST_TCP_PSH | ST_TCP_ACK, tc_get, TC_GET_LEN };
	struct st_stats s0, s1;
	size_t len;

	TC_REQUIRE_LOADED();
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
	tc_stats(&tc_main, &s0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	tc_stats(&tc_main, &s1);
	assert_int_equal(tc_main.nev, 1);
	tc_check_event(&tc_main.evs[0], 4, "10.0.0.1", "10.0.0.2", &t, ST_DIR_TO_SERVER);
	assert_int_equal(tc_main.evs[0].ev.off, 0);
	assert_int_equal(tc_main.evs[0].ev.data_len, TC_GET_LEN);
	assert_memory_equal(tc_main.evs[0].data, tc_get, TC_GET_LEN);
	/* a 44-byte request uses the smallest size class */
	assert_int_equal(tc_main.evs[0].data_sz, sizeof(struct st_event) + ST_CHUNK_MIN);
	assert_int_equal(s1.packets - s0.packets, 1);
	assert_int_equal(s1.matched - s0.matched, 1);
	assert_int_equal(s1.payload_segments - s0.payload_segments, 1);
	assert_int_equal(s1.events - s0.events, 1);
	assert_int_equal(s1.bytes_captured - s0.bytes_captured, TC_GET_LEN);
	/* the ring was empty and wakeup_bytes is 1: this record crosses it */
	assert_int_equal(s1.wakeups - s0.wakeups, 1);
	assert_int_equal(s1.ringbuf_full - s0.ringbuf_full, 0);
}

static void test_ipv4_response_second_port(void **state)
{
	static const uint8_t resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	struct tc_tcp t = { 8080, 51000, 0xfffffff0u, 5, ST_TCP_ACK, resp, sizeof(resp) - 1 };
	size_t len;

	TC_REQUIRE_LOADED();
	len = tc_build_v4(tc_pkt, "192.0.2.80", "192.0.2.9", &t, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
	tc_check_event(&tc_main.evs[0], 4, "192.0.2.80", "192.0.2.9", &t, ST_DIR_FROM_SERVER);
	assert_memory_equal(tc_main.evs[0].data, resp, sizeof(resp) - 1);
}

/* Ethernet pads short frames; the payload must end where the IP datagram ends. */
static void test_ipv4_link_padding_ignored(void **state)
{
	static const uint8_t one[] = "x";
	struct tc_tcp t = { 40001, 80, 5, 6, ST_TCP_ACK | ST_TCP_PSH, one, 1 };
	size_t len;

	TC_REQUIRE_LOADED();
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 5);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
	assert_int_equal(tc_main.evs[0].ev.seg_len, 1);
	assert_int_equal(tc_main.evs[0].ev.data_len, 1);
	assert_int_equal(tc_main.evs[0].data[0], 'x');
}

static void test_ipv6_request(void **state)
{
	struct tc_tcp t = { 40002, 80, 123456, 654321, ST_TCP_PSH | ST_TCP_ACK, tc_get, TC_GET_LEN };
	size_t len;

	TC_REQUIRE_LOADED();
	len = tc_build_v6(tc_pkt, "2001:db8::1", "2001:db8::2", &t, TC_V6_PLAIN);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
	tc_check_event(&tc_main.evs[0], 6, "2001:db8::1", "2001:db8::2", &t, ST_DIR_TO_SERVER);
	assert_memory_equal(tc_main.evs[0].data, tc_get, TC_GET_LEN);
}

static void test_ipv6_extension_headers(void **state)
{
	struct tc_tcp t = { 80, 40003, 42, 43, ST_TCP_ACK, tc_get, TC_GET_LEN };
	struct st_stats s0, s1;
	size_t len;

	TC_REQUIRE_LOADED();
	len = tc_build_v6(tc_pkt, "2001:db8::2", "2001:db8::1", &t, TC_V6_HOPOPTS);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
	tc_check_event(&tc_main.evs[0], 6, "2001:db8::2", "2001:db8::1", &t, ST_DIR_FROM_SERVER);
	assert_memory_equal(tc_main.evs[0].data, tc_get, TC_GET_LEN);

	/* a first fragment still has the TCP header */
	len = tc_build_v6(tc_pkt, "2001:db8::2", "2001:db8::1", &t, TC_V6_FRAG_FIRST);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
	assert_memory_equal(tc_main.evs[0].data, tc_get, TC_GET_LEN);

	tc_stats(&tc_main, &s0);
	len = tc_build_v6(tc_pkt, "2001:db8::2", "2001:db8::1", &t, TC_V6_FRAG_LATER);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	len = tc_build_v6(tc_pkt, "2001:db8::2", "2001:db8::1", &t, TC_V6_UNKNOWN_EXT);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	tc_stats(&tc_main, &s1);
	assert_int_equal(s1.not_tcp - s0.not_tcp, 2);
	assert_int_equal(s1.matched - s0.matched, 0);
}

static void test_ipv4_later_fragment_and_udp(void **state)
{
	struct tc_tcp t = { 40004, 80, 1, 1, ST_TCP_ACK, tc_get, TC_GET_LEN };
	struct st_stats s0, s1;
	size_t len;

	TC_REQUIRE_LOADED();
	tc_stats(&tc_main, &s0);
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 185, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
	tc_pkt[14 + 9] = 17;	/* UDP */
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	tc_put_eth(tc_pkt, 0x0806);	/* ARP */
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	tc_stats(&tc_main, &s1);
	assert_int_equal(s1.not_tcp - s0.not_tcp, 3);
	assert_int_equal(s1.packets - s0.packets, 3);
}

/* IPv4 with options (ihl 7): the TCP header and payload start behind them, which the
 * program's one-load path for a 20-byte IP header must not assume; and a datagram
 * shorter than the two headers is not TCP. */
static void test_ipv4_options_and_short(void **state)
{
	struct tc_tcp t = { 40007, 80, 900, 901, ST_TCP_PSH | ST_TCP_ACK, tc_get, TC_GET_LEN };
	struct st_stats s0, s1;
	uint16_t v16;
	size_t len;

	TC_REQUIRE_LOADED();
	len = tc_build_v4(tc_pkt, "10.0.0.7", "10.0.0.8", &t, 0, 0);
	/* 8 bytes of options (NOPs and an end) between the IP and the TCP header */
	memmove(tc_pkt + 14 + 28, tc_pkt + 14 + 20, len - 14 - 20);
	memset(tc_pkt + 14 + 20, 1, 7);
	tc_pkt[14 + 27] = 0;
	tc_pkt[14] = 0x47;
	len += 8;
	v16 = htons((uint16_t)(len - 14));
	memcpy(tc_pkt + 14 + 2, &v16, 2);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
	tc_check_event(&tc_main.evs[0], 4, "10.0.0.7", "10.0.0.8", &t, ST_DIR_TO_SERVER);
	assert_int_equal(tc_main.evs[0].ev.data_len, TC_GET_LEN);
	assert_memory_equal(tc_main.evs[0].data, tc_get, TC_GET_LEN);

	/* 20 bytes of IP and 12 of a TCP header: shorter than one load of both */
	t.plen = 0;
	len = tc_build_v4(tc_pkt, "10.0.0.7", "10.0.0.8", &t, 0, 0) - 8;
	v16 = htons((uint16_t)(len - 14));
	memcpy(tc_pkt + 14 + 2, &v16, 2);
	tc_stats(&tc_main, &s0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	tc_stats(&tc_main, &s1);
	assert_int_equal(tc_main.nev, 0);
	assert_int_equal(s1.not_tcp - s0.not_tcp, 1);
}

static void test_port_mismatch(void **state)
{
	struct tc_tcp t = { 40005, 443, 1, 1, ST_TCP_ACK | ST_TCP_PSH, tc_get, TC_GET_LEN };
	struct st_stats s0, s1;
	size_t len;

	TC_REQUIRE_LOADED();
	tc_stats(&tc_main, &s0);
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	tc_stats(&tc_main, &s1);
	assert_int_equal(s1.port_mismatch - s0.port_mismatch, 1);
	assert_int_equal(s1.matched - s0.matched, 0);
	assert_int_equal(s1.events - s0.events, 0);
}

/* The agent's own connection (own_conns: peer 10.0.0.2:80, local port 40010) is not
 * captured in either direction and is counted; the same peer from another local port
 * and the same local port towards another peer still are. */
static void test_own_conn_skipped(void **state)
{
	struct tc_tcp req = { 40010, 80, 1, 1, ST_TCP_ACK | ST_TCP_PSH, tc_get, TC_GET_LEN };
	struct tc_tcp resp = { 80, 40010, 1, 1, ST_TCP_ACK | ST_TCP_PSH, tc_get, TC_GET_LEN };
	struct tc_tcp syn = { 40010, 80, 0, 0, ST_TCP_SYN, NULL, 0 };
	struct tc_tcp other = { 40011, 80, 1, 1, ST_TCP_ACK | ST_TCP_PSH, tc_get, TC_GET_LEN };
	struct st_own_key k = { 0 }, k6 = { 0 };
	struct st_stats s0, s1;
	uint32_t refs = 1;
	int fd;
	size_t len;

	TC_REQUIRE_LOADED();
	fd = bpf_map__fd(tc_main.skel->maps.own_conns);
	k.family = 4;
	assert_int_equal(inet_pton(AF_INET, "10.0.0.2", &k.raddr[0]), 1);
	k.rport = 80;
	k.lport = 40010;
	assert_int_equal(bpf_map_update_elem(fd, &k, &refs, BPF_ANY), 0);
	k6.family = 6;
	assert_int_equal(inet_pton(AF_INET6, "fd00::2", k6.raddr), 1);
	k6.rport = 80;
	k6.lport = 40010;
	assert_int_equal(bpf_map_update_elem(fd, &k6, &refs, BPF_ANY), 0);
	tc_stats(&tc_main, &s0);

	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &req, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &syn, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	len = tc_build_v4(tc_pkt, "10.0.0.2", "10.0.0.1", &resp, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	len = tc_build_v6(tc_pkt, "fd00::1", "fd00::2", &req, TC_V6_PLAIN);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	tc_stats(&tc_main, &s1);
	assert_int_equal(s1.own_skipped - s0.own_skipped, 4);
	assert_int_equal(s1.matched - s0.matched, 0);

	/* neighbours of the own tuple are someone else's traffic */
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &other, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.3", &req, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
	tc_stats(&tc_main, &s0);
	assert_int_equal(s0.own_skipped - s1.own_skipped, 0);
	assert_int_equal(s0.matched - s1.matched, 2);

	assert_int_equal(bpf_map_delete_elem(fd, &k), 0);
	assert_int_equal(bpf_map_delete_elem(fd, &k6), 0);
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &req, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 1);
}

static void test_pure_ack_no_event(void **state)
{
	struct tc_tcp t = { 40006, 80, 100, 200, ST_TCP_ACK, NULL, 0 };
	struct st_stats s0, s1;
	size_t len;

	TC_REQUIRE_LOADED();
	tc_stats(&tc_main, &s0);
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	assert_int_equal(tc_main.nev, 0);
	tc_stats(&tc_main, &s1);
	assert_int_equal(s1.matched - s0.matched, 1);
	assert_int_equal(s1.events - s0.events, 0);
	assert_int_equal(s1.payload_segments - s0.payload_segments, 0);
}

static void test_control_events(void **state)
{
	static const uint8_t flags[] = { ST_TCP_SYN, ST_TCP_SYN | ST_TCP_ACK, ST_TCP_FIN | ST_TCP_ACK,
					 ST_TCP_RST };
	struct st_stats s0, s1;
	size_t i, len;

	TC_REQUIRE_LOADED();
	tc_stats(&tc_main, &s0);
	for (i = 0; i < sizeof(flags); i++) {
		int to_server = flags[i] != (ST_TCP_SYN | ST_TCP_ACK);
		struct tc_tcp t = { to_server ? 40007 : 80, to_server ? 80 : 40007,
				    7000 + (uint32_t)i, 0, flags[i], NULL, 0 };

		len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
		assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
		assert_int_equal(tc_main.nev, 1);
		tc_check_event(&tc_main.evs[0], 4, "10.0.0.1", "10.0.0.2", &t,
			       to_server ? ST_DIR_TO_SERVER : ST_DIR_FROM_SERVER);
		assert_int_equal(tc_main.evs[0].ev.data_len, 0);
		assert_int_equal(tc_main.evs[0].data_sz, sizeof(struct st_event));
	}
	tc_stats(&tc_main, &s1);
	assert_int_equal(s1.control_events - s0.control_events, sizeof(flags));
	assert_int_equal(s1.payload_segments - s0.payload_segments, 0);
}

/* A slice of up to ST_CHUNK_MIN bytes is reserved in that size class; a longer one
 * (up to ST_CHUNK_MAX) is a record of exactly its size, with no gap behind it in the
 * ring (cls 0 below). */
static void test_size_classes(void **state)
{
	static const struct { size_t plen, cls; } cases[] = {
		{ 1, ST_CHUNK_MIN },	   { ST_CHUNK_MIN, ST_CHUNK_MIN },
		{ ST_CHUNK_MIN + 1, 0 }, { ST_CHUNK_MID, 0 }, { ST_CHUNK_MID + 1, 0 },
		{ 3000, 0 },
	};
	static uint8_t payload[ST_CHUNK_MAX];
	size_t i, j, len;

	TC_REQUIRE_LOADED();
	for (j = 0; j < sizeof(payload); j++)
		payload[j] = (uint8_t)(j * 7 + 3);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tc_tcp t = { 40008, 80, 9, 9, ST_TCP_ACK, payload, cases[i].plen };
		size_t want = cases[i].cls ? cases[i].cls : cases[i].plen;

		len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
		assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
		assert_int_equal(tc_main.nev, 1);
		assert_int_equal(tc_main.evs[0].ev.data_len, cases[i].plen);
		assert_int_equal(tc_main.evs[0].ev.seg_len, cases[i].plen);
		assert_int_equal(tc_main.evs[0].ev.off, 0);
		assert_int_equal(tc_main.evs[0].data_sz, sizeof(struct st_event) + want);
		assert_memory_equal(tc_main.evs[0].data, payload, cases[i].plen);
	}
}

/* Largest frame test_run accepts for an skb program: the kernel puts the data in
 * one page-sized linear buffer with headroom and skb_shared_info, so it is a bit
 * under 4 KiB on x86 (larger pages or non-linear test skbs raise it). */
static size_t tc_max_frame(void)
{
	size_t lo = 64, hi = TC_PKT_MAX, mid;
	struct tc_tcp t = { 1, 2, 0, 0, ST_TCP_ACK, NULL, 0 };

	tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
	while (lo < hi) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = tc_pkt, .repeat = 1);

		mid = (lo + hi + 1) / 2;
		opts.data_size_in = (uint32_t)mid;
		if (bpf_prog_test_run_opts(bpf_program__fd(tc_main.skel->progs.st_capture), &opts))
			hi = mid - 1;
		else
			lo = mid;
	}
	return lo;
}

static void test_largest_packet_split(void **state)
{
	static uint8_t payload[TC_PKT_MAX];
	struct st_stats s0, s1;
	size_t frame, plen, got = 0, len, j;
	int i;

	TC_REQUIRE_LOADED();
	frame = tc_max_frame();
	fprintf(stderr, "test_capture: largest test_run frame is %zu bytes\n", frame);
	assert_true(frame > 14 + 20 + 20);
	plen = frame - 14 - 20 - 20;
	if (plen > 65535 - 40)
		plen = 65535 - 40;
	for (j = 0; j < plen; j++)
		payload[j] = (uint8_t)(j % 251);
	struct tc_tcp t = { 40009, 80, 0xffffff00u, 1, ST_TCP_ACK | ST_TCP_PSH | ST_TCP_FIN,
			    payload, plen };

	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
	tc_stats(&tc_main, &s0);
	assert_int_equal(tc_run(&tc_main, tc_pkt, len), 0);
	tc_stats(&tc_main, &s1);
	assert_int_equal(tc_main.overflow, 0);
	assert_int_equal(tc_main.nev, (int)((plen + ST_CHUNK_MAX - 1) / ST_CHUNK_MAX));
	for (i = 0; i < tc_main.nev; i++) {
		const struct tc_event *e = &tc_main.evs[i];

		assert_int_equal(e->ev.seq, t.seq);
		assert_int_equal(e->ev.seg_len, plen);
		assert_int_equal(e->ev.off, got);
		assert_true(e->ev.data_len > 0 && e->ev.data_len <= ST_CHUNK_MAX);
		assert_memory_equal(e->data, payload + got, e->ev.data_len);
		got += e->ev.data_len;
	}
	assert_int_equal(got, plen);
	assert_int_equal(s1.bytes_captured - s0.bytes_captured, plen);
	assert_int_equal(s1.events - s0.events, tc_main.nev);
	assert_int_equal(s1.payload_segments - s0.payload_segments, 1);
}

/* With no_own_conns (an agent without replay or Elasticsearch) the program does not
 * look own_conns up: a segment whose key is there is captured, not skipped. */
static void test_no_own_conns(void **state)
{
	struct tc_tcp req = { 40012, 80, 1, 1, ST_TCP_ACK | ST_TCP_PSH, tc_get, TC_GET_LEN };
	struct st_own_key k = { 0 };
	struct tc_ring *r;
	struct st_stats s;
	uint32_t refs = 1;
	size_t len;

	TC_REQUIRE_LOADED();
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	tc_open_no_own = 1;
	assert_int_equal(tc_ring_open(r, 1 << 16, 1 << 20), 0);
	tc_open_no_own = 0;
	k.family = 4;
	assert_int_equal(inet_pton(AF_INET, "10.0.0.2", &k.raddr[0]), 1);
	k.rport = 80;
	k.lport = 40012;
	assert_int_equal(bpf_map_update_elem(bpf_map__fd(r->skel->maps.own_conns), &k, &refs,
					     BPF_ANY), 0);
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &req, 0, 0);
	assert_int_equal(tc_run(r, tc_pkt, len), 0);
	assert_int_equal(r->nev, 1);
	tc_stats(r, &s);
	assert_int_equal(s.own_skipped, 0);
	assert_int_equal(s.matched, 1);
	tc_ring_close(r);
	free(r);
}

/* A ring with room for one 3000-byte slice: the second one is counted, not lost
 * silently. */
static void test_ring_full_counted(void **state)
{
	static uint8_t payload[3000];
	struct tc_tcp t = { 40010, 80, 1, 1, ST_TCP_ACK, payload, sizeof(payload) };
	struct tc_ring *small;
	struct st_stats s;
	size_t len;
	int err;

	TC_REQUIRE_LOADED();
	small = calloc(1, sizeof(*small));
	assert_non_null(small);
	err = tc_ring_open(small, 4096, 1 << 20);
	assert_int_equal(err, 0);
	memset(payload, 'r', sizeof(payload));
	len = tc_build_v4(tc_pkt, "10.0.0.1", "10.0.0.2", &t, 0, 0);
	/* run twice without draining: 2 x (72 + 3000 + 8) does not fit in 4 KiB */
	{
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = tc_pkt, .data_size_in = (uint32_t)len,
			    .repeat = 1);

		assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(small->skel->progs.st_capture),
							&opts), 0);
		assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(small->skel->progs.st_capture),
							&opts), 0);
	}
	tc_stats(small, &s);
	assert_int_equal(s.events, 1);
	assert_int_equal(s.ringbuf_full, 1);
	assert_int_equal(s.bytes_lost_ringbuf, sizeof(payload));
	assert_int_equal(s.bytes_captured, sizeof(payload));
	/* below the (1 MiB) wake-up threshold nothing forces a wake-up */
	assert_int_equal(s.wakeups, 0);
	small->nev = 0;
	assert_int_equal(ring_buffer__consume(small->rb), 1);
	tc_ring_close(small);
	free(small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_request),
		cmocka_unit_test(test_ipv4_response_second_port),
		cmocka_unit_test(test_ipv4_link_padding_ignored),
		cmocka_unit_test(test_ipv6_request),
		cmocka_unit_test(test_ipv6_extension_headers),
		cmocka_unit_test(test_ipv4_later_fragment_and_udp),
		cmocka_unit_test(test_ipv4_options_and_short),
		cmocka_unit_test(test_port_mismatch),
		cmocka_unit_test(test_own_conn_skipped),
		cmocka_unit_test(test_no_own_conns),
		cmocka_unit_test(test_pure_ack_no_event),
		cmocka_unit_test(test_control_events),
		cmocka_unit_test(test_size_classes),
		cmocka_unit_test(test_largest_packet_split),
		cmocka_unit_test(test_ring_full_counted),
	};

	return cmocka_run_group_tests_name("bpf_capture", tests, tc_setup, tc_teardown);
}
