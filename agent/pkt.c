#include <string.h>

#include "pkt.h"

/* Which side is the server when both ports are watched (a client whose ephemeral
 * port happens to be a watched port, e.g. 1080 -> 8000)? The handshake says: SYN
 * goes to the server, SYN-ACK comes from it. Remembered per connection in a small
 * direct-mapped table owned by the caller; without a handshake the lower port is
 * taken as the server. */

static uint32_t orient_hash(const uint32_t *a, const uint32_t *b, uint16_t pa, uint16_t pb)
{
	uint32_t h = 2166136261u, x = 0, y = 0;
	int i;

	for (i = 0; i < 4; i++) {
		x ^= a[i] * 0x9e3779b1u + (uint32_t)i;
		y ^= b[i] * 0x9e3779b1u + (uint32_t)i;
	}
	/* symmetric in the two endpoints */
	h = (h ^ (x + y)) * 16777619u;
	h = (h ^ (x ^ y)) * 16777619u;
	h = (h ^ ((uint32_t)pa + pb)) * 16777619u;
	h = (h ^ ((uint32_t)pa * pb)) * 16777619u;
	return h ? h : 1;
}

static int port_watched(uint16_t p, const uint16_t *ports, int nports)
{
	int i;

	for (i = 0; i < nports; i++)
		if (p == ports[i])
			return 1;
	return 0;
}

static int port_dir(struct pkt_orient *o, const uint32_t *src, const uint32_t *dst,
		    uint16_t sport, uint16_t dport, uint8_t flags, const uint16_t *ports, int nports)
{
	int ws = port_watched(sport, ports, nports), wd = port_watched(dport, ports, nports);
	struct pkt_orient_slot *sl;
	uint32_t h;

	if (wd && !ws)
		return REASM_C2S;
	if (ws && !wd)
		return REASM_S2C;
	if (!ws && !wd)
		return -1;
	h = orient_hash(src, dst, sport, dport);
	sl = &o->tab[h % PKT_ORIENT_SLOTS];
	if (flags & 0x02) {          /* SYN: learn */
		sl->key = h;
		sl->server_port = (flags & 0x10) ? sport : dport;
	}
	if (sl->key == h)
		return sl->server_port == dport ? REASM_C2S : REASM_S2C;
	return dport < sport ? REASM_C2S : REASM_S2C;
}

int pkt_parse_ip(struct pkt_orient *o, const uint8_t *pkt, size_t len, const uint16_t *ports,
		 int nports, uint64_t ts_ns, struct reasm_seg *seg)
{
	const uint8_t *tcp;
	uint32_t src[4] = { 0 }, dst[4] = { 0 };
	size_t ip_end, thl, tlen;
	uint16_t sport, dport;
	uint8_t family;
	int dir;

	if (len < 1)
		return PKT_MALFORMED;
	if ((pkt[0] >> 4) == 4) {
		size_t ihl = (size_t)(pkt[0] & 15) * 4, tot;

		if (len < 20 || ihl < 20 || ihl > len)
			return PKT_MALFORMED;
		if (pkt[9] != 6)
			return PKT_NOT_OURS;
		tot = (size_t)pkt[2] << 8 | pkt[3];
		/* total length 0 happens for TSO packets captured on the sending host */
		ip_end = tot == 0 || tot > len ? len : tot;
		if (ip_end < ihl)
			return PKT_MALFORMED;
		if ((pkt[6] & 0x20) || ((pkt[6] & 0x1f) | pkt[7]))
			return PKT_FRAGMENT;
		memcpy(&src[0], pkt + 12, 4);
		memcpy(&dst[0], pkt + 16, 4);
		tcp = pkt + ihl;
		tlen = ip_end - ihl;
		family = 4;
	} else if ((pkt[0] >> 4) == 6) {
		size_t off = 40, plen;
		uint8_t nh;

		if (len < 40)
			return PKT_MALFORMED;
		plen = (size_t)pkt[4] << 8 | pkt[5];
		ip_end = plen == 0 || 40 + plen > len ? len : 40 + plen;
		nh = pkt[6];
		/* walk the extension headers we can step over */
		while (nh == 0 || nh == 43 || nh == 60 || nh == 44) {
			if (off + 8 > ip_end)
				return PKT_MALFORMED;
			if (nh == 44)
				return PKT_FRAGMENT;
			nh = pkt[off];
			off += ((size_t)pkt[off + 1] + 1) * 8;
		}
		if (nh != 6)
			return PKT_NOT_OURS;
		if (off > ip_end)
			return PKT_MALFORMED;
		memcpy(src, pkt + 8, 16);
		memcpy(dst, pkt + 24, 16);
		tcp = pkt + off;
		tlen = ip_end - off;
		family = 6;
	} else {
		return PKT_MALFORMED;
	}
	if (tlen < 20)
		return PKT_MALFORMED;
	thl = (size_t)(tcp[12] >> 4) * 4;
	if (thl < 20 || thl > tlen)
		return PKT_MALFORMED;
	sport = (uint16_t)(tcp[0] << 8 | tcp[1]);
	dport = (uint16_t)(tcp[2] << 8 | tcp[3]);
	dir = port_dir(o, src, dst, sport, dport, tcp[13], ports, nports);
	if (dir < 0)
		return PKT_NOT_OURS;

	memset(seg, 0, sizeof(*seg));
	seg->key.family = family;
	if (dir == REASM_C2S) {
		memcpy(seg->key.caddr, src, sizeof(src));
		memcpy(seg->key.saddr, dst, sizeof(dst));
		seg->key.cport = sport;
		seg->key.sport = dport;
	} else {
		memcpy(seg->key.caddr, dst, sizeof(dst));
		memcpy(seg->key.saddr, src, sizeof(src));
		seg->key.cport = dport;
		seg->key.sport = sport;
	}
	seg->dir = (uint8_t)dir;
	seg->flags = tcp[13] & 0x1f;
	seg->seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
	seg->ack = (uint32_t)tcp[8] << 24 | (uint32_t)tcp[9] << 16 | (uint32_t)tcp[10] << 8 | tcp[11];
	seg->ts_ns = ts_ns;
	seg->data = tcp + thl;
	seg->len = (uint32_t)(tlen - thl);
	return PKT_OURS;
}
