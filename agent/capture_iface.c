/* Interface selection for live capture; see capture_iface.h. */
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capture.h"
#include "capture_iface.h"
#include "log.h"

/* ARPHRD type and IFF_UP of an interface; negative errno if it cannot be read. */
static int capture_iface_info(const char *name, int *type, int *up)
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
static int capture_iface_l2_ok(int type)
{
	return type == ARPHRD_ETHER || type == ARPHRD_LOOPBACK;
}

int capture_iface_add(struct capture_iface *ifs, int *n, const char *name, int mode,
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
		err = capture_iface_info(name, &type, &up);
		if (err) {
			pr_warn("interface %s: cannot read its link type: %s\n", name, strerror(-err));
			return err;
		}
		if (!capture_iface_l2_ok(type)) {
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

int capture_iface_resolve(const char *spec, int mode, struct capture_iface *ifs, int *n)
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
			err = capture_iface_add(ifs, n, it->if_name, mode, 0);
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
		err = capture_iface_add(ifs, n, tok, mode, 1);
	if (!err && *n == 0) {
		pr_warn("interface list '%s' is empty\n", spec);
		err = -EINVAL;
	}
	free(copy);
	return err;
}
