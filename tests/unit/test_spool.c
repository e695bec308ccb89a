/* spool: order, checksums, torn tails, the size limit and crash recovery. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "spool.h"

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/st-spool-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

static struct spool *open_spool(const char *dir, uint64_t max, uint64_t seg)
{
	struct spool_cfg cfg = { .dir = dir, .max_bytes = max, .segment_bytes = seg,
				 .fsync = SPOOL_FSYNC_NEVER };
	struct spool *sp = NULL;

	assert_int_equal(spool_open(&sp, &cfg), 0);
	assert_non_null(sp);
	return sp;
}

static void put(struct spool *sp, int i)
{
	char id[32], json[64];

	snprintf(id, sizeof(id), "id-%04d", i);
	snprintf(json, sizeof(json), "{\"n\":%d,\"pad\":\"%0*d\"}", i, 20, i);
	assert_int_equal(spool_append(sp, id, 1000 + (uint64_t)i, json, strlen(json)), 0);
}

/* Reads everything available and checks the ids are want[0..n) in order. */
static void expect_ids(struct spool *sp, const int *want, int n)
{
	struct spool_entry e;
	char id[32];
	int i;

	for (i = 0; i < n; i++) {
		assert_int_equal(spool_read(sp, &e), 1);
		snprintf(id, sizeof(id), "id-%04d", want[i]);
		assert_string_equal(e.event_id, id);
		assert_int_equal(e.ts_ns, 1000 + (uint64_t)want[i]);
		assert_non_null(strstr(e.json, "\"n\":"));
		assert_int_equal(e.len, strlen(e.json));
		spool_entry_free(&e);
	}
	assert_int_equal(spool_read(sp, &e), 0);
}

static void seg_path(const char *dir, int nth, char *out, size_t n)
{
	/* segments are numbered from 1 in a fresh directory */
	snprintf(out, n, "%s/%016x.seg", dir, nth);
}

static void test_order_and_ack(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, 1 << 20, 4096);
	struct spool_stats st;
	struct spool_pos pos;
	int want[200], i;

	for (i = 0; i < 200; i++) {
		put(sp, i);
		want[i] = i;
	}
	spool_get_stats(sp, &st);
	assert_true(st.segments > 1);   /* 4 KiB segments: the order must survive rotation */
	assert_false(spool_empty(sp));
	expect_ids(sp, want, 200);
	spool_rewind(sp);
	expect_ids(sp, want, 200);
	spool_tell(sp, &pos);
	assert_int_equal(spool_ack(sp, &pos), 0);
	assert_true(spool_empty(sp));
	spool_get_stats(sp, &st);
	assert_int_equal(st.segments, 0);
	assert_int_equal(st.disk_bytes, 0);
	/* appending after a full drain starts a new segment and reads on */
	put(sp, 7);
	want[0] = 7;
	expect_ids(sp, want, 1);
	spool_close(sp);
}

static void test_checksum(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, 1 << 20, 1 << 20);
	struct spool_stats st;
	char path[128];
	int want[] = { 0, 2 };
	int fd;
	off_t off;

	put(sp, 0);
	put(sp, 1);
	put(sp, 2);
	spool_close(sp);
	/* flip one byte inside the second entry's payload */
	seg_path(f->dir, 1, path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	off = lseek(fd, 0, SEEK_END) / 3 + 30;
	assert_int_equal(pwrite(fd, "X", 1, off), 1);
	close(fd);
	sp = open_spool(f->dir, 1 << 20, 1 << 20);
	expect_ids(sp, want, 2);
	spool_get_stats(sp, &st);
	assert_int_equal(st.corrupt, 1);
	spool_close(sp);
}

