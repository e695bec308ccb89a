/* TLS plaintext source, userspace side: find the libssl of the servers that listen on
 * the TLS ports and attach bpf/tls.bpf.c's uprobes to it.
 *
 * Discovery: a server is a process holding a listening TCP socket on a TLS port.
 * Listening sockets are read per network namespace from /proc/PID/net/tcp{,6} (so a
 * server in its own netns or container is found from the host), matched against the
 * socket inodes in /proc/PID/fd, and the libraries the server maps come from
 * /proc/PID/maps. A library is opened as /proc/PID/root/PATH, so a container's
 * libssl is attached even when the host has none at that path. Uprobes attach to
 * the file (inode), for every process mapping it: new workers after an nginx reload
 * are covered without doing anything; a new library (a new container, an upgrade)
 * is found by the next re-scan. A server with no libssl mapped is tried as a static
 * binary (SSL_read in its own symbol table). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "percpu.h"
#include "tls.h"
#include "util.h"
#include "tls.skel.h"

#define TLS_DEF_RESCAN_NS	(2ull * 1000000000ull)
#define TLS_DEF_WAKEUP		(1ull << 20)
#define TLS_MAX_FILES		256	/* files tried (attached or not), deduplicated */
#define TLS_MAX_INODES		4096	/* listening sockets on TLS ports, per scan */
#define TLS_MAX_NETNS		64	/* network namespaces looked at, per scan */
#define TLS_MAX_PIDS		16384	/* processes remembered between scans */
/* A process seen by an earlier scan is looked at again (its fds, its netns's
 * listening sockets) only this often: reading /proc/PID/net/tcp walks the kernel's
 * whole TCP hash, every TIME_WAIT socket of every namespace, which took over a second
 * per namespace at 50,000 sockets under the HTTPS POST benchmark. New processes (a
 * reload's workers, a server started later) are looked at by the next scan. */
#define TLS_DEF_FULL_NS		(30ull * 1000000000ull)

/* capability numbers (linux/capability.h) */
#define TLS_CAP_SYS_PTRACE	19
#define TLS_CAP_SYS_ADMIN	21
#define TLS_CAP_PERFMON		38
#define TLS_CAP_BPF		39

struct tls_probe {
	const char *func;
	int ret;		/* uretprobe */
	int optional;		/* absent in some OpenSSL versions (the _ex calls: 1.1.1+) */
};

/* Order matches tls_progs() */
static const struct tls_probe tls_probes[] = {
	{ "SSL_read", 0, 0 },     { "SSL_read", 1, 0 },
	{ "SSL_read_ex", 0, 1 },  { "SSL_read_ex", 1, 1 },
	{ "SSL_write", 0, 0 },    { "SSL_write", 1, 0 },
	{ "SSL_write_ex", 0, 1 }, { "SSL_write_ex", 1, 1 },
	{ "SSL_set_fd", 0, 1 },   { "SSL_set_rfd", 0, 1 },
	{ "SSL_set_wfd", 0, 1 },  { "SSL_free", 0, 1 },
};
#define TLS_NPROBES (sizeof(tls_probes) / sizeof(tls_probes[0]))

struct tls_file {
	dev_t dev;
	ino_t ino;
	int ok;			/* attached; else tried and failed (not retried) */
};

struct tls_proc {
	int pid;
	int server;		/* holds a listening socket on a TLS port */
	ino_t netns;
};

struct tls {
	struct tls_bpf *skel;
	struct bpf_link *sys_link;
	struct bpf_link **links;	/* TLS_MAX_LIBS * TLS_NPROBES */
	size_t nlinks;
	struct tls_file files[TLS_MAX_FILES];
	size_t nfiles;
	uint16_t ports[ST_MAX_PORTS];
	int nports;
	uint64_t rescan_ns;
	int fixed_lib;		/* --tls-lib: no discovery */
	int said_none;		/* "no libssl yet" printed */
	int ncpus;
	struct st_tls_stats *percpu;
	/* Scanning runs on its own thread (scan_thr) from tls_open's return on: a scan
	 * can take seconds on a busy host, and the loop thread drains the ring. Only
	 * us is shared with the loop thread (under mu); files, links and the scan state
	 * below belong to the scanning thread until tls_close has joined it. */
	pthread_t scan_thr;
	int scan_started;
	int scan_stop;		/* under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* CLOCK_MONOTONIC: tls_close wakes the thread */
	struct tls_ustats us;	/* under mu */
	uint64_t last_full_ns;
	struct tls_proc *procs, *prev;	/* this and the last scan's processes, by pid */
	size_t nprocs, nprev;
	int prev_valid;		/* prev lists every process (none left out) */
	/* per-scan scratch */
	ino_t inodes[TLS_MAX_INODES];
	size_t ninodes;
	ino_t netns[TLS_MAX_NETNS];
	size_t nnetns;
};

