/* Live capture: loads bpf/capture.bpf.c (skeleton), attaches it, pins its statistics
 * map and turns ring-buffer events into reasm_seg slices. The offline (pcap) half of
 * capture.h lives in pcap_input.c.
 *
 * Which --capture mode to pick. All three feed the same ring with the same events and
 * produce the same records (tests/integration/test_capture_modes.sh checks it request
 * for request); they differ in where the kernel runs the program and what that costs.
 * The program itself costs about the same everywhere (~330 ns per packet on the test
 * box, dominated by copying the payload into the ring), so the choice is about the
 * hook around it and about operations:
 * - socket (default): a socket filter on an AF_PACKET tap. Works on every interface
 *   type (tun, wireguard, ipip too) and every kernel with a BPF ring buffer, needs
 *   CAP_NET_RAW but not CAP_NET_ADMIN, attaches nothing to the interface (nothing can
 *   be left behind by a crash, nothing conflicts with other programs) and `-i all`
 *   sees interfaces created later by itself. The tap is in the path of every packet
 *   of every protocol on the interface. Pick it when in doubt.
 * - tc: a classifier on ingress and egress (tcx links on kernels >= 6.6, clsact
 *   filters before). Runs only on the chosen Ethernet/veth/loopback devices, leaves the
 *   packet untouched and returns TC_ACT_UNSPEC (TCX_NEXT), so the programs and filters
 *   after it decide as before. Pick it on busy hosts where the tap's per-packet cost
 *   shows, or where raw sockets are not allowed; it needs CAP_NET_ADMIN.
 * - xdp: XDP on ingress (native where the driver has it: veth, most 10G+ NICs), tc on
 *   egress. An interface takes one XDP program, so xdp mode refuses an interface that
 *   has one. On veth, native XDP makes the kernel copy every non-linear skb into
 *   page-pool pages and hands smaller segments up (the test saw ~40% more ingress
 *   segments than tc for the same traffic), which costs more than it saves for bulk
 *   transfers. Generic XDP (--xdp-generic, e.g. lo) copies as well and can drop a
 *   packet when that copy fails under memory pressure: use it for tests only (`-i all`
 *   includes lo, so it needs --xdp-generic). Pick xdp for ingress-heavy traffic on a
 *   NIC with native XDP and no other XDP user.
 * On the 2-core test box under other load, wrk throughput with any mode attached was
 * within the run-to-run noise (+-30%) of no capture; measure on the target host.
 *
 * On lo every packet crosses egress and then ingress of the same device: tc and xdp
 * attach there at ingress only, so each packet is captured once (socket mode skips
 * the tap's outgoing copy instead).
 *
 * Lifecycle (tc, xdp): links are pinned at PIN_DIR/links/<ifname>-{tc-ingress,
 * tc-egress,xdp}, and PIN_DIR/owner is a one-entry map holding the owner's pid and
 * start time. A second agent with the same pin dir is refused while the owner lives;
 * after a crash (SIGKILL) the next start detaches and removes the stale pins and says
 * so. Programs of another agent already attached to an interface (other pin dir,
 * other mount namespace) are refused too, found by program name. Legacy clsact
 * filters cannot be pinned: they carry a fixed handle and priority; one found at
 * start is replaced only when this start took over a crashed agent's pin dir, and
 * refused otherwise (with the tc command that removes it). SHADOWTAP_TC_LEGACY=1
 * forces clsact filters on tcx-capable kernels (for tests).
 *
 * Interfaces: -i takes one name, a comma-separated list or `all`. Socket mode opens
 * one tap per listed interface, or one unbound tap for `all` (which sees interfaces
 * created later by itself). tc/xdp with `all` attach to every interface that is up
 * (and Ethernet or loopback) at start, and follow RTNLGRP_LINK from capture_poll():
 * an interface that is created or comes up later is attached within one poll, one
 * that disappears has its pins removed. A listed interface is not followed: if it
 * is deleted and re-created, restart the agent. */
#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <limits.h>
#include <linux/capability.h>
#include <net/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "capture.skel.h"
#include "log.h"

#define CAPTURE_DEF_RING	(16u << 20)
#define CAPTURE_DEF_PIN_DIR	"/sys/fs/bpf/shadowtap"
#define CAPTURE_BPFFS		"/sys/fs/bpf"
#define CAPTURE_MAX_IFACES	64
/* ingress + egress per interface */
#define CAPTURE_MAX_ATT		(2 * CAPTURE_MAX_IFACES)

/* The installed uapi headers predate tcx (kernel 6.6); the values are ABI. */
#define CAPTURE_BPF_TCX_INGRESS	46
#define CAPTURE_BPF_TCX_EGRESS	47
#define CAPTURE_BPF_F_BEFORE	(1U << 3)
/* clsact filter identity of the legacy tc path: 'ST', and first in line */
#define CAPTURE_TC_HANDLE	0x5354
#define CAPTURE_TC_PRIO		1

