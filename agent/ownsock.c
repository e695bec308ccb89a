/* See ownsock.h. The registry is a fixed open-addressing table keyed by fd (live
 * sockets) and a FIFO of released keys still in their grace period; the BPF map's
 * value is the number of registry entries (live or in grace) with that key, since a
 * released tuple can be taken again by a new connection before its grace ends. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <curl/curl.h>

#include "log.h"
#include "ownsock.h"
#include "shadowtap.h"
#include "util.h"

/* A released connection's last segments (its FIN or RST, the peer's answer, a
 * retransmission or two) come within this time; serverB seconds away is not a case
 * the exclusion has to cover. */
#define OWNSOCK_GRACE_MS	5000
#define OWNSOCK_LIVE_MAX	4096
#define OWNSOCK_SLOTS		(OWNSOCK_LIVE_MAX * 2)	/* power of two */
#define OWNSOCK_GRACE_MAX	(ST_OWN_MAX - OWNSOCK_LIVE_MAX)
#define OWNSOCK_RANGE_PATH	"/proc/sys/net/ipv4/ip_local_port_range"
/* The range is a sysctl an operator may change while the agent runs: read again
 * after this long (a read is three system calls, a POST's own bookkeeping five). */
#define OWNSOCK_RANGE_MS	1000

struct ownsock_live {
	int fd;                  /* -1: free slot */
	struct st_own_key key;
};

struct ownsock_grace {
	struct st_own_key key;
	uint64_t expire_ms;
};

static pthread_mutex_t os_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ownsock_live os_live[OWNSOCK_SLOTS];
static int os_nlive;
static int os_ready;
static struct ownsock_grace os_grace[OWNSOCK_GRACE_MAX];
static unsigned os_ghead, os_gcount;
static int os_map_fd = -1;
static struct ownsock_stats os_st;
static int os_warned;
static unsigned os_grace_ms = OWNSOCK_GRACE_MS;
static uint16_t os_ports[ST_MAX_PORTS];
static int os_nports = -1;		/* -1: not told; every connection is registered */
static unsigned os_eph_lo, os_eph_hi;	/* ip_local_port_range as last read */
static uint64_t os_eph_ms;		/* when it was read; 0: never */
static const char *os_range_path = OWNSOCK_RANGE_PATH;

static void ownsock_init_locked(void)
{
	int i;

	if (os_ready)
		return;
	for (i = 0; i < OWNSOCK_SLOTS; i++)
		os_live[i].fd = -1;
	os_ready = 1;
}

static unsigned ownsock_slot(int fd)
{
	return (unsigned)st_mix64((uint64_t)(unsigned)fd) & (OWNSOCK_SLOTS - 1);
}

static void ownsock_untracked(const char *why)
{
	os_st.untracked++;
	if (!os_warned) {
		os_warned = 1;
		pr_warn("own connection not excluded from capture: %s (counted as own.untracked)\n",
			why);
	}
}

/* Adds delta to the key's reference count in the map; 0 deletes the entry. */
static int ownsock_map_ref(const struct st_own_key *k, int delta)
{
	__u32 refs = 0;

	if (os_map_fd < 0)
		return 0;
	if (bpf_map_lookup_elem(os_map_fd, k, &refs) < 0)
		refs = 0;
	if (delta < 0 && refs <= 1)
		return bpf_map_delete_elem(os_map_fd, k) < 0 && errno != ENOENT ? -errno : 0;
	refs = delta < 0 ? refs - 1 : refs + 1;
	return bpf_map_update_elem(os_map_fd, k, &refs, BPF_ANY) < 0 ? -errno : 0;
}

static void ownsock_tick_locked(uint64_t now)
{
	while (os_gcount && os_grace[os_ghead].expire_ms <= now) {
		ownsock_map_ref(&os_grace[os_ghead].key, -1);
		os_ghead = (os_ghead + 1) % OWNSOCK_GRACE_MAX;
		os_gcount--;
	}
}

static int ownsock_key(struct st_own_key *k, int fd, const struct sockaddr *peer,
		       socklen_t plen)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);

	memset(k, 0, sizeof(*k));
	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
		return -errno;
	if (peer->sa_family == AF_INET && plen >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *p = (const struct sockaddr_in *)peer;

		k->family = 4;
		k->raddr[0] = p->sin_addr.s_addr;
		k->rport = ntohs(p->sin_port);
		k->lport = ntohs(((struct sockaddr_in *)&local)->sin_port);
	} else if (peer->sa_family == AF_INET6 && plen >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;

		/* a v4-mapped peer travels as IPv4 on the wire */
		if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr)) {
			k->family = 4;
			memcpy(&k->raddr[0], &p->sin6_addr.s6_addr[12], 4);
		} else {
			k->family = 6;
			memcpy(k->raddr, &p->sin6_addr, sizeof(k->raddr));
		}
		k->rport = ntohs(p->sin6_port);
		k->lport = ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
	} else {
		return -EAFNOSUPPORT;
	}
	return k->lport ? 0 : -EADDRNOTAVAIL;
}