static void tls_count(struct tls *t, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&t->mu);
	*field += n;
	pthread_mutex_unlock(&t->mu);
}

static struct bpf_program *tls_prog(struct tls *t, size_t i)
{
	struct bpf_program *p[TLS_NPROBES] = {
		/* one return program for all four: it reads the kind of call the
		 * entry probe stored */
		t->skel->progs.tls_read_ent,     t->skel->progs.tls_rw_ret,
		t->skel->progs.tls_read_ex_ent,  t->skel->progs.tls_rw_ret,
		t->skel->progs.tls_write_ent,    t->skel->progs.tls_rw_ret,
		t->skel->progs.tls_write_ex_ent, t->skel->progs.tls_rw_ret,
		t->skel->progs.tls_set_fd_ent,   t->skel->progs.tls_set_rfd_ent,
		t->skel->progs.tls_set_wfd_ent,  t->skel->progs.tls_free_ent,
	};

	return p[i];
}

static int tls_have_cap(unsigned int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "re");
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			found = 1;
			break;
		}
	}
	fclose(f);
	return found && (eff >> cap) & 1;
}

/* One line naming what is missing, for a failed load or attach. */
static void tls_explain(int err, const char *what)
{
	if (access("/sys/bus/event_source/devices/uprobe/type", F_OK) < 0) {
		pr_warn("tls: %s: this kernel has no uprobe support (CONFIG_UPROBE_EVENTS); "
			"--tls openssl is not available here\n", what);
		return;
	}
	if (err == -EPERM || err == -EACCES) {
		if (!tls_have_cap(TLS_CAP_SYS_ADMIN) &&
		    (!tls_have_cap(TLS_CAP_BPF) || !tls_have_cap(TLS_CAP_PERFMON))) {
			pr_warn("tls: %s: missing capability: needs CAP_BPF and CAP_PERFMON "
				"(or CAP_SYS_ADMIN)\n", what);
			return;
		}
	}
	pr_warn("tls: %s: %s\n", what, strerror(-err));
}

static int tls_attach_lib(struct tls *t, const char *path)
{
	struct stat sb;
	size_t i, first = t->nlinks, fi;
	int err, nreq = 0;

	if (stat(path, &sb) < 0) {
		err = -errno;
		pr_warn("tls: %s: %s\n", path, strerror(-err));
		return err;
	}
	for (fi = 0; fi < t->nfiles; fi++)
		if (t->files[fi].dev == sb.st_dev && t->files[fi].ino == sb.st_ino)
			return t->files[fi].ok ? 0 : -ENOENT;
	if (t->nfiles >= TLS_MAX_FILES || t->nlinks + TLS_NPROBES > TLS_MAX_LIBS * TLS_NPROBES) {
		pr_debug("tls: %s: too many libraries, not attached\n", path);
		return -ENOSPC;
	}
	fi = t->nfiles++;
	t->files[fi].dev = sb.st_dev;
	t->files[fi].ino = sb.st_ino;
	t->files[fi].ok = 0;

	for (i = 0; i < TLS_NPROBES; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = tls_probes[i].func,
			    .retprobe = tls_probes[i].ret);
		struct bpf_link *l;

		l = bpf_program__attach_uprobe_opts(tls_prog(t, i), -1, path, 0, &uo);
		if (!l) {
			err = -errno;
			if (tls_probes[i].optional && err != -EPERM && err != -EACCES) {
				pr_debug("tls: %s: no %s (%s)\n", path, tls_probes[i].func,
					 strerror(-err));
				continue;
			}
			goto fail;
		}
		t->links[t->nlinks++] = l;
		if (!tls_probes[i].optional)
			nreq++;
	}
	t->files[fi].ok = 1;
	tls_count(t, &t->us.libs, 1);
	return 1;

fail:
	while (t->nlinks > first)
		bpf_link__destroy(t->links[--t->nlinks]);
	tls_count(t, &t->us.attach_errors, 1);
	if (err == -ENOENT || err == -ESRCH)
		pr_debug("tls: %s has no SSL_read/SSL_write\n", path);
	else
		tls_explain(err, path);
	(void)nreq;
	return err;
}