_Static_assert(sizeof(struct st_stats) % sizeof(__u64) == 0,
	       "st_stats must be made of __u64 counters only");

enum capture_hook {
	CAPTURE_HOOK_TC_INGRESS,
	CAPTURE_HOOK_TC_EGRESS,
	CAPTURE_HOOK_XDP,
};

static const char *const capture_hook_names[] = {
	[CAPTURE_HOOK_TC_INGRESS] = "tc-ingress",
	[CAPTURE_HOOK_TC_EGRESS] = "tc-egress",
	[CAPTURE_HOOK_XDP] = "xdp",
};

/* One program attached to one hook of one interface. */
struct capture_att {
	int ifindex;
	char ifname[IF_NAMESIZE];
	int hook;		/* enum capture_hook */
	int link_fd;		/* tcx or xdp link; -1 for a clsact filter */
	int legacy;		/* clsact filter, detached by handle/priority */
	int qdisc_created;	/* we created the clsact qdisc: remove it at close */
	int pinned;
	char pin[PATH_MAX];
};

struct capture_iface {
	int ifindex;
	char name[IF_NAMESIZE];
	int is_lo;
};

/* Value of the PIN_DIR/owner map. */
struct capture_owner {
	__u64 pid;
	__u64 start;		/* /proc/PID/stat starttime: guards against pid reuse */
};

struct capture {
	struct capture_bpf *skel;
	struct ring_buffer *rb;
	int mode;
	int socks[CAPTURE_MAX_IFACES];
	int nsocks;
	struct capture_att att[CAPTURE_MAX_ATT];
	int natt;
	int ncpus;
	struct st_stats *percpu;	/* lookup buffer, one st_stats per possible CPU */
	char pin_dir[PATH_MAX];
	char pin_path[PATH_MAX];
	char links_dir[PATH_MAX];
	char owner_path[PATH_MAX];
	int pinned;
	int have_dir;
	int have_links_dir;
	int owner_fd;
	int owner_pinned;
	int recovered;		/* this start took over the pin dir of a crashed agent */
	int xdp_generic;
	int nl_fd;		/* RTNLGRP_LINK listener for `-i all` in tc/xdp mode, or -1 */
	capture_seg_cb cb;
	void *ctx;
	struct capture_ustats us;
};

static int capture_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum st_log_level lvl = level == LIBBPF_WARN ? ST_LOG_WARN : ST_LOG_DEBUG;
	char buf[512];

	if ((int)lvl > st_log_level)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	st_log(lvl, "libbpf: %s", buf);
	return 0;
}

static int capture_handle_event(void *ctx, void *data, size_t data_sz)
{
	struct capture *c = ctx;
	const struct st_event *ev = data;
	struct reasm_seg seg;
	uint8_t flags;

	if (data_sz < sizeof(*ev) || data_sz < sizeof(*ev) + ev->data_len ||
	    (ev->family != 4 && ev->family != 6) || ev->dir > ST_DIR_FROM_SERVER ||
	    ev->off > ev->seg_len || ev->data_len > ev->seg_len - ev->off) {
		c->us.bad_events++;
		return 0;
	}
	c->us.events++;

	memset(&seg, 0, sizeof(seg));
	seg.key.family = ev->family;
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
	seg.ts_ns = ev->ts_ns;
	seg.data = ev->data_len ? ev->data : NULL;
	seg.len = ev->data_len;
	c->cb(c->ctx, &seg);
	return 0;
}

