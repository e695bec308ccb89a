/* Offline input: pcap/pcapng files through libpcap; link-layer framing here, the
 * IPv4/IPv6/TCP parsing in pkt.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <string.h>

#include "capture.h"
#include "log.h"
#include "pkt.h"

#define PCAPIN_TICK_NS 100000000ull

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
		r = pkt_parse_ip(p + off, h->caplen - (size_t)off, ports, nports, ts, &seg);
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
