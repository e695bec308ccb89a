/* Live capture: loads bpf/capture.bpf.c (skeleton), checks the --capture mode is
 * possible here, attaches it (socket filters here; tc/xdp in capture_hook.c), pins its
 * statistics map (pindir.c) and turns ring-buffer events into reasm_seg slices. The
 * offline (pcap) half of capture.h lives in pcap_input.c. Which mode to pick and why:
 * README, "Capture modes".
 *
 * Interfaces: -i takes one name, a comma-separated list or `all`. Socket mode opens
 * one tap per listed interface, or one unbound tap for `all` (which sees interfaces
 * created later by itself). tc/xdp with `all` attach to every interface that is up
 * (and Ethernet or loopback) at start, and follow RTNLGRP_LINK from capture_poll();
 * a listed interface is not followed: if it is deleted and re-created, restart. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "capture.skel.h"
#include "capture_hook.h"
#include "capture_iface.h"
#include "log.h"
#include "ownsock.h"
#include "percpu.h"
#include "pindir.h"

#define CAPTURE_DEF_RING	(16u << 20)
/* ST_RING_MIN takes one maximal segment's records (common/shadowtap.h): its full
 * slices of ST_CHUNK_BIG and the rest in slices of at most ST_CHUNK_MAX */
#define CAPTURE_REC(n)		((sizeof(struct st_event) + (n) + 8 + 7) & ~(size_t)7)
_Static_assert((ST_SEG_MAX / ST_CHUNK_BIG) * CAPTURE_REC(ST_CHUNK_BIG) +
		       (ST_SEG_MAX % ST_CHUNK_BIG / ST_CHUNK_MAX + 1) * CAPTURE_REC(ST_CHUNK_MAX) <=
		       ST_RING_MIN,
	       "ST_RING_MIN must hold every record of one ST_SEG_MAX segment");
#define CAPTURE_DEF_PIN_DIR	"/sys/fs/bpf/shadowtap"

_Static_assert(sizeof(struct st_stats) % sizeof(__u64) == 0,
	       "st_stats must be made of __u64 counters only");

/* One ring per worker: ring 0 is the map "events", the others are created here and
 * put in the "rings" array. Each is drained by one thread only. */
struct capture_ring {
	struct capture *c;
	struct ring_buffer *rb;
	void *ctx;                      /* cb's ctx for this ring's events */
	int fd;                         /* rings 1..: ours to close */
	uint64_t events_read;           /* written by the draining thread only */
	uint64_t events_counted;        /* of those, added to CTR_RING_EVENTS */
};

struct capture {
	struct capture_bpf *skel;
	struct capture_ring ring[ST_MAX_WORKERS];
	int nrings;
	size_t ring_bytes;		/* each ring's size */
	struct st_ring_stats *rpercpu;	/* lookup buffer for ring_stats */
	int mode;
	int socks[CAPTURE_MAX_IFACES];
	int nsocks;
	int ncpus;
	struct st_stats *percpu;	/* lookup buffer, one st_stats per possible CPU */
	struct pindir pins;
	struct capture_hooks hooks;	/* tc / xdp only */
	capture_seg_cb cb;
	void *ctx;
	struct counters own_ctr, *ctr;	/* ring counters (CTR_RING_*): cfg->ctr or own_ctr */
};

static int capture_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum st_log_level lvl = level == LIBBPF_WARN ? ST_LOG_WARN : ST_LOG_DEBUG;
	char buf[512];

	/* libbpf's info/debug lines (the relocation log, dozens of lines) only at -vv:
	 * -v is for the agent's own debug messages */
	if ((int)lvl > st_log_level || (lvl == ST_LOG_DEBUG && st_log_level < ST_LOG_DEBUG + 1))
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	st_log(lvl, "libbpf: %s", buf);
	return 0;
}