static int capture_ensure_bpffs(void)
{
	struct statfs sfs;

	if (statfs(CAPTURE_BPFFS, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", CAPTURE_BPFFS, "bpf", 0, "mode=0700") < 0) {
		int err = -errno;

		pr_warn("cannot mount bpffs at %s: %s\n", CAPTURE_BPFFS, strerror(-err));
		return err;
	}
	pr_info("mounted bpffs at %s\n", CAPTURE_BPFFS);
	return 0;
}

static int capture_mkdir(struct capture *c, const char *dir)
{
	char stale[PATH_MAX];
	int err;

	if (snprintf(c->pin_dir, sizeof(c->pin_dir), "%s", dir) >= (int)sizeof(c->pin_dir) ||
	    snprintf(c->pin_path, sizeof(c->pin_path), "%s/stats", dir) >=
		    (int)sizeof(c->pin_path)) {
		pr_warn("pin directory %s: path too long\n", dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0700) == 0) {
		c->have_dir = 1;
		return 0;
	}
	if (errno != EEXIST) {
		err = -errno;
		pr_warn("cannot create pin directory %s: %s\n", dir, strerror(-err));
		return err;
	}
	/* An empty directory was made for us (e.g. by the systemd unit for a non-root
	 * agent): leave it at exit. One holding a crashed agent's pins is taken over,
	 * and removed at exit like one we made. */
	if (!c->have_dir) {
		snprintf(stale, sizeof(stale), "%s/owner", dir);
		c->have_dir = access(c->pin_path, F_OK) == 0 || access(stale, F_OK) == 0;
	}
	return 0;
}

static int capture_pin_stats(struct capture *c, const char *dir)
{
	int err;

	err = capture_mkdir(c, dir);
	if (err)
		return err;
	if (unlink(c->pin_path) == 0)
		pr_info("replaced stale pin %s (left by an earlier run)\n", c->pin_path);
	else if (errno != ENOENT) {
		err = -errno;
		pr_warn("cannot remove stale pin %s: %s\n", c->pin_path, strerror(-err));
		return err;
	}
	err = bpf_map__pin(c->skel->maps.stats, c->pin_path);
	if (err) {
		pr_warn("cannot pin stats map at %s: %s\n", c->pin_path, strerror(-err));
		return err;
	}
	c->pinned = 1;
	return 0;
}

/* Field 22 of /proc/PID/stat, 0 if the process does not exist. */
static __u64 capture_proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	FILE *f;
	size_t n;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: count from the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (i = 2; i < 22 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

/* Detach and unpin every link pinned in PIN_DIR/links (an earlier run's). */
static int capture_sweep_links(struct capture *c)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int fd, err = 0;

	d = opendir(c->links_dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", c->links_dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		/* detach now: dropping the last reference detaches only later, from a
		 * workqueue, and a new XDP link would meet the old one (EBUSY) */
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			if (bpf_link_detach(fd) < 0 && errno != EINVAL)
				pr_debug("cannot detach stale link %s: %s\n", path, strerror(errno));
			close(fd);
		}
		if (unlink(path) < 0) {
			err = -errno;
			pr_warn("cannot remove stale pin %s: %s\n", path, strerror(-err));
			break;
		}
		pr_info("detached and removed stale link %s (left by an earlier run)\n", path);
	}
	closedir(d);
	return err;
}

/* Makes this process the owner of the pin dir (tc/xdp), refusing while another live
 * agent owns it and clearing what a dead one left. */
static int capture_take_owner(struct capture *c)
{
	struct capture_owner o = { 0 };
	__u32 key = 0;
	int fd, err;

	if (snprintf(c->owner_path, sizeof(c->owner_path), "%s/owner", c->pin_dir) >=
		    (int)sizeof(c->owner_path) ||
	    snprintf(c->links_dir, sizeof(c->links_dir), "%s/links", c->pin_dir) >=
		    (int)sizeof(c->links_dir)) {
		pr_warn("pin directory %s: path too long\n", c->pin_dir);
		return -ENAMETOOLONG;
	}
	fd = bpf_obj_get(c->owner_path);
	if (fd >= 0) {
		err = bpf_map_lookup_elem(fd, &key, &o);
		close(fd);
		if (!err && o.pid && (pid_t)o.pid != getpid() &&
		    capture_proc_start((pid_t)o.pid) == o.start) {
			pr_warn("another shadowtap (pid %llu) owns %s and is running: stop it first or "
				"give this one another --pin-dir\n", (unsigned long long)o.pid,
				c->pin_dir);
			return -EBUSY;
		}
		pr_info("%s was left by pid %llu, which is gone: replacing its stale pins\n",
			c->pin_dir, (unsigned long long)o.pid);
		c->recovered = 1;
		if (unlink(c->owner_path) < 0 && errno != ENOENT) {
			err = -errno;
			pr_warn("cannot remove stale pin %s: %s\n", c->owner_path, strerror(-err));
			return err;
		}
	} else if (errno != ENOENT) {
		err = -errno;
		pr_warn("cannot open %s: %s\n", c->owner_path, strerror(-err));
		return err;
	}
	err = capture_sweep_links(c);
	if (err)
		return err;

	c->owner_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "st_owner", sizeof(key), sizeof(o), 1,
				     NULL);
	if (c->owner_fd < 0) {
		err = -errno;
		pr_warn("cannot create owner map: %s\n", strerror(-err));
		return err;
	}
	o.pid = (__u64)getpid();
	o.start = capture_proc_start(getpid());
	if (bpf_map_update_elem(c->owner_fd, &key, &o, BPF_ANY) < 0 ||
	    bpf_obj_pin(c->owner_fd, c->owner_path) < 0) {
		err = -errno;
		pr_warn("cannot pin owner map at %s: %s\n", c->owner_path, strerror(-err));
		return err;
	}
	c->owner_pinned = 1;
	if (mkdir(c->links_dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		pr_warn("cannot create %s: %s\n", c->links_dir, strerror(-err));
		return err;
	}
	c->have_links_dir = 1;
	return 0;
}

