/* Packet parser: raw IPv4/IPv6 packets (from the IP header on) to reasm_seg slices.
 * Owns: header validation and which side of a connection is the server. Pure, no I/O. */
#ifndef ST_PKT_H
#define ST_PKT_H

#include <stddef.h>
#include <stdint.h>

#include "tcp_reasm.h"

enum {
	PKT_OURS = 1,          /* a TCP segment on a watched port: seg filled */
	PKT_NOT_OURS = 0,      /* another protocol or port */
	PKT_MALFORMED = -1,    /* truncated or inconsistent IP/TCP headers */
	PKT_FRAGMENT = -2,     /* an IP fragment (not reassembled) */
};

/* Turn one packet into a segment. Returns PKT_OURS (seg filled, seg->data points into
 * pkt), PKT_NOT_OURS, PKT_MALFORMED or PKT_FRAGMENT. When both ports of a packet are
 * watched, a SYN / SYN-ACK seen earlier says which side is the server (one table per
 * process: call from one thread); otherwise the lower port is taken as the server. */
int pkt_parse_ip(const uint8_t *pkt, size_t len, const uint16_t *ports, int nports,
		 uint64_t ts_ns, struct reasm_seg *seg);

#endif
