/* libFuzzer: arbitrary bytes through the native and GoReplay readers. The first
 * byte picks the reader so both get exercised from any seed: odd bytes are given a
 * valid native file header in front, so the block/record decoders are reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zlib.h>

#include "log.h"
#include "record.h"
#include "recording.h"

static void fuzz_read(const uint8_t *p, size_t n)
{
	struct rec_reader *rd;
	struct st_record *r;
	int k = 0;

	if (rec_reader_open_mem(&rd, p, n, 4096))
		return;
	while (rec_reader_next(rd, &r) == 1 && k++ < 100000)
		record_free(r);
	rec_reader_close(rd);
}

/* the same bytes as a file: the reader's own gzip decoding (members, damage) runs */
static void fuzz_read_file(const uint8_t *p, size_t n)
{
	struct rec_reader *rd;
	struct st_record *r;
	char path[64];
	int fd = memfd_create("fuzz", MFD_CLOEXEC), k = 0;

	if (fd < 0)
		return;
	if (write(fd, p, n) == (ssize_t)n) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (!rec_reader_open(&rd, path, 4096)) {
			while (rec_reader_next(rd, &r) == 1 && k++ < 100000)
				record_free(r);
			rec_reader_close(rd);
		}
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t hdr_meta[] = { 0x80 };   /* empty msgpack map */
	uint8_t *buf;
	uint32_t crc;
	size_t hl;

	st_log_level = -1;
	if (size == 0)
		return 0;
	if (!(data[0] & 1)) {
		if (data[0] & 2)
			fuzz_read_file(data + 1, size - 1);
		else
			fuzz_read(data + 1, size - 1);
		return 0;
	}
	/* native: header + the fuzz input as blocks; when the input starts with
	 * "STBK" + a length, give the block a correct CRC so the record decoder runs */
	hl = 16 + sizeof(hdr_meta) + 4;
	buf = malloc(hl + size - 1 + 20);
	if (!buf)
		return 0;
	memcpy(buf, REC_MAGIC, 8);
	buf[8] = REC_VERSION;
	buf[9] = buf[10] = buf[11] = 0;
	buf[12] = sizeof(hdr_meta);
	buf[13] = buf[14] = buf[15] = 0;
	memcpy(buf + 16, hdr_meta, sizeof(hdr_meta));
	crc = (uint32_t)crc32(0L, buf, (uInt)(16 + sizeof(hdr_meta)));
	memcpy(buf + 16 + sizeof(hdr_meta), &crc, 4);
	if (data[0] & 2) {
		/* wrap the whole input in one valid block */
		uint8_t *b = buf + hl;
		uint32_t len = (uint32_t)(size - 1), nrec = data[0] >> 2;

		memcpy(b, REC_BLOCK_MAGIC, 4);
		memcpy(b + 4, &len, 4);
		memcpy(b + 8, &nrec, 4);
		crc = (uint32_t)crc32(0L, data + 1, (uInt)len);
		memcpy(b + 12, &crc, 4);
		crc = (uint32_t)crc32(0L, b, 16);
		memcpy(b + 16, &crc, 4);
		memcpy(b + 20, data + 1, len);
		fuzz_read(buf, hl + 20 + len);
	} else {
		memcpy(buf + hl, data + 1, size - 1);
		fuzz_read(buf, hl + size - 1);
	}
	free(buf);
	return 0;
}
