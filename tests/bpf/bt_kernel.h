/* What the BPF tests do when the capture program cannot be loaded. The README
 * supports kernels >= 5.8 (ring buffers): there a load or verifier failure is a
 * bug and the test FAILs; only an older kernel, or no root, is a real SKIP. */
#ifndef BT_KERNEL_H
#define BT_KERNEL_H

#include <stdio.h>
#include <sys/utsname.h>

#define BT_MIN_MAJOR	5
#define BT_MIN_MINOR	8

/* 1 when the running kernel is one the README supports; *rel gets its release. */
static inline int bt_kernel_supported(const char **rel)
{
	static struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2) {
		*rel = "unknown";
		return 1; /* unknown: assume supported, so a failure is not hidden */
	}
	*rel = u.release;
	return major > BT_MIN_MAJOR || (major == BT_MIN_MAJOR && minor >= BT_MIN_MINOR);
}

/* Call from a test body after a failed load (err < 0, what = which load):
 * FAILs on a supported kernel, SKIPs on an older one. Never returns. */
#define BT_LOAD_FAILED(what, err)                                                     \
	do {                                                                          \
		const char *bt_rel_;                                                  \
		if (bt_kernel_supported(&bt_rel_))                                    \
			fail_msg("%s failed on supported kernel %s: %s (rerun with "  \
				 "verbose libbpf output to see the verifier log)",   \
				 (what), bt_rel_, strerror(-(err)));                  \
		fprintf(stderr, "SKIP: %s fails on kernel %s (< %d.%d): %s\n", (what), \
			bt_rel_, BT_MIN_MAJOR, BT_MIN_MINOR, strerror(-(err)));       \
		skip();                                                               \
	} while (0)

#endif