static void test_torn_tail(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, 1 << 20, 1 << 20);
	struct spool_stats st;
	struct stat stt;
	char path[128];
	int want[] = { 0, 1, 2, 3, 10 };

	put(sp, 0);
	put(sp, 1);
	put(sp, 2);
	put(sp, 3);
	put(sp, 4);
	spool_close(sp);
	seg_path(f->dir, 1, path, sizeof(path));
	assert_int_equal(stat(path, &stt), 0);
	assert_int_equal(truncate(path, stt.st_size - 5), 0);
	sp = open_spool(f->dir, 1 << 20, 1 << 20);
	/* the restarted writer must not append behind the torn entry */
	put(sp, 10);
	expect_ids(sp, want, 5);
	spool_get_stats(sp, &st);
	assert_int_equal(st.torn, 1);
	assert_int_equal(st.corrupt, 0);
	spool_close(sp);
}

/* Append one entry with a correct header and CRC around any payload. */
static void append_raw_entry(const char *path, const uint8_t *payload, uint32_t len)
{
	uint8_t hdr[12];
	uLong c;
	int fd;

	memcpy(hdr, "STP1", 4);
	hdr[4] = (uint8_t)len;
	hdr[5] = (uint8_t)(len >> 8);
	hdr[6] = (uint8_t)(len >> 16);
	hdr[7] = (uint8_t)(len >> 24);
	c = crc32(crc32(0L, Z_NULL, 0), hdr + 4, 4);
	c = crc32(c, payload, len);
	hdr[8] = (uint8_t)c;
	hdr[9] = (uint8_t)(c >> 8);
	hdr[10] = (uint8_t)(c >> 16);
	hdr[11] = (uint8_t)(c >> 24);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_int_equal(write(fd, payload, len), (ssize_t)len);
	close(fd);
}

/* Issue 15 item 11: an entry whose CRC is right but whose msgpack claims 2^32-1
 * array elements (or a 4 GiB string) in a few bytes is corrupt, not a reason to
 * allocate 100+ GiB (under ASan that allocation aborts the test). */
static void test_huge_counts(void **state)
{
	static const uint8_t arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0 };
	static const uint8_t str32[] = { 0x93, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a' };
	static const uint8_t nested[] = { 0x93, 0xa1, 'x', 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff };
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, 1 << 20, 1 << 20);
	struct spool_stats st;
	struct spool_entry e;
	char path[128];
	int want[] = { 0, 1, 2 };

	put(sp, 0);
	put(sp, 1);
	spool_close(sp);
	seg_path(f->dir, 1, path, sizeof(path));
	append_raw_entry(path, arr32, sizeof(arr32));
	append_raw_entry(path, map32, sizeof(map32));
	append_raw_entry(path, str32, sizeof(str32));
	append_raw_entry(path, nested, sizeof(nested));
	sp = open_spool(f->dir, 1 << 20, 1 << 20);
	put(sp, 2);
	expect_ids(sp, want, 3);
	spool_get_stats(sp, &st);
	assert_int_equal(st.corrupt, 4);
	spool_close(sp);
	assert_int_equal(spool_entry_decode(arr32, sizeof(arr32), &e), -EBADMSG);
	assert_null(e.event_id);
}

static void test_size_limit(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, 2000, 1000);
	struct spool_stats st;
	struct spool_pos pos;
	struct spool_entry e;
	char id[32];
	int i, ok = 0, dropped = 0;

	for (i = 0; i < 100; i++) {
		int err;

		snprintf(id, sizeof(id), "id-%04d", i);
		err = spool_append(sp, id, 1, "{\"a\":\"0123456789012345678901234567890123456789\"}", 48);
		if (err == 0)
			ok++;
		else if (err == -ENOSPC)
			dropped++;
		else
			fail_msg("unexpected error %d", err);
	}
	spool_get_stats(sp, &st);
	assert_true(ok > 10);
	assert_true(dropped > 0);
	assert_int_equal(st.dropped, dropped);
	assert_int_equal(st.appended, ok);
	assert_true(st.disk_bytes <= 2000);
	/* the newest are dropped: what is kept is the first ok ids, in order */
	for (i = 0; i < ok; i++) {
		assert_int_equal(spool_read(sp, &e), 1);
		snprintf(id, sizeof(id), "id-%04d", i);
		assert_string_equal(e.event_id, id);
		spool_entry_free(&e);
	}
	assert_int_equal(spool_read(sp, &e), 0);
	/* acking frees room again */
	spool_tell(sp, &pos);
	assert_int_equal(spool_ack(sp, &pos), 0);
	assert_int_equal(spool_append(sp, "again", 1, "{}", 2), 0);
	spool_close(sp);
}

