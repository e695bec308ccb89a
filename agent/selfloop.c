/* See selfloop.h. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "selfloop.h"

/* Splits "http[s]://HOST[:PORT]/..." into host (brackets removed) and port (80 or 443
 * by default). */
static int selfloop_split(const char *url, char *host, size_t hlen, unsigned *port)
{
	const char *h = url, *e, *colon;
	size_t n;

	*port = 80;
	if (!strncmp(h, "http://", 7)) {
		h += 7;
	} else if (!strncmp(h, "https://", 8)) {
		h += 8;
		*port = 443;
	}
	e = h + strcspn(h, "/?#");
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(e - h));

		if (!rb)
			return -1;
		n = (size_t)(rb - h - 1);
		if (n >= hlen)
			return -1;
		memcpy(host, h + 1, n);
		host[n] = '\0';
		colon = rb + 1 < e && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(e - h));
		n = (size_t)((colon ? colon : e) - h);
		if (n >= hlen)
			return -1;
		memcpy(host, h, n);
		host[n] = '\0';
	}
	if (colon) {
		char *end;
		unsigned long p = strtoul(colon + 1, &end, 10);

		if (end != e || !p || p > 65535)
			return -1;
		*port = (unsigned)p;
	}
	return 0;
}

static int selfloop_host_is_local(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;
	struct ifaddrs *ifa, *i;
	int fam, local = 0;

	if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost."))
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1) {
		fam = AF_INET;
		if ((ntohl(a4.s_addr) >> 24) == 127 || a4.s_addr == INADDR_ANY)
			return 1;
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		fam = AF_INET6;
		if (IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6))
			return 1;
	} else {
		return 0;
	}
	if (getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i && !local; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != fam)
			continue;
		if (fam == AF_INET)
			local = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == a4.s_addr;
		else
			local = !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, &a6,
					sizeof(a6));
	}
	freeifaddrs(ifa);
	return local;
}

int selfloop_is_captured(const char *url, const uint16_t *ports, int nports)
{
	char host[256];
	unsigned port;
	int i;

	if (selfloop_split(url, host, sizeof(host), &port))
		return 0;
	for (i = 0; i < nports; i++)
		if (ports[i] == port)
			return selfloop_host_is_local(host);
	return 0;
}