/* ARPHRD type and IFF_UP of an interface; negative errno if it cannot be read. */
static int capture_if_info(const char *name, int *type, int *up)
{
	struct ifreq ifr;
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		err = -errno;
		goto out;
	}
	*type = ifr.ifr_hwaddr.sa_family;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		err = -errno;
		goto out;
	}
	*up = !!(ifr.ifr_flags & IFF_UP);
out:
	close(fd);
	return err;
}

/* tc and xdp read a 14-byte MAC header in front of the IP header. */
static int capture_l2_ok(int type)
{
	return type == ARPHRD_ETHER || type == ARPHRD_LOOPBACK;
}

static int capture_add_iface(struct capture_iface *ifs, int *n, const char *name, int mode,
			     int listed)
{
	int i, type = 0, up = 0, err;
	unsigned int idx;

	idx = if_nametoindex(name);
	if (idx == 0) {
		pr_warn("interface %s: no such interface\n", name);
		return -ENODEV;
	}
	for (i = 0; i < *n; i++)
		if (ifs[i].ifindex == (int)idx)
			return 0;
	if (mode != CAPTURE_SOCKET) {
		err = capture_if_info(name, &type, &up);
		if (err) {
			pr_warn("interface %s: cannot read its link type: %s\n", name, strerror(-err));
			return err;
		}
		if (!capture_l2_ok(type)) {
			if (!listed) {
				pr_info("interface %s: link type %d has no ethernet header, skipped "
					"(socket mode covers it)\n", name, type);
				return 0;
			}
			pr_warn("interface %s: link type %d has no ethernet header, which tc/xdp "
				"capture needs: use --capture socket\n", name, type);
			return -EOPNOTSUPP;
		}
		if (!listed && !up)
			return 0;
	}
	if (*n >= CAPTURE_MAX_IFACES) {
		pr_warn("too many interfaces: at most %d\n", CAPTURE_MAX_IFACES);
		return -E2BIG;
	}
	ifs[*n].ifindex = (int)idx;
	snprintf(ifs[*n].name, sizeof(ifs[*n].name), "%s", name);
	ifs[*n].is_lo = type == ARPHRD_LOOPBACK || strcmp(name, "lo") == 0;
	(*n)++;
	return 0;
}

/* Resolves -i into interfaces. *n == 0 with "all" in socket mode means one unbound
 * tap. A listed interface that is down is kept: it may come up later. */
static int capture_resolve_ifaces(const char *spec, int mode, struct capture_iface *ifs, int *n)
{
	struct if_nameindex *all = NULL, *it;
	char *copy = NULL, *tok, *save = NULL;
	int err = 0;

	*n = 0;
	if (!spec || strcmp(spec, "all") == 0) {
		if (mode == CAPTURE_SOCKET)
			return 0;
		all = if_nameindex();
		if (!all) {
			err = -errno;
			pr_warn("cannot list interfaces: %s\n", strerror(-err));
			return err;
		}
		for (it = all; it->if_index && !err; it++)
			err = capture_add_iface(ifs, n, it->if_name, mode, 0);
		if_freenameindex(all);
		if (!err && *n == 0) {
			pr_warn("no interface is up with an ethernet or loopback header\n");
			err = -ENODEV;
		}
		return err;
	}
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && !err; tok = strtok_r(NULL, ",", &save))
		err = capture_add_iface(ifs, n, tok, mode, 1);
	if (!err && *n == 0) {
		pr_warn("interface list '%s' is empty\n", spec);
		err = -EINVAL;
	}
	free(copy);
	return err;
}

static int capture_has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return !!(d[cap / 32].effective & (1u << (cap % 32)));
}

static int capture_kernel_ge(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return 0;
	return ma > major || (ma == major && mi >= minor);
}

