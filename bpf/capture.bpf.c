// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Three hooks over one parsing/emit core, all writing the same struct st_event into
 * the same ring and the same per-CPU statistics:
 * - st_capture: socket filter for an AF_PACKET SOCK_DGRAM socket (ETH_P_ALL); skb
 *   data starts at the network header. Returns 0: the tap socket queues nothing.
 * - st_tc_capture: TC classifier (tcx link or clsact filter) on ingress/egress of an
 *   Ethernet or loopback device; skb data starts at the 14-byte MAC header (zeros on
 *   lo). Returns TC_ACT_UNSPEC (== TCX_NEXT): the packet goes on to the next filter
 *   or program unchanged, as if we were not there. TC_ACT_OK would end the chain and
 *   skip whatever policy program is attached after us.
 * - st_xdp_capture: XDP (native or generic) on ingress; multi-buffer aware, so a
 *   64 KiB GRO/GSO frame is read whole with bpf_xdp_load_bytes. Returns XDP_PASS.
 * None of them writes to the packet. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "shadowtap.h"

#define ST_ETH_P_IP	0x0800
#define ST_ETH_P_IPV6	0x86DD
#define ST_PACKET_OUTGOING 4
#define ST_ETH_HLEN	14
#define ST_TC_ACT_UNSPEC (-1)
#define ST_XDP_PASS	2

/* Which packet accessor the core uses; always a compile-time constant at the call
 * sites, so each program keeps only its own helper calls. */
#define ST_CTX_SKB	0
#define ST_CTX_XDP	1

#define ST_NH_HOP	0
#define ST_NH_TCP	6
#define ST_NH_ROUTING	43
#define ST_NH_FRAGMENT	44
#define ST_NH_DEST	60
/* Extension headers walked before giving up (counted as not_tcp). */
#define ST_IPV6_MAX_EXT	6

#define ST_FULL_SLICES	(ST_SEG_MAX / ST_CHUNK_MAX)

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct st_bpf_cfg st_cfg = {};

/* Ring 0; with --workers N the agent adds rings 1..N-1 to "rings" below. */
struct st_ringbuf {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
};
struct st_ringbuf events SEC(".maps");

/* One ring per worker, chosen per connection (st_ring_of in common/shadowtap.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, ST_MAX_WORKERS);
	__type(key, __u32);
	__array(values, struct st_ringbuf);
} rings SEC(".maps") = {
	.values = { [0] = &events },
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX_WORKERS);
	__type(key, __u32);
	__type(value, struct st_ring_stats);
} ring_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_stats);
} stats SEC(".maps");

/* Where a segment's last slice is assembled before bpf_ringbuf_output copies it into
 * the ring at its exact size (st_emit_tail). Per CPU, and never used by two runs at
 * once: every hook runs with bottom halves off (softirq, or the transmit path under
 * rcu_read_lock_bh), so a run cannot be interrupted by another on the same CPU. */
struct st_scratch {
	__u8 buf[sizeof(struct st_event) + ST_CHUNK_MAX];	/* an event and its data */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_scratch);
} scratch SEC(".maps");

/* The agent's own connections (common/shadowtap.h); filled by agent/ownsock.c. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ST_OWN_MAX);
	__type(key, struct st_own_key);
	__type(value, __u32);
} own_conns SEC(".maps");

/* Where the TCP header and payload are, filled by the IP parsers. */
struct st_l3 {
	__u32 l4_off;
	__u32 end;	/* end of the IP datagram (excludes link-layer padding) */
};

static __always_inline int st_port_watched(__u16 port)
{
	int i;

	for (i = 0; i < ST_MAX_PORTS; i++) {
		if (i >= st_cfg.nports)
			break;
		if (st_cfg.ports[i] == port)
			return 1;
	}
	return 0;
}

/* 1 if the segment belongs to one of the agent's own connections. hdr->dir says which
 * side is the watched (server) port, and the agent is always the client side. */
static __always_inline int st_is_own(const struct st_event *hdr)
{
	struct st_own_key k = {};

	k.family = hdr->family;
	if (hdr->dir == ST_DIR_TO_SERVER) {
		__builtin_memcpy(k.raddr, hdr->daddr, sizeof(k.raddr));
		k.rport = hdr->dport;
		k.lport = hdr->sport;
	} else {
		__builtin_memcpy(k.raddr, hdr->saddr, sizeof(k.raddr));
		k.rport = hdr->sport;
		k.lport = hdr->dport;
	}
	return bpf_map_lookup_elem(&own_conns, &k) != NULL;
}

