/* Refuses a replay target that the agent itself captures (issue 16 item 2): replaying
 * to a local captured port would capture every replay again, without end. */
#ifndef ST_SELFLOOP_H
#define ST_SELFLOOP_H

#include <stdint.h>

/* 1 if URL (http[s]://HOST[:PORT][/...]) names this host (loopback, "localhost", the
 * unspecified address or an address of a local interface) on one of PORTS, else 0.
 * Host names other than "localhost" are not resolved (no DNS at start): 0. */
int selfloop_is_captured(const char *url, const uint16_t *ports, int nports);

#endif