static int capture_use_tcx(void)
{
	const char *e = getenv("SHADOWTAP_TC_LEGACY");

	if (e && *e && strcmp(e, "0") != 0)
		return 0;
	return capture_kernel_ge(6, 6);
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
	for (m = CAPTURE_SOCKET; m <= CAPTURE_XDP; m++) {
		if (!bpf_ok)
			why[m] = "missing capability CAP_BPF (or CAP_SYS_ADMIN)";
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
		 capture_use_tcx() ? "tcx links" : "clsact filters", why[CAPTURE_XDP] ? "no" : "yes");
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

/* BPF_LINK_CREATE by hand: libbpf 1.1 knows neither tcx attach types nor XDP mode
 * flags on links. The layout is the kernel's link_create with its tcx member. */
static int capture_link_create(int prog_fd, int ifindex, __u32 attach_type, __u32 flags)
{
	struct {
		__u32 prog_fd;
		__u32 target_ifindex;
		__u32 attach_type;
		__u32 flags;
		__u32 relative_fd;
		__u32 pad;
		__u64 expected_revision;
	} attr;
	long fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = (__u32)prog_fd;
	attr.target_ifindex = (__u32)ifindex;
	attr.attach_type = attach_type;
	attr.flags = flags;
	fd = syscall(SYS_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	return fd < 0 ? -errno : (int)fd;
}

/* Name of program id, "" if it cannot be read. */
static void capture_prog_name(__u32 id, char *name, size_t size)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd;

	name[0] = '\0';
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		snprintf(name, size, "%s", info.name);
	close(fd);
}

/* Refuses a hook where a shadowtap program is attached already: another agent (pin
 * dir elsewhere, or a private bpffs in another mount namespace) captures there. Our
 * own stale links were removed by the sweep before this runs. */
static int capture_check_busy(const struct capture_iface *ifc, int hook, __u32 tcx_type)
{
	char name[BPF_OBJ_NAME_LEN];
	__u32 ids[64], cnt = 64, i, id = 0;

	if (hook == CAPTURE_HOOK_XDP) {
		if (bpf_xdp_query_id(ifc->ifindex, 0, &id) < 0 || id == 0)
			return 0;
		capture_prog_name(id, name, sizeof(name));
		if (strcmp(name, "st_xdp_capture") == 0)
			pr_warn("interface %s: another shadowtap already captures there with xdp "
				"(prog id %u): stop it first\n", ifc->name, id);
		else
			pr_warn("interface %s already has an xdp program (id %u, %s): xdp mode does "
				"not replace it; use --capture tc\n", ifc->name, id,
				name[0] ? name : "?");
		return -EBUSY;
	}
	if (!tcx_type || bpf_prog_query(ifc->ifindex, (enum bpf_attach_type)tcx_type, 0, NULL,
					ids, &cnt) < 0)
		return 0;
	for (i = 0; i < cnt && i < 64; i++) {
		capture_prog_name(ids[i], name, sizeof(name));
		if (strcmp(name, "st_tc_capture") == 0) {
			pr_warn("interface %s: another shadowtap already captures there at %s "
				"(prog id %u): stop it first\n", ifc->name, capture_hook_names[hook],
				ids[i]);
			return -EBUSY;
		}
	}
	return 0;
}

static int capture_attach_legacy_tc(struct capture *c, struct capture_att *a, int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a->ifindex);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = CAPTURE_TC_HANDLE, .priority = CAPTURE_TC_PRIO);
	int err;

	libbpf_print_fn_t prev;
	int found;

	hook.attach_point = a->hook == CAPTURE_HOOK_TC_INGRESS ? BPF_TC_INGRESS : BPF_TC_EGRESS;
	/* an existing qdisc and a missing filter are the usual case, not worth the
	 * kernel messages libbpf prints for them */
	prev = libbpf_set_print(NULL);
	err = bpf_tc_hook_create(&hook);
	found = err == 0 || err == -EEXIST ? bpf_tc_query(&hook, &opts) == 0 : 0;
	libbpf_set_print(prev);
	if (err == 0)
		a->qdisc_created = 1;
	else if (err != -EEXIST) {
		pr_warn("interface %s: cannot create clsact qdisc: %s\n", a->ifname, strerror(-err));
		return err;
	}
	/* a filter cannot be pinned, so nothing tells whose one with our handle is: it
	 * is replaced only when this start took over a crashed agent's pin dir */
	if (found) {
		if (!c->recovered) {
			pr_warn("interface %s: a shadowtap %s filter (prog id %u) is attached: another "
				"agent already captures there, or one with another --pin-dir crashed "
				"(then: tc filter del dev %s %s handle 0x%x prio %d bpf)\n", a->ifname,
				capture_hook_names[a->hook], opts.prog_id, a->ifname,
				a->hook == CAPTURE_HOOK_TC_INGRESS ? "ingress" : "egress",
				CAPTURE_TC_HANDLE, CAPTURE_TC_PRIO);
			return -EBUSY;
		}
		opts.prog_fd = 0;
		opts.prog_id = 0;
		opts.flags = 0;
		if (bpf_tc_detach(&hook, &opts) == 0)
			pr_info("interface %s: replaced stale %s filter (left by an earlier run)\n",
				a->ifname, capture_hook_names[a->hook]);
	}
	opts.prog_fd = prog_fd;
	opts.prog_id = 0;
	opts.flags = 0;
	err = bpf_tc_attach(&hook, &opts);
	if (err) {
		pr_warn("interface %s: cannot attach %s filter: %s\n", a->ifname,
			capture_hook_names[a->hook], strerror(-err));
		return err;
	}
	a->legacy = 1;
	return 0;
}