/* The packet as the core sees it: offsets below are relative to the network header,
 * which sits at l3 within the context's data; len counts from the network header. */
struct st_pkt {
	void *ctx;
	__u32 l3;
	__u32 len;
};

static __always_inline long st_load(const int kind, const struct st_pkt *p, __u32 off,
				    void *buf, __u32 n)
{
	if (kind == ST_CTX_XDP)
		return bpf_xdp_load_bytes(p->ctx, p->l3 + off, buf, n);
	return bpf_skb_load_bytes(p->ctx, p->l3 + off, buf, n);
}

/* The checks on an IPv4 header already loaded */
static __always_inline int st_check_ipv4(const struct st_pkt *p, const struct iphdr *ip,
					 struct st_event *hdr, struct st_l3 *l3)
{
	__u32 ihl, tot;

	if (ip->version != 4 || ip->protocol != ST_NH_TCP)
		return -1;
	/* a non-first fragment has no TCP header; a first one is parsed as is */
	if (bpf_ntohs(ip->frag_off) & 0x1fff)
		return -1;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return -1;
	tot = bpf_ntohs(ip->tot_len);
	/* tot_len 0 is BIG TCP (GSO > 64 KiB): the skb length is the truth then */
	if (tot == 0 || tot > p->len)
		tot = p->len;
	if (tot < ihl)
		return -1;
	hdr->family = 4;
	hdr->saddr[0] = ip->saddr;
	hdr->daddr[0] = ip->daddr;
	l3->l4_off = ihl;
	l3->end = tot;
	return 0;
}

static __always_inline int st_parse_ipv4(const int kind, const struct st_pkt *p,
					 struct st_event *hdr, struct st_l3 *l3)
{
	struct iphdr ip;

	if (st_load(kind, p, 0, &ip, sizeof(ip)) < 0)
		return -1;
	return st_check_ipv4(p, &ip, hdr, l3);
}

static __always_inline int st_parse_ipv6(const int kind, const struct st_pkt *p,
					 struct st_event *hdr, struct st_l3 *l3)
{
	struct ipv6hdr ip6;
	__u32 off = sizeof(ip6), end;
	__u8 nh, ext[2];
	__u16 frag;
	int i;

	if (st_load(kind, p, 0, &ip6, sizeof(ip6)) < 0)
		return -1;
	if (ip6.version != 6)
		return -1;
	end = bpf_ntohs(ip6.payload_len);
	/* payload_len 0 is a jumbogram / BIG TCP: fall back to the skb length */
	end = end ? end + sizeof(ip6) : p->len;
	if (end > p->len)
		end = p->len;
	nh = ip6.nexthdr;
	/* hop-by-hop, routing, destination options and fragment headers all have the
	 * same length rule ((hdrlen + 1) * 8; the fragment header's field is reserved,
	 * zero), which keeps the walk a single path for the verifier */
	for (i = 0; i < ST_IPV6_MAX_EXT; i++) {
		if (nh == ST_NH_TCP)
			break;
		if (nh != ST_NH_HOP && nh != ST_NH_ROUTING && nh != ST_NH_DEST &&
		    nh != ST_NH_FRAGMENT)
			return -1;
		if (st_load(kind, p, off, ext, sizeof(ext)) < 0)
			return -1;
		if (nh == ST_NH_FRAGMENT) {
			if (st_load(kind, p, off + 2, &frag, sizeof(frag)) < 0)
				return -1;
			if (bpf_ntohs(frag) & 0xfff8)
				return -1;
		}
		nh = ext[0];
		off += ((__u32)ext[1] + 1) * 8;
	}
	if (nh != ST_NH_TCP || off > end)
		return -1;
	hdr->family = 6;
	__builtin_memcpy(hdr->saddr, &ip6.saddr, sizeof(hdr->saddr));
	__builtin_memcpy(hdr->daddr, &ip6.daddr, sizeof(hdr->daddr));
	l3->l4_off = off;
	l3->end = end;
	return 0;
}

/* Submit with NO_WAKEUP, except for the record that makes the pending data cross
 * wakeup_bytes: waking on every record past the threshold would cost most when the
 * consumer is already behind. A crossing missed under a race is covered by the
 * consumer's poll timeout. */
