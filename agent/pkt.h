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

#define PKT_ORIENT_SLOTS 4096

struct pkt_orient_slot {
	uint32_t key;            /* hash of the unordered 4-tuple, 0 = empty */
	uint16_t server_port;
};

/* Which side of a connection is the server, learned from handshakes: one per packet
 * source (no locking), zero-initialised. */
struct pkt_orient {
	struct pkt_orient_slot tab[PKT_ORIENT_SLOTS];
};

/* Turn one packet into a segment. Returns PKT_OURS (seg filled, seg->data points into
 * pkt), PKT_NOT_OURS, PKT_MALFORMED or PKT_FRAGMENT. When both ports of a packet are
 * watched, a SYN / SYN-ACK seen earlier (remembered in o) says which side is the
 * server; otherwise the lower port is taken as the server. */
int pkt_parse_ip(struct pkt_orient *o, const uint8_t *pkt, size_t len, const uint16_t *ports,
		 int nports, uint64_t ts_ns, struct reasm_seg *seg);

#endif