static int capture_attach_hook(struct capture *c, const struct capture_iface *ifc, int hook,
			       int xdp_generic)
{
	struct capture_att *a = &c->att[c->natt];
	int tcx = capture_use_tcx(), prog_fd, fd, err;
	__u32 type = 0;

	memset(a, 0, sizeof(*a));
	a->link_fd = -1;
	a->ifindex = ifc->ifindex;
	a->hook = hook;
	snprintf(a->ifname, sizeof(a->ifname), "%s", ifc->name);
	c->natt++;

	if (hook == CAPTURE_HOOK_TC_INGRESS)
		type = CAPTURE_BPF_TCX_INGRESS;
	else if (hook == CAPTURE_HOOK_TC_EGRESS)
		type = CAPTURE_BPF_TCX_EGRESS;
	err = capture_check_busy(ifc, hook, tcx ? type : 0);
	if (err)
		return err;

	if (hook == CAPTURE_HOOK_XDP) {
		prog_fd = bpf_program__fd(c->skel->progs.st_xdp_capture);
		fd = capture_link_create(prog_fd, ifc->ifindex, BPF_XDP, XDP_FLAGS_DRV_MODE);
		if ((fd == -EOPNOTSUPP || fd == -EINVAL) && xdp_generic) {
			pr_info("interface %s: no native xdp, using generic xdp (--xdp-generic)\n",
				ifc->name);
			fd = capture_link_create(prog_fd, ifc->ifindex, BPF_XDP, XDP_FLAGS_SKB_MODE);
		} else if (fd == -EOPNOTSUPP || fd == -EINVAL) {
			pr_warn("interface %s: driver has no native xdp: use --capture tc, or "
				"--xdp-generic (slow: copies large packets)\n", ifc->name);
			return -EOPNOTSUPP;
		}
	} else {
		prog_fd = bpf_program__fd(c->skel->progs.st_tc_capture);
		if (!tcx)
			return capture_attach_legacy_tc(c, a, prog_fd);
		/* first in line, so programs before us cannot hide packets from the capture;
		 * we return TCX_NEXT, so the ones after us still decide */
		fd = capture_link_create(prog_fd, ifc->ifindex, type, CAPTURE_BPF_F_BEFORE);
		if (fd == -EINVAL) {
			pr_info("interface %s: no tcx links here, using a clsact filter\n", ifc->name);
			return capture_attach_legacy_tc(c, a, prog_fd);
		}
	}
	if (fd < 0) {
		pr_warn("interface %s: cannot attach %s: %s\n", ifc->name, capture_hook_names[hook],
			strerror(-fd));
		return fd;
	}
	a->link_fd = fd;
	if (snprintf(a->pin, sizeof(a->pin), "%s/%s-%s", c->links_dir, ifc->name,
		     capture_hook_names[hook]) >= (int)sizeof(a->pin)) {
		pr_warn("link pin path for %s: too long\n", ifc->name);
		return -ENAMETOOLONG;
	}
	if (bpf_obj_pin(fd, a->pin) < 0) {
		err = -errno;
		pr_warn("cannot pin link at %s: %s\n", a->pin, strerror(-err));
		return err;
	}
	a->pinned = 1;
	pr_debug("attached %s on %s, pinned at %s\n", capture_hook_names[hook], ifc->name, a->pin);
	return 0;
}

static void capture_detach_one(struct capture_att *a)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a->ifindex);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = CAPTURE_TC_HANDLE, .priority = CAPTURE_TC_PRIO);

	if (a->pinned && unlink(a->pin) < 0 && errno != ENOENT)
		pr_warn("cannot remove pin %s: %s\n", a->pin, strerror(errno));
	if (a->link_fd >= 0) {
		/* synchronous, unlike the release of the last reference */
		if (bpf_link_detach(a->link_fd) < 0)
			pr_debug("cannot detach link on %s: %s\n", a->ifname, strerror(errno));
		close(a->link_fd);
	}
	if (a->legacy) {
		hook.attach_point = a->hook == CAPTURE_HOOK_TC_INGRESS ? BPF_TC_INGRESS :
									 BPF_TC_EGRESS;
		if (bpf_tc_detach(&hook, &opts) < 0)
			pr_warn("interface %s: cannot detach %s filter\n", a->ifname,
				capture_hook_names[a->hook]);
	}
	if (a->qdisc_created) {
		/* removes the whole clsact qdisc, which we added */
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
	}
}

/* On lo a packet crosses egress and then ingress of the same device: hook ingress
 * only there, so each packet is captured once. */
static int capture_attach_iface(struct capture *c, const struct capture_iface *ifc)
{
	int err;

	err = capture_attach_hook(c, ifc, c->mode == CAPTURE_XDP ? CAPTURE_HOOK_XDP :
				  CAPTURE_HOOK_TC_INGRESS, c->xdp_generic);
	if (!err && !ifc->is_lo)
		err = capture_attach_hook(c, ifc, CAPTURE_HOOK_TC_EGRESS, 0);
	return err;
}

