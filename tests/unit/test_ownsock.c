/* ownsock.c: the registry of the agent's own sockets and the own_conns map it fills
 * (a real BPF hash map of the same shape when root; the registry alone otherwise). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <bpf/bpf.h>

#include "ownsock.h"
#include "shadowtap.h"
#include "util.h"

#define NSOCK 300

static struct sockaddr_in peer4(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(0x7f000001);
	return a;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	return ntohs(a.sin_port);
}

static struct st_own_key key4(uint16_t rport, uint16_t lport)
{
	struct st_own_key k;

	memset(&k, 0, sizeof(k));
	k.family = 4;
	k.raddr[0] = htonl(0x7f000001);
	k.rport = rport;
	k.lport = lport;
	return k;
}

static int refs(int map, const struct st_own_key *k)
{
	uint32_t v = 0;

	return bpf_map_lookup_elem(map, k, &v) < 0 ? 0 : (int)v;
}

/* Registered before and after the map exists; released in a scrambled order (the
 * fd table's deletions must keep every other entry findable); the map keeps a
 * released key through its grace period and drops it after. */
static void test_register_release(void **state)
{
	int fds[NSOCK], order[NSOCK], map, early, i, j, t;
	uint16_t lp[NSOCK], early_lp;
	struct ownsock_stats st0, st;
	struct sockaddr_in p = peer4(18099);
	struct st_own_key k;

	ownsock_get_stats(&st0);
	early = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(early >= 0);
	assert_int_equal(ownsock_prepare(early, (struct sockaddr *)&p, sizeof(p)), 0);
	early_lp = local_port(early);
	assert_true(early_lp != 0);

	map = bpf_map_create(BPF_MAP_TYPE_HASH, "own_conns", sizeof(struct st_own_key),
			     sizeof(uint32_t), ST_OWN_MAX, NULL);
	if (map < 0) {
		ownsock_release(early);
		close(early);
		if (errno == EPERM) {
			fprintf(stderr, "SKIP: bpf map part needs root\n");
			skip();
		}
		fail_msg("bpf_map_create: %s", strerror(errno));
	}
	ownsock_attach(map);
	k = key4(18099, early_lp);
	assert_int_equal(refs(map, &k), 1);

	for (i = 0; i < NSOCK; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(ownsock_prepare(fds[i], (struct sockaddr *)&p, sizeof(p)), 0);
		lp[i] = local_port(fds[i]);
		k = key4(18099, lp[i]);
		assert_int_equal(refs(map, &k), 1);
		order[i] = i;
	}
	ownsock_get_stats(&st);
	assert_int_equal(st.registered - st0.registered, NSOCK + 1);
	assert_int_equal(st.active, NSOCK + 1);

	ownsock_set_grace_ms(200);
	srand(7);
	for (i = NSOCK - 1; i > 0; i--) {
		j = rand() % (i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	ownsock_release(-1);
	ownsock_release(12345);		/* never registered: ignored */
	for (i = 0; i < NSOCK; i++) {
		ownsock_release(fds[order[i]]);
		close(fds[order[i]]);
		ownsock_get_stats(&st);
		assert_int_equal(st.active, NSOCK - i);
	}
	/* in grace: still excluded */
	for (i = 0; i < NSOCK; i++) {
		k = key4(18099, lp[i]);
		assert_int_equal(refs(map, &k), 1);
	}
	usleep(300 * 1000);
	ownsock_tick();
	for (i = 0; i < NSOCK; i++) {
		k = key4(18099, lp[i]);
		assert_int_equal(refs(map, &k), 0);
	}
	k = key4(18099, early_lp);
	assert_int_equal(refs(map, &k), 1);
	ownsock_release(early);
	close(early);
	ownsock_get_stats(&st);
	assert_int_equal(st.active, 0);
	assert_int_equal(st.untracked, 0);
	usleep(300 * 1000);
	ownsock_tick();
	assert_int_equal(refs(map, &k), 0);
	ownsock_detach();
	close(map);
	ownsock_set_grace_ms(5000);
}

/* A v4-mapped IPv6 peer travels as IPv4; a plain IPv6 peer keys as IPv6. */
static void test_ipv6_keys(void **state)
{
	struct sockaddr_in6 p = { .sin6_family = AF_INET6, .sin6_port = htons(18098) };
	struct st_own_key k;
	int map, fd;
	uint32_t v;

	map = bpf_map_create(BPF_MAP_TYPE_HASH, "own_conns", sizeof(struct st_own_key),
			     sizeof(uint32_t), ST_OWN_MAX, NULL);
	if (map < 0) {
		fprintf(stderr, "SKIP: needs root\n");
		skip();
	}
	ownsock_attach(map);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &p.sin6_addr);
	assert_int_equal(ownsock_prepare(fd, (struct sockaddr *)&p, sizeof(p)), 0);
	memset(&k, 0, sizeof(k));
	k.family = 4;
	k.raddr[0] = htonl(0x7f000001);
	k.rport = 18098;
	{
		struct sockaddr_in6 l;
		socklen_t ll = sizeof(l);

		assert_int_equal(getsockname(fd, (struct sockaddr *)&l, &ll), 0);
		k.lport = ntohs(l.sin6_port);
	}
	assert_int_equal(bpf_map_lookup_elem(map, &k, &v), 0);
	ownsock_release(fd);
	close(fd);

	fd = socket(AF_INET6, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	inet_pton(AF_INET6, "fd00::2", &p.sin6_addr);
	assert_int_equal(ownsock_prepare(fd, (struct sockaddr *)&p, sizeof(p)), 0);
	memset(&k, 0, sizeof(k));
	k.family = 6;
	inet_pton(AF_INET6, "fd00::2", k.raddr);
	k.rport = 18098;
	{
		struct sockaddr_in6 l;
		socklen_t ll = sizeof(l);

		assert_int_equal(getsockname(fd, (struct sockaddr *)&l, &ll), 0);
		k.lport = ntohs(l.sin6_port);
	}
	assert_int_equal(bpf_map_lookup_elem(map, &k, &v), 0);
	ownsock_release(fd);
	close(fd);
	ownsock_detach();
	close(map);
}

/* The decision alone: a peer port or a local port range holding a captured port
 * needs the exclusion; anything else cannot be captured. */
static void test_may_match(void **state)
{
	static const uint16_t p80[] = { 80 }, many[] = { 80, 443, 8080 }, high[] = { 40000 };

	assert_int_equal(ownsock_may_match(p80, 1, 80, 32768, 60999), 1);	/* serverB on 80 */
	assert_int_equal(ownsock_may_match(p80, 1, 8080, 32768, 60999), 0);
	assert_int_equal(ownsock_may_match(many, 3, 9200, 32768, 60999), 0);
	assert_int_equal(ownsock_may_match(many, 3, 443, 32768, 60999), 1);
	assert_int_equal(ownsock_may_match(high, 1, 8080, 32768, 60999), 1);	/* in the range */
	assert_int_equal(ownsock_may_match(high, 1, 8080, 40000, 40000), 1);	/* its edge */
	assert_int_equal(ownsock_may_match(high, 1, 8080, 40001, 60999), 0);
	assert_int_equal(ownsock_may_match(high, 1, 8080, 1024, 39999), 0);
	assert_int_equal(ownsock_may_match(p80, 1, 8080, 1, 65535), 1);	/* unreadable range */
	assert_int_equal(ownsock_may_match(p80, 0, 80, 1, 65535), 0);
}

static void write_range(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* 1 if prepare bound and registered fd (its local port is set before connect). */
static int prepared(uint16_t rport, struct ownsock_stats *d)
{
	struct sockaddr_in p = peer4(rport);
	struct ownsock_stats a, b;
	int fd, bound;

	ownsock_get_stats(&a);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(ownsock_prepare(fd, (struct sockaddr *)&p, sizeof(p)), 0);
	bound = local_port(fd) != 0;
	ownsock_release(fd);
	close(fd);
	ownsock_get_stats(&b);
	d->registered = b.registered - a.registered;
	d->unneeded = b.unneeded - a.unneeded;
	assert_int_equal(b.active, a.active);
	return bound;
}

/* With the capture's ports known, a connection that cannot be captured is left as
 * it was (not bound, not registered, counted as unneeded); one to a captured port,
 * or whose local port could be a captured one, is bound and registered as before;
 * an unreadable range file registers everything. */
static void test_unneeded(void **state)
{
	static const uint16_t p80[] = { 80 }, p40k[] = { 40000 };
	char path[] = "/tmp/test_ownsock_range_XXXXXX";
	struct ownsock_stats d;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	write_range(path, "32768\t60999\n");
	ownsock_set_range_path(path);

	/* not told the ports yet: registered */
	assert_int_equal(prepared(18097, &d), 1);
	assert_int_equal(d.registered, 1);
	assert_int_equal(d.unneeded, 0);

	ownsock_watch_ports(p80, 1);
	assert_int_equal(prepared(18097, &d), 0);
	assert_int_equal(d.registered, 0);
	assert_int_equal(d.unneeded, 1);
	assert_int_equal(prepared(80, &d), 1);
	assert_int_equal(d.registered, 1);
	assert_int_equal(d.unneeded, 0);

	ownsock_watch_ports(p40k, 1);
	assert_int_equal(prepared(18097, &d), 1);	/* 40000 may be its local port */
	assert_int_equal(d.registered, 1);

	/* a new range is read (set_range_path forgets the last read) */
	write_range(path, "41000 60999\n");
	ownsock_set_range_path(path);
	assert_int_equal(prepared(18097, &d), 0);
	assert_int_equal(d.unneeded, 1);

	write_range(path, "garbage\n");
	ownsock_set_range_path(path);
	ownsock_watch_ports(p80, 1);
	assert_int_equal(prepared(18097, &d), 1);
	assert_int_equal(d.registered, 1);

	unlink(path);
	ownsock_set_range_path(NULL);
	ownsock_watch_ports(NULL, -1);
	assert_int_equal(prepared(18097, &d), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_release),
		cmocka_unit_test(test_ipv6_keys),
		cmocka_unit_test(test_may_match),
		cmocka_unit_test(test_unneeded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
