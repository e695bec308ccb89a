/* tc / xdp attachments of the capture programs, and following interfaces for `-i all`.
 * Owns: the links (pinned at PIN_DIR/links/<ifname>-<hook>), clsact filters, netlink. */
#ifndef ST_CAPTURE_HOOK_H
#define ST_CAPTURE_HOOK_H

#include <limits.h>
#include <net/if.h>

#include "capture_iface.h"

/* ingress + egress per interface */
#define CAPTURE_MAX_ATT (2 * CAPTURE_MAX_IFACES)

enum capture_hook {
	CAPTURE_HOOK_TC_INGRESS,
	CAPTURE_HOOK_TC_EGRESS,
	CAPTURE_HOOK_XDP,
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

struct capture_hooks {
	int mode;		/* CAPTURE_TC or CAPTURE_XDP */
	int xdp_generic;
	int tc_prog_fd, xdp_prog_fd;
	const char *links_dir;	/* owned by the pindir */
	int recovered;		/* stale clsact filters may be replaced */
	struct capture_att att[CAPTURE_MAX_ATT];
	int natt;
	int nl_fd;		/* RTNLGRP_LINK listener, or -1 */
};

void capture_hook_init(struct capture_hooks *h, int mode, int xdp_generic, int tc_prog_fd,
		       int xdp_prog_fd, const char *links_dir, int recovered);
/* 1 when tc attaches with tcx links (kernel >= 6.6 and no SHADOWTAP_TC_LEGACY). */
int capture_hook_use_tcx(void);
/* Subscribes to link events; call before listing interfaces so none slips between. */
int capture_hook_follow(struct capture_hooks *h);
/* Attaches ingress (tc or xdp) and, except on lo, tc egress. 0 or -errno (printed). */
int capture_hook_attach_iface(struct capture_hooks *h, const struct capture_iface *ifc);
/* Handles pending link events without blocking (no-op unless following). */
void capture_hook_poll(struct capture_hooks *h);
/* Stops following, detaches and unpins everything attached. */
void capture_hook_close(struct capture_hooks *h);

#endif