/* Listening TCP sockets on a TLS port in the netns that pid sees, into t->inodes. */
static void tls_read_listeners(struct tls *t, int pid)
{
	static const char *const names[] = { "tcp", "tcp6" };
	char path[64], line[512];
	size_t n;
	int k, i;

	for (n = 0; n < 2; n++) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/net/%s", pid, names[n]);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned int lport, st;
			unsigned long long inode;
			char *colon;

			/* sl local rem st tx:rx tr:when retr uid timeout inode */
			colon = strchr(line, ':');
			if (!colon)
				continue;
			colon = strchr(colon + 1, ':');
			if (!colon || sscanf(colon + 1, "%x %*s %x %*s %*s %*s %*s %*s %llu",
					     &lport, &st, &inode) != 3)
				continue;
			if (st != 0x0A || !inode)
				continue;
			for (k = 0, i = 0; i < t->nports; i++)
				k |= t->ports[i] == lport;
			if (k && t->ninodes < TLS_MAX_INODES)
				t->inodes[t->ninodes++] = (ino_t)inode;
		}
		fclose(f);
	}
}

static int tls_is_server(struct tls *t, int pid)
{
	char path[64], link[64];
	struct dirent *de;
	DIR *d;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (!found && (de = readdir(d))) {
		char fdp[320];
		unsigned long long ino;
		ssize_t n;
		size_t i;

		if (de->d_name[0] == '.')
			continue;
		snprintf(fdp, sizeof(fdp), "%s/%s", path, de->d_name);
		n = readlink(fdp, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (sscanf(link, "socket:[%llu]", &ino) != 1)
			continue;
		for (i = 0; i < t->ninodes; i++)
			if (t->inodes[i] == (ino_t)ino) {
				found = 1;
				break;
			}
	}
	closedir(d);
	return found;
}

/* Attach to every libssl the server maps; with none, try its executable. */
static int tls_attach_server(struct tls *t, int pid)
{
	char path[64], line[PATH_MAX + 128], full[PATH_MAX + 64];
	int added = 0, seen = 0, r;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *file = strchr(line, '/'), *base, *nl;

		if (!file)
			continue;
		nl = strchr(file, '\n');
		if (nl)
			*nl = 0;
		base = strrchr(file, '/') + 1;
		if (strncmp(base, "libssl.so", 9) != 0 || strstr(file, " (deleted)"))
			continue;
		seen = 1;
		if (snprintf(full, sizeof(full), "/proc/%d/root%s", pid, file) >= (int)sizeof(full))
			continue;
		r = tls_attach_lib(t, full);
		if (r > 0) {
			pr_info("tls: attached to %s (server pid %d)\n", file, pid);
			added++;
		}
	}
	fclose(f);
	if (!seen) {
		snprintf(full, sizeof(full), "/proc/%d/exe", pid);
		r = tls_attach_lib(t, full);
		if (r > 0) {
			pr_info("tls: attached to the statically linked OpenSSL in %s (server pid %d)\n",
				full, pid);
			added++;
		}
	}
	return added;
}