/* The ring a connection's events go to, and its counters. */
struct st_ring {
	void *rb;
	struct st_ring_stats *rs;	/* NULL with one ring: st holds its counts */
};

static __always_inline void st_submit(const struct st_ring *r, void *ev, __u32 rec_bytes,
				      struct st_stats *st)
{
	__u64 avail = bpf_ringbuf_query(r->rb, BPF_RB_AVAIL_DATA);
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (avail >= st_cfg.wakeup_bytes && avail < st_cfg.wakeup_bytes + rec_bytes) {
		flags = BPF_RB_FORCE_WAKEUP;
		st->wakeups++;
	}
	bpf_ringbuf_submit(ev, flags);
}

/* Emit one event whose payload slice is [off, off + len) of the segment payload
 * starting at poff; cls is the constant size class (>= len) the reservation uses.
 * Returns 1 if the event was submitted. */
static __always_inline int st_emit(const int kind, const struct st_pkt *p,
				   const struct st_ring *r, struct st_stats *st,
				   const struct st_event *hdr, __u32 poff, __u32 off, __u32 len,
				   const __u32 cls)
{
	struct st_event *ev;
	__u32 n;

	ev = bpf_ringbuf_reserve(r->rb, sizeof(*ev) + cls, 0);
	if (!ev) {
		st->ringbuf_full++;
		if (r->rs)
			r->rs->ringbuf_full++;
		st->bytes_lost_ringbuf += len;
		return 0;
	}
	__builtin_memcpy(ev, hdr, sizeof(*ev));
	ev->off = off;
	ev->data_len = len;
	if (cls) {
		/* len is in [1, cls]; rebuild it so the verifier sees that range (clang
		 * would otherwise fold the checks into one it cannot follow) */
		n = len - 1;
		asm volatile("" : "+r"(n));
		n &= cls - 1;
		n += 1;
		if (st_load(kind, p, poff + off, ev->data, n) < 0) {
			bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
			st->load_errors++;
			st->bytes_lost_load += len;
			return 0;
		}
	}
	/* ring records are 8-byte aligned behind an 8-byte header */
	st_submit(r, ev, (sizeof(*ev) + cls + 8 + 7) & ~7U, st);
	st->events++;
	if (r->rs)
		r->rs->events++;
	st->bytes_captured += len;
	return 1;
}

/* Emit the segment's last slice, [off, off + len) with len in [0, ST_CHUNK_MAX], as
 * a record of exactly its size: loaded into the per-CPU scratch, then copied into the
 * ring by bpf_ringbuf_output. A reservation needs a constant size, and the gaps a
 * size class leaves behind each record cost more than this copy of a hot buffer:
 * the ring is written in order, so without gaps each new cache line is the one the
 * prefetcher already brought (deploy/bench/bpf_micro.c measures both). Returns 1 if
 * the event was submitted. */
static __always_inline int st_emit_tail(const int kind, const struct st_pkt *p,
					const struct st_ring *r, struct st_stats *st,
					const struct st_event *hdr, __u32 poff, __u32 off, __u32 len)
{
	__u64 avail, flags = BPF_RB_NO_WAKEUP;
	struct st_scratch *sc;
	struct st_event *ev;
	__u32 n = len, rec, zero = 0;

	sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!sc)
		return 0;
	ev = (struct st_event *)sc->buf;
	__builtin_memcpy(ev, hdr, sizeof(*ev));
	ev->off = off;
	ev->data_len = len;
	if (n > ST_CHUNK_MAX)
		return 0;
	asm volatile("" : "+r"(n));
	if (n > 0) {
		/* n in [1, ST_CHUNK_MAX], rebuilt so the verifier sees the range */
		n = ((n - 1) & (ST_CHUNK_MAX - 1)) + 1;
		if (st_load(kind, p, poff + off, ev->data, n) < 0) {
			st->load_errors++;
			st->bytes_lost_load += len;
			return 0;
		}
	}
	n &= (ST_CHUNK_MAX * 2 - 1);
	if (n > ST_CHUNK_MAX)
		return 0;
	/* ring records are 8-byte aligned behind an 8-byte header */
	rec = (sizeof(*ev) + n + 8 + 7) & ~7U;
	avail = bpf_ringbuf_query(r->rb, BPF_RB_AVAIL_DATA);
	if (avail >= st_cfg.wakeup_bytes && avail < st_cfg.wakeup_bytes + rec)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(r->rb, sc, sizeof(*ev) + n, flags)) {
		st->ringbuf_full++;
		if (r->rs)
			r->rs->ringbuf_full++;
		st->bytes_lost_ringbuf += len;
		return 0;
	}
	if (flags == BPF_RB_FORCE_WAKEUP)
		st->wakeups++;
	st->events++;
	if (r->rs)
		r->rs->events++;
	st->bytes_captured += len;
	return 1;
}

