/* libFuzzer target for agent/pkt.c. The first input byte picks the watched ports
 * (one port, or two so the handshake-orientation table is exercised); the rest is
 * parsed as an IP packet from an exact-size heap copy. Any broken invariant abort()s. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkt.h"

static void fz_check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t sets[4][2] = { { 80, 0 }, { 80, 8080 }, { 0, 65535 }, { 443, 80 } };
	/* kept across inputs as a capture keeps it across packets; an input whose first
	 * byte has the high bit set starts from an empty table */
	static struct pkt_orient orient;
	const uint16_t *ports;
	struct reasm_seg seg;
	uint8_t *pkt;
	size_t len;
	int nports, r, i, watched = 0;

	if (size < 1)
		return 0;
	if (data[0] & 0x80)
		memset(&orient, 0, sizeof(orient));
	ports = sets[data[0] & 3];
	nports = (data[0] & 3) == 0 ? 1 : 2;
	len = size - 1;
	pkt = malloc(len ? len : 1);
	if (!pkt)
		return 0;
	memcpy(pkt, data + 1, len);
	memset(&seg, 0xa5, sizeof(seg));
	r = pkt_parse_ip(&orient, pkt, len, ports, nports, 42, &seg);
	fz_check(r == PKT_OURS || r == PKT_NOT_OURS || r == PKT_MALFORMED || r == PKT_FRAGMENT);
	if (r == PKT_OURS) {
		fz_check(seg.key.family == 4 || seg.key.family == 6);
		fz_check(seg.dir == REASM_C2S || seg.dir == REASM_S2C);
		fz_check((seg.flags & ~0x1f) == 0);
		fz_check(seg.ts_ns == 42);
		fz_check(seg.len <= len);
		if (seg.len)
			fz_check(seg.data >= pkt && seg.data + seg.len <= pkt + len);
		for (i = 0; i < nports; i++)
			watched |= seg.key.sport == ports[i];
		fz_check(watched);
		/* IPv4 addresses use only the first word */
		if (seg.key.family == 4)
			fz_check(!seg.key.caddr[1] && !seg.key.saddr[3]);
	}
	free(pkt);
	return 0;
}