/* Subscribed before the interfaces are listed, so none slips between the two. */
static int capture_open_netlink(struct capture *c)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int err;

	c->nl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (c->nl_fd < 0 || bind(c->nl_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		pr_warn("cannot listen for new interfaces: %s\n", strerror(-err));
		return err;
	}
	return 0;
}

static int capture_is_attached(const struct capture *c, int ifindex)
{
	int i;

	for (i = 0; i < c->natt; i++)
		if (c->att[i].ifindex == ifindex)
			return 1;
	return 0;
}

/* The kernel detaches a deleted device's links itself; drop our pins and fds. */
static void capture_forget_iface(struct capture *c, int ifindex, int gone)
{
	int i, j = 0;

	for (i = 0; i < c->natt; i++) {
		if (c->att[i].ifindex == ifindex) {
			if (gone) {
				pr_info("interface %s is gone: removed its %s pin\n",
					c->att[i].ifname, capture_hook_names[c->att[i].hook]);
				c->att[i].qdisc_created = 0;
			}
			capture_detach_one(&c->att[i]);
			continue;
		}
		if (i != j)
			c->att[j] = c->att[i];
		j++;
	}
	c->natt = j;
}

static void capture_link_event(struct capture *c, const struct nlmsghdr *nh)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(nh);
	struct capture_iface ifs[1];
	char name[IF_NAMESIZE];
	int n = 0;

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
		return;
	if (nh->nlmsg_type == RTM_DELLINK) {
		capture_forget_iface(c, ifi->ifi_index, 1);
		return;
	}
	if (nh->nlmsg_type != RTM_NEWLINK || !(ifi->ifi_flags & IFF_UP) ||
	    capture_is_attached(c, ifi->ifi_index) || !if_indextoname(ifi->ifi_index, name))
		return;
	/* not listed: skips down and non-Ethernet devices quietly */
	if (capture_add_iface(ifs, &n, name, c->mode, 0) < 0 || n == 0)
		return;
	if (c->natt + 2 > CAPTURE_MAX_ATT) {
		pr_warn("interface %s appeared, but %d hooks are attached already: not captured\n",
			name, c->natt);
		return;
	}
	if (capture_attach_iface(c, &ifs[0]) < 0) {
		pr_warn("interface %s appeared, but could not be attached: not captured\n", name);
		capture_forget_iface(c, ifs[0].ifindex, 0);
		return;
	}
	pr_info("interface %s appeared: capturing on it\n", name);
}

static void capture_poll_links(struct capture *c)
{
	char buf[8192] __attribute__((aligned(4)));
	const struct nlmsghdr *nh;
	ssize_t len;

	while ((len = recv(c->nl_fd, buf, sizeof(buf), 0)) > 0) {
		for (nh = (const struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)len);
		     nh = NLMSG_NEXT(nh, len))
			capture_link_event(c, nh);
	}
	if (len < 0 && errno == ENOBUFS)
		pr_warn("missed interface notifications (socket overrun): restart to pick up "
			"interfaces created just now\n");
}

static int capture_attach(struct capture *c, const struct capture_cfg *cfg)
{
	struct capture_iface ifs[CAPTURE_MAX_IFACES];
	int n = 0, i, err;

	if (cfg->mode != CAPTURE_SOCKET && (!cfg->iface || strcmp(cfg->iface, "all") == 0)) {
		err = capture_open_netlink(c);
		if (err)
			return err;
	}
	err = capture_resolve_ifaces(cfg->iface, cfg->mode, ifs, &n);
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
		err = capture_attach_iface(c, &ifs[i]);
		if (err)
			return err;
	}
	return 0;
}

