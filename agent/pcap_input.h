/* Offline input (--input-pcap): pcap/pcapng through libpcap, read in bounded steps
 * so the event loop stays responsive to signals, stats and deadlines.
 * Owns: the pcap handle and its position in the file. */
#ifndef ST_PCAP_INPUT_H
#define ST_PCAP_INPUT_H

#include <stdint.h>

#include "capture.h"
#include "counters.h"

struct pcapin;

/* Opens path. Segments on the watched ports go to cb(ctx, seg) with ts_ns in wall
 * clock (ns since the epoch); tick(ctx, ts) runs as file time advances so timers
 * follow file time. Counts into ctr (CTR_PCAP_*). 0 or negative errno (message printed). */
int pcapin_open(struct pcapin **out, const char *path, const uint16_t *ports, int nports,
		capture_seg_cb cb, void (*tick)(void *ctx, uint64_t now_ns), void *ctx,
		struct counters *ctr);
/* Reads at most max packets: 1 if there is more, 0 at the end of the file (a
 * truncated last record is reported and ends the file), or a negative errno. */
int pcapin_step(struct pcapin *pi, int max);
/* Accepts NULL. */
void pcapin_close(struct pcapin *pi);

#endif
