/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The kernel <-> user contract: the ring-buffer event, the per-CPU statistics and
 * the load-time configuration. Included by bpf/capture.bpf.c and the agent sources. */
#ifndef SHADOWTAP_COMMON_H
#define SHADOWTAP_COMMON_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define ST_MAX_PORTS 16

/* Largest payload slice one event carries. A GSO/GRO segment (up to ~64 KiB on lo
 * and veth) is split into ceil(len / ST_CHUNK_MAX) events; smaller slices use
 * smaller records: a slice of up to ST_CHUNK_MIN bytes is reserved in that class,
 * a longer one (the tail of a segment) is written at its exact size, so a 200-byte
 * GET costs ~330 bytes of ring and a 400-byte answer ~480, not 4 KiB. ST_CHUNK_MID
 * is the TLS program's middle class. */
#define ST_CHUNK_MAX 4096
#define ST_CHUNK_MID 1024
#define ST_CHUNK_MIN 256
/* Larger full slices of the packet program: while more than ST_CHUNK_BIG bytes are
 * left, a slice of ST_CHUNK_BIG, then one of 2 * ST_CHUNK_MAX while more than that is
 * left, then ST_CHUNK_MAX: fewer events per large segment (each costs a reservation
 * and the agent's per-event work). The tail is still at most ST_CHUNK_MAX. */
#define ST_CHUNK_BIG 16384
/* Largest payload the program walks (a bounded loop for the verifier). Bytes past
 * this in one skb are counted in bytes_too_large. */
#define ST_SEG_MAX (ST_CHUNK_MAX * 17)
/* Smallest BPF ring the agent gives a worker (--ring-size is split among the
 * workers, each share a power of two): one that takes every record of one segment of
 * ST_SEG_MAX bytes in one program run (4 slices of ST_CHUNK_BIG and one of
 * ST_CHUNK_MAX, each behind a struct st_event and the ring's 8-byte header), since
 * nothing drains the ring while the program runs. A smaller ring dropped every slice
 * of ST_CHUNK_BIG (a 16 KiB ring cannot hold one) and a 4 KiB ring every full slice;
 * agent/capture.c checks at build time that this holds those records. */
#define ST_RING_MIN (128u * 1024)

/* Where an event comes from. For ST_SRC_OPENSSL there is no TCP segment: seq is a
 * per-direction byte offset of the plaintext stream (plus a per-connection start
 * value, announced by a SYN event when the connection was seen from its start),
 * ack is 0, ifindex is 0, and SYN/FIN mark the start and end of the SSL object. */
enum st_source {
	ST_SRC_PACKET = 0,  /* socket filter, tc or xdp hook */
	ST_SRC_OPENSSL = 1, /* uprobes on SSL_read/SSL_write (bpf/tls.bpf.c) */
};

enum st_dir {
	ST_DIR_TO_SERVER = 0,   /* client -> server (requests) */
	ST_DIR_FROM_SERVER = 1, /* server -> client (responses) */
};

/* TCP flag bits as in the TCP header byte 13 */
#define ST_TCP_FIN 0x01
#define ST_TCP_SYN 0x02
#define ST_TCP_RST 0x04
#define ST_TCP_PSH 0x08
#define ST_TCP_ACK 0x10

/* One slice of one TCP segment. Addresses are in network byte order; IPv4 uses
 * the first word of saddr/daddr. Ports are in host byte order. Segments without
 * payload are sent only when they carry SYN, FIN or RST (seg_len == 0). */
struct st_event {
	__u64 ts_ns;      /* bpf_ktime_get_ns() when the program ran */
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u32 seq;        /* sequence number of the segment's first payload byte */
	__u32 ack;
	__u32 seg_len;    /* payload length of the whole segment */
	__u32 off;        /* offset of data[0] within the segment's payload */
	__u32 ifindex;
	__u16 data_len;   /* payload bytes in data[] */
	__u8 family;      /* 4 or 6 */
	__u8 tcp_flags;
	__u8 dir;         /* enum st_dir */
	__u8 source;      /* enum st_source: which hook made the event */
	__u8 pad[2];
	__u8 data[];
};

/* Per-CPU statistics, one element of a BTF-typed PERCPU_ARRAY. Sum over CPUs. */
struct st_stats {
	__u64 packets;            /* packets the filter ran on */
	__u64 dup_skipped;        /* second copy of a packet on lo (outgoing side) */
	__u64 not_tcp;            /* not IPv4/IPv6 TCP, or a non-first IP fragment */
	__u64 port_mismatch;      /* TCP, but no watched port */
	__u64 matched;            /* TCP segments on a watched port */
	__u64 control_events;     /* SYN/FIN/RST events without payload */
	__u64 payload_segments;   /* matched segments carrying payload */
	__u64 events;             /* events submitted to the ring */
	__u64 bytes_captured;     /* payload bytes submitted */
	__u64 ringbuf_full;       /* events lost because the ring was full */
	__u64 bytes_lost_ringbuf; /* payload bytes in those events */
	__u64 bytes_too_large;    /* payload bytes past ST_SEG_MAX in one segment */
	__u64 load_errors;        /* bpf_skb_load_bytes failures (event dropped) */
	__u64 bytes_lost_load;
	__u64 wakeups;            /* forced consumer wake-ups */
	__u64 test_seen;          /* test only (test_skip_every): segments counted for skipping */
	__u64 test_skipped;       /* test only: segments deliberately not captured */
	__u64 own_skipped;        /* segments of the agent's own connections (own_conns) */
};

