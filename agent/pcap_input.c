/* Offline input: pcap/pcapng files through libpcap, and the IPv4/IPv6/TCP parsing
 * shared with anything that hands us raw IP packets. */
#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <string.h>

#include "capture.h"
#include "log.h"

#define PCAPIN_TICK_NS 100000000ull

/* Which side is the server when both ports are watched (a client whose ephemeral
 * port happens to be a watched port, e.g. 1080 -> 8000)? The handshake says: SYN
 * goes to the server, SYN-ACK comes from it. Remembered per connection in a small
 * direct-mapped table; without a handshake the lower port is taken as the server. */
#define ORIENT_SLOTS 4096

struct orient_slot {
	uint32_t key;      /* hash of the unordered 4-tuple, 0 = empty */
	uint16_t server_port;
};

static struct orient_slot orient_tab[ORIENT_SLOTS];

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

static int port_dir(const uint32_t *src, const uint32_t *dst, uint16_t sport, uint16_t dport,
		    uint8_t flags, const uint16_t *ports, int nports)
{
	int ws = port_watched(sport, ports, nports), wd = port_watched(dport, ports, nports);
	struct orient_slot *sl;
	uint32_t h;

	if (wd && !ws)
		return REASM_C2S;
	if (ws && !wd)
		return REASM_S2C;
	if (!ws && !wd)
		return -1;
	h = orient_hash(src, dst, sport, dport);
	sl = &orient_tab[h % ORIENT_SLOTS];
	if (flags & 0x02) {          /* SYN: learn */
		sl->key = h;
		sl->server_port = (flags & 0x10) ? sport : dport;
	}
	if (sl->key == h)
		return sl->server_port == dport ? REASM_C2S : REASM_S2C;
	return dport < sport ? REASM_C2S : REASM_S2C;
}

/* Returns 1 (ours), 0 (not ours), -1 (malformed), -2 (IP fragment, not handled). */
int capture_parse_ip(const uint8_t *pkt, size_t len, const uint16_t *ports, int nports,
		     uint64_t ts_ns, struct reasm_seg *seg)
{
	const uint8_t *tcp;
	uint32_t src[4] = { 0 }, dst[4] = { 0 };
	size_t ip_end, thl, tlen;
	uint16_t sport, dport;
	uint8_t family;
	int dir;

	if (len < 1)
		return -1;
	if ((pkt[0] >> 4) == 4) {
		size_t ihl = (size_t)(pkt[0] & 15) * 4, tot;

		if (len < 20 || ihl < 20 || ihl > len)
			return -1;
		if (pkt[9] != 6)
			return 0;
		tot = (size_t)pkt[2] << 8 | pkt[3];
		/* total length 0 happens for TSO packets captured on the sending host */
		ip_end = tot == 0 || tot > len ? len : tot;
		if (ip_end < ihl)
			return -1;
		if ((pkt[6] & 0x20) || ((pkt[6] & 0x1f) | pkt[7]))
			return -2;
		memcpy(&src[0], pkt + 12, 4);
		memcpy(&dst[0], pkt + 16, 4);
		tcp = pkt + ihl;
		tlen = ip_end - ihl;
		family = 4;
	} else if ((pkt[0] >> 4) == 6) {
		size_t off = 40, plen;
		uint8_t nh;

		if (len < 40)
			return -1;
		plen = (size_t)pkt[4] << 8 | pkt[5];
		ip_end = plen == 0 || 40 + plen > len ? len : 40 + plen;
		nh = pkt[6];
		/* walk the extension headers we can step over */
		while (nh == 0 || nh == 43 || nh == 60 || nh == 44) {
			if (off + 8 > ip_end)
				return -1;
			if (nh == 44)
				return -2;
			nh = pkt[off];
			off += ((size_t)pkt[off + 1] + 1) * 8;
		}
		if (nh != 6)
			return 0;
		if (off > ip_end)
			return -1;
		memcpy(src, pkt + 8, 16);
		memcpy(dst, pkt + 24, 16);
		tcp = pkt + off;
		tlen = ip_end - off;
		family = 6;
	} else {
		return -1;
	}
	if (tlen < 20)
		return -1;
	thl = (size_t)(tcp[12] >> 4) * 4;
	if (thl < 20 || thl > tlen)
		return -1;
	sport = (uint16_t)(tcp[0] << 8 | tcp[1]);
	dport = (uint16_t)(tcp[2] << 8 | tcp[3]);
	dir = port_dir(src, dst, sport, dport, tcp[13], ports, nports);
	if (dir < 0)
		return 0;

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
	seg->ts_ns = ts_ns;
	seg->data = tcp + thl;
	seg->len = (uint32_t)(tlen - thl);
	return 1;
}