static int tls_proc_cmp(const void *a, const void *b)
{
	const struct tls_proc *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

static const struct tls_proc *tls_prev_find(const struct tls *t, int pid)
{
	struct tls_proc key = { .pid = pid };

	if (!t->nprev)
		return NULL;
	return bsearch(&key, t->prev, t->nprev, sizeof(key), tls_proc_cmp);
}

/* The processes now running, with their netns, sorted by pid, into t->procs.
 * Returns 0, or 1 when some were left out (more than TLS_MAX_PIDS). */
static int tls_list_procs(struct tls *t, DIR *d)
{
	char nspath[64], nslink[64];
	pid_t self = getpid();
	struct dirent *de;
	int over = 0;

	t->nprocs = 0;
	while ((de = readdir(d))) {
		unsigned long long ns;
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		ssize_t n;

		if (!isdigit((unsigned char)de->d_name[0]) || *end || pid <= 0 ||
		    pid > INT_MAX || pid == self)
			continue;
		snprintf(nspath, sizeof(nspath), "/proc/%ld/ns/net", pid);
		n = readlink(nspath, nslink, sizeof(nslink) - 1);
		if (n <= 0)
			continue;
		nslink[n] = 0;
		if (sscanf(nslink, "net:[%llu]", &ns) != 1)
			continue;
		if (t->nprocs >= TLS_MAX_PIDS) {
			over = 1;
			break;
		}
		t->procs[t->nprocs].pid = (int)pid;
		t->procs[t->nprocs].netns = (ino_t)ns;
		t->procs[t->nprocs].server = 0;
		t->nprocs++;
	}
	qsort(t->procs, t->nprocs, sizeof(*t->procs), tls_proc_cmp);
	return over;
}

static int tls_scan(struct tls *t)
{
	uint64_t now = st_mono_ns(), servers = 0;
	struct tls_proc *swap;
	int added = 0, full, over;
	size_t i, j;
	DIR *d;

	if (t->fixed_lib)
		return 0;
	d = opendir("/proc");
	if (!d) {
		int err = -errno;

		pr_warn("tls: cannot read /proc: %s\n", strerror(-err));
		return err;
	}
	over = tls_list_procs(t, d);
	closedir(d);
	full = !t->prev_valid || now - t->last_full_ns >= TLS_DEF_FULL_NS;
	if (full)
		t->last_full_ns = now;

	/* which processes to look at: all on a full scan, else the new ones; the
	 * others keep what the last scan found */
	t->ninodes = 0;
	t->nnetns = 0;
	for (i = 0; i < t->nprocs; i++) {
		struct tls_proc *p = &t->procs[i];
		const struct tls_proc *old = full ? NULL : tls_prev_find(t, p->pid);
		int known = 0;

		if (old && old->netns == p->netns) {
			p->server = old->server;
			p->pid = -p->pid;	/* mark: not looked at (restored below) */
			continue;
		}
		for (j = 0; j < t->nnetns; j++)
			known |= t->netns[j] == p->netns;
		if (!known && t->nnetns < TLS_MAX_NETNS) {
			t->netns[t->nnetns++] = p->netns;
			tls_read_listeners(t, p->pid);
		}
	}
	for (i = 0; i < t->nprocs; i++) {
		struct tls_proc *p = &t->procs[i];

		if (p->pid < 0) {
			p->pid = -p->pid;
		} else if (t->ninodes && tls_is_server(t, p->pid)) {
			p->server = 1;
			added += tls_attach_server(t, p->pid);
		}
		servers += p->server;
	}
	swap = t->prev;
	t->prev = t->procs;
	t->nprev = t->nprocs;
	t->procs = swap;
	t->nprocs = 0;
	t->prev_valid = !over;

	pthread_mutex_lock(&t->mu);
	t->us.servers = servers;
	t->us.scans++;
	t->us.full_scans += full;
	t->us.scan_ms_last = (st_mono_ns() - now) / 1000000;
	if (t->us.scan_ms_last > t->us.scan_ms_max)
		t->us.scan_ms_max = t->us.scan_ms_last;
	pthread_mutex_unlock(&t->mu);
	if (!t->us.libs && !t->said_none) {
		pr_warn("tls: no process listening on the TLS port%s maps libssl yet "
			"(%llu server process%s); re-scanning, or give --tls-lib PATH\n",
			t->nports > 1 ? "s" : "", (unsigned long long)servers,
			servers == 1 ? "" : "es");
		if (!tls_have_cap(TLS_CAP_SYS_PTRACE))
			pr_warn("tls: without CAP_SYS_PTRACE, servers of other users and in "
				"containers are not visible (/proc/PID/maps, /proc/PID/root)\n");
		t->said_none = 1;
	}
	return added;
}

static void *tls_scan_main(void *arg)
{
	struct tls *t = arg;
	struct timespec ts;

	pthread_mutex_lock(&t->mu);
	while (!t->scan_stop) {
		uint64_t due = st_mono_ns() + t->rescan_ns;

		ts.tv_sec = (time_t)(due / 1000000000ull);
		ts.tv_nsec = (long)(due % 1000000000ull);
		while (!t->scan_stop && pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT)
			;
		if (t->scan_stop)
			break;
		pthread_mutex_unlock(&t->mu);
		tls_scan(t);
		pthread_mutex_lock(&t->mu);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* The scanning thread takes no signals: the loop thread reads them from its signalfd. */
static int tls_start_scanner(struct tls *t)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&t->scan_thr, NULL, tls_scan_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pr_warn("tls: cannot start the re-scan thread: %s\n", strerror(err));
		return -err;
	}
	t->scan_started = 1;
	return 0;
}

int tls_open(struct tls **out, const struct tls_cfg *cfg)
{
	struct tls *t;
	int err, i;

	*out = NULL;
	if (access("/sys/bus/event_source/devices/uprobe/type", F_OK) < 0) {
		pr_warn("tls: this kernel has no uprobe support (CONFIG_UPROBE_EVENTS); "
			"--tls openssl is not available here\n");
		return -EOPNOTSUPP;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		pr_warn("tls: out of memory\n");
		return -ENOMEM;
	}
	{
		pthread_condattr_t ca;

		pthread_mutex_init(&t->mu, NULL);
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&t->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	t->links = calloc(TLS_MAX_LIBS * TLS_NPROBES, sizeof(*t->links));
	err = libbpf_num_possible_cpus();
	if (!t->links || err <= 0) {
		err = t->links ? err : -ENOMEM;
		pr_warn("tls: setup failed: %s\n", strerror(-err));
		goto cleanup;
	}
	t->ncpus = err;
	t->percpu = calloc((size_t)t->ncpus, sizeof(*t->percpu));
	t->procs = calloc(TLS_MAX_PIDS, sizeof(*t->procs));
	t->prev = calloc(TLS_MAX_PIDS, sizeof(*t->prev));
	if (!t->percpu || !t->procs || !t->prev) {
		err = -ENOMEM;
		pr_warn("tls: out of memory\n");
		goto cleanup;
	}
	t->nports = cfg->nports;
	memcpy(t->ports, cfg->ports, sizeof(t->ports));
	t->rescan_ns = cfg->rescan_ns ? cfg->rescan_ns : TLS_DEF_RESCAN_NS;

	t->skel = tls_bpf__open();
	if (!t->skel) {
		err = -errno ? -errno : -EINVAL;
		pr_warn("tls: cannot open bpf skeleton: %s\n", strerror(-err));
		goto cleanup;
	}
	for (i = 0; i < cfg->nports && i < ST_MAX_PORTS; i++)
		t->skel->rodata->tls_cfg.ports[i] = cfg->ports[i];
	t->skel->rodata->tls_cfg.nports = (__u32)i;
	t->skel->rodata->tls_cfg.wakeup_bytes = cfg->wakeup_bytes ? cfg->wakeup_bytes :
								   TLS_DEF_WAKEUP;
	if (cfg->ring_fd >= 0) {
		/* one ring for both sources: the capture loop drains TLS events too */
		err = bpf_map__reuse_fd(t->skel->maps.events, cfg->ring_fd);
		if (err) {
			pr_warn("tls: cannot share the capture ring: %s\n", strerror(-err));
			goto cleanup;
		}
		/* --workers: the same ring array, so a connection's plaintext goes to
		 * the worker its packets go to */
		if (cfg->nrings > 0) {
			t->skel->rodata->tls_cfg.nrings = (__u32)cfg->nrings;
			err = bpf_map__reuse_fd(t->skel->maps.rings, cfg->rings_fd);
			if (err) {
				pr_warn("tls: cannot share the capture rings: %s\n", strerror(-err));
				goto cleanup;
			}
		}
	}
	err = tls_bpf__load(t->skel);
	if (err) {
		tls_explain(err, "cannot load the uprobe programs");
		goto cleanup;
	}
	t->sys_link = bpf_program__attach(t->skel->progs.tls_sys_enter);
	if (!t->sys_link) {
		err = -errno;
		tls_explain(err, "cannot attach the sys_enter raw tracepoint");
		goto cleanup;
	}

	if (cfg->lib) {
		t->fixed_lib = 1;
		err = tls_attach_lib(t, cfg->lib);
		if (err <= 0) {
			if (err == 0 || err == -ENOENT || err == -ESRCH)
				pr_warn("tls: %s: no SSL_read/SSL_write to attach to\n", cfg->lib);
			err = err ? err : -ENOENT;
			goto cleanup;
		}
		pr_info("tls: attached to %s\n", cfg->lib);
	} else {
		err = tls_scan(t);
		if (err < 0)
			goto cleanup;
		err = tls_start_scanner(t);
		if (err)
			goto cleanup;
	}
	*out = t;
	return 0;

cleanup:
	tls_close(t);
	return err;
}

int tls_read_stats(struct tls *t, struct st_tls_stats *sum)
{
	int err = percpu_sum(bpf_map__fd(t->skel->maps.tls_stats), t->percpu, t->ncpus, sum,
			     sizeof(*sum));

	if (err)
		pr_warn("tls: cannot read statistics: %s\n", strerror(-err));
	return err;
}

void tls_get_ustats(struct tls *t, struct tls_ustats *st)
{
	pthread_mutex_lock(&t->mu);
	*st = t->us;
	pthread_mutex_unlock(&t->mu);
}

void tls_print_stats(struct tls *t, FILE *f)
{
	struct st_tls_stats s;
	struct tls_ustats us;

	if (tls_read_stats(t, &s))
		return;
	tls_get_ustats(t, &us);
	fprintf(f,
		"tls: libs=%llu servers=%llu scans=%llu full_scans=%llu scan_ms_last=%llu "
		"scan_ms_max=%llu attach_errors=%llu calls=%llu events=%llu "
		"bytes=%llu conns=%llu conns_other=%llu fd_from_set_fd=%llu fd_from_syscall=%llu "
		"unmapped_calls=%llu unmapped_bytes=%llu ringbuf_full=%llu bytes_lost_ringbuf=%llu "
		"bytes_too_large=%llu read_errors=%llu bytes_lost_read=%llu gap_bytes=%llu "
		"frees=%llu nested=%llu wakeups=%llu\n",
		(unsigned long long)us.libs, (unsigned long long)us.servers,
		(unsigned long long)us.scans, (unsigned long long)us.full_scans,
		(unsigned long long)us.scan_ms_last, (unsigned long long)us.scan_ms_max,
		(unsigned long long)us.attach_errors,
		(unsigned long long)s.calls, (unsigned long long)s.events,
		(unsigned long long)s.bytes, (unsigned long long)s.conns,
		(unsigned long long)s.conns_other, (unsigned long long)s.fd_from_set_fd,
		(unsigned long long)s.fd_from_syscall, (unsigned long long)s.unmapped_calls,
		(unsigned long long)s.unmapped_bytes, (unsigned long long)s.ringbuf_full,
		(unsigned long long)s.bytes_lost_ringbuf, (unsigned long long)s.bytes_too_large,
		(unsigned long long)s.read_errors, (unsigned long long)s.bytes_lost_read,
		(unsigned long long)(s.bytes_lost_ringbuf + s.bytes_too_large + s.bytes_lost_read),
		(unsigned long long)s.frees, (unsigned long long)s.nested,
		(unsigned long long)s.wakeups);
	tls_print_cost(t, f);
}

/* run_cnt and run_time_ns of one program; both stay 0 unless
 * kernel.bpf_stats_enabled is on */
static void tls_prog_cost(const struct bpf_program *p, unsigned long long *runs,
			  unsigned long long *ns)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len) == 0) {
		*runs += info.run_cnt;
		*ns += info.run_time_ns;
	}
}

