/* Native recording format (.stap): msgpack records in CRC-checked blocks.
 * Owns: encoding and decoding records, the file header and block framing. */
#ifndef ST_REC_NATIVE_H
#define ST_REC_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"

struct rec_reader;

/* One record as a msgpack map appended to out; out is unchanged on failure. */
int rec_native_encode(const struct st_record *r, struct buf *out);
/* The file header (magic, version, metadata map, CRC) appended to out. */
int rec_native_file_header(struct buf *out, const char *iface, const char *source);
/* The header of a block holding n payload bytes and nrec records. */
void rec_native_block_header(uint8_t h[20], const void *p, size_t n, uint32_t nrec);

/* Reading, over a reader's buffered source: check the file header (-EPROTO if it
 * is not ours), find the next intact block (1, or 0 at the end), and decode the
 * next record (1 with *out set, 0 at the end). */
int rec_native_read_header(struct rec_reader *rd);
int rec_native_next_block(struct rec_reader *rd, const uint8_t **p, size_t *n, uint32_t *nrec);
int rec_native_next(struct rec_reader *rd, struct st_record **out);

#endif