static int capture_handle_event(void *ctx, void *data, size_t data_sz)
{
	struct capture_ring *rg = ctx;
	struct capture *c = rg->c;
	const struct st_event *ev = data;
	struct reasm_seg seg;
	uint8_t flags;

	if (data_sz < sizeof(*ev) || data_sz < sizeof(*ev) + ev->data_len ||
	    (ev->family != 4 && ev->family != 6) || ev->dir > ST_DIR_FROM_SERVER ||
	    ev->off > ev->seg_len || ev->data_len > ev->seg_len - ev->off) {
		ctr_add(c->ctr, CTR_RING_BAD_EVENTS, 1);
		return 0;
	}
	/* CTR_RING_EVENTS is shared with the other threads' counters: added once per
	 * drain (capture_poll_ring), not by an atomic per event */
	rg->events_read++;

	memset(&seg, 0, sizeof(seg));
	seg.key.family = ev->family;
	seg.key.source = ev->source;
	if (ev->dir == ST_DIR_TO_SERVER) {
		memcpy(seg.key.caddr, ev->saddr, sizeof(seg.key.caddr));
		memcpy(seg.key.saddr, ev->daddr, sizeof(seg.key.saddr));
		seg.key.cport = ev->sport;
		seg.key.sport = ev->dport;
	} else {
		memcpy(seg.key.caddr, ev->daddr, sizeof(seg.key.caddr));
		memcpy(seg.key.saddr, ev->saddr, sizeof(seg.key.saddr));
		seg.key.cport = ev->dport;
		seg.key.sport = ev->sport;
	}
	/* a split segment's SYN belongs before its first byte and FIN/RST after its
	 * last, so each flag goes on one slice only */
	flags = ev->tcp_flags;
	if (ev->off != 0)
		flags &= ~ST_TCP_SYN;
	if (ev->off + ev->data_len != ev->seg_len)
		flags &= ~(ST_TCP_FIN | ST_TCP_RST);
	seg.dir = ev->dir;
	seg.flags = flags;
	seg.seq = ev->seq + ev->off;
	seg.ack = ev->ack;
	seg.ts_ns = ev->ts_ns;
	seg.data = ev->data_len ? ev->data : NULL;
	seg.len = ev->data_len;
	c->cb(rg->ctx, &seg);
	return 0;
}

/* Rings 1..N-1 go into the array next to ring 0 ("events", made by libbpf); one
 * reader per ring, so each worker drains only its own. */
static int capture_make_rings(struct capture *c)
{
	int outer = bpf_map__fd(c->skel->maps.rings), i, err;
	__u32 key;

	for (i = 0; i < c->nrings; i++) {
		int fd = bpf_map__fd(c->skel->maps.events);

		if (i > 0) {
			fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "st_ring", 0, 0,
					    (__u32)c->ring_bytes, NULL);
			if (fd < 0) {
				err = -errno;
				pr_warn("cannot create ring buffer %d of %d: %s\n", i + 1, c->nrings,
					strerror(-err));
				return err;
			}
			c->ring[i].fd = fd;
			key = (__u32)i;
			if (bpf_map_update_elem(outer, &key, &fd, BPF_ANY)) {
				err = -errno;
				pr_warn("cannot add ring buffer %d to the ring array: %s\n", i + 1,
					strerror(-err));
				return err;
			}
		}
		c->ring[i].rb = ring_buffer__new(fd, capture_handle_event, &c->ring[i], NULL);
		if (!c->ring[i].rb) {
			err = -errno ? -errno : -ENOMEM;
			pr_warn("cannot create ring buffer reader: %s\n", strerror(-err));
			return err;
		}
	}
	if (c->nrings > 1)
		pr_info("capture: %d rings of %zu bytes, one per worker\n", c->nrings, c->ring_bytes);
	return 0;
}

static int capture_has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return !!(d[cap / 32].effective & (1u << (cap % 32)));
}

/* 1 supported, 0 not, -1 unknown (the probe itself failed) */
static int capture_probe_prog(enum bpf_prog_type t)
{
	int r = libbpf_probe_bpf_prog_type(t, NULL);

	return r < 0 ? -1 : r;
}

static int capture_probe_helper(enum bpf_prog_type t, int helper)
{
	int r = libbpf_probe_bpf_helper(t, (enum bpf_func_id)helper, NULL);

	return r < 0 ? -1 : r;
}

static const char *capture_mode_name(int mode)
{
	return mode == CAPTURE_TC ? "tc" : mode == CAPTURE_XDP ? "xdp" : "socket";
}

/* Which modes this kernel and these capabilities allow; fails with one line naming
 * why the requested mode is not possible. Probes that cannot run count as "maybe":
 * the load or attach that follows then reports the precise error. */