int ownsock_may_match(const uint16_t *ports, int nports, uint16_t rport, unsigned eph_lo,
		      unsigned eph_hi)
{
	int i;

	for (i = 0; i < nports; i++)
		if (ports[i] == rport || (ports[i] >= eph_lo && ports[i] <= eph_hi))
			return 1;
	return 0;
}

/* Reads ip_local_port_range; anything unreadable or odd counts as every port, so
 * that every connection is registered as before. */
static void ownsock_read_range_locked(uint64_t now)
{
	unsigned lo = 0, hi = 0;
	FILE *f = fopen(os_range_path, "re");

	if (!f || fscanf(f, "%u %u", &lo, &hi) != 2 || lo < 1 || lo > hi || hi > 65535) {
		if (!os_eph_ms)
			pr_debug("own connections: cannot read the local port range from %s: every one is excluded from capture\n",
				 os_range_path);
		lo = 1;
		hi = 65535;
	}
	if (f)
		fclose(f);
	os_eph_lo = lo;
	os_eph_hi = hi;
	os_eph_ms = now;
}

/* 1 if no segment of a connection to peer can match the capture's ports, whatever
 * local port the kernel gives it at connect: then it needs neither the bind nor
 * the map entry (one connection per replayed POST under Connection: close). */
static int ownsock_unneeded(const struct sockaddr *peer, socklen_t plen)
{
	uint16_t rport;
	uint64_t now;
	int ret = 0;

	if (peer->sa_family == AF_INET && plen >= sizeof(struct sockaddr_in))
		rport = ntohs(((const struct sockaddr_in *)peer)->sin_port);
	else if (peer->sa_family == AF_INET6 && plen >= sizeof(struct sockaddr_in6))
		rport = ntohs(((const struct sockaddr_in6 *)peer)->sin6_port);
	else
		return 0;
	pthread_mutex_lock(&os_lock);
	if (os_nports >= 0) {
		now = st_mono_ms();
		if (!os_eph_ms || now - os_eph_ms >= OWNSOCK_RANGE_MS)
			ownsock_read_range_locked(now);
		ret = !ownsock_may_match(os_ports, os_nports, rport, os_eph_lo, os_eph_hi);
		if (ret)
			os_st.unneeded++;
	}
	pthread_mutex_unlock(&os_lock);
	return ret;
}

void ownsock_watch_ports(const uint16_t *ports, int nports)
{
	int i;

	if (nports > ST_MAX_PORTS)
		nports = -1;	/* not a capture the program can run: stay safe */
	pthread_mutex_lock(&os_lock);
	for (i = 0; i < nports; i++)
		os_ports[i] = ports[i];
	os_nports = nports;
	pthread_mutex_unlock(&os_lock);
}

void ownsock_set_range_path(const char *path)
{
	pthread_mutex_lock(&os_lock);
	os_range_path = path ? path : OWNSOCK_RANGE_PATH;
	os_eph_ms = 0;
	pthread_mutex_unlock(&os_lock);
}

int ownsock_prepare(int fd, const struct sockaddr *peer, socklen_t plen)
{
	struct sockaddr_storage any;
	struct st_own_key k;
	socklen_t alen;
	unsigned i;
	int err;

	if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)
		return 0;
	if (ownsock_unneeded(peer, plen))
		return 0;
	memset(&any, 0, sizeof(any));
	any.ss_family = peer->sa_family;
	alen = peer->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if (bind(fd, (struct sockaddr *)&any, alen) < 0) {
		err = -errno;
		pthread_mutex_lock(&os_lock);
		os_st.unbound++;
		pthread_mutex_unlock(&os_lock);
		pr_debug("own connection: cannot bind a local port before connect (%s): it may be captured\n",
			 strerror(-err));
		return err;
	}
	err = ownsock_key(&k, fd, peer, plen);
	if (err)
		return err;

	pthread_mutex_lock(&os_lock);
	ownsock_init_locked();
	ownsock_tick_locked(st_mono_ms());
	if (os_nlive >= OWNSOCK_LIVE_MAX) {
		ownsock_untracked("more than 4096 open at once");
		err = -ENOSPC;
		goto out;
	}
	err = ownsock_map_ref(&k, +1);
	if (err) {
		ownsock_untracked(strerror(-err));
		goto out;
	}
	for (i = ownsock_slot(fd); os_live[i].fd >= 0; i = (i + 1) & (OWNSOCK_SLOTS - 1))
		;
	os_live[i].fd = fd;
	os_live[i].key = k;
	__atomic_store_n(&os_nlive, os_nlive + 1, __ATOMIC_RELAXED);
	os_st.registered++;
	os_st.active++;
