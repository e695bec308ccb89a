/* Cost of the capture program per packet, without the network: BPF_PROG_TEST_RUN
 * runs st_capture (the socket filter) on crafted frames of the benchmark's GET mix
 * (deploy/bench/run.sh: loadgen's request, nginx's ~360-byte JSON answer, a full
 * 1,448-byte segment, a pure ACK, a packet on an unwatched port) and reports the kernel's own per-run time
 * (opts.duration, ns, averaged over `repeat` runs). The ring is drained between
 * batches so every payload run really reserves, copies and submits. Needs root.
 *
 *   build/bench/bpf_micro [runs per frame, default 2000000] [workers, default 1] [live|livebatch|pair] [noown]
 *
 * "live": a reader thread on CPU 0 drains the ring (libbpf) while the program runs on
 * CPU 1, as under load; without it the ring is drained between batches. "noown": as
 * an agent without replay or Elasticsearch (no own-connection lookup). "pair": the
 * same frame runs on CPUs 0 and 1 at once, batch against batch, into the one ring,
 * as requests and answers do when the client and the server run on different CPUs
 * (the ring's lock and positions then move between the CPUs); CPU 0's figure is
 * printed, and the ring is drained between batches.
 *
 * Compare builds side by side in one session: the figures move with the machine's
 * load, not only with the program. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "shadowtap.h"
#include "capture.skel.h"

#define BM_BATCH 2000

static const char bm_req[] =
	"GET /api/items/4242?w=7&q=bench HTTP/1.1\r\nHost: 198.18.30.1\r\nUser-Agent: st-loadgen\r\n"
	"Accept: application/json\r\nAccept-Encoding: gzip\r\n\r\n";
static const char bm_resp[] =
	"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Mon, 07 Dec 2026 05:20:00 GMT\r\n"
	"Content-Type: application/json\r\nContent-Length: 108\r\n"
	"Last-Modified: Mon, 07 Dec 2026 05:00:00 GMT\r\nConnection: keep-alive\r\n"
	"ETag: \"6574a1b0-6c\"\r\nAccept-Ranges: bytes\r\n\r\n"
	"{\"server\":\"serverA\",\"items\":[1,2,3,4,5,6,7,8],\"note\":\"benchmark response body of a "
	"typical small JSON API\"}\n";

/* live readers' work per record, in loop turns (BM_WORK; the agent spends ~1-2 us per
 * event): with none the reader is always caught up and takes one record per pass */
static long bm_work;

static void bm_spin(void)
{
	long i;

	for (i = 0; i < bm_work; i++)
		asm volatile("" ::: "memory");
}

static int bm_discard(void *ctx, void *data, size_t sz)
{
	(*(uint64_t *)ctx)++;
	bm_spin();
	return 0;
}

static volatile int bm_stop;

/* "live" mode: a reader on CPU 0 drains the ring as the agent's worker does, while
 * the program runs on CPU 1, so the ring's positions and records move between
 * caches as they do under load */
static void *bm_reader(void *arg)
{
	struct ring_buffer *rb = arg;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	while (!bm_stop)
		ring_buffer__consume(rb);
	return NULL;
}

/* "livebatch": as "live", but the reader maps the ring itself and publishes its
 * position once per pass over what is there, not once per record as libbpf's
 * ring_buffer__consume does: the producer reads that position in every reservation */
struct bm_batch {
	volatile unsigned long *cons;
	const volatile unsigned long *prod;
	const uint8_t *data;
	unsigned long mask;
	uint64_t got;
};