/* The agent's own TCP connections (replay to serverB, Elasticsearch) are keys of the
 * own_conns hash map; their segments are never captured, in any mode, or a replay to
 * a captured port would be captured and replayed again without end. The agent is the
 * client of each, so the key is the peer's address and port and the agent's local
 * port: all three are known before the SYN (the agent binds port 0 before connect),
 * which the local address is not. A packet is looked up once its direction is known:
 * to a watched port, the agent's peer is the destination. The value is a reference
 * count kept by the agent (agent/ownsock.c); the program only tests presence. */
#define ST_OWN_MAX 8192
struct st_own_key {
	__u32 raddr[4];   /* the agent's peer, network byte order; IPv4 in raddr[0] */
	__u16 rport;      /* the peer's port, host byte order */
	__u16 lport;      /* the agent's local port, host byte order */
	__u8 family;      /* 4 or 6 */
	__u8 pad[3];
};

/* --workers: one ring buffer per worker, the inner maps of the ARRAY_OF_MAPS
 * "rings" (ring 0 is the map "events"). The program picks a ring from a symmetric
 * hash of the connection's addresses and ports (st_ring_of), so both directions of a
 * connection, and a TLS connection's plaintext, reach the same worker. */
#define ST_MAX_WORKERS 64

/* Per-ring counters, one element per ring of the BTF-typed PERCPU_ARRAY ring_stats. */
struct st_ring_stats {
	__u64 events;             /* events submitted to this ring */
	__u64 ringbuf_full;       /* events lost because this ring was full */
};

/* The ring of a connection: a hash that does not change when source and destination
 * swap (XOR of both ends), then a full-avalanche mix so nearby ports spread. */
static inline __u32 st_ring_of(const __u32 *saddr, const __u32 *daddr, __u16 sport,
				__u16 dport, __u32 nrings)
{
	__u32 h;

	if (nrings <= 1)
		return 0;
	h = (saddr[0] ^ daddr[0]) ^ (saddr[1] ^ daddr[1]) ^ (saddr[2] ^ daddr[2]) ^
	    (saddr[3] ^ daddr[3]);
	h = h * 0x9e3779b1u + (__u32)(sport ^ dport);
	h ^= h >> 16;
	h *= 0x7feb352du;
	h ^= h >> 15;
	h *= 0x846ca68bu;
	h ^= h >> 16;
	return h % nrings;
}

/* Values for .rodata (const volatile in the program). */
struct st_bpf_cfg {
	__u16 ports[ST_MAX_PORTS];
	__u32 nports;
	__u32 lo_ifindex;      /* on this ifindex, skip PACKET_OUTGOING copies */
	__u64 wakeup_bytes;    /* force a wake-up when this much data is pending */
	/* TEST ONLY, 0 = off: skip every Nth segment that would make an event (payload or
	 * SYN/FIN/RST), per CPU, as a full ring or busy queue would: the agent misses a
	 * packet the server still gets. Set from SHADOWTAP_TEST_SKIP_EVERY (loss tests). */
	__u32 test_skip_every;
	__u32 nrings;          /* rings in use (--workers); 0 or 1: ring 0 only */
	__u32 no_own_conns;    /* 1: the agent opens no connections (no replay, no
				* Elasticsearch), so own_conns stays empty: not looked up */
};

/* TLS plaintext source (bpf/tls.bpf.c): per-CPU statistics, one element of a
 * BTF-typed PERCPU_ARRAY named tls_stats. Sum over CPUs. */
struct st_tls_stats {
	__u64 calls;              /* SSL_read/SSL_write(_ex) calls that returned data */
	__u64 events;             /* events submitted to the ring (data, SYN, FIN) */
	__u64 bytes;              /* plaintext bytes submitted */
	__u64 conns;              /* SSL objects tied to a connection on a TLS port */
	__u64 conns_other;        /* SSL objects on other ports or non-TCP fds (ignored) */
	__u64 fd_from_set_fd;     /* SSL -> fd learnt from SSL_set_fd/rfd/wfd */
	__u64 fd_from_syscall;    /* SSL -> fd learnt from a syscall inside an SSL call */
	__u64 unmapped_calls;     /* calls on an SSL object with no known connection */
	__u64 unmapped_bytes;     /* their bytes (not delivered: no connection to put them on) */
	__u64 ringbuf_full;       /* events lost because the ring was full */
	__u64 bytes_lost_ringbuf; /* their bytes (gaps in the stream) */
	__u64 bytes_too_large;    /* bytes past ST_TLS_CALL_MAX in one call (gaps) */
	__u64 read_errors;        /* bpf_probe_read_user failures (event dropped) */
	__u64 bytes_lost_read;    /* their bytes (gaps) */
	__u64 frees;              /* SSL_free on a tracked SSL object */
	__u64 nested;             /* SSL call while the thread's previous one had not
				   * returned (its data, if any, is not emitted) */
	__u64 wakeups;            /* forced consumer wake-ups */
	__u64 test_seen;          /* test only (test_skip_every): segments counted for skipping */
	__u64 test_skipped;       /* test only: segments deliberately not captured */
};

/* Most plaintext one SSL call copies (a bounded bpf_loop); the rest is a gap. */
#define ST_TLS_CALL_MAX (ST_CHUNK_MAX * 256)

/* Values for the TLS program's .rodata. */
struct st_tls_cfg {
	__u16 ports[ST_MAX_PORTS]; /* server (local) ports whose plaintext is emitted */
	__u32 nports;
	__u32 nrings;              /* as st_bpf_cfg.nrings: the capture's rings, shared */
	__u64 wakeup_bytes;
};

#endif