out:
	pthread_mutex_unlock(&os_lock);
	return err;
}

/* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
static void ownsock_live_remove(unsigned i)
{
	unsigned j = i, home;

	os_live[i].fd = -1;
	for (;;) {
		j = (j + 1) & (OWNSOCK_SLOTS - 1);
		if (os_live[j].fd < 0)
			return;
		home = ownsock_slot(os_live[j].fd);
		/* j's entry may move to i unless its home lies cyclically in (i, j] */
		if ((i <= j) ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		os_live[i] = os_live[j];
		os_live[j].fd = -1;
		i = j;
	}
}

void ownsock_release(int fd)
{
	unsigned i, slot;
	uint64_t now;

	/* a connection left alone (unneeded) costs no lock here while none is
	 * registered; this thread's own registrations are always seen */
	if (fd < 0 || !__atomic_load_n(&os_nlive, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&os_lock);
	if (!os_ready || !os_nlive)
		goto out;
	for (i = ownsock_slot(fd); os_live[i].fd >= 0; i = (i + 1) & (OWNSOCK_SLOTS - 1))
		if (os_live[i].fd == fd)
			break;
	if (os_live[i].fd != fd)
		goto out;
	now = st_mono_ms();
	ownsock_tick_locked(now);
	if (os_gcount == OWNSOCK_GRACE_MAX) {
		/* the oldest grace ends early rather than this one not at all */
		ownsock_map_ref(&os_grace[os_ghead].key, -1);
		os_ghead = (os_ghead + 1) % OWNSOCK_GRACE_MAX;
		os_gcount--;
	}
	slot = (os_ghead + os_gcount) % OWNSOCK_GRACE_MAX;
	os_grace[slot].key = os_live[i].key;
	os_grace[slot].expire_ms = now + os_grace_ms;
	os_gcount++;
	ownsock_live_remove(i);
	__atomic_store_n(&os_nlive, os_nlive - 1, __ATOMIC_RELAXED);
	os_st.active--;
out:
	pthread_mutex_unlock(&os_lock);
}

void ownsock_attach(int map_fd)
{
	unsigned i;
	int err;

	pthread_mutex_lock(&os_lock);
	ownsock_init_locked();
	os_map_fd = map_fd;
	for (i = 0; i < OWNSOCK_SLOTS; i++)
		if (os_live[i].fd >= 0 && (err = ownsock_map_ref(&os_live[i].key, +1)))
			ownsock_untracked(strerror(-err));
	for (i = 0; i < os_gcount; i++)
		ownsock_map_ref(&os_grace[(os_ghead + i) % OWNSOCK_GRACE_MAX].key, +1);
	pthread_mutex_unlock(&os_lock);
}

void ownsock_detach(void)
{
	pthread_mutex_lock(&os_lock);
	os_map_fd = -1;
	pthread_mutex_unlock(&os_lock);
}

void ownsock_tick(void)
{
	pthread_mutex_lock(&os_lock);
	ownsock_tick_locked(st_mono_ms());
	pthread_mutex_unlock(&os_lock);
}

void ownsock_set_grace_ms(unsigned ms)
{
	pthread_mutex_lock(&os_lock);
	os_grace_ms = ms;
	pthread_mutex_unlock(&os_lock);
}

void ownsock_get_stats(struct ownsock_stats *st)
{
	pthread_mutex_lock(&os_lock);
	*st = os_st;
	pthread_mutex_unlock(&os_lock);
}

static curl_socket_t ownsock_curl_open(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);

	if (fd < 0)
		return CURL_SOCKET_BAD;
	if (purpose == CURLSOCKTYPE_IPCXN && a->socktype == SOCK_STREAM)
		ownsock_prepare(fd, &a->addr, a->addrlen);
	return fd;
}

static int ownsock_curl_close(void *arg, curl_socket_t fd)
{
	ownsock_release(fd);
	return close(fd);
}

void ownsock_curl(void *easy)
{
	curl_easy_setopt((CURL *)easy, CURLOPT_OPENSOCKETFUNCTION, ownsock_curl_open);
	curl_easy_setopt((CURL *)easy, CURLOPT_CLOSESOCKETFUNCTION, ownsock_curl_close);
}
