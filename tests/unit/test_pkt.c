/* The IPv4/IPv6/TCP packet parser. Every packet is copied into a heap block of its
 * exact size, so with ASan any read past the end fails the test. Covers options on
 * both layers, IPv6 extension headers, truncated and inconsistent headers, lengths
 * that disagree with the capture, fragments, and which side is the server. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pkt.h"

static struct pkt_orient orient;       /* one packet source for the whole test */
static const uint16_t ports80[] = { 80 };
static const uint16_t ports_both[] = { 80, 8080 };

struct pk {
	uint8_t b[2048];
	size_t len;
};

/* TCP header (with opt_words * 4 bytes of NOP options) + payload at p->b + off. */
static size_t put_tcp(uint8_t *t, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
		      int opt_words, const char *payload)
{
	size_t thl = 20 + (size_t)opt_words * 4, n = payload ? strlen(payload) : 0;

	memset(t, 0, thl);
	t[0] = (uint8_t)(sport >> 8);
	t[1] = (uint8_t)sport;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	t[4] = (uint8_t)(seq >> 24);
	t[5] = (uint8_t)(seq >> 16);
	t[6] = (uint8_t)(seq >> 8);
	t[7] = (uint8_t)seq;
	t[12] = (uint8_t)((thl / 4) << 4);
	t[13] = flags;
	memset(t + 20, 1, thl - 20);      /* NOP */
	if (n)
		memcpy(t + thl, payload, n);
	return thl + n;
}

static void v4(struct pk *p, const char *src, const char *dst, uint16_t sport, uint16_t dport,
	       uint32_t seq, uint8_t flags, int ip_opt_words, int tcp_opt_words, const char *payload)
{
	size_t ihl = 20 + (size_t)ip_opt_words * 4, tl;

	memset(p->b, 0, ihl);
	p->b[0] = (uint8_t)(0x40 | ihl / 4);
	p->b[6] = 0x40;                    /* DF: not a fragment */
	p->b[8] = 64;
	p->b[9] = 6;
	inet_pton(AF_INET, src, p->b + 12);
	inet_pton(AF_INET, dst, p->b + 16);
	tl = put_tcp(p->b + ihl, sport, dport, seq, flags, tcp_opt_words, payload);
	p->len = ihl + tl;
	p->b[2] = (uint8_t)(p->len >> 8);
	p->b[3] = (uint8_t)p->len;
}

/* IPv6 with next-header chain ext[] (each 8 bytes, 0 = none) then TCP. */
static void v6(struct pk *p, const char *src, const char *dst, uint16_t sport, uint16_t dport,
	       const uint8_t *ext, int next_ext, const char *payload)
{
	size_t off = 40;
	int i;

	memset(p->b, 0, 40);
	p->b[0] = 0x60;
	p->b[6] = next_ext ? ext[0] : 6;
	p->b[7] = 64;
	inet_pton(AF_INET6, src, p->b + 8);
	inet_pton(AF_INET6, dst, p->b + 24);
	for (i = 0; i < next_ext; i++) {
		memset(p->b + off, 0, 8);
		p->b[off] = i + 1 < next_ext ? ext[i + 1] : 6;
		p->b[off + 1] = 0;             /* (0 + 1) * 8 bytes */
		off += 8;
	}
	off += put_tcp(p->b + off, sport, dport, 1000, 0x18, 0, payload);
	p->len = off;
	p->b[4] = (uint8_t)((off - 40) >> 8);
	p->b[5] = (uint8_t)(off - 40);
}

/* Parse the first len bytes of p from an exact-size heap copy. */
static int parse_n(const struct pk *p, size_t len, const uint16_t *ports, int nports,
		   struct reasm_seg *seg, uint8_t **copy)
{
	int r;

	*copy = malloc(len ? len : 1);
	assert_non_null(*copy);
	memcpy(*copy, p->b, len);
	r = pkt_parse_ip(&orient, *copy, len, ports, nports, 77, seg);
	if (r == PKT_OURS && seg->len)
		assert_true(seg->data >= *copy && seg->data + seg->len <= *copy + len);
	return r;
}

static int parse(const struct pk *p, size_t len, const uint16_t *ports, int nports)
{
	struct reasm_seg seg;
	uint8_t *copy;
	int r = parse_n(p, len, ports, nports, &seg, &copy);

	free(copy);
	return r;
}