static int capture_check_mode(int mode)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	const char *why[3] = { NULL, NULL, NULL };
	int have_caps, bpf_ok, rb, m;

	memset(d, 0, sizeof(d));
	have_caps = syscall(SYS_capget, &h, d) == 0;
	bpf_ok = !have_caps || capture_has_cap(d, CAP_SYS_ADMIN) || capture_has_cap(d, CAP_BPF);

	rb = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL);
	if (rb == 0 && bpf_ok) {
		/* libbpf reads any failure as "unsupported": if even an array map (every
		 * kernel with bpf()) is refused with EPERM despite CAP_BPF, a seccomp
		 * profile blocks bpf() (podman 4, Docker < 23) */
		int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 4, 1, NULL);

		if (fd >= 0)
			close(fd);
		else if (errno == EPERM)
			rb = -EPERM;
	}
	for (m = CAPTURE_SOCKET; m <= CAPTURE_XDP; m++) {
		if (!bpf_ok)
			why[m] = "missing capability CAP_BPF (or CAP_SYS_ADMIN)";
		else if (have_caps && !capture_has_cap(d, CAP_SYS_ADMIN) &&
			 !capture_has_cap(d, CAP_PERFMON))
			/* without it the verifier checks the program as for an unprivileged
			 * user (speculation sanitised, no pointer leaks): it is refused, with
			 * EACCES or, as the program grew, E2BIG, neither of which names it */
			why[m] = "missing capability CAP_PERFMON (or CAP_SYS_ADMIN): the "
				 "verifier refuses the capture program without it";
		else if (rb == -EPERM)
			why[m] = "bpf() fails with EPERM although CAP_BPF is present: a seccomp "
				 "profile blocks it (podman 4, Docker < 23); add --cap-add SYS_ADMIN "
				 "or a seccomp profile that allows bpf (see deploy/README.md)";
		else if (rb == 0)
			why[m] = "kernel has no BPF ring buffer (needs >= 5.8)";
	}
	if (!why[CAPTURE_SOCKET] && have_caps && !capture_has_cap(d, CAP_NET_RAW))
		why[CAPTURE_SOCKET] = "missing capability CAP_NET_RAW";
	if (!why[CAPTURE_SOCKET] && capture_probe_prog(BPF_PROG_TYPE_SOCKET_FILTER) == 0)
		why[CAPTURE_SOCKET] = "kernel cannot load socket filter programs";
	for (m = CAPTURE_TC; m <= CAPTURE_XDP; m++)
		if (!why[m] && have_caps && !capture_has_cap(d, CAP_NET_ADMIN))
			why[m] = "missing capability CAP_NET_ADMIN";
	if (!why[CAPTURE_TC] && capture_probe_prog(BPF_PROG_TYPE_SCHED_CLS) == 0)
		why[CAPTURE_TC] = "kernel cannot load tc classifier programs";
	why[CAPTURE_XDP] = why[CAPTURE_XDP] ? why[CAPTURE_XDP] : why[CAPTURE_TC];
	if (!why[CAPTURE_XDP] && capture_probe_prog(BPF_PROG_TYPE_XDP) == 0)
		why[CAPTURE_XDP] = "kernel cannot load xdp programs";
	if (!why[CAPTURE_XDP] && capture_probe_helper(BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_load_bytes) == 0)
		why[CAPTURE_XDP] = "kernel has no bpf_xdp_load_bytes (needs >= 5.18)";

	pr_debug("capture modes here: socket %s, tc %s (%s), xdp %s\n",
		 why[CAPTURE_SOCKET] ? "no" : "yes", why[CAPTURE_TC] ? "no" : "yes",
		 capture_hook_use_tcx() ? "tcx links" : "clsact filters", why[CAPTURE_XDP] ? "no" : "yes");
	if (why[mode]) {
		pr_warn("capture mode %s is not possible here: %s\n", capture_mode_name(mode),
			why[mode]);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The socket is created with protocol 0 so that it receives nothing until the filter
 * is attached; bind() then turns on ETH_P_ALL for one interface (ifindex > 0) or all
 * of them. */
static int capture_open_socket(struct capture *c, int ifindex, const char *name)
{
	struct sockaddr_ll sll;
	int prog_fd = bpf_program__fd(c->skel->progs.st_capture);
	int one = 1, fd, err;

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = ifindex;
	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		pr_warn("cannot create packet socket: %s\n", strerror(-err));
		return err;
	}
	c->socks[c->nsocks++] = fd;
	/* the filter always returns 0, so the queue stays empty: keep it minimal */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one)) < 0)
		pr_debug("cannot shrink packet socket buffer: %s\n", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd)) < 0) {
		err = -errno;
		pr_warn("cannot attach socket filter: %s\n", strerror(-err));
		return err;
	}
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		err = -errno;
		pr_warn("cannot bind packet socket to %s: %s\n", name, strerror(-err));
		return err;
	}
	return 0;
}

