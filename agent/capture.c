/* Live capture: loads the socket filter skeleton, attaches it to an AF_PACKET tap,
 * pins its statistics map and turns ring-buffer events into reasm_seg slices.
 * The offline (pcap) half of capture.h lives in pcap_input.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/magic.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.h"
#include "capture.skel.h"
#include "log.h"

#define CAPTURE_DEF_RING	(16u << 20)
#define CAPTURE_DEF_PIN_DIR	"/sys/fs/bpf/shadowtap"
#define CAPTURE_BPFFS		"/sys/fs/bpf"

_Static_assert(sizeof(struct st_stats) % sizeof(__u64) == 0,
	       "st_stats must be made of __u64 counters only");

struct capture {
	struct capture_bpf *skel;
	struct ring_buffer *rb;
	int sock_fd;
	int ncpus;
	struct st_stats *percpu;	/* lookup buffer, one st_stats per possible CPU */
	char pin_dir[PATH_MAX];
	char pin_path[PATH_MAX];
	int pinned;
	int have_dir;
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

static int capture_pin_stats(struct capture *c, const char *dir)
{
	int err;

	if (snprintf(c->pin_dir, sizeof(c->pin_dir), "%s", dir) >= (int)sizeof(c->pin_dir) ||
	    snprintf(c->pin_path, sizeof(c->pin_path), "%s/stats", dir) >=
		    (int)sizeof(c->pin_path)) {
		pr_warn("pin directory %s: path too long\n", dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		pr_warn("cannot create pin directory %s: %s\n", dir, strerror(-err));
		return err;
	}
	c->have_dir = 1;
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

/* The socket is created with protocol 0 so that it receives nothing until the filter
 * is attached; bind() then turns on ETH_P_ALL for one interface or all of them. */
static int capture_attach(struct capture *c, const char *iface)
{
	struct sockaddr_ll sll;
	int prog_fd = bpf_program__fd(c->skel->progs.st_capture);
	int one = 1, err;

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	if (iface && strcmp(iface, "all") != 0) {
		sll.sll_ifindex = (int)if_nametoindex(iface);
		if (sll.sll_ifindex == 0) {
			pr_warn("interface %s: no such interface\n", iface);
			return -ENODEV;
		}
	}
	c->sock_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->sock_fd < 0) {
		err = -errno;
		pr_warn("cannot create packet socket: %s\n", strerror(-err));
		return err;
	}
	/* the filter always returns 0, so the queue stays empty: keep it minimal */
	if (setsockopt(c->sock_fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one)) < 0)
		pr_debug("cannot shrink packet socket buffer: %s\n", strerror(errno));
	if (setsockopt(c->sock_fd, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd, sizeof(prog_fd)) < 0) {
		err = -errno;
		pr_warn("cannot attach socket filter: %s\n", strerror(-err));
		return err;
	}
	if (bind(c->sock_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		err = -errno;
		pr_warn("cannot bind packet socket to %s: %s\n", iface ? iface : "all",
			strerror(-err));
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
	err = bpf_map__set_max_entries(c->skel->maps.events, (uint32_t)ring);
	if (err)
		pr_warn("cannot set ring size %zu: %s\n", ring, strerror(-err));
	return err;
}

int capture_open(struct capture **out, const struct capture_cfg *cfg, capture_seg_cb cb, void *ctx)
{
	struct capture *c;
	int err;

	*out = NULL;
	libbpf_set_print(capture_libbpf_print);
	c = calloc(1, sizeof(*c));
	if (!c) {
		pr_warn("capture: out of memory\n");
		return -ENOMEM;
	}
	c->sock_fd = -1;
	c->cb = cb;
	c->ctx = ctx;

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
	err = capture_pin_stats(c, cfg->pin_dir ? cfg->pin_dir : CAPTURE_DEF_PIN_DIR);
	if (err)
		goto cleanup;

	c->rb = ring_buffer__new(bpf_map__fd(c->skel->maps.events), capture_handle_event, c,
				 NULL);
	if (!c->rb) {
		err = -errno ? -errno : -ENOMEM;
		pr_warn("cannot create ring buffer reader: %s\n", strerror(-err));
		goto cleanup;
	}

	err = capture_attach(c, cfg->iface);
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
	if (!c)
		return;
	if (c->sock_fd >= 0)
		close(c->sock_fd);
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
