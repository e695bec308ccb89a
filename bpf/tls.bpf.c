// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TLS plaintext from the server's OpenSSL, with no key and no OpenSSL struct offsets:
 * - uprobes/uretprobes on SSL_read, SSL_read_ex, SSL_write, SSL_write_ex copy the
 *   plaintext the call returned (read) or accepted (write) into the ring, as struct
 *   st_event with source ST_SRC_OPENSSL and seq = a per-direction byte offset;
 * - the SSL object is tied to its socket through an fd: SSL_set_fd/rfd/wfd for
 *   connections set up after the agent started, or the read/write/recvfrom/sendto
 *   syscall a thread makes while inside an SSL call (raw tracepoint sys_enter, keyed
 *   by thread) for older ones;
 * - the fd becomes the 4-tuple in the kernel (task->files->fdt->fd[fd]->private_data
 *   is the struct socket, ->sk the sock) with CO-RE reads, and the result is kept per
 *   SSL object in an LRU map, since an SSL_read served from OpenSSL's own buffer
 *   makes no syscall at all;
 * - SSL_free ends the connection (FIN events) and forgets the object.
 * Only sockets whose local port is a TLS port are emitted, so the same uprobes on a
 * shared libssl ignore every client (curl, the agent's own replay) on the host.
 * Directions are the server's: SSL_read = client -> server. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "shadowtap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TLS_AF_INET	2
#define TLS_AF_INET6	10
#define TLS_IPPROTO_TCP	6
#define TLS_SOCK_STREAM	1
#define TLS_S_IFMT	00170000
#define TLS_S_IFSOCK	0140000

/* syscalls whose first argument is the fd OpenSSL's socket BIO reads or writes */
#if defined(__TARGET_ARCH_x86)
#define TLS_NR_READ	0
#define TLS_NR_WRITE	1
#define TLS_NR_READV	19
#define TLS_NR_WRITEV	20
#define TLS_NR_SENDTO	44
#define TLS_NR_RECVFROM	45
#define TLS_NR_SENDMSG	46
#define TLS_NR_RECVMSG	47
#elif defined(__TARGET_ARCH_arm64)
#define TLS_NR_READ	63
#define TLS_NR_WRITE	64
#define TLS_NR_READV	65
#define TLS_NR_WRITEV	66
#define TLS_NR_SENDTO	206
#define TLS_NR_RECVFROM	207
#define TLS_NR_SENDMSG	211
#define TLS_NR_RECVMSG	212
#else
#error "tls.bpf.c: syscall numbers for this architecture are missing"
#endif

enum tls_kind {
	TLS_K_READ = 1,
	TLS_K_READ_EX,
	TLS_K_WRITE,
	TLS_K_WRITE_EX,
};

const volatile struct st_tls_cfg tls_cfg = {};

/* Replaced by the packet capture's ring (bpf_map__reuse_fd) when both run, so the
 * agent drains one ring; sized by the loader otherwise. */
struct tls_ringbuf {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
};
struct tls_ringbuf events SEC(".maps");

/* --workers: the capture's rings (bpf_map__reuse_fd too); a connection's events go to
 * the ring its packets go to (st_ring_of over the same addresses and ports). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, ST_MAX_WORKERS);
	__type(key, __u32);
	__array(values, struct tls_ringbuf);
} rings SEC(".maps") = {
	.values = { [0] = &events },
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_tls_stats);
} tls_stats SEC(".maps");

/* One SSL call in flight on a thread, from the entry probe to the return probe. */
struct tls_call {
	__u64 ssl;
	__u64 buf;
	__u64 nbytes_ptr;	/* SSL_*_ex: where the byte count is written */
	__s32 fd;		/* fd of a syscall made inside the call, or -1 */
	__u32 kind;		/* enum tls_kind */
};

/* LRU: a thread that dies inside an SSL call never reaches the return probe */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);	/* pid_tgid */
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/* SSL pointers are per process */
struct tls_ssl_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

struct tls_conn {
	__u32 isn;		/* seq of the byte before offset 0 */
	__u32 off[2];		/* next byte offset per direction */
	__u8 emit;		/* a TCP socket on a TLS port */
	__u8 pad[3];
	struct st_event hdr;	/* addresses/ports as seen client -> server; last:
				 * its data[] is empty here */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_ssl_key);
	__type(value, struct tls_conn);
} tls_conns SEC(".maps");