static void *bm_reader_batch(void *arg)
{
	struct bm_batch *bb = arg;
	unsigned long c, p;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	c = *bb->cons;
	while (!bm_stop) {
		p = __atomic_load_n(bb->prod, __ATOMIC_ACQUIRE);
		while (c < p) {
			const uint32_t *h = (const uint32_t *)(bb->data + (c & bb->mask));
			uint32_t len = __atomic_load_n(h, __ATOMIC_ACQUIRE);

			if (len & (1u << 31))
				break;
			if (!(len & (1u << 30))) {
				bb->got++;
				bm_spin();
			}
			c += ((len & ~(3u << 30)) + 8 + 7) & ~7ul;
		}
		__atomic_store_n(bb->cons, c, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* "pair": the second producer, on CPU 1; each batch starts and ends with CPU 0's */
struct bm_pair {
	pthread_barrier_t start, done;
	int prog_fd;
	const uint8_t *buf;
	uint32_t len;
	long nb;
};

static void *bm_pair_run(void *arg)
{
	struct bm_pair *pr = arg;
	cpu_set_t set;
	long b;

	CPU_ZERO(&set);
	CPU_SET(1, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	for (b = 0; b < pr->nb; b++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pr->buf, .data_size_in = pr->len,
			    .repeat = BM_BATCH);

		pthread_barrier_wait(&pr->start);
		bpf_prog_test_run_opts(pr->prog_fd, &opts);
		pthread_barrier_wait(&pr->done);
	}
	return NULL;
}

static size_t bm_frame(uint8_t *buf, uint16_t sport, uint16_t dport, uint8_t flags,
		       const char *payload, size_t plen)
{
	uint8_t *ip = buf + 14, *tcp = ip + 20;
	uint16_t v16;
	uint32_t v32;

	memset(buf, 0, 14 + 40);
	buf[12] = 0x08;
	ip[0] = 0x45;
	ip[8] = 64;
	ip[9] = 6;
	inet_pton(AF_INET, sport == 80 ? "198.18.30.1" : "198.18.30.2", ip + 12);
	inet_pton(AF_INET, sport == 80 ? "198.18.30.2" : "198.18.30.1", ip + 16);
	v16 = htons((uint16_t)(40 + plen));
	memcpy(ip + 2, &v16, 2);
	v16 = htons(sport);
	memcpy(tcp, &v16, 2);
	v16 = htons(dport);
	memcpy(tcp + 2, &v16, 2);
	v32 = htonl(1000);
	memcpy(tcp + 4, &v32, 4);
	memcpy(tcp + 8, &v32, 4);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	tcp[14] = 0xff;
	tcp[15] = 0xff;
	memcpy(tcp + 20, payload, plen);
	return 14 + 40 + plen;
}

int main(int argc, char **argv)
{
	static char mss[1448];
	long runs = argc > 1 ? atol(argv[1]) : 2000000;
	int workers = argc > 2 ? atoi(argv[2]) : 1;
	int live = 0, noown = 0, pair = 0, batch = 0, a;
	struct bm_batch bb = { 0 };
	pthread_t reader;
	struct {
		const char *name;
		uint16_t sport, dport;
		uint8_t flags;
		const char *payload;
		size_t plen;
	} frames[] = {
		{ "GET request (client -> :80, 136 B)", 40000, 80, 0x18, bm_req, sizeof(bm_req) - 1 },
		{ "answer (:80 -> client, 352 B)", 80, 40000, 0x18, bm_resp, sizeof(bm_resp) - 1 },
		{ "answer segment (:80 -> client, 1,448 B: one MSS)", 80, 40000, 0x18, mss, sizeof(mss) },
		{ "pure ACK (watched port)", 40000, 80, 0x10, "", 0 },
		{ "other port (not watched)", 40000, 22, 0x18, bm_req, sizeof(bm_req) - 1 },
	};
	struct capture_bpf *skel;
	struct ring_buffer *rb;
	uint64_t got = 0;
	uint8_t buf[2048];
	size_t i;
	int err;

	/* a full-MSS segment of a longer answer: the answer's head, then body bytes */
	memset(mss, 'x', sizeof(mss));
	memcpy(mss, bm_resp, sizeof(bm_resp) - 1);
	for (a = 3; a < argc; a++) {
		live |= !strcmp(argv[a], "live");
		noown |= !strcmp(argv[a], "noown");
		pair |= !strcmp(argv[a], "pair");
		batch |= !strcmp(argv[a], "livebatch");
	}
	live |= batch;
	if (getenv("BM_WORK"))
		bm_work = atol(getenv("BM_WORK"));
	if (live && pair) {
		fprintf(stderr, "bpf_micro: live and pair cannot be combined (two CPUs)\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: bpf_micro needs root\n");
		return 77;
	}
	skel = capture_bpf__open();
	if (!skel) {
		fprintf(stderr, "cannot open the capture program: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->st_cfg.ports[0] = 80;
	skel->rodata->st_cfg.nports = 1;
	skel->rodata->st_cfg.wakeup_bytes = 1 << 20;
	skel->rodata->st_cfg.nrings = (uint32_t)workers;
	skel->rodata->st_cfg.no_own_conns = (uint32_t)noown;
	bpf_map__set_max_entries(skel->maps.events, 1 << 24);
	err = capture_bpf__load(skel);
	if (err) {
		fprintf(stderr, "cannot load the capture program: %s\n", strerror(-err));
		return 1;
	}
	/* with --workers N the agent fills rings 1..N-1; here every slot gets ring 0 */
	for (i = 1; i < (size_t)workers; i++) {
		__u32 key = (__u32)i;
		int fd = bpf_map__fd(skel->maps.events);

		bpf_map_update_elem(bpf_map__fd(skel->maps.rings), &key, &fd, BPF_ANY);
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), bm_discard, &got, NULL);
	if (!rb) {
		fprintf(stderr, "cannot read the ring: %s\n", strerror(errno));
		return 1;
	}
	if (live || pair) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(pair ? 0 : 1, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	if (batch) {
		long pg = sysconf(_SC_PAGESIZE);
		int mfd = bpf_map__fd(skel->maps.events);
		void *cp = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
		void *pp = mmap(NULL, (size_t)pg + 2 * (1ul << 24), PROT_READ, MAP_SHARED, mfd, pg);

		if (cp == MAP_FAILED || pp == MAP_FAILED) {
			fprintf(stderr, "cannot map the ring: %s\n", strerror(errno));
			return 1;
		}
		bb.cons = cp;
		bb.prod = pp;
		bb.data = (const uint8_t *)pp + pg;
		bb.mask = (1ul << 24) - 1;
		pthread_create(&reader, NULL, bm_reader_batch, &bb);
	} else if (live) {
		pthread_create(&reader, NULL, bm_reader, rb);
	}
	printf("| frame | ns per run, median of batches | fastest batch |\n|---|---|---|\n");
	for (i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		size_t len = bm_frame(buf, frames[i].sport, frames[i].dport, frames[i].flags,
				      frames[i].payload, frames[i].plen);
		long nb = runs / BM_BATCH, b;
		uint32_t *d = calloc((size_t)nb, sizeof(*d)), t;
		struct bm_pair pr = { .prog_fd = bpf_program__fd(skel->progs.st_capture),
				      .buf = buf, .len = (uint32_t)len, .nb = nb };
		pthread_t peer;
		long x, y;

		if (pair) {
			pthread_barrier_init(&pr.start, NULL, 2);
			pthread_barrier_init(&pr.done, NULL, 2);
			pthread_create(&peer, NULL, bm_pair_run, &pr);
		}
		for (b = 0; b < nb; b++) {
			LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = buf,
				    .data_size_in = (uint32_t)len, .repeat = BM_BATCH);

			if (pair)
				pthread_barrier_wait(&pr.start);
			if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.st_capture), &opts)) {
				fprintf(stderr, "test_run failed: %s\n", strerror(errno));
				return 1;
			}
			if (pair)
				pthread_barrier_wait(&pr.done);
			d[b] = opts.duration;
			if (!live)
				ring_buffer__consume(rb);
		}
		if (pair) {
			pthread_join(peer, NULL);
			pthread_barrier_destroy(&pr.start);
			pthread_barrier_destroy(&pr.done);
		}
		for (x = 1; x < nb; x++)	/* insertion sort: nb is small */
			for (y = x; y > 0 && d[y - 1] > d[y]; y--) {
				t = d[y];
				d[y] = d[y - 1];
				d[y - 1] = t;
			}
		printf("| %s | %u | %u |\n", frames[i].name, nb ? d[nb / 2] : 0, nb ? d[0] : 0);
		free(d);
	}
	if (live) {
		bm_stop = 1;
		pthread_join(reader, NULL);
	}
	ring_buffer__consume(rb);
	got += bb.got;
	fprintf(stderr, "bpf_micro: %llu events read\n", (unsigned long long)got);
	ring_buffer__free(rb);
	capture_bpf__destroy(skel);
	return 0;
}