static void test_ipv4_basic(void **state)
{
	struct reasm_seg seg;
	struct pk p;
	uint8_t *c;
	uint32_t a;

	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 80, 0x01020304, 0x18, 0, 0, "hello");
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.key.family, 4);
	assert_int_equal(seg.dir, REASM_C2S);
	inet_pton(AF_INET, "10.0.0.1", &a);
	assert_int_equal(seg.key.caddr[0], a);
	assert_int_equal(seg.key.caddr[1], 0);
	inet_pton(AF_INET, "10.0.0.2", &a);
	assert_int_equal(seg.key.saddr[0], a);
	assert_int_equal(seg.key.cport, 40000);
	assert_int_equal(seg.key.sport, 80);
	assert_int_equal(seg.seq, 0x01020304);
	assert_int_equal(seg.flags, 0x18);
	assert_int_equal(seg.ts_ns, 77);
	assert_int_equal(seg.len, 5);
	assert_memory_equal(seg.data, "hello", 5);
	assert_ptr_equal(seg.data, c + 40);
	free(c);

	/* the answer: same key, other direction; flags keep only the low five bits */
	v4(&p, "10.0.0.2", "10.0.0.1", 80, 40000, 7, 0xd0 | 0x11, 0, 0, "world!");
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.dir, REASM_S2C);
	inet_pton(AF_INET, "10.0.0.1", &a);
	assert_int_equal(seg.key.caddr[0], a);
	assert_int_equal(seg.key.cport, 40000);
	assert_int_equal(seg.key.sport, 80);
	assert_int_equal(seg.flags, 0x11);
	assert_int_equal(seg.len, 6);
	free(c);

	/* a pure ACK: ours, no payload */
	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 80, 1, 0x10, 0, 0, NULL);
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.len, 0);
	free(c);
}

static void test_not_ours(void **state)
{
	struct pk p;

	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 443, 1, 0x18, 0, 0, "x");
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_NOT_OURS);
	p.b[9] = 17;                       /* UDP */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_NOT_OURS);
	v6(&p, "::1", "::2", 40000, 443, NULL, 0, "x");
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_NOT_OURS);
	p.b[6] = 58;                       /* ICMPv6 */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_NOT_OURS);
}

static void test_options(void **state)
{
	struct reasm_seg seg;
	struct pk p;
	uint8_t *c;

	/* 12 bytes of IP options and 12 of TCP options (timestamps) */
	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 80, 5, 0x18, 3, 3, "GET /");
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_ptr_equal(seg.data, c + 32 + 32);
	assert_int_equal(seg.len, 5);
	free(c);
	/* the largest headers both layers allow: 60 + 60 */
	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 80, 5, 0x18, 10, 10, "x");
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_ptr_equal(seg.data, c + 120);
	assert_int_equal(seg.len, 1);
	free(c);
}

static void test_truncated(void **state)
{
	struct pk p;
	size_t n;

	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 80, 5, 0x18, 0, 0, "payload");
	/* every prefix shorter than both headers is malformed, never an over-read */
	for (n = 0; n < 40; n++)
		assert_int_equal(parse(&p, n, ports80, 1), PKT_MALFORMED);
	/* cut inside the payload: the captured part is handed on */
	assert_int_equal(parse(&p, 43, ports80, 1), PKT_OURS);

	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 80, 5, 0x18, 2, 2, "payload");
	for (n = 0; n < 28 + 28; n++)
		assert_int_equal(parse(&p, n, ports80, 1), PKT_MALFORMED);

	v6(&p, "::1", "::2", 40000, 80, NULL, 0, "payload");
	for (n = 0; n < 60; n++)
		assert_int_equal(parse(&p, n, ports80, 1), PKT_MALFORMED);
}

static void test_bad_lengths(void **state)
{
	struct reasm_seg seg;
	struct pk p;
	uint8_t *c;

	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 80, 5, 0x18, 0, 0, "payload");
	p.b[0] = 0x44;                     /* IHL 16 bytes: below the minimum */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_MALFORMED);
	p.b[0] = 0x4f;                     /* IHL 60 > what follows the header */
	assert_int_equal(parse(&p, 50, ports80, 1), PKT_MALFORMED);
	p.b[0] = 0x45;
	p.b[32] = 0x40;                    /* TCP data offset 16 bytes */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_MALFORMED);
	p.b[32] = 0xf0;                    /* data offset 60 > segment */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_MALFORMED);
	p.b[32] = 0x50;
	p.b[2] = 0;                        /* total length 10 < IHL */
	p.b[3] = 10;
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_MALFORMED);
	p.b[3] = 30;                       /* total length cuts the TCP header */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_MALFORMED);
	p.b[0] = 0x55;                     /* IP version 5 */
	p.b[3] = (uint8_t)p.len;
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_MALFORMED);
	p.b[0] = 0x45;

	/* Ethernet padding after a short packet: total length wins */
	p.len += 6;
	memset(p.b + p.len - 6, 0xee, 6);
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.len, 7);
	free(c);
	/* total length 0 (TSO seen on the sending host) or past the capture: capture wins */
	p.b[2] = p.b[3] = 0;
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.len, 13);
	free(c);
	p.b[2] = 0x10;
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.len, 13);
	free(c);

	/* IPv6 payload length: padding cut off, 0 or too large means the capture */
	v6(&p, "::1", "::2", 40000, 80, NULL, 0, "abc");
	p.len += 4;
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.len, 3);
	free(c);
	p.b[4] = p.b[5] = 0;
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.len, 7);
	free(c);
	p.b[5] = 10;                       /* cuts the TCP header */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_MALFORMED);
}