/* The common core: parse IPv4/IPv6 + TCP at p->l3 and emit the payload. proto is the
 * ethertype in host order. */
static __always_inline void st_handle(const int kind, const struct st_pkt *p,
				      struct st_stats *st, __u16 proto, __u32 ifindex)
{
	struct st_event hdr = {};
	struct st_ring ring;
	struct st_l3 l3 = {};
	__u32 ridx;
	struct tcphdr tcp;
	struct {
		struct iphdr ip;
		struct tcphdr tcp;
	} h4;
	__u32 doff, poff, plen, off, tail;
	__u8 flags;
	int i, ret;

	/* IPv4 without options (nearly every packet): the IP and TCP headers in one
	 * load; with options, or a packet shorter than both, one load each as for IPv6 */
	ret = -1;
	if (proto == ST_ETH_P_IP && st_load(kind, p, 0, &h4, sizeof(h4)) == 0 &&
	    h4.ip.ihl == 5) {
		ret = st_check_ipv4(p, &h4.ip, &hdr, &l3);
		if (ret < 0) {
			st->not_tcp++;
			return;
		}
		__builtin_memcpy(&tcp, &h4.tcp, sizeof(tcp));
	} else {
		if (proto == ST_ETH_P_IP)
			ret = st_parse_ipv4(kind, p, &hdr, &l3);
		else if (proto == ST_ETH_P_IPV6)
			ret = st_parse_ipv6(kind, p, &hdr, &l3);
		if (ret < 0 || st_load(kind, p, l3.l4_off, &tcp, sizeof(tcp)) < 0) {
			st->not_tcp++;
			return;
		}
	}
	doff = ((__u8 *)&tcp)[12] >> 4;
	flags = ((__u8 *)&tcp)[13];
	poff = l3.l4_off + doff * 4;
	if (doff < 5 || poff > l3.end) {
		st->not_tcp++;
		return;
	}

	hdr.sport = bpf_ntohs(tcp.source);
	hdr.dport = bpf_ntohs(tcp.dest);
	if (st_port_watched(hdr.dport))
		hdr.dir = ST_DIR_TO_SERVER;
	else if (st_port_watched(hdr.sport))
		hdr.dir = ST_DIR_FROM_SERVER;
	else {
		st->port_mismatch++;
		return;
	}
	if (!st_cfg.no_own_conns && st_is_own(&hdr)) {
		st->own_skipped++;
		return;
	}
	st->matched++;

	plen = l3.end - poff;
	/* a pure ACK makes no event: leave before the clock and the ring (most of the
	 * segments on a keep-alive connection that carry no payload) */
	if (plen == 0 && !(flags & (ST_TCP_SYN | ST_TCP_FIN | ST_TCP_RST)))
		return;

	if (st_cfg.nrings <= 1) {
		/* one worker: ring 0 directly, and its counters are the totals in st (the
		 * agent reads them so); the verifier drops whichever branch cannot run */
		ring.rb = &events;
		ring.rs = NULL;
	} else {
		ridx = st_ring_of(hdr.saddr, hdr.daddr, hdr.sport, hdr.dport, st_cfg.nrings);
		ring.rb = bpf_map_lookup_elem(&rings, &ridx);
		ring.rs = bpf_map_lookup_elem(&ring_stats, &ridx);
		if (!ring.rb || !ring.rs) {
			/* a ring the agent did not fill in: as lost as a full one */
			st->ringbuf_full++;
			return;
		}
	}

	/* test-only loss injection: the agent misses this segment, the peer gets it */
	if (st_cfg.test_skip_every && ++st->test_seen % st_cfg.test_skip_every == 0) {
		st->test_skipped++;
		return;
	}
	hdr.ts_ns = bpf_ktime_get_ns();
	hdr.seq = bpf_ntohl(tcp.seq);
	hdr.ack = bpf_ntohl(tcp.ack_seq);
	hdr.seg_len = plen;
	hdr.ifindex = ifindex;
	hdr.tcp_flags = flags;

