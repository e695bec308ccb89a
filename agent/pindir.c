/* Pin-directory ownership; see pindir.h. After a crash (SIGKILL) the next start finds
 * the dead owner's record, detaches and removes its stale link pins and says so. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "pindir.h"

#define PINDIR_BPFFS "/sys/fs/bpf"

/* Value of the PIN_DIR/owner map. */
struct pindir_owner {
	__u64 pid;
	__u64 start;		/* /proc/PID/stat starttime: guards against pid reuse */
};

void pindir_init(struct pindir *p)
{
	memset(p, 0, sizeof(*p));
	p->owner_fd = -1;
}

int pindir_ensure_bpffs(void)
{
	struct statfs sfs;

	if (statfs(PINDIR_BPFFS, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", PINDIR_BPFFS, "bpf", 0, "mode=0700") < 0) {
		int err = -errno;

		pr_warn("cannot mount bpffs at %s: %s\n", PINDIR_BPFFS, strerror(-err));
		return err;
	}
	pr_info("mounted bpffs at %s\n", PINDIR_BPFFS);
	return 0;
}

static int pindir_mkdir(struct pindir *p, const char *dir)
{
	char stale[PATH_MAX];
	int err;

	if (snprintf(p->dir, sizeof(p->dir), "%s", dir) >= (int)sizeof(p->dir) ||
	    snprintf(p->stats_path, sizeof(p->stats_path), "%s/stats", dir) >=
		    (int)sizeof(p->stats_path)) {
		pr_warn("pin directory %s: path too long\n", dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0700) == 0) {
		p->have_dir = 1;
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
	if (!p->have_dir) {
		snprintf(stale, sizeof(stale), "%s/owner", dir);
		p->have_dir = access(p->stats_path, F_OK) == 0 || access(stale, F_OK) == 0;
	}
	return 0;
}

int pindir_pin_stats(struct pindir *p, const char *dir, struct bpf_map *map)
{
	int err;

	err = pindir_mkdir(p, dir);
	if (err)
		return err;
	if (unlink(p->stats_path) == 0)
		pr_info("replaced stale pin %s (left by an earlier run)\n", p->stats_path);
	else if (errno != ENOENT) {
		err = -errno;
		pr_warn("cannot remove stale pin %s: %s\n", p->stats_path, strerror(-err));
		return err;
	}
	err = bpf_map__pin(map, p->stats_path);
	if (err) {
		pr_warn("cannot pin stats map at %s: %s\n", p->stats_path, strerror(-err));
		return err;
	}
	p->stats_pinned = 1;
	return 0;
}

/* Field 22 of /proc/PID/stat, 0 if the process does not exist. */
static __u64 pindir_proc_start(pid_t pid)
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
static int pindir_sweep_links(struct pindir *p)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int fd, err = 0;

	d = opendir(p->links_dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", p->links_dir, de->d_name) >=
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

int pindir_take_owner(struct pindir *p, const char *dir)
{
	struct pindir_owner o = { 0 };
	__u32 key = 0;
	int fd, err;

	/* before the stats pin, which would replace a running owner's */
	err = pindir_mkdir(p, dir);
	if (err)
		return err;
	if (snprintf(p->owner_path, sizeof(p->owner_path), "%s/owner", p->dir) >=
		    (int)sizeof(p->owner_path) ||
	    snprintf(p->links_dir, sizeof(p->links_dir), "%s/links", p->dir) >=
		    (int)sizeof(p->links_dir)) {
		pr_warn("pin directory %s: path too long\n", p->dir);
		return -ENAMETOOLONG;
	}
	fd = bpf_obj_get(p->owner_path);
	if (fd >= 0) {
		err = bpf_map_lookup_elem(fd, &key, &o);
		close(fd);
		if (!err && o.pid && (pid_t)o.pid != getpid() &&
		    pindir_proc_start((pid_t)o.pid) == o.start) {
			pr_warn("another shadowtap (pid %llu) owns %s and is running: stop it first or "
				"give this one another --pin-dir\n", (unsigned long long)o.pid,
				p->dir);
			return -EBUSY;
		}
		pr_info("%s was left by pid %llu, which is gone: replacing its stale pins\n",
			p->dir, (unsigned long long)o.pid);
		p->recovered = 1;
		if (unlink(p->owner_path) < 0 && errno != ENOENT) {
			err = -errno;
			pr_warn("cannot remove stale pin %s: %s\n", p->owner_path, strerror(-err));
			return err;
		}
	} else if (errno != ENOENT) {
		err = -errno;
		pr_warn("cannot open %s: %s\n", p->owner_path, strerror(-err));
		return err;
	}
	err = pindir_sweep_links(p);
	if (err)
		return err;

	p->owner_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "st_owner", sizeof(key), sizeof(o), 1,
				     NULL);
	if (p->owner_fd < 0) {
		err = -errno;
		pr_warn("cannot create owner map: %s\n", strerror(-err));
		return err;
	}
	o.pid = (__u64)getpid();
	o.start = pindir_proc_start(getpid());
	if (bpf_map_update_elem(p->owner_fd, &key, &o, BPF_ANY) < 0 ||
	    bpf_obj_pin(p->owner_fd, p->owner_path) < 0) {
		err = -errno;
		pr_warn("cannot pin owner map at %s: %s\n", p->owner_path, strerror(-err));
		return err;
	}
	p->owner_pinned = 1;
	if (mkdir(p->links_dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		pr_warn("cannot create %s: %s\n", p->links_dir, strerror(-err));
		return err;
	}
	p->have_links_dir = 1;
	return 0;
}

void pindir_close(struct pindir *p)
{
	if (p->have_links_dir && rmdir(p->links_dir) < 0 && errno != ENOENT)
		pr_warn("cannot remove %s: %s\n", p->links_dir, strerror(errno));
	if (p->owner_pinned && unlink(p->owner_path) < 0 && errno != ENOENT)
		pr_warn("cannot remove pin %s: %s\n", p->owner_path, strerror(errno));
	if (p->owner_fd >= 0)
		close(p->owner_fd);
	p->owner_fd = -1;
	if (p->stats_pinned && unlink(p->stats_path) < 0 && errno != ENOENT)
		pr_warn("cannot remove pin %s: %s\n", p->stats_path, strerror(errno));
	/* other pins may share the directory; then it stays */
	if (p->have_dir && rmdir(p->dir) < 0 && errno != ENOENT && errno != ENOTEMPTY)
		pr_warn("cannot remove pin directory %s: %s\n", p->dir, strerror(errno));
	p->have_links_dir = p->owner_pinned = p->stats_pinned = p->have_dir = 0;
}