static void test_fragments(void **state)
{
	static const uint8_t frag[] = { 44 };
	static const uint8_t hop_frag[] = { 0, 44 };
	struct pk p;

	v4(&p, "10.0.0.1", "10.0.0.2", 40000, 80, 5, 0x18, 0, 0, "payload");
	p.b[6] = 0x20;                     /* more fragments, offset 0 */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_FRAGMENT);
	p.b[6] = 0x00;                     /* last fragment at offset 8 */
	p.b[7] = 0x01;
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_FRAGMENT);
	p.b[6] = 0x1f;                     /* offset bits in the flags byte */
	p.b[7] = 0;
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_FRAGMENT);
	p.b[6] = 0x40;                     /* DF only */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_OURS);

	v6(&p, "::1", "::2", 40000, 80, frag, 1, "payload");
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_FRAGMENT);
	v6(&p, "::1", "::2", 40000, 80, hop_frag, 2, "payload");
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_FRAGMENT);
}

static void test_ipv6(void **state)
{
	static const uint8_t ext[] = { 0, 60, 43 };   /* hop-by-hop, destination, routing */
	struct reasm_seg seg;
	struct in6_addr a;
	struct pk p;
	uint8_t *c;

	v6(&p, "2001:db8::1", "2001:db8::2", 50000, 80, NULL, 0, "GET");
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.key.family, 6);
	assert_int_equal(seg.dir, REASM_C2S);
	inet_pton(AF_INET6, "2001:db8::1", &a);
	assert_memory_equal(seg.key.caddr, &a, 16);
	inet_pton(AF_INET6, "2001:db8::2", &a);
	assert_memory_equal(seg.key.saddr, &a, 16);
	assert_int_equal(seg.key.cport, 50000);
	assert_int_equal(seg.seq, 1000);
	assert_ptr_equal(seg.data, c + 60);
	free(c);

	v6(&p, "2001:db8::2", "2001:db8::1", 80, 50000, ext, 3, "HTTP");
	assert_int_equal(parse_n(&p, p.len, ports80, 1, &seg, &c), PKT_OURS);
	assert_int_equal(seg.dir, REASM_S2C);
	assert_ptr_equal(seg.data, c + 40 + 24 + 20);
	assert_int_equal(seg.len, 4);
	free(c);
	/* an extension header cut off, or longer than the packet */
	assert_int_equal(parse(&p, 44, ports80, 1), PKT_MALFORMED);
	p.b[40 + 8 + 1] = 200;             /* second header claims 1608 bytes */
	assert_int_equal(parse(&p, p.len, ports80, 1), PKT_MALFORMED);
}

/* With both ports watched, the handshake says who the server is; without one the
 * lower port is taken. */
static void test_orientation(void **state)
{
	struct reasm_seg seg;
	struct pk p;
	uint8_t *c;

	/* no handshake seen: 8080 -> 80 means the server is on 80 */
	v4(&p, "10.9.0.1", "10.9.0.2", 8080, 80, 1, 0x18, 0, 0, "x");
	assert_int_equal(parse_n(&p, p.len, ports_both, 2, &seg, &c), PKT_OURS);
	assert_int_equal(seg.dir, REASM_C2S);
	assert_int_equal(seg.key.sport, 80);
	free(c);

	/* a client on port 80 connects to a server on 8080: its SYN says so */
	v4(&p, "10.9.1.1", "10.9.1.2", 80, 8080, 1, 0x02, 0, 0, NULL);
	assert_int_equal(parse_n(&p, p.len, ports_both, 2, &seg, &c), PKT_OURS);
	assert_int_equal(seg.dir, REASM_C2S);
	assert_int_equal(seg.key.sport, 8080);
	free(c);
	v4(&p, "10.9.1.2", "10.9.1.1", 8080, 80, 1, 0x12, 0, 0, NULL);   /* SYN-ACK */
	assert_int_equal(parse_n(&p, p.len, ports_both, 2, &seg, &c), PKT_OURS);
	assert_int_equal(seg.dir, REASM_S2C);
	free(c);
	v4(&p, "10.9.1.1", "10.9.1.2", 80, 8080, 2, 0x18, 0, 0, "GET");
	assert_int_equal(parse_n(&p, p.len, ports_both, 2, &seg, &c), PKT_OURS);
	assert_int_equal(seg.dir, REASM_C2S);
	assert_int_equal(seg.key.cport, 80);
	assert_int_equal(seg.key.sport, 8080);
	free(c);
	v4(&p, "10.9.1.2", "10.9.1.1", 8080, 80, 2, 0x18, 0, 0, "200");
	assert_int_equal(parse_n(&p, p.len, ports_both, 2, &seg, &c), PKT_OURS);
	assert_int_equal(seg.dir, REASM_S2C);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_basic),
		cmocka_unit_test(test_not_ours),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_fragments),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_orientation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