/* Offset of the IP header for a link type, or -1 if the frame is not IP. */
static long link_ip_offset(int dlt, const uint8_t *p, size_t caplen)
{
	size_t off;
	uint16_t et;

	switch (dlt) {
	case DLT_EN10MB:
		if (caplen < 14)
			return -1;
		off = 12;
		et = (uint16_t)(p[off] << 8 | p[off + 1]);
		while (et == 0x8100 || et == 0x88a8) {   /* VLAN tags */
			off += 4;
			if (off + 2 > caplen)
				return -1;
			et = (uint16_t)(p[off] << 8 | p[off + 1]);
		}
		return et == 0x0800 || et == 0x86dd ? (long)off + 2 : -1;
	case DLT_RAW:
	case 228: /* LINKTYPE_IPV4 */
	case 229: /* LINKTYPE_IPV6 */
		return 0;
	case DLT_NULL:
	case DLT_LOOP:
		return caplen >= 4 ? 4 : -1;
	case DLT_LINUX_SLL:
		if (caplen < 16)
			return -1;
		et = (uint16_t)(p[14] << 8 | p[15]);
		return et == 0x0800 || et == 0x86dd ? 16 : -1;
	case 276: /* DLT_LINUX_SLL2 */
		if (caplen < 20)
			return -1;
		et = (uint16_t)(p[0] << 8 | p[1]);
		return et == 0x0800 || et == 0x86dd ? 20 : -1;
	default:
		return -2;
	}
}

int pcapin_run(const char *path, const uint16_t *ports, int nports, capture_seg_cb cb,
	       void (*tick)(void *ctx, uint64_t now_ns), void *ctx, struct pcapin_stats *st,
	       volatile int *stop)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *p;
	uint64_t last_tick = 0;
	struct reasm_seg seg;
	pcap_t *pc;
	int dlt, rc, err = 0;

	pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!pc) {
		pr_warn("cannot read pcap file %s: %s\n", path, errbuf);
		return -EINVAL;
	}
	dlt = pcap_datalink(pc);
	while (!(stop && *stop) && (rc = pcap_next_ex(pc, &h, &p)) == 1) {
		uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec;
		long off;
		int r;

		st->packets++;
		if (h->caplen < h->len)
			st->snap_truncated++;
		off = link_ip_offset(dlt, p, h->caplen);
		if (off == -2) {
			st->unsupported_link++;
			continue;
		}
		if (off < 0) {
			st->not_tcp++;
			continue;
		}
		r = capture_parse_ip(p + off, h->caplen - (size_t)off, ports, nports, ts, &seg);
		if (r == 1) {
			st->segments++;
			cb(ctx, &seg);
		} else if (r == 0) {
			st->not_tcp++;
		} else if (r == -2) {
			st->fragments++;
		} else {
			st->malformed++;
		}
		if (tick && ts >= last_tick + PCAPIN_TICK_NS) {
			tick(ctx, ts);
			last_tick = ts;
		}
	}
	if (rc == -1) {
		/* a truncated final record: what was read counts, the file is still reported */
		pr_warn("pcap file %s: %s (stopped after %llu packets)\n", path, pcap_geterr(pc),
			(unsigned long long)st->packets);
		err = 0;
	}
	pcap_close(pc);
	return err;
}
