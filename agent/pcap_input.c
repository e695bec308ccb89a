/* Offline input: pcap/pcapng files through libpcap; link-layer framing here, the
 * IPv4/IPv6/TCP parsing in pkt.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pcap_input.h"
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

struct pcapin {
	pcap_t *pc;
	char *path;
	int dlt;
	const uint16_t *ports;
	int nports;
	capture_seg_cb cb;
	void (*tick)(void *ctx, uint64_t now_ns);
	void *ctx;
	struct counters *ctr;
	uint64_t last_tick, packets;
	struct pkt_orient orient;
};

int pcapin_open(struct pcapin **out, const char *path, const uint16_t *ports, int nports,
		capture_seg_cb cb, void (*tick)(void *ctx, uint64_t now_ns), void *ctx,
		struct counters *ctr)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcapin *pi;

	*out = NULL;
	pi = calloc(1, sizeof(*pi));
	if (!pi || !(pi->path = strdup(path))) {
		free(pi);
		return -ENOMEM;
	}
	pi->pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, errbuf);
	if (!pi->pc) {
		pr_warn("cannot read pcap file %s: %s\n", path, errbuf);
		pcapin_close(pi);
		return -EINVAL;
	}
	pi->dlt = pcap_datalink(pi->pc);
	pi->ports = ports;
	pi->nports = nports;
	pi->cb = cb;
	pi->tick = tick;
	pi->ctx = ctx;
	pi->ctr = ctr;
	*out = pi;
	return 0;
}

int pcapin_step(struct pcapin *pi, int max)
{
	struct pcap_pkthdr *h;
	const u_char *p;
	struct reasm_seg seg;
	struct counters *c = pi->ctr;
	int rc = 1, n;

	for (n = 0; n < max && (rc = pcap_next_ex(pi->pc, &h, &p)) == 1; n++) {
		uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec;
		long off;
		int r;

		pi->packets++;
		ctr_add(c, CTR_PCAP_PACKETS, 1);
		if (h->caplen < h->len)
			ctr_add(c, CTR_PCAP_SNAP_TRUNCATED, 1);
		off = link_ip_offset(pi->dlt, p, h->caplen);
		if (off == -2) {
			ctr_add(c, CTR_PCAP_UNSUPPORTED_LINK, 1);
			continue;
		}
		if (off < 0) {
			ctr_add(c, CTR_PCAP_OTHER, 1);
			continue;
		}
		r = pkt_parse_ip(&pi->orient, p + off, h->caplen - (size_t)off, pi->ports, pi->nports, ts, &seg);
		if (r == 1) {
			ctr_add(c, CTR_PCAP_SEGMENTS, 1);
			pi->cb(pi->ctx, &seg);
		} else if (r == 0) {
			ctr_add(c, CTR_PCAP_OTHER, 1);
		} else if (r == -2) {
			ctr_add(c, CTR_PCAP_FRAGMENTS, 1);
		} else {
			ctr_add(c, CTR_PCAP_MALFORMED, 1);
		}
		if (pi->tick && ts >= pi->last_tick + PCAPIN_TICK_NS) {
			pi->tick(pi->ctx, ts);
			pi->last_tick = ts;
		}
	}
	if (rc == 1)
		return 1;
	if (rc == -1)
		/* a truncated final record: what was read counts, the file is still reported */
		pr_warn("pcap file %s: %s (stopped after %llu packets)\n", pi->path, pcap_geterr(pi->pc),
			(unsigned long long)pi->packets);
	return 0;
}

void pcapin_close(struct pcapin *pi)
{
	if (!pi)
		return;
	if (pi->pc)
		pcap_close(pi->pc);
	free(pi->path);
	free(pi);
}
