/* tc / xdp attachments of the capture programs; see capture_hook.h.
 *
 * tcx links (kernel >= 6.6) or xdp links are pinned so that a crashed agent's can be
 * found and removed by the next start (pindir.c). Legacy clsact filters cannot be
 * pinned: they carry a fixed handle and priority; one found at start is replaced only
 * when this start took over a crashed agent's pin dir. SHADOWTAP_TC_LEGACY=1 forces
 * clsact filters on tcx-capable kernels (for tests). A hook where another agent's
 * program is attached is refused. For `-i all`, RTNLGRP_LINK events attach interfaces
 * that come up later and drop the pins of vanished ones.
 *
 * On lo every packet crosses egress and then ingress of the same device: tc and xdp
 * attach there at ingress only, so each packet is captured once. */
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "capture_hook.h"
#include "log.h"

/* The installed uapi headers predate tcx (kernel 6.6); the values are ABI. */
#define CAPTURE_BPF_TCX_INGRESS	46
#define CAPTURE_BPF_TCX_EGRESS	47
#define CAPTURE_BPF_F_BEFORE	(1U << 3)
/* clsact filter identity of the legacy tc path: 'ST', and first in line */
#define CAPTURE_TC_HANDLE	0x5354
#define CAPTURE_TC_PRIO		1

static const char *const capture_hook_names[] = {
	[CAPTURE_HOOK_TC_INGRESS] = "tc-ingress",
	[CAPTURE_HOOK_TC_EGRESS] = "tc-egress",
	[CAPTURE_HOOK_XDP] = "xdp",
};

void capture_hook_init(struct capture_hooks *h, int mode, int xdp_generic, int tc_prog_fd,
		       int xdp_prog_fd, const char *links_dir, int recovered)
{
	h->mode = mode;
	h->xdp_generic = xdp_generic;
	h->tc_prog_fd = tc_prog_fd;
	h->xdp_prog_fd = xdp_prog_fd;
	h->links_dir = links_dir;
	h->recovered = recovered;
	h->natt = 0;
	h->nl_fd = -1;
}

static int capture_kernel_ge(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return 0;
	return ma > major || (ma == major && mi >= minor);
}