static int capture_configure(struct capture *c, const struct capture_cfg *cfg)
{
	struct st_bpf_cfg *bc = &c->skel->rodata->st_cfg;
	size_t ring = cfg->ring_bytes ? cfg->ring_bytes : CAPTURE_DEF_RING;
	long page = sysconf(_SC_PAGESIZE);
	int i, err;

	if (cfg->nports < 1 || cfg->nports > ST_MAX_PORTS) {
		pr_warn("capture needs 1 to %d ports, got %d\n", ST_MAX_PORTS, cfg->nports);
		return -EINVAL;
	}
	if ((ring & (ring - 1)) != 0 || ring < (size_t)page || ring > (1u << 30)) {
		pr_warn("ring size %zu: must be a power of two between %ld and %u bytes\n",
			ring, page, 1u << 30);
		return -EINVAL;
	}
	for (i = 0; i < cfg->nports; i++)
		bc->ports[i] = cfg->ports[i];
	bc->nports = (uint32_t)cfg->nports;
	bc->lo_ifindex = if_nametoindex("lo");
	bc->wakeup_bytes = cfg->wakeup_bytes ? cfg->wakeup_bytes : ring / 16;
	/* load only what the mode attaches: socket mode keeps working on kernels that
	 * cannot load the xdp program */
	bpf_program__set_autoload(c->skel->progs.st_capture, cfg->mode == CAPTURE_SOCKET);
	bpf_program__set_autoload(c->skel->progs.st_tc_capture, cfg->mode != CAPTURE_SOCKET);
	bpf_program__set_autoload(c->skel->progs.st_xdp_capture, cfg->mode == CAPTURE_XDP);
	err = bpf_map__set_max_entries(c->skel->maps.events, (uint32_t)ring);
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
	c->owner_fd = -1;
	c->nl_fd = -1;
	c->mode = cfg->mode;
	c->xdp_generic = cfg->xdp_generic;
	c->cb = cb;
	c->ctx = ctx;

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
	if (!c->percpu) {
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

	err = capture_ensure_bpffs();
	if (err)
		goto cleanup;
	if (cfg->mode != CAPTURE_SOCKET) {
		/* before the stats pin, which would replace a running owner's */
		err = capture_mkdir(c, pin_dir);
		if (!err)
			err = capture_take_owner(c);
		if (err)
			goto cleanup;
	}
	err = capture_pin_stats(c, pin_dir);
	if (err)
		goto cleanup;

	c->rb = ring_buffer__new(bpf_map__fd(c->skel->maps.events), capture_handle_event, c,
				 NULL);
	if (!c->rb) {
		err = -errno ? -errno : -ENOMEM;
		pr_warn("cannot create ring buffer reader: %s\n", strerror(-err));
		goto cleanup;
	}

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
	long total = 0;
	int n;

	/* poll only drains rings that epoll reported, and events come without
	 * wake-ups below the threshold, so always consume afterwards */
	n = ring_buffer__poll(c->rb, timeout_ms);
	if (n < 0 && n != -EINTR) {
		pr_warn("ring buffer poll failed: %s\n", strerror(-n));
		return n;
	}
	if (n > 0)
		total += n;
	n = ring_buffer__consume(c->rb);
	if (n < 0) {
		pr_warn("ring buffer consume failed: %s\n", strerror(-n));
		return n;
	}
	total += n;
	if (c->nl_fd >= 0)
		capture_poll_links(c);
	return total > INT_MAX ? INT_MAX : (int)total;
}

int capture_read_stats(struct capture *c, struct st_stats *sum)
{
	const size_t nfields = sizeof(*sum) / sizeof(__u64);
	__u32 key = 0;
	int cpu, err;
	size_t f;

	memset(sum, 0, sizeof(*sum));
	err = bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.stats), &key, c->percpu);
	if (err) {
		err = -errno;
		pr_warn("cannot read capture statistics: %s\n", strerror(-err));
		return err;
	}
	for (cpu = 0; cpu < c->ncpus; cpu++) {
		const __u64 *src = (const __u64 *)&c->percpu[cpu];
		__u64 *dst = (__u64 *)sum;

		for (f = 0; f < nfields; f++)
			dst[f] += src[f];
	}
	return 0;
}

void capture_get_ustats(struct capture *c, struct capture_ustats *st)
{
	*st = c->us;
}

void capture_close(struct capture *c)
{
	int i;

	if (!c)
		return;
	for (i = 0; i < c->nsocks; i++)
		close(c->socks[i]);
	if (c->nl_fd >= 0)
		close(c->nl_fd);
	/* reverse order: an interface's egress goes before the ingress that created
	 * its clsact qdisc */
	for (i = c->natt - 1; i >= 0; i--)
		capture_detach_one(&c->att[i]);
	if (c->have_links_dir && rmdir(c->links_dir) < 0 && errno != ENOENT)
		pr_warn("cannot remove %s: %s\n", c->links_dir, strerror(errno));
	if (c->owner_pinned && unlink(c->owner_path) < 0 && errno != ENOENT)
		pr_warn("cannot remove pin %s: %s\n", c->owner_path, strerror(errno));
	if (c->owner_fd >= 0)
		close(c->owner_fd);
	ring_buffer__free(c->rb);
	if (c->pinned && unlink(c->pin_path) < 0 && errno != ENOENT)
		pr_warn("cannot remove pin %s: %s\n", c->pin_path, strerror(errno));
	/* other pins may share the directory; then it stays */
	if (c->have_dir && rmdir(c->pin_dir) < 0 && errno != ENOENT && errno != ENOTEMPTY)
		pr_warn("cannot remove pin directory %s: %s\n", c->pin_dir, strerror(errno));
	capture_bpf__destroy(c->skel);
	free(c->percpu);
	free(c);
}