static int capture_attach(struct capture *c, const struct capture_cfg *cfg)
{
	struct capture_iface ifs[CAPTURE_MAX_IFACES];
	int n = 0, i, err;

	if (cfg->mode != CAPTURE_SOCKET) {
		capture_hook_init(&c->hooks, cfg->mode, cfg->xdp_generic,
				  bpf_program__fd(c->skel->progs.st_tc_capture),
				  bpf_program__fd(c->skel->progs.st_xdp_capture), c->pins.links_dir,
				  c->pins.recovered);
		if (!cfg->iface || strcmp(cfg->iface, "all") == 0) {
			err = capture_hook_follow(&c->hooks);
			if (err)
				return err;
		}
	}
	err = capture_iface_resolve(cfg->iface, cfg->mode, ifs, &n);
	if (err)
		return err;
	if (cfg->mode == CAPTURE_SOCKET) {
		if (n == 0)
			return capture_open_socket(c, 0, "all");
		for (i = 0; i < n; i++) {
			err = capture_open_socket(c, ifs[i].ifindex, ifs[i].name);
			if (err)
				return err;
		}
		return 0;
	}
	for (i = 0; i < n; i++) {
		err = capture_hook_attach_iface(&c->hooks, &ifs[i]);
		if (err)
			return err;
	}
	return 0;
}

size_t capture_ring_share(size_t total, int nrings)
{
	size_t r = total;

	while (nrings > 1 && r > total / (size_t)nrings)
		r /= 2;
	return r;
}

static int capture_configure(struct capture *c, const struct capture_cfg *cfg)
{
	struct st_bpf_cfg *bc = &c->skel->rodata->st_cfg;
	size_t ring = cfg->ring_bytes ? cfg->ring_bytes : CAPTURE_DEF_RING;
	long page = sysconf(_SC_PAGESIZE);
	int i, err;

	if (c->nrings < 1 || c->nrings > ST_MAX_WORKERS) {
		pr_warn("capture needs 1 to %d rings, got %d\n", ST_MAX_WORKERS, c->nrings);
		return -EINVAL;
	}

	if (cfg->nports < 1 || cfg->nports > ST_MAX_PORTS) {
		pr_warn("capture needs 1 to %d ports, got %d\n", ST_MAX_PORTS, cfg->nports);
		return -EINVAL;
	}
	if ((ring & (ring - 1)) != 0 || ring < ST_RING_MIN || ring < (size_t)page ||
	    ring > (1u << 30)) {
		pr_warn("ring size %zu: must be a power of two between %u and %u bytes\n",
			ring, ST_RING_MIN, 1u << 30);
		return -EINVAL;
	}
	/* --ring-size is the total: each worker's ring gets a power-of-two share of
	 * it, never below ST_RING_MIN (one that takes a whole maximal segment; the
	 * options refuse a total that would need less) nor a page, so the kernel
	 * memory stays within what was asked */
	ring = capture_ring_share(ring, c->nrings);
	if (ring < ST_RING_MIN)
		ring = ST_RING_MIN;
	if (ring < (size_t)page)
		ring = (size_t)page;
	c->ring_bytes = ring;
	bc->nrings = (uint32_t)c->nrings;
	bc->no_own_conns = cfg->no_own_conns ? 1 : 0;
	for (i = 0; i < cfg->nports; i++)
		bc->ports[i] = cfg->ports[i];
	bc->nports = (uint32_t)cfg->nports;
	bc->lo_ifindex = if_nametoindex("lo");
	bc->wakeup_bytes = cfg->wakeup_bytes ? cfg->wakeup_bytes : ring / 16;
	/* loss injection for tests only (tests/integration/test_loss.sh) */
	if (getenv("SHADOWTAP_TEST_SKIP_EVERY")) {
		bc->test_skip_every = (uint32_t)strtoul(getenv("SHADOWTAP_TEST_SKIP_EVERY"), NULL, 10);
		pr_warn("TEST ONLY: capture skips every %u-th segment (SHADOWTAP_TEST_SKIP_EVERY)\n",
			bc->test_skip_every);
	}
	/* load only what the mode attaches: socket mode keeps working on kernels that
	 * cannot load the xdp program */
	bpf_program__set_autoload(c->skel->progs.st_capture, cfg->mode == CAPTURE_SOCKET);
	bpf_program__set_autoload(c->skel->progs.st_tc_capture, cfg->mode != CAPTURE_SOCKET);
	bpf_program__set_autoload(c->skel->progs.st_xdp_capture, cfg->mode == CAPTURE_XDP);
	err = bpf_map__set_max_entries(c->skel->maps.events, (uint32_t)ring);
	/* the inner-map template's size is not checked against the rings put in it
	 * (ring buffers compare type and flags only), so the rings may be smaller */
	if (err)
		pr_warn("cannot set ring size %zu: %s\n", ring, strerror(-err));
	return err;
}