	if (plen == 0) {
		if (st_emit_tail(kind, p, &ring, st, &hdr, poff, 0, 0))
			st->control_events++;
		return;
	}
	st->payload_segments++;
	if (plen > ST_SEG_MAX) {
		st->bytes_too_large += plen - ST_SEG_MAX;
		plen = ST_SEG_MAX;
	}

	/* full slices first (ST_CHUNK_BIG, 2 * ST_CHUNK_MAX, ST_CHUNK_MAX, each taken only
	 * while more than it is left), then one tail of 1 to ST_CHUNK_MAX bytes */
	off = 0;
	for (i = 0; i < ST_FULL_SLICES; i++) {
		__u32 rem = plen - off;

		if (rem <= ST_CHUNK_MAX)
			break;
		if (rem > ST_CHUNK_BIG) {
			st_emit(kind, p, &ring, st, &hdr, poff, off, ST_CHUNK_BIG, ST_CHUNK_BIG);
			off += ST_CHUNK_BIG;
		} else if (rem > 2 * ST_CHUNK_MAX) {
			st_emit(kind, p, &ring, st, &hdr, poff, off, 2 * ST_CHUNK_MAX,
				2 * ST_CHUNK_MAX);
			off += 2 * ST_CHUNK_MAX;
		} else {
			st_emit(kind, p, &ring, st, &hdr, poff, off, ST_CHUNK_MAX, ST_CHUNK_MAX);
			off += ST_CHUNK_MAX;
		}
	}
	tail = plen - off;
	if (tail <= ST_CHUNK_MIN)
		st_emit(kind, p, &ring, st, &hdr, poff, off, tail, ST_CHUNK_MIN);
	else
		st_emit_tail(kind, p, &ring, st, &hdr, poff, off, tail);
}

SEC("socket")
int st_capture(struct __sk_buff *skb)
{
	struct st_pkt p = { .ctx = skb, .l3 = 0, .len = skb->len };
	struct st_stats *st;
	__u32 key = 0;

	st = bpf_map_lookup_elem(&stats, &key);
	if (!st)
		return 0;
	st->packets++;

	/* lo hands every packet to the tap twice: keep the receive side only */
	if (skb->pkt_type == ST_PACKET_OUTGOING && skb->ifindex == st_cfg.lo_ifindex) {
		st->dup_skipped++;
		return 0;
	}
	st_handle(ST_CTX_SKB, &p, st, bpf_ntohs(skb->protocol), skb->ifindex);
	return 0;
}

/* The loader attaches this only to devices with a 14-byte Ethernet (or loopback)
 * header, and on lo only at ingress, so every packet is seen once. skb->protocol is
 * the ethertype past any offloaded VLAN tag, as the socket filter sees it. */
SEC("tc")
int st_tc_capture(struct __sk_buff *skb)
{
	struct st_pkt p = { .ctx = skb, .l3 = ST_ETH_HLEN };
	struct st_stats *st;
	__u32 key = 0;

	st = bpf_map_lookup_elem(&stats, &key);
	if (!st)
		return ST_TC_ACT_UNSPEC;
	st->packets++;
	if (skb->len < ST_ETH_HLEN) {
		st->not_tcp++;
		return ST_TC_ACT_UNSPEC;
	}
	p.len = skb->len - ST_ETH_HLEN;
	st_handle(ST_CTX_SKB, &p, st, bpf_ntohs(skb->protocol), skb->ifindex);
	return ST_TC_ACT_UNSPEC;
}

SEC("xdp.frags")
int st_xdp_capture(struct xdp_md *ctx)
{
	struct st_pkt p = { .ctx = ctx, .l3 = ST_ETH_HLEN };
	struct st_stats *st;
	__u32 key = 0, len;
	__be16 proto;

	st = bpf_map_lookup_elem(&stats, &key);
	if (!st)
		return ST_XDP_PASS;
	st->packets++;
	len = (__u32)bpf_xdp_get_buff_len(ctx);
	if (len < ST_ETH_HLEN || bpf_xdp_load_bytes(ctx, 12, &proto, sizeof(proto)) < 0) {
		st->not_tcp++;
		return ST_XDP_PASS;
	}
	p.len = len - ST_ETH_HLEN;
	st_handle(ST_CTX_XDP, &p, st, bpf_ntohs(proto), ctx->ingress_ifindex);
	return ST_XDP_PASS;
}