/* Too big for the 512-byte stack with the other locals */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tls_conn);
} tls_scratch SEC(".maps");

static __always_inline struct st_tls_stats *tls_st(void)
{
	__u32 key = 0;

	return bpf_map_lookup_elem(&tls_stats, &key);
}

static __always_inline int tls_port_watched(__u16 port)
{
	int i;

	for (i = 0; i < ST_MAX_PORTS; i++) {
		if (i >= tls_cfg.nports)
			break;
		if (tls_cfg.ports[i] == port)
			return 1;
	}
	return 0;
}

/* The ring of the connection, or NULL (counted as a full ring by the caller). */
static __always_inline void *tls_ring(const struct tls_conn *c)
{
	__u32 i = st_ring_of(c->hdr.saddr, c->hdr.daddr, c->hdr.sport, c->hdr.dport,
			     tls_cfg.nrings);

	return bpf_map_lookup_elem(&rings, &i);
}

static __always_inline void tls_submit(void *rb, void *ev, __u32 rec_bytes,
				       struct st_tls_stats *st)
{
	__u64 avail = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (avail >= tls_cfg.wakeup_bytes && avail < tls_cfg.wakeup_bytes + rec_bytes) {
		flags = BPF_RB_FORCE_WAKEUP;
		st->wakeups++;
	}
	bpf_ringbuf_submit(ev, flags);
}

/* A payload-less event (SYN at the start, FIN at the end) for one direction. */
static __always_inline void tls_emit_ctl(const struct tls_conn *c, int dir, __u8 flags,
					 struct st_tls_stats *st)
{
	struct st_event *ev;
	void *rb = tls_ring(c);

	ev = rb ? bpf_ringbuf_reserve(rb, sizeof(*ev), 0) : NULL;
	if (!ev) {
		st->ringbuf_full++;
		return;
	}
	__builtin_memcpy(ev, &c->hdr, sizeof(*ev));
	ev->ts_ns = bpf_ktime_get_ns();
	ev->dir = dir;
	ev->tcp_flags = flags;
	if (dir == ST_DIR_FROM_SERVER) {
		__builtin_memcpy(ev->saddr, c->hdr.daddr, sizeof(ev->saddr));
		__builtin_memcpy(ev->daddr, c->hdr.saddr, sizeof(ev->daddr));
		ev->sport = c->hdr.dport;
		ev->dport = c->hdr.sport;
	}
	/* a SYN carries the start value; a FIN sits after the last byte */
	ev->seq = (flags & ST_TCP_SYN) ? c->isn : c->isn + 1 + c->off[dir & 1];
	/* as TCP would: everything the other direction sent so far has arrived
	 * (reassembly turns unseen bytes below an ACK into a gap at once) */
	ev->ack = c->isn + 1 + c->off[!dir];
	tls_submit(rb, ev, (sizeof(*ev) + 8 + 7) & ~7U, st);
	st->events++;
}

/* fd of the current task -> the connection, with CO-RE reads only. Fills c and
 * returns 0 for a TCP socket (c->emit set if its local port is a TLS port), or -1. */
