/* A listening socket on 127.0.0.1 that nobody accepts on, for the replay tests:
 * connects complete (the backlog), the first bytes of each request fit the socket
 * buffers, no answer ever comes. Include after <cmocka.h>. */
#ifndef ST_TEST_MUTE_LISTENER_H
#define ST_TEST_MUTE_LISTENER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

static inline int mute_listener(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1024), 0);   /* no connect waits for a SYN retry */
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

#endif
