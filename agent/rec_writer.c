/* Writing recordings: files named from a strftime pattern, rotated by size or age,
 * capped per directory, written by one thread fed through a bounded queue.
 * Owns: the writer thread, its queue, the open file and the files it made.
 *
 * Writer bounds: records wait encoded in a bounded queue (count and bytes); a full
 * queue drops and counts. --output-dir-max counts only the files this writer made:
 * the oldest finished ones are deleted first; if the current file alone would
 * exceed the cap, new blocks are dropped and counted (dropped_dir_full).
 * A block is written (and flushed; gzip uses Z_SYNC_FLUSH) once it holds 64 KiB or
 * is 1 s old, so a crash loses at most the unflushed block. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "buf.h"
#include "log.h"
#include "pii.h"
#include "bq.h"
#include "util.h"
#include "recording.h"
#include "sfile.h"

/* stats are read by other threads (rec_writer_get_stats) while the writer counts */
#define RW_ADD(o, f, n) __atomic_add_fetch(&(o)->st->f, (uint64_t)(n), __ATOMIC_RELAXED)

/* ---- output files (rotation, gzip, directory cap) ---- */

static int rec_writer_out_write_all(struct rec_writer_out *o, const void *p, size_t n)
{
	const char *q = p;

	if (o->gz) {
		while (n) {
			unsigned k = n > (1u << 30) ? (1u << 30) : (unsigned)n;
			int w = gzwrite(o->gz, q, k);

			if (w <= 0)
				return -EIO;
			q += w;
			n -= (size_t)w;
		}
		return 0;
	}
	while (n) {
		ssize_t w = write(o->fd, q, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

static void rec_writer_out_sync_size(struct rec_writer_out *o)
{
	off_t off;

	if (o->gz)
		gzflush(o->gz, Z_SYNC_FLUSH);
	off = lseek(o->fd, 0, SEEK_END);
	if (off >= 0)
		o->cur_bytes = (uint64_t)off;
}

static void rec_writer_out_close(struct rec_writer_out *o)
{
	if (o->fd < 0)
		return;
	if (o->gz) {
		struct stat sb;

		if (gzclose(o->gz) != Z_OK) {   /* finishes the stream and closes fd */
			RW_ADD(o, write_errors, 1);
			pr_warn("recording: finishing %s failed\n", o->cur);
		}
		o->gz = NULL;
		if (!stat(o->cur, &sb))
			o->cur_bytes = (uint64_t)sb.st_size;
	} else {
		rec_writer_out_sync_size(o);
		close(o->fd);
	}
	o->fd = -1;
	if (o->nfiles == REC_MAX_FILES) {
		/* too many to remember: forget (never delete) the oldest */
		o->files_bytes -= o->files[0].bytes;
		free(o->files[0].path);
		memmove(o->files, o->files + 1, (REC_MAX_FILES - 1) * sizeof(o->files[0]));
		o->nfiles--;
	}
	o->files[o->nfiles].path = strdup(o->cur);
	if (o->files[o->nfiles].path) {
		o->files[o->nfiles].bytes = o->cur_bytes;
		o->files_bytes += o->cur_bytes;
		o->nfiles++;
	}
	o->cur_bytes = 0;
}

static int rec_writer_out_header(struct rec_writer_out *o)
{
	struct buf b = { 0 };
	int err;

	err = rec_native_file_header(&b, o->rc->meta_iface, o->rc->meta_source);
	if (!err)
		err = rec_writer_out_write_all(o, b.data, b.len);
	buf_free(&b);
	return err;
}

/* Expand the strftime pattern. A name already used in this run, or one that exists
 * on disk (a restart within the same strftime period, another agent), gets "-N"
 * before its extension, N growing and never reused, so no recording is ever
 * truncated: files are created with O_EXCL. */
static int rec_writer_out_name(struct rec_writer_out *o, char *base, size_t cap)
{
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	if (!strftime(base, cap, o->rc->out_path, &tm))
		return -ENAMETOOLONG;
	/* gzip content gets the name every tool expects (zcat, file managers) */
	if (o->rc->out_gzip) {
		size_t n = strlen(base);

		if (n < 3 || strcmp(base + n - 3, ".gz")) {
			if (n + 4 > cap)
				return -ENAMETOOLONG;
			memcpy(base + n, ".gz", 4);
		}
	}
	if (strcmp(base, o->last_base)) {
		if (strlen(base) >= sizeof(o->last_base))
			return -ENAMETOOLONG;
		memcpy(o->last_base, base, strlen(base) + 1);
		o->last_seq = -1;
	}
	return 0;
}

static int rec_writer_out_suffixed(const char *base, int seq, char *dst, size_t cap)
{
	const char *slash = strrchr(base, '/'), *dot;
	int w;

	if (!seq) {
		w = snprintf(dst, cap, "%s", base);
		return w < 0 || (size_t)w >= cap ? -ENAMETOOLONG : 0;
	}
	dot = strchr(slash ? slash + 1 : base, '.');
	w = dot ? snprintf(dst, cap, "%.*s-%d%s", (int)(dot - base), base, seq, dot)
		: snprintf(dst, cap, "%s-%d", base, seq);
	return w < 0 || (size_t)w >= cap ? -ENAMETOOLONG : 0;
}

#define REC_NAME_TRIES 100000

int rec_writer_out_open(struct rec_writer_out *o)
{
	char base[PATH_MAX], name[PATH_MAX];
	int err, tries;

	if (o->adopt_fd >= 0) {
		/* convert: a temporary file it made, renamed into place when complete */
		o->fd = o->adopt_fd;
		o->adopt_fd = -1;
		snprintf(name, sizeof(name), "%s", o->cur);
		goto opened;
	}
	err = rec_writer_out_name(o, base, sizeof(base));
	if (err) {
		pr_warn("recording: cannot name the output file from '%s'\n", o->rc->out_path);
		return err;
	}
	for (tries = 0;; tries++) {
		o->last_seq++;
		err = rec_writer_out_suffixed(base, o->last_seq, name, sizeof(name));
		if (err) {
			pr_warn("recording: the output file name from '%s' is too long\n", o->rc->out_path);
			return err;
		}
		o->fd = sfile_create_excl(name);
		if (o->fd >= 0)
			break;
		if (o->fd != -EEXIST || tries >= REC_NAME_TRIES) {
			err = o->fd;
			o->fd = -1;
			pr_warn("recording: cannot create %s: %s\n", name, strerror(-err));
			return err;
		}
		if (!o->last_seq)
			pr_info("recording: %s exists, kept; writing beside it\n", name);
	}
opened:
	if (o->rc->out_gzip) {
		o->gz = gzdopen(o->fd, "wb6");
		if (!o->gz) {
			close(o->fd);
			o->fd = -1;
			pr_warn("recording: cannot start gzip on %s\n", name);
			return -ENOMEM;
		}
	}
	snprintf(o->cur, sizeof(o->cur), "%s", name);
	o->cur_bytes = 0;
	o->opened_ns = st_mono_ns();
	RW_ADD(o, files, 1);
	pr_info("recording to %s\n", name);
	if (o->rc->out_format == REC_FMT_NATIVE) {
		err = rec_writer_out_header(o);
		if (err) {
			pr_warn("recording: cannot write the header of %s: %s\n", name, strerror(-err));
			return err;
		}
	}
	rec_writer_out_sync_size(o);
	return 0;
}

/* Make room under --output-dir-max by deleting the oldest finished files. */
static bool rec_writer_out_room(struct rec_writer_out *o, size_t n)
{
	if (!o->rc->out_dir_max)
		return true;
	while (o->files_bytes + o->cur_bytes + n > o->rc->out_dir_max && o->nfiles) {
		if (unlink(o->files[0].path) && errno != ENOENT)
			pr_warn("recording: cannot delete %s: %s\n", o->files[0].path, strerror(errno));
		else
			RW_ADD(o, files_deleted, 1);
		o->files_bytes -= o->files[0].bytes;
		free(o->files[0].path);
		memmove(o->files, o->files + 1, (o->nfiles - 1) * sizeof(o->files[0]));
		o->nfiles--;
	}
	return o->files_bytes + o->cur_bytes + n <= o->rc->out_dir_max;
}

/* Write one block (native: framed; gor: as is). Returns 0 or negative errno. */
int rec_writer_out_block(struct rec_writer_out *o, const void *p, size_t n, uint32_t nrec)
{
	uint8_t h[REC_BLOCK_HDR];
	uint64_t now = st_mono_ns();
	size_t need = n + (o->rc->out_format == REC_FMT_NATIVE ? REC_BLOCK_HDR : 0);
	int err;

	if (o->fd >= 0 &&
	    ((o->rc->out_file_max && o->cur_bytes + need > o->rc->out_file_max && o->cur_bytes > 64) ||
	     (o->rc->out_interval_s && now - o->opened_ns >= o->rc->out_interval_s * 1000000000ull))) {
		rec_writer_out_close(o);
		RW_ADD(o, rotations, 1);
	}
	if (o->fd < 0) {
		err = rec_writer_out_open(o);
		if (err) {
			if (o->fd >= 0)
				rec_writer_out_close(o);
			RW_ADD(o, dropped_write_error, nrec);
			return err;
		}
	}
	if (!rec_writer_out_room(o, need)) {
		RW_ADD(o, dropped_dir_full, nrec);
		return -ENOSPC;
	}
	if (o->rc->out_format == REC_FMT_NATIVE) {
		rec_native_block_header(h, p, n, nrec);
		err = rec_writer_out_write_all(o, h, sizeof(h));
		if (!err)
			err = rec_writer_out_write_all(o, p, n);
	} else {
		err = rec_writer_out_write_all(o, p, n);
	}
	if (err) {
		RW_ADD(o, write_errors, 1);
		RW_ADD(o, dropped_write_error, nrec);
		pr_warn("recording: write to %s failed: %s\n", o->cur, strerror(-err));
		return err;
	}
	rec_writer_out_sync_size(o);
	RW_ADD(o, blocks, 1);
	RW_ADD(o, bytes, n);
	RW_ADD(o, written, nrec);
	return 0;
}

void rec_writer_out_init(struct rec_writer_out *o, const struct recording_cfg *rc, struct rec_writer_stats *st)
{
	memset(o, 0, sizeof(*o));
	o->rc = rc;
	o->fd = -1;
	o->adopt_fd = -1;
	o->st = st;
}

void rec_writer_out_fini(struct rec_writer_out *o)
{
	size_t i;

	rec_writer_out_close(o);
	for (i = 0; i < o->nfiles; i++)
		free(o->files[i].path);
	o->nfiles = 0;
}

/* ---- writer thread ---- */

struct rec_writer_item {
	size_t len;
	char *data;
};

struct rec_writer {
	struct recording_cfg rc;
	struct bq q;
	pthread_t thr;
	bool started;
	uint64_t queued_bytes;         /* atomic */
	struct rec_writer_stats st;    /* drop counters atomic; the rest writer thread */
	struct rec_writer_out out;
};

static void rec_writer_flush(struct rec_writer *w, struct buf *blk, uint32_t *nrec)
{
	if (!*nrec)
		return;
	rec_writer_out_block(&w->out, blk->data, blk->len, *nrec);
	buf_reset(blk);
	*nrec = 0;
}

static void *rec_writer_main(void *arg)
{
	struct rec_writer *w = arg;
	struct buf blk = { 0 };
	void *items[256];
	uint64_t first_ns = 0;
	uint32_t nrec = 0;
	int n, i;

	for (;;) {
		n = bq_pop(&w->q, items, 256, 100);
		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			struct rec_writer_item *it = items[i];

			if (!nrec)
				first_ns = st_mono_ns();
			if (buf_append(&blk, it->data, it->len))
				__atomic_add_fetch(&w->st.dropped_memory, 1, __ATOMIC_RELAXED);
			else
				nrec++;
			__atomic_sub_fetch(&w->queued_bytes, it->len, __ATOMIC_RELAXED);
			free(it->data);
			free(it);
			if (blk.len >= REC_BLOCK_TARGET)
				rec_writer_flush(w, &blk, &nrec);
		}
		if (nrec && st_mono_ns() - first_ns >= REC_BLOCK_MS * 1000000ull)
			rec_writer_flush(w, &blk, &nrec);
	}
	rec_writer_flush(w, &blk, &nrec);
	buf_free(&blk);
	return NULL;
}

int rec_writer_start(struct rec_writer **out, const struct recording_cfg *rc)
{
	struct rec_writer *w;
	int err;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->rc = *rc;
	if (!rc->redact || !rc->redact[0])
		pr_warn("recording: --record-secrets/--no-redact: %s will hold Authorization, Cookie "
			"and other secret header values as captured\n", rc->out_path);
	if (rc->keep_pii && pii_cfg_rewrites(rc->pii))
		pr_warn("recording: --record-pii: %s will hold bodies and query strings as captured "
			"(the --redact-json/-query/-pattern rules apply to records only)\n", rc->out_path);
	rec_writer_out_init(&w->out, &w->rc, &w->st);
	err = bq_init(&w->q, rc->out_queue_cap ? rc->out_queue_cap : 65536);
	if (err)
		goto fail;
	/* open the first file now so a bad path fails at start, not later */
	err = rec_writer_out_open(&w->out);
	if (err)
		goto fail_q;
	if (pthread_create(&w->thr, NULL, rec_writer_main, w)) {
		err = -EAGAIN;
		pr_warn("recording: cannot start the writer thread\n");
		goto fail_q;
	}
	w->started = true;
	*out = w;
	return 0;
fail_q:
	bq_destroy(&w->q);
fail:
	rec_writer_out_fini(&w->out);
	free(w);
	return err;
}

int rec_writer_encode(const struct recording_cfg *rc, const struct st_record *r, struct buf *b,
		      struct rec_writer_stats *st)
{
	if (rc->out_format != REC_FMT_GOR)
		return rec_native_encode(r, b);
	int err = rec_gor_encode(r, b);

	/* GoReplay cannot escape its separator: a payload holding it would read back
	 * as extra, forged entries, so such a record is refused */
	if (err == -EBADMSG)
		__atomic_add_fetch(&st->refused_gor_separator, 1, __ATOMIC_RELAXED);
	return err;
}

void rec_writer_submit(struct rec_writer *w, const struct st_record *r)
{
	struct rec_writer_item *it;
	struct rec_redacted red = { 0 };
	struct st_record view;
	struct buf b = { 0 };
	int err;

	__atomic_add_fetch(&w->st.submitted, 1, __ATOMIC_RELAXED);
	err = rec_redact_record_pii(r, w->rc.redact, w->rc.keep_pii ? NULL : w->rc.pii, &red, &view);
	if (err >= 0)
		err = rec_writer_encode(&w->rc, err ? &view : r, &b, &w->st);
	rec_redacted_free(&red);
	if (err) {
		if (err != -EBADMSG)
			__atomic_add_fetch(&w->st.dropped_encode, 1, __ATOMIC_RELAXED);
		buf_free(&b);
		return;
	}
	if (__atomic_add_fetch(&w->queued_bytes, b.len, __ATOMIC_RELAXED) > w->rc.out_queue_bytes) {
		__atomic_sub_fetch(&w->queued_bytes, b.len, __ATOMIC_RELAXED);
		__atomic_add_fetch(&w->st.dropped_memory, 1, __ATOMIC_RELAXED);
		buf_free(&b);
		return;
	}
	it = malloc(sizeof(*it));
	if (!it) {
		__atomic_sub_fetch(&w->queued_bytes, b.len, __ATOMIC_RELAXED);
		__atomic_add_fetch(&w->st.dropped_memory, 1, __ATOMIC_RELAXED);
		buf_free(&b);
		return;
	}
	it->len = b.len;
	it->data = b.data;
	if (bq_push(&w->q, it)) {
		__atomic_sub_fetch(&w->queued_bytes, b.len, __ATOMIC_RELAXED);
		__atomic_add_fetch(&w->st.dropped_queue_full, 1, __ATOMIC_RELAXED);
		free(it->data);
		free(it);
	}
}

void rec_writer_get_stats(struct rec_writer *w, struct rec_writer_stats *st)
{
	const uint64_t *src = (const uint64_t *)&w->st;
	uint64_t *dst = (uint64_t *)st;
	size_t i;

	/* the writer thread updates these while others read them */
	for (i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void rec_writer_stop(struct rec_writer *w, FILE *f)
{
	struct rec_writer_stats s;

	if (!w)
		return;
	bq_close(&w->q);
	if (w->started)
		pthread_join(w->thr, NULL);
	rec_writer_out_fini(&w->out);
	rec_writer_get_stats(w, &s);
	if (f)
		fprintf(f, "recording: submitted=%llu written=%llu blocks=%llu bytes=%llu files=%llu "
			   "rotations=%llu files_deleted=%llu dropped_queue_full=%llu dropped_memory=%llu "
			   "dropped_encode=%llu dropped_dir_full=%llu dropped_write_error=%llu write_errors=%llu "
			   "refused_gor_separator=%llu\n",
			(unsigned long long)s.submitted, (unsigned long long)s.written,
			(unsigned long long)s.blocks, (unsigned long long)s.bytes,
			(unsigned long long)s.files, (unsigned long long)s.rotations,
			(unsigned long long)s.files_deleted, (unsigned long long)s.dropped_queue_full,
			(unsigned long long)s.dropped_memory, (unsigned long long)s.dropped_encode,
			(unsigned long long)s.dropped_dir_full, (unsigned long long)s.dropped_write_error,
			(unsigned long long)s.write_errors, (unsigned long long)s.refused_gor_separator);
	bq_destroy(&w->q);
	free(w);
}
