/* Interface selection for live capture: resolves -i (one name, a list or `all`) into
 * interfaces, and says which ones tc/xdp can hook (up, Ethernet or loopback header). */
#ifndef ST_CAPTURE_IFACE_H
#define ST_CAPTURE_IFACE_H

#include <net/if.h>

#define CAPTURE_MAX_IFACES 64

struct capture_iface {
	int ifindex;
	char name[IF_NAMESIZE];
	int is_lo;
};

/* Adds name to ifs[*n] unless present. listed: named by -i (errors are fatal); not
 * listed (from `all` or a netlink event): unfit interfaces are skipped quietly. */
int capture_iface_add(struct capture_iface *ifs, int *n, const char *name, int mode, int listed);
/* Resolves -i into interfaces. *n == 0 with "all" in socket mode means one unbound
 * tap. A listed interface that is down is kept: it may come up later. */
int capture_iface_resolve(const char *spec, int mode, struct capture_iface *ifs, int *n);

#endif