int capture_open(struct capture **out, const struct capture_cfg *cfg, capture_seg_cb cb, void *ctx)
{
	const char *pin_dir = cfg->pin_dir ? cfg->pin_dir : CAPTURE_DEF_PIN_DIR;
	struct capture *c;
	int err;

	*out = NULL;
	libbpf_set_print(capture_libbpf_print);
	if (cfg->mode < CAPTURE_SOCKET || cfg->mode > CAPTURE_XDP) {
		pr_warn("unknown capture mode %d\n", cfg->mode);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		pr_warn("capture: out of memory\n");
		return -ENOMEM;
	}
	pindir_init(&c->pins);
	c->hooks.nl_fd = -1;
	c->mode = cfg->mode;
	c->ctr = cfg->ctr ? cfg->ctr : &c->own_ctr;
	c->cb = cb;
	c->nrings = cfg->nrings > 0 ? cfg->nrings : 1;
	for (err = 0; err < ST_MAX_WORKERS; err++) {
		c->ring[err].c = c;
		c->ring[err].fd = -1;
		c->ring[err].ctx = cfg->ring_ctx && err < c->nrings ? cfg->ring_ctx[err] : ctx;
	}

	err = capture_check_mode(cfg->mode);
	if (err)
		goto cleanup;
	err = libbpf_num_possible_cpus();
	if (err < 0) {
		pr_warn("cannot count possible cpus: %s\n", strerror(-err));
		goto cleanup;
	}
	c->ncpus = err;
	c->percpu = calloc((size_t)c->ncpus, sizeof(*c->percpu));
	c->rpercpu = calloc((size_t)c->ncpus, sizeof(*c->rpercpu));
	if (!c->percpu || !c->rpercpu) {
		err = -ENOMEM;
		pr_warn("capture: out of memory\n");
		goto cleanup;
	}

	c->skel = capture_bpf__open();
	if (!c->skel) {
		err = -errno ? -errno : -EINVAL;
		pr_warn("cannot open bpf skeleton: %s\n", strerror(-err));
		goto cleanup;
	}
	err = capture_configure(c, cfg);
	if (err)
		goto cleanup;
	err = capture_bpf__load(c->skel);
	if (err) {
		pr_warn("cannot load bpf program: %s\n", strerror(-err));
		goto cleanup;
	}

	/* the replay's and Elasticsearch's connections, made before or after this;
	 * those no segment of which can match these ports need no entry */
	ownsock_watch_ports(cfg->ports, cfg->nports);
	ownsock_attach(bpf_map__fd(c->skel->maps.own_conns));

	err = pindir_ensure_bpffs();
	if (err)
		goto cleanup;
	/* every mode, socket too: before the stats pin, which would replace a running
	 * owner's (and a second agent would replay every request again) */
	err = pindir_take_owner(&c->pins, pin_dir);
	if (err)
		goto cleanup;
	err = pindir_pin_stats(&c->pins, pin_dir, c->skel->maps.stats);
	if (err)
		goto cleanup;

	err = capture_make_rings(c);
	if (err)
		goto cleanup;

	err = capture_attach(c, cfg);
	if (err)
		goto cleanup;

	*out = c;
	return 0;

cleanup:
	capture_close(c);
	return err;
}