static __always_inline int tls_fd_to_conn(int fd, struct tls_conn *c)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds;
	struct file *file;
	struct socket *sock;
	struct sock *sk;
	unsigned int max_fds;
	umode_t mode;
	__u16 family, proto, lport, rport;
	short type;

	if (fd < 0)
		return -1;
	max_fds = BPF_CORE_READ(task, files, fdt, max_fds);
	if ((unsigned int)fd >= max_fds)
		return -1;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) < 0 || !file)
		return -1;
	/* private_data is a struct socket only for socket inodes */
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & TLS_S_IFMT) != TLS_S_IFSOCK)
		return -1;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return -1;
	type = BPF_CORE_READ(sock, type);
	sk = BPF_CORE_READ(sock, sk);
	if (type != TLS_SOCK_STREAM || !sk)
		return -1;
	proto = BPF_CORE_READ(sk, sk_protocol);
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (proto != TLS_IPPROTO_TCP)
		return -1;
	lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));

	__builtin_memset(&c->hdr, 0, sizeof(c->hdr));
	if (family == TLS_AF_INET) {
		c->hdr.family = 4;
		c->hdr.saddr[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		c->hdr.daddr[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	} else if (family == TLS_AF_INET6) {
		BPF_CORE_READ_INTO(&c->hdr.saddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
		BPF_CORE_READ_INTO(&c->hdr.daddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
		/* a v4 client on a dual-stack socket: ::ffff:a.b.c.d, as the packet
		 * hooks would see it */
		if (c->hdr.saddr[0] == 0 && c->hdr.saddr[1] == 0 &&
		    c->hdr.saddr[2] == bpf_htonl(0xffff) && c->hdr.daddr[0] == 0 &&
		    c->hdr.daddr[1] == 0 && c->hdr.daddr[2] == bpf_htonl(0xffff)) {
			c->hdr.family = 4;
			c->hdr.saddr[0] = c->hdr.saddr[3];
			c->hdr.daddr[0] = c->hdr.daddr[3];
			c->hdr.saddr[2] = c->hdr.saddr[3] = 0;
			c->hdr.daddr[2] = c->hdr.daddr[3] = 0;
		} else {
			c->hdr.family = 6;
		}
	} else {
		return -1;
	}
	c->hdr.sport = rport;
	c->hdr.dport = lport;
	c->hdr.dir = ST_DIR_TO_SERVER;
	c->hdr.source = ST_SRC_OPENSSL;
	c->off[0] = c->off[1] = 0;
	c->emit = tls_port_watched(lport);
	/* any start value works; a new one per connection lets a reused 4-tuple
	 * replace the old flow in reassembly, as a new ISN does */
	c->isn = (__u32)bpf_ktime_get_ns();
	return 0;
}

/* Tie ssl to fd. fresh: the connection is seen from its start (SSL_set_fd), so
 * announce it with SYNs; otherwise the stream is picked up mid-way. */
static __always_inline struct tls_conn *tls_map_fd(__u64 ssl, int fd, int fresh,
						    struct st_tls_stats *st)
{
	struct tls_ssl_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = ssl };
	struct tls_conn *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&tls_scratch, &zero);
	if (!c || tls_fd_to_conn(fd, c) < 0)
		return NULL;
	if (bpf_map_update_elem(&tls_conns, &key, c, BPF_ANY) < 0)
		return NULL;
	if (c->emit) {
		st->conns++;
		if (fresh) {
			tls_emit_ctl(c, ST_DIR_TO_SERVER, ST_TCP_SYN, st);
			tls_emit_ctl(c, ST_DIR_FROM_SERVER, ST_TCP_SYN | ST_TCP_ACK, st);
		}
	} else {
		st->conns_other++;
	}
	return bpf_map_lookup_elem(&tls_conns, &key);
}

static __always_inline int tls_set_fd(struct pt_regs *ctx)
{
	struct tls_ssl_key key = { .tgid = bpf_get_current_pid_tgid() >> 32 };
	struct st_tls_stats *st = tls_st();
	struct tls_conn *old;
	__u64 ssl = PT_REGS_PARM1(ctx);
	int fd = (int)PT_REGS_PARM2(ctx);

	if (!st)
		return 0;
	/* SSL_set_rfd and SSL_set_wfd on the same socket: keep the running offsets */
	key.ssl = ssl;
	old = bpf_map_lookup_elem(&tls_conns, &key);
	if (old && (old->off[0] || old->off[1]))
		return 0;
	if (tls_map_fd(ssl, fd, 1, st))
		st->fd_from_set_fd++;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tls_set_fd_ent)
{
	return tls_set_fd(ctx);
}

SEC("uprobe")
int BPF_KPROBE(tls_set_rfd_ent)
{
	return tls_set_fd(ctx);
}

SEC("uprobe")
int BPF_KPROBE(tls_set_wfd_ent)
{
	return tls_set_fd(ctx);
}

SEC("uprobe")
int BPF_KPROBE(tls_free_ent)
{
	struct tls_ssl_key key = { .tgid = bpf_get_current_pid_tgid() >> 32 };
	struct st_tls_stats *st = tls_st();
	struct tls_conn *c;

	if (!st)
		return 0;
	key.ssl = PT_REGS_PARM1(ctx);
	c = bpf_map_lookup_elem(&tls_conns, &key);
	if (!c)
		return 0;
	if (c->emit) {
		tls_emit_ctl(c, ST_DIR_TO_SERVER, ST_TCP_FIN | ST_TCP_ACK, st);
		tls_emit_ctl(c, ST_DIR_FROM_SERVER, ST_TCP_FIN | ST_TCP_ACK, st);
		st->frees++;
	}
	bpf_map_delete_elem(&tls_conns, &key);
	return 0;
}

static __always_inline int tls_enter(struct pt_regs *ctx, __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call call = {
		.ssl = PT_REGS_PARM1(ctx),
		.buf = PT_REGS_PARM2(ctx),
		.fd = -1,
		.kind = kind,
	};
	struct st_tls_stats *st;

	if (kind == TLS_K_READ_EX || kind == TLS_K_WRITE_EX)
		call.nbytes_ptr = PT_REGS_PARM4(ctx);
	/* OpenSSL's four calls do not nest, so a slot still held is left over from a
	 * call whose return was never seen (or a reused thread id): replace it, or its
	 * stale buffer would be read at this call's return */
	if (bpf_map_lookup_elem(&tls_calls, &id)) {
		st = tls_st();
		if (st)
			st->nested++;
	}
	bpf_map_update_elem(&tls_calls, &id, &call, BPF_ANY);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tls_read_ent)
{
	return tls_enter(ctx, TLS_K_READ);
}

SEC("uprobe")
int BPF_KPROBE(tls_read_ex_ent)
{
	return tls_enter(ctx, TLS_K_READ_EX);
}

SEC("uprobe")
int BPF_KPROBE(tls_write_ent)
{
	return tls_enter(ctx, TLS_K_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(tls_write_ex_ent)
{
	return tls_enter(ctx, TLS_K_WRITE_EX);
}

/* The thread is inside an SSL call and touches an fd: that is the SSL object's
 * socket (OpenSSL's socket BIO reads and writes it directly). */
SEC("raw_tracepoint/sys_enter")
int tls_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	long nr = (long)ctx->args[1];
	struct pt_regs *regs;
	struct tls_call *call;
	__u64 id;

	if (nr != TLS_NR_READ && nr != TLS_NR_WRITE && nr != TLS_NR_RECVFROM &&
	    nr != TLS_NR_SENDTO && nr != TLS_NR_READV && nr != TLS_NR_WRITEV &&
	    nr != TLS_NR_RECVMSG && nr != TLS_NR_SENDMSG)
		return 0;
	id = bpf_get_current_pid_tgid();
	call = bpf_map_lookup_elem(&tls_calls, &id);
	if (!call || call->fd >= 0)
		return 0;
	regs = (struct pt_regs *)ctx->args[0];
	call->fd = (int)PT_REGS_PARM1_CORE_SYSCALL(regs);
	return 0;
}

struct tls_copy {
	struct tls_conn *c;
	struct st_tls_stats *st;
	__u64 buf;
	__u32 len;
	__u32 off;		/* bytes of this call handled so far */
	__u32 seq;		/* seq of buf[0] */
	__u8 dir;
};

/* Emit [off, off + len) of the call's buffer in a reservation of constant size cls. */
static __always_inline void tls_emit_data(struct tls_copy *cp, __u32 len, const __u32 cls)
{
	struct st_event *ev;
	void *rb = tls_ring(cp->c);
	__u32 n;

	ev = rb ? bpf_ringbuf_reserve(rb, sizeof(*ev) + cls, 0) : NULL;
	if (!ev) {
		cp->st->ringbuf_full++;
		cp->st->bytes_lost_ringbuf += len;
		return;
	}
	__builtin_memcpy(ev, &cp->c->hdr, sizeof(*ev));
	if (cp->dir == ST_DIR_FROM_SERVER) {
		__builtin_memcpy(ev->saddr, cp->c->hdr.daddr, sizeof(ev->saddr));
		__builtin_memcpy(ev->daddr, cp->c->hdr.saddr, sizeof(ev->daddr));
		ev->sport = cp->c->hdr.dport;
		ev->dport = cp->c->hdr.sport;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->dir = cp->dir;
	ev->tcp_flags = ST_TCP_ACK | ST_TCP_PSH;
	ev->seq = cp->seq + cp->off;
	ev->ack = cp->c->isn + 1 + cp->c->off[!cp->dir];
	ev->seg_len = len;
	ev->off = 0;
	ev->data_len = len;
	/* len is in [1, cls]; rebuilt so the verifier sees the range */
	n = len - 1;
	asm volatile("" : "+r"(n));
	n &= cls - 1;
	n += 1;
	if (bpf_probe_read_user(ev->data, n, (const void *)(cp->buf + cp->off)) < 0) {
		bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
		cp->st->read_errors++;
		cp->st->bytes_lost_read += len;
		return;
	}
	tls_submit(rb, ev, (sizeof(*ev) + cls + 8 + 7) & ~7U, cp->st);
	cp->st->events++;
	cp->st->bytes += len;
}

static long tls_copy_step(__u32 i, void *arg)
{
	struct tls_copy *cp = arg;
	__u32 left;

	if (cp->off >= cp->len)
		return 1;
	left = cp->len - cp->off;
	if (left >= ST_CHUNK_MAX) {
		tls_emit_data(cp, ST_CHUNK_MAX, ST_CHUNK_MAX);
		cp->off += ST_CHUNK_MAX;
		return 0;
	}
	if (left <= ST_CHUNK_MIN)
		tls_emit_data(cp, left, ST_CHUNK_MIN);
	else if (left <= ST_CHUNK_MID)
		tls_emit_data(cp, left, ST_CHUNK_MID);
	else
		tls_emit_data(cp, left, ST_CHUNK_MAX);
	cp->off = cp->len;
	return 1;
}

/* One return program for the four calls (attached to each): the kind the entry probe
 * stored says how the byte count comes back (the return value, or *nbytes for the
 * _ex calls) and which direction it is. The calls do not nest, so the slot of this
 * thread belongs to the call that is returning. */
SEC("uretprobe")
int BPF_KRETPROBE(tls_rw_ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_ssl_key key = { .tgid = id >> 32 };
	struct st_tls_stats *st;
	struct tls_call *call;
	struct tls_conn *c;
	struct tls_copy cp = {};
	/* every one of these returns an int: the upper half of the register is junk
	 * (a -1 would read as 4 GiB) */
	int ret = (int)PT_REGS_RC(ctx);
	__u64 n = 0;
	__u32 kind;
	int dir;

	call = bpf_map_lookup_elem(&tls_calls, &id);
	if (!call)
		return 0;
	kind = call->kind;
	st = tls_st();
	if (!st)
		goto out;
	if (kind == TLS_K_READ || kind == TLS_K_WRITE) {
		if (ret > 0)
			n = ret;
	} else if (ret == 1 && call->nbytes_ptr) {
		if (bpf_probe_read_user(&n, sizeof(n), (const void *)call->nbytes_ptr) < 0)
			n = 0;
	}
	key.ssl = call->ssl;
	c = bpf_map_lookup_elem(&tls_conns, &key);
	if (!c && call->fd >= 0) {
		c = tls_map_fd(call->ssl, call->fd, 0, st);
		if (c)
			st->fd_from_syscall++;
	}
	if (!n)
		goto out;
	st->calls++;
	if (!c) {
		st->unmapped_calls++;
		st->unmapped_bytes += n;
		goto out;
	}
	if (!c->emit)
		goto out;

	dir = (kind == TLS_K_READ || kind == TLS_K_READ_EX) ? ST_DIR_TO_SERVER : ST_DIR_FROM_SERVER;
	cp.c = c;
	cp.st = st;
	cp.buf = call->buf;
	cp.dir = dir;
	cp.seq = c->isn + 1 + c->off[dir];
	cp.len = n > ST_TLS_CALL_MAX ? ST_TLS_CALL_MAX : n;
	/* the offset moves by every byte, copied or not: what is missing becomes a
	 * hole, then a counted gap, in reassembly */
	c->off[dir] += (__u32)n;
	if (n > ST_TLS_CALL_MAX)
		st->bytes_too_large += n - ST_TLS_CALL_MAX;
	bpf_loop(ST_TLS_CALL_MAX / ST_CHUNK_MAX + 1, tls_copy_step, &cp, 0);
out:
	bpf_map_delete_elem(&tls_calls, &id);
	return 0;
}