int capture_hook_use_tcx(void)
{
	const char *e = getenv("SHADOWTAP_TC_LEGACY");

	if (e && *e && strcmp(e, "0") != 0)
		return 0;
	return capture_kernel_ge(6, 6);
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

static int capture_attach_legacy_tc(struct capture_hooks *h, struct capture_att *a, int prog_fd)
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
		if (!h->recovered) {
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

static int capture_attach_hook(struct capture_hooks *h, const struct capture_iface *ifc, int hook,
			       int xdp_generic)
{
	struct capture_att *a = &h->att[h->natt];
	int tcx = capture_hook_use_tcx(), prog_fd, fd, err;
	__u32 type = 0;

	memset(a, 0, sizeof(*a));
	a->link_fd = -1;
	a->ifindex = ifc->ifindex;
	a->hook = hook;
	snprintf(a->ifname, sizeof(a->ifname), "%s", ifc->name);
	h->natt++;

	if (hook == CAPTURE_HOOK_TC_INGRESS)
		type = CAPTURE_BPF_TCX_INGRESS;
	else if (hook == CAPTURE_HOOK_TC_EGRESS)
		type = CAPTURE_BPF_TCX_EGRESS;
	err = capture_check_busy(ifc, hook, tcx ? type : 0);
	if (err)
		return err;

	if (hook == CAPTURE_HOOK_XDP) {
		prog_fd = h->xdp_prog_fd;
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
		prog_fd = h->tc_prog_fd;
		if (!tcx)
			return capture_attach_legacy_tc(h, a, prog_fd);
		/* first in line, so programs before us cannot hide packets from the capture;
		 * we return TCX_NEXT, so the ones after us still decide */
		fd = capture_link_create(prog_fd, ifc->ifindex, type, CAPTURE_BPF_F_BEFORE);
		if (fd == -EINVAL) {
			pr_info("interface %s: no tcx links here, using a clsact filter\n", ifc->name);
			return capture_attach_legacy_tc(h, a, prog_fd);
		}
	}
	if (fd < 0) {
		pr_warn("interface %s: cannot attach %s: %s\n", ifc->name, capture_hook_names[hook],
			strerror(-fd));
		return fd;
	}
	a->link_fd = fd;
	if (snprintf(a->pin, sizeof(a->pin), "%s/%s-%s", h->links_dir, ifc->name,
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
int capture_hook_attach_iface(struct capture_hooks *h, const struct capture_iface *ifc)
{
	int err;

	err = capture_attach_hook(h, ifc, h->mode == CAPTURE_XDP ? CAPTURE_HOOK_XDP :
				  CAPTURE_HOOK_TC_INGRESS, h->xdp_generic);
	if (!err && !ifc->is_lo)
		err = capture_attach_hook(h, ifc, CAPTURE_HOOK_TC_EGRESS, 0);
	return err;
}

/* Subscribed before the interfaces are listed, so none slips between the two. */
int capture_hook_follow(struct capture_hooks *h)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int err;

	h->nl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (h->nl_fd < 0 || bind(h->nl_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		pr_warn("cannot listen for new interfaces: %s\n", strerror(-err));
		return err;
	}
	return 0;
}

static int capture_is_attached(const struct capture_hooks *h, int ifindex)
{
	int i;

	for (i = 0; i < h->natt; i++)
		if (h->att[i].ifindex == ifindex)
			return 1;
	return 0;
}

/* The kernel detaches a deleted device's links itself; drop our pins and fds. */
static void capture_forget_iface(struct capture_hooks *h, int ifindex, int gone)
{
	int i, j = 0;

	for (i = 0; i < h->natt; i++) {
		if (h->att[i].ifindex == ifindex) {
			if (gone) {
				pr_info("interface %s is gone: removed its %s pin\n",
					h->att[i].ifname, capture_hook_names[h->att[i].hook]);
				h->att[i].qdisc_created = 0;
			}
			capture_detach_one(&h->att[i]);
			continue;
		}
		if (i != j)
			h->att[j] = h->att[i];
		j++;
	}
	h->natt = j;
}

static void capture_link_event(struct capture_hooks *h, const struct nlmsghdr *nh)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(nh);
	struct capture_iface ifs[1];
	char name[IF_NAMESIZE];
	int n = 0;

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
		return;
	if (nh->nlmsg_type == RTM_DELLINK) {
		capture_forget_iface(h, ifi->ifi_index, 1);
		return;
	}
	if (nh->nlmsg_type != RTM_NEWLINK || !(ifi->ifi_flags & IFF_UP) ||
	    capture_is_attached(h, ifi->ifi_index) || !if_indextoname(ifi->ifi_index, name))
		return;
	/* not listed: skips down and non-Ethernet devices quietly */
	if (capture_iface_add(ifs, &n, name, h->mode, 0) < 0 || n == 0)
		return;
	if (h->natt + 2 > CAPTURE_MAX_ATT) {
		pr_warn("interface %s appeared, but %d hooks are attached already: not captured\n",
			name, h->natt);
		return;
	}
	if (capture_hook_attach_iface(h, &ifs[0]) < 0) {
		pr_warn("interface %s appeared, but could not be attached: not captured\n", name);
		capture_forget_iface(h, ifs[0].ifindex, 0);
		return;
	}
	pr_info("interface %s appeared: capturing on it\n", name);
}

void capture_hook_poll(struct capture_hooks *h)
{
	char buf[8192] __attribute__((aligned(4)));
	const struct nlmsghdr *nh;
	ssize_t len;

	if (h->nl_fd < 0)
		return;
	while ((len = recv(h->nl_fd, buf, sizeof(buf), 0)) > 0) {
		for (nh = (const struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)len);
		     nh = NLMSG_NEXT(nh, len))
			capture_link_event(h, nh);
	}
	if (len < 0 && errno == ENOBUFS)
		pr_warn("missed interface notifications (socket overrun): restart to pick up "
			"interfaces created just now\n");
}

void capture_hook_close(struct capture_hooks *h)
{
	int i;

	if (h->nl_fd >= 0)
		close(h->nl_fd);
	h->nl_fd = -1;
	/* reverse order: an interface's egress goes before the ingress that created
	 * its clsact qdisc */
	for (i = h->natt - 1; i >= 0; i--)
		capture_detach_one(&h->att[i]);
	h->natt = 0;
}