int capture_poll(struct capture *c, int timeout_ms)
{
	int n = capture_poll_ring(c, 0, timeout_ms);

	capture_housekeeping(c);
	return n;
}

void capture_housekeeping(struct capture *c)
{
	capture_hook_poll(&c->hooks);
	ownsock_tick();
}

int capture_poll_ring(struct capture *c, int i, int timeout_ms)
{
	struct ring_buffer *rb = c->ring[i].rb;
	long total = 0;
	int n;

	/* poll only drains rings that epoll reported, and events come without
	 * wake-ups below the threshold, so always consume afterwards */
	n = ring_buffer__poll(rb, timeout_ms);
	if (n < 0 && n != -EINTR) {
		pr_warn("ring buffer poll failed: %s\n", strerror(-n));
		return n;
	}
	if (n > 0)
		total += n;
	n = ring_buffer__consume(rb);
	if (c->ring[i].events_read != c->ring[i].events_counted) {
		ctr_add(c->ctr, CTR_RING_EVENTS, c->ring[i].events_read - c->ring[i].events_counted);
		c->ring[i].events_counted = c->ring[i].events_read;
	}
	if (n < 0) {
		pr_warn("ring buffer consume failed: %s\n", strerror(-n));
		return n;
	}
	total += n;
	return total > INT_MAX ? INT_MAX : (int)total;
}

int capture_epoll_fd(struct capture *c)
{
	return ring_buffer__epoll_fd(c->ring[0].rb);
}

int capture_ring_epoll_fd(struct capture *c, int i)
{
	return ring_buffer__epoll_fd(c->ring[i].rb);
}

int capture_nrings(struct capture *c)
{
	return c->nrings;
}

int capture_rings_fd(struct capture *c)
{
	return bpf_map__fd(c->skel->maps.rings);
}

uint64_t capture_ring_events_read(struct capture *c, int i)
{
	return __atomic_load_n(&c->ring[i].events_read, __ATOMIC_RELAXED);
}

int capture_read_ring_stats(struct capture *c, int i, struct st_ring_stats *sum)
{
	__u32 key = (__u32)i;
	int cpu;

	memset(sum, 0, sizeof(*sum));
	if (c->nrings <= 1) {
		/* one ring: the program counts only the totals (bpf/capture.bpf.c) */
		struct st_stats st;
		int err = capture_read_stats(c, &st);

		if (err)
			return err;
		sum->events = st.events;
		sum->ringbuf_full = st.ringbuf_full;
		return 0;
	}
	if (bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.ring_stats), &key, c->rpercpu))
		return -errno;
	for (cpu = 0; cpu < c->ncpus; cpu++) {
		sum->events += c->rpercpu[cpu].events;
		sum->ringbuf_full += c->rpercpu[cpu].ringbuf_full;
	}
	return 0;
}

int capture_read_stats(struct capture *c, struct st_stats *sum)
{
	int err = percpu_sum(bpf_map__fd(c->skel->maps.stats), c->percpu, c->ncpus, sum,
			     sizeof(*sum));

	if (err)
		pr_warn("cannot read capture statistics: %s\n", strerror(-err));
	return err;
}

int capture_ring_fd(struct capture *c)
{
	return bpf_map__fd(c->skel->maps.events);
}

void capture_get_ustats(struct capture *c, struct capture_ustats *st)
{
	st->events = ctr_get(c->ctr, CTR_RING_EVENTS);
	st->bad_events = ctr_get(c->ctr, CTR_RING_BAD_EVENTS);
}

void capture_close(struct capture *c)
{
	int i;

	if (!c)
		return;
	for (i = 0; i < c->nsocks; i++)
		close(c->socks[i]);
	capture_hook_close(&c->hooks);
	if (c->skel && bpf_map__fd(c->skel->maps.own_conns) >= 0)
		ownsock_detach();
	for (i = 0; i < ST_MAX_WORKERS; i++) {
		ring_buffer__free(c->ring[i].rb);
		if (c->ring[i].fd >= 0)
			close(c->ring[i].fd);
	}
	pindir_close(&c->pins);
	capture_bpf__destroy(c->skel);
	free(c->percpu);
	free(c->rpercpu);
	free(c);
}