static void test_crash_reopen(void **state)
{
	struct fixture *f = *state;
	struct spool *sp = open_spool(f->dir, 1 << 20, 2048);
	struct spool_entry e;
	struct spool_pos pos;
	int want[50], i;

	for (i = 0; i < 50; i++)
		put(sp, i);
	/* deliver 20 and ack them, then read 15 more without an ack: the "crash" */
	for (i = 0; i < 20; i++) {
		assert_int_equal(spool_read(sp, &e), 1);
		spool_entry_free(&e);
	}
	spool_tell(sp, &pos);
	assert_int_equal(spool_ack(sp, &pos), 0);
	for (i = 0; i < 15; i++) {
		assert_int_equal(spool_read(sp, &e), 1);
		spool_entry_free(&e);
	}
	spool_close(sp);

	sp = open_spool(f->dir, 1 << 20, 2048);
	for (i = 0; i < 30; i++)
		want[i] = 20 + i;
	put(sp, 99);
	want[30] = 99;
	expect_ids(sp, want, 31);
	spool_tell(sp, &pos);
	assert_int_equal(spool_ack(sp, &pos), 0);
	assert_true(spool_empty(sp));
	spool_close(sp);

	/* and after a full drain a reopen finds nothing, not the old entries again */
	sp = open_spool(f->dir, 1 << 20, 2048);
	assert_true(spool_empty(sp));
	assert_int_equal(spool_read(sp, &e), 0);
	put(sp, 5);
	want[0] = 5;
	expect_ids(sp, want, 1);
	spool_close(sp);
	sp = open_spool(f->dir, 1 << 20, 2048);
	expect_ids(sp, want, 1);
	spool_close(sp);
}


/* ---- issue 15 items 6 and 10: a spool directory nobody else controls, an ack
 * file checked against the segments that exist ---- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int try_open(const char *dir)
{
	struct spool_cfg cfg = { .dir = dir, .max_bytes = 1 << 20, .segment_bytes = 2048,
				 .fsync = SPOOL_FSYNC_NEVER };
	struct spool *sp = NULL;
	int err = spool_open(&sp, &cfg);

	spool_close(sp);
	return err;
}

static mode_t mode_of(const char *p)
{
	struct stat sb;

	assert_int_equal(lstat(p, &sb), 0);
	return sb.st_mode & 07777;
}

static void test_dir_trust(void **state)
{
	struct fixture *f = *state;
	char sub[128], p[160];
	mode_t old = umask(0);
	struct spool *sp;

	/* created 0700 (not 0750) even under umask 0; files 0600 */
	snprintf(sub, sizeof(sub), "%s/new/spool", f->dir);
	sp = open_spool(sub, 1 << 20, 2048);
	put(sp, 1);
	spool_close(sp);
	assert_int_equal(mode_of(sub), 0700);
	seg_path(sub, 1, p, sizeof(p));
	assert_int_equal(mode_of(p), 0600);
	umask(old);
	/* group- or world-writable: refused */
	assert_int_equal(chmod(f->dir, 0777), 0);
	assert_int_equal(try_open(f->dir), -EPERM);
	assert_int_equal(chmod(f->dir, 0770), 0);
	assert_int_equal(try_open(f->dir), -EPERM);
	assert_int_equal(chmod(f->dir, 0700), 0);
	assert_int_equal(try_open(f->dir), 0);
	/* owned by another user: refused (only root can arrange that here) */
	if (geteuid() == 0) {
		assert_int_equal(chown(f->dir, 4242, 4242), 0);
		assert_int_equal(try_open(f->dir), -EPERM);
		assert_int_equal(chown(f->dir, 0, 0), 0);
	} else {
		print_message("SKIP: foreign owner (needs root to chown)\n");
	}
}

