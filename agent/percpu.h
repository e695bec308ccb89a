/* Per-CPU BPF counter maps: one entry (key 0) of __u64 counters per CPU, summed.
 * Owns nothing; shared by capture.c and tls.c. */
#ifndef ST_PERCPU_H
#define ST_PERCPU_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <bpf/bpf.h>

/* scratch holds ncpus * size bytes; sum gets size bytes. 0 or -errno. */
static inline int percpu_sum(int map_fd, void *scratch, int ncpus, void *sum, size_t size)
{
	__u64 *dst = sum;
	__u32 key = 0;
	size_t f;
	int cpu;

	memset(sum, 0, size);
	if (bpf_map_lookup_elem(map_fd, &key, scratch))
		return -errno;
	for (cpu = 0; cpu < ncpus; cpu++) {
		const __u64 *src = (const __u64 *)((const char *)scratch + (size_t)cpu * size);

		for (f = 0; f < size / sizeof(__u64); f++)
			dst[f] += src[f];
	}
	return 0;
}

#endif