void tls_print_cost(struct tls *t, FILE *f)
{
	struct tls_bpf *k = t->skel;
	const struct bpf_program *p[][3] = {
		{ k->progs.tls_read_ent }, { k->progs.tls_read_ex_ent }, { k->progs.tls_write_ent },
		{ k->progs.tls_write_ex_ent }, { k->progs.tls_rw_ret },
		{ k->progs.tls_set_fd_ent, k->progs.tls_set_rfd_ent, k->progs.tls_set_wfd_ent },
		{ k->progs.tls_free_ent }, { k->progs.tls_sys_enter },
	};
	static const char *const name[] = { "read_ent", "read_ex_ent", "write_ent", "write_ex_ent",
					     "rw_ret", "set_fd", "free", "sys_enter" };
	unsigned long long runs[8] = { 0 }, ns[8] = { 0 }, any = 0;
	size_t i, j;

	for (i = 0; i < 8; i++) {
		for (j = 0; j < 3 && p[i][j]; j++)
			tls_prog_cost(p[i][j], &runs[i], &ns[i]);
		any += runs[i];
	}
	if (!any)
		return;
	fprintf(f, "tls: bpf_runs");
	for (i = 0; i < 8; i++)
		fprintf(f, " %s=%llu", name[i], runs[i]);
	fprintf(f, "\ntls: bpf_run_ns");
	for (i = 0; i < 8; i++)
		fprintf(f, " %s=%llu", name[i], ns[i]);
	fprintf(f, "\n");
}

int tls_ring_fd(struct tls *t)
{
	return bpf_map__fd(t->skel->maps.events);
}

void tls_close(struct tls *t)
{
	size_t i;

	if (!t)
		return;
	if (t->scan_started) {
		pthread_mutex_lock(&t->mu);
		t->scan_stop = 1;
		pthread_cond_signal(&t->cv);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->scan_thr, NULL);
	}
	for (i = 0; i < t->nlinks; i++)
		bpf_link__destroy(t->links[i]);
	bpf_link__destroy(t->sys_link);
	tls_bpf__destroy(t->skel);
	free(t->links);
	free(t->percpu);
	free(t->procs);
	free(t->prev);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