static void test_lock(void **state)
{
	struct fixture *f = *state;
	struct spool *a = open_spool(f->dir, 1 << 20, 2048);

	/* a second agent on the same directory is refused while the first runs */
	assert_int_equal(try_open(f->dir), -EBUSY);
	spool_close(a);
	assert_int_equal(try_open(f->dir), 0);
}

static void test_symlinks(void **state)
{
	struct fixture *f = *state;
	char victim[128], link[160], seg2[160];
	struct spool_entry e;
	struct spool_pos pos;
	struct spool_stats st;
	struct spool *sp;
	int want[2] = { 1, 2 };
	FILE *v;

	snprintf(victim, sizeof(victim), "%s.victim", f->dir);
	v = fopen(victim, "w");
	assert_non_null(v);
	fputs("precious\n", v);
	fclose(v);
	/* planted before the agent starts: ack.tmp and the next segment's name */
	snprintf(link, sizeof(link), "%s/ack.tmp", f->dir);
	assert_int_equal(symlink(victim, link), 0);
	seg_path(f->dir, 1, seg2, sizeof(seg2));
	assert_int_equal(symlink(victim, seg2), 0);
	sp = open_spool(f->dir, 1 << 20, 1 << 16);
	put(sp, 1);
	put(sp, 2);
	expect_ids(sp, want, 2);
	spool_tell(sp, &pos);
	(void)e;
	assert_int_equal(spool_ack(sp, &pos), 0);
	spool_get_stats(sp, &st);
	assert_int_equal(st.foreign, 1);     /* the planted segment name was stepped over */
	spool_close(sp);
	assert_int_equal(mode_of(victim) & 0777, mode_of(victim) & 0777);
	v = fopen(victim, "r");
	assert_non_null(v);
	{
		char line[64] = "";

		assert_non_null(fgets(line, sizeof(line), v));
		assert_string_equal(line, "precious\n");
		assert_null(fgets(line, sizeof(line), v));
	}
	fclose(v);
	unlink(victim);
}

static void write_ack(const char *dir, uint64_t seg, uint64_t off)
{
	uint8_t b[24];
	char p[160];
	FILE *fp;
	int i;

	b[0] = 'S'; b[1] = 'T'; b[2] = 'C'; b[3] = 'K';
	for (i = 0; i < 8; i++) {
		b[4 + i] = (uint8_t)(seg >> (8 * i));
		b[12 + i] = (uint8_t)(off >> (8 * i));
	}
	{
		uint32_t c = (uint32_t)crc32(0L, b, 20);

		for (i = 0; i < 4; i++)
			b[20 + i] = (uint8_t)(c >> (8 * i));
	}
	snprintf(p, sizeof(p), "%s/ack", dir);
	fp = fopen(p, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(b, 1, sizeof(b), fp), sizeof(b));
	fclose(fp);
}

/* three segments of entries 0..29, nothing acked */
static void fill3(const char *dir)
{
	struct spool *sp = open_spool(dir, 1 << 20, 512);
	struct spool_stats st;
	int i;

	for (i = 0; i < 30; i++)
		put(sp, i);
	spool_get_stats(sp, &st);
	assert_true(st.segments >= 3);
	spool_close(sp);
}

