/* GoReplay recording format (.gor, v1.3.2 protocol): "TYPE ID START_NS LATENCY_NS\n",
 * payload, separator. Owns: entry encoding, entry header parsing and flow ids. */
#ifndef ST_REC_GOR_H
#define ST_REC_GOR_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"

#define REC_GOR_ID_MAX 64    /* an ID this long or longer makes the entry bad */

/* The request entry and, when the record has one, the response entry; -EBADMSG
 * (nothing appended) when a payload holds the separator, -ENOMEM. */
int rec_gor_encode(const struct st_record *r, struct buf *out);

struct rec_gor_meta {
	char line[256];          /* the header line, split in place */
	char type;               /* '1' request, '2' response, '3' replayed response */
	const char *id;
	size_t idl;
	uint64_t ts, lat;        /* start (wall ns) and latency */
	size_t head_len;         /* bytes of the header line and its newline */
};

/* Parse the header line of the entry [p, p+n). 0, or -EBADMSG. */
int rec_gor_parse_meta(const uint8_t *p, size_t n, struct rec_gor_meta *m);
/* The flow an ID names: its 16 hex connection digits, else a hash of the ID. */
uint64_t rec_gor_flow(const char *id, size_t idl);

#endif