static void test_ack_beyond_segments(void **state)
{
	struct fixture *f = *state;
	struct spool_stats st;
	struct spool *sp;
	int want[31], i;

	fill3(f->dir);
	/* an ack of 2^64-1 would declare every segment delivered (and delete them),
	 * then wrap the next segment number to 0, never read again */
	write_ack(f->dir, UINT64_MAX, 0);
	sp = open_spool(f->dir, 1 << 20, 1024);
	spool_get_stats(sp, &st);
	assert_int_equal(st.ack_recovered, 1);
	for (i = 0; i < 30; i++)
		want[i] = i;
	put(sp, 77);
	want[30] = 77;
	expect_ids(sp, want, 31);
	spool_close(sp);
}

static void test_foreign_segment_number(void **state)
{
	struct fixture *f = *state;
	char p[160];
	struct spool_stats st;
	struct spool *sp;
	FILE *fp;
	int want[1] = { 5 };

	snprintf(p, sizeof(p), "%s/ffffffffffffffff.seg", f->dir);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fclose(fp);
	sp = open_spool(f->dir, 1 << 20, 1024);
	put(sp, 5);
	expect_ids(sp, want, 1);   /* the writer's number did not wrap below the reader */
	spool_get_stats(sp, &st);
	assert_int_equal(st.foreign, 1);
	spool_close(sp);
	sp = open_spool(f->dir, 1 << 20, 1024);
	expect_ids(sp, want, 1);
	spool_close(sp);
}

static void test_ack_offset_past_end(void **state)
{
	struct fixture *f = *state;
	struct spool_entry e;
	struct spool_stats st;
	struct spool *sp;
	int n = 0, r;

	fill3(f->dir);
	write_ack(f->dir, 1, UINT64_MAX - 5);
	sp = open_spool(f->dir, 1 << 20, 1024);
	/* no EIO forever: the rest of segment 1 is impossible, segment 2 on is read */
	while ((r = spool_read(sp, &e)) == 1) {
		spool_entry_free(&e);
		n++;
	}
	assert_int_equal(r, 0);
	assert_true(n > 0 && n < 30);
	spool_get_stats(sp, &st);
	assert_int_equal(st.ack_recovered, 1);
	spool_close(sp);
}

static void test_segment_gap(void **state)
{
	struct fixture *f = *state;
	char a[160], b[160];
	struct spool_stats st;
	struct spool *sp;
	uint64_t t0, el;
	int want[2] = { 1, 2 };

	sp = open_spool(f->dir, 1 << 20, 1 << 16);
	put(sp, 1);
	spool_close(sp);
	sp = open_spool(f->dir, 1 << 20, 1 << 16);
	put(sp, 2);
	spool_close(sp);
	/* segment 2 becomes segment 1,000,002: a gap of a million numbers */
	seg_path(f->dir, 2, a, sizeof(a));
	seg_path(f->dir, 1000002, b, sizeof(b));
	assert_int_equal(rename(a, b), 0);
	sp = open_spool(f->dir, 1 << 20, 1 << 16);
	t0 = mono_ms();
	expect_ids(sp, want, 2);
	el = mono_ms() - t0;
	spool_get_stats(sp, &st);
	print_message("a gap of 1,000,000 segment numbers read past in %llu ms\n",
		      (unsigned long long)el);
	assert_true(el < 500);
	assert_int_equal(st.skipped_segments, 1000000);
	spool_close(sp);
}

static void test_fsync_parse(void **state)
{
	enum spool_fsync p;

	assert_int_equal(spool_fsync_parse("always", &p), 0);
	assert_int_equal(p, SPOOL_FSYNC_ALWAYS);
	assert_int_equal(spool_fsync_parse("never", &p), 0);
	assert_int_equal(p, SPOOL_FSYNC_NEVER);
	assert_int_equal(spool_fsync_parse(NULL, &p), 0);
	assert_int_equal(p, SPOOL_FSYNC_BATCH);
	assert_int_equal(spool_fsync_parse("sometimes", &p), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_and_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checksum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_trust, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_beyond_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_segment_number, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_offset_past_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_gap, setup, teardown),
		cmocka_unit_test(test_fsync_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
