/* On-disk spool.
 *
 * Layout of the directory:
 *   <seq as 16 hex digits>.seg  append-only segments, seq grows by one per segment
 *   ack                          the acknowledged position {seg, off} with a CRC,
 *                                replaced atomically (write ack.tmp, rename)
 * An entry is a 12-byte header {magic, payload length, CRC32 of length + payload}
 * (little endian) followed by a msgpack array [event_id, ts_ns, json].
 *
 * Recovery: a restarted agent never appends to an old segment; it reads from the
 * acked position, so entries delivered but not yet acked are sent again and the
 * bulk "create" with _id = event_id turns them into 409s instead of duplicates.
 * An entry cut short by a crash is recognised by its length running past the end of
 * a sealed segment (counted as torn); a damaged one by its CRC (counted as corrupt).
 *
 * At max_bytes the NEWEST record is dropped (and counted): the spool is a promise
 * to deliver in order, and discarding the oldest would mean rewriting a segment the
 * reader may be sending from.
 *
 * Trust: the directory must be ours (owner = effective uid, not group/world
 * writable; created 0700) and is locked (flock on "lock") so two agents never share
 * it. Every file is opened relative to the directory fd with O_NOFOLLOW and created
 * 0600 with O_EXCL. The ack file is checked against the segments that exist (the
 * directory is listed once, then the list is kept in memory): an ack beyond every
 * segment or past its segment's end is replaced by the first position that is safe
 * (counted as ack_recovered), missing segment numbers are jumped over in one step
 * (counted as skipped_segments), and numbers above SPOOL_SEQ_MAX are not ours
 * (counted as foreign, left alone), so a segment number can never wrap.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "mp.h"
#include "spool.h"

#define SPOOL_MAGIC 0x31505453u          /* "STP1" */
#define SPOOL_ACK_MAGIC 0x4b435453u      /* "STCK" */
#define SPOOL_HDR 12
#define SPOOL_MAX_ENTRY (64u << 20)
#define SPOOL_SEQ_MAX   (1ull << 48)      /* one segment per 64 KiB or more: never reached */
#define SPOOL_OPEN_FLAGS (O_CLOEXEC | O_NOFOLLOW)

struct spool {
	pthread_mutex_t mu;
	char *dir;
	int dirfd;
	enum spool_fsync fsync;
	uint64_t max_bytes;
	uint64_t seg_bytes;

	int wfd;                 /* active segment, -1 when none */
	uint64_t wseq;           /* active segment, or the next one to create */
	uint64_t woff;

	int rfd;
	uint64_t rfd_seq;
	uint64_t rseq, roff;

	struct spool_pos ack;
	uint64_t ack_in_disk;    /* bytes of existing segments before the ack position */
	uint64_t first_seq;      /* no segment below this exists */

	int lockfd;
	uint64_t *segs;          /* numbers of the segment files that exist, ascending */
	size_t nsegs, segs_cap;

	msgpack_sbuffer sb;
	struct spool_stats st;
};

static void spool_put32(uint8_t *p, uint32_t v)
{
	p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

static uint32_t spool_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void spool_put64(uint8_t *p, uint64_t v)
{
	spool_put32(p, (uint32_t)v);
	spool_put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t spool_get64(const uint8_t *p)
{
	return spool_get32(p) | (uint64_t)spool_get32(p + 4) << 32;
}

static uint32_t spool_crc(const uint8_t *lenb, const void *payload, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);

	c = crc32(c, lenb, 4);
	c = crc32(c, payload, (uInt)len);
	return (uint32_t)c;
}

int spool_fsync_parse(const char *s, enum spool_fsync *out)
{
	if (!s || !strcmp(s, "batch"))
		*out = SPOOL_FSYNC_BATCH;
	else if (!strcmp(s, "always"))
		*out = SPOOL_FSYNC_ALWAYS;
	else if (!strcmp(s, "never"))
		*out = SPOOL_FSYNC_NEVER;
	else
		return -EINVAL;
	return 0;
}

static void spool_seg_name(char *out, size_t n, uint64_t seq)
{
	snprintf(out, n, "%016" PRIx64 ".seg", seq);
}

static int spool_mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -errno;
		tmp[i] = path[i];
	}
	return 0;
}

static int spool_write_ack(struct spool *sp, const struct spool_pos *pos)
{
	uint8_t b[24];
	int fd, err = 0;

	spool_put32(b, SPOOL_ACK_MAGIC);
	spool_put64(b + 4, pos->seg);
	spool_put64(b + 12, pos->off);
	spool_put32(b + 20, (uint32_t)crc32(0L, b, 20));
	/* whatever is at ack.tmp (a stale one, a planted symlink) goes; a new file is made */
	if (unlinkat(sp->dirfd, "ack.tmp", 0) && errno != ENOENT)
		return -errno;
	fd = openat(sp->dirfd, "ack.tmp", O_WRONLY | O_CREAT | O_EXCL | SPOOL_OPEN_FLAGS, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b)) {
		err = errno ? -errno : -EIO;
		goto out;
	}
	if (sp->fsync != SPOOL_FSYNC_NEVER && fsync(fd)) {
		err = -errno;
		goto out;
	}
	if (renameat(sp->dirfd, "ack.tmp", sp->dirfd, "ack"))
		err = -errno;
out:
	close(fd);
	return err;
}

static int spool_read_ack(struct spool *sp, struct spool_pos *pos)
{
	uint8_t b[24];
	int fd, err = -ENOENT;

	fd = openat(sp->dirfd, "ack", O_RDONLY | SPOOL_OPEN_FLAGS);
	if (fd < 0)
		return -errno;
	if (read(fd, b, sizeof(b)) == (ssize_t)sizeof(b) && spool_get32(b) == SPOOL_ACK_MAGIC &&
	    spool_get32(b + 20) == (uint32_t)crc32(0L, b, 20)) {
		pos->seg = spool_get64(b + 4);
		pos->off = spool_get64(b + 12);
		err = 0;
	}
	close(fd);
	return err;
}

static int64_t spool_seg_size(struct spool *sp, uint64_t seq)
{
	char name[32];
	struct stat stt;

	spool_seg_name(name, sizeof(name), seq);
	if (fstatat(sp->dirfd, name, &stt, AT_SYMLINK_NOFOLLOW))
		return -errno;
	if (!S_ISREG(stt.st_mode))
		return -EINVAL;
	return stt.st_size;
}

/* ---- the set of existing segments ---- */

/* index of the first number >= seq */
static size_t spool_segs_lower(const struct spool *sp, uint64_t seq)
{
	size_t lo = 0, hi = sp->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->segs[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool spool_segs_has(const struct spool *sp, uint64_t seq)
{
	size_t i = spool_segs_lower(sp, seq);

	return i < sp->nsegs && sp->segs[i] == seq;
}

static int spool_segs_add(struct spool *sp, uint64_t seq)
{
	size_t i;

	if (sp->nsegs == sp->segs_cap) {
		size_t nc = sp->segs_cap ? sp->segs_cap * 2 : 64;
		uint64_t *p = realloc(sp->segs, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		sp->segs = p;
		sp->segs_cap = nc;
	}
	i = spool_segs_lower(sp, seq);
	if (i < sp->nsegs && sp->segs[i] == seq)
		return 0;
	memmove(sp->segs + i + 1, sp->segs + i, (sp->nsegs - i) * sizeof(*sp->segs));
	sp->segs[i] = seq;
	sp->nsegs++;
	return 0;
}

static void spool_segs_del(struct spool *sp, uint64_t seq)
{
	size_t i = spool_segs_lower(sp, seq);

	if (i < sp->nsegs && sp->segs[i] == seq) {
		memmove(sp->segs + i, sp->segs + i + 1, (sp->nsegs - i - 1) * sizeof(*sp->segs));
		sp->nsegs--;
	}
}

static void spool_unlink_seg(struct spool *sp, uint64_t seq)
{
	char name[32];
	int64_t size = spool_seg_size(sp, seq);

	spool_segs_del(sp, seq);
	if (size < 0)
		return;
	spool_seg_name(name, sizeof(name), seq);
	if (unlinkat(sp->dirfd, name, 0)) {
		pr_warn("spool: cannot remove %s/%s: %s\n", sp->dir, name, strerror(errno));
		return;
	}
	sp->st.disk_bytes -= (uint64_t)size < sp->st.disk_bytes ? (uint64_t)size : sp->st.disk_bytes;
	if (sp->st.segments)
		sp->st.segments--;
}

static int spool_scan(struct spool *sp, uint64_t *min_seq, uint64_t *max_seq)
{
	DIR *d;
	struct dirent *de;
	int fd;

	*min_seq = UINT64_MAX;
	*max_seq = 0;
	fd = dup(sp->dirfd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		char *end;
		uint64_t seq;
		int64_t size;

		if (strlen(de->d_name) != 20 || strcmp(de->d_name + 16, ".seg"))
			continue;
		errno = 0;
		seq = strtoull(de->d_name, &end, 16);
		if (errno || end != de->d_name + 16)
			continue;
		if (seq > SPOOL_SEQ_MAX) {
			/* not a number this spool makes: reading it would wrap the sequence */
			sp->st.foreign++;
			pr_warn("spool: ignoring %s/%s (segment number out of range)\n", sp->dir, de->d_name);
			continue;
		}
		size = spool_seg_size(sp, seq);
		if (size < 0)
			continue;
		if (spool_segs_add(sp, seq)) {
			closedir(d);
			return -ENOMEM;
		}
		sp->st.disk_bytes += (uint64_t)size;
		sp->st.segments++;
		if (seq < *min_seq)
			*min_seq = seq;
		if (seq > *max_seq)
			*max_seq = seq;
	}
	closedir(d);
	return 0;
}

/* The directory holds captured traffic and decides what is deleted: it must be
 * ours alone, and only one agent may use it. One line and -EPERM/-EBUSY if not. */
static int spool_check_dir(struct spool *sp)
{
	struct stat sb;

	if (fstat(sp->dirfd, &sb))
		return -errno;
	if (sb.st_uid != geteuid()) {
		pr_warn("spool: refusing %s: owned by uid %u, not by this user (uid %u)\n", sp->dir,
			(unsigned)sb.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		pr_warn("spool: refusing %s: group- or world-writable (mode %03o); chmod 700 it\n",
			sp->dir, (unsigned)(sb.st_mode & 0777));
		return -EPERM;
	}
	sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | SPOOL_OPEN_FLAGS, 0600);
	if (sp->lockfd < 0) {
		pr_warn("spool: cannot open %s/lock: %s\n", sp->dir, strerror(errno));
		return -errno;
	}
	if (flock(sp->lockfd, LOCK_EX | LOCK_NB)) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		pr_warn("spool: refusing %s: %s\n", sp->dir, err == -EBUSY ?
			"another shadowtap uses it (lock held)" : strerror(-err));
		return err;
	}
	return 0;
}

/* Start from the persisted ack, checked against the segments that exist: the
 * position is kept when it is inside an existing segment (or no segment exists),
 * moved to the next existing segment when its own was drained and deleted, and
 * replaced (counted) when it cannot be true: past its segment's end, beyond every
 * segment (it would declare them all delivered), or out of range. */
static int spool_recover_ack(struct spool *sp)
{
	struct spool_pos ack = { 0, 0 };
	uint64_t last = sp->nsegs ? sp->segs[sp->nsegs - 1] : 0;
	bool have = !spool_read_ack(sp, &ack), bad = false;
	int64_t size;
	size_t i;

	if (!have) {
		ack.seg = sp->nsegs ? sp->segs[0] : 0;
		ack.off = 0;
	}
	if (ack.seg > SPOOL_SEQ_MAX || (sp->nsegs && ack.seg > last)) {
		/* keep every segment: sending again is safe (create with _id), losing is not */
		bad = true;
		ack.seg = sp->nsegs ? sp->segs[0] : 0;
		ack.off = 0;
	}
	if (spool_segs_has(sp, ack.seg)) {
		size = spool_seg_size(sp, ack.seg);
		if (size < 0 || ack.off > (uint64_t)size) {
			/* nothing can be read past the end: on to the next segment */
			bad = true;
			i = spool_segs_lower(sp, ack.seg + 1);
			ack.seg = i < sp->nsegs ? sp->segs[i] : ack.seg + 1;
			ack.off = 0;
		}
	}
	if (bad) {
		sp->st.ack_recovered++;
		pr_warn("spool: the ack position in %s did not match its segments; reading from "
			"segment %llu offset %llu\n", sp->dir, (unsigned long long)ack.seg,
			(unsigned long long)ack.off);
	}
	while (sp->nsegs && sp->segs[0] < ack.seg)
		spool_unlink_seg(sp, sp->segs[0]);
	sp->ack = ack;
	size = spool_seg_size(sp, ack.seg);
	sp->ack_in_disk = size >= 0 ? ((uint64_t)size < ack.off ? (uint64_t)size : ack.off) : 0;
	sp->first_seq = ack.seg;
	/* never reuse a number at or below the ack: it would count as delivered */
	sp->wseq = (last > ack.seg ? last : ack.seg) + 1;
	sp->rseq = ack.seg;
	sp->roff = ack.off;
	if (!spool_segs_has(sp, ack.seg)) {
		/* its segment was drained and deleted: the next existing one, at 0 */
		i = spool_segs_lower(sp, ack.seg);
		sp->rseq = i < sp->nsegs ? sp->segs[i] : sp->wseq;
		sp->roff = 0;
	}
	if (bad && spool_write_ack(sp, &sp->ack))
		pr_warn("spool: cannot rewrite the ack position in %s\n", sp->dir);
	return 0;
}

int spool_open(struct spool **out, const struct spool_cfg *cfg)
{
	struct spool *sp;
	uint64_t min_seq, max_seq;
	int err;

	*out = NULL;
	if (!cfg->dir || !*cfg->dir)
		return -EINVAL;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	pthread_mutex_init(&sp->mu, NULL);
	sp->wfd = sp->rfd = sp->dirfd = sp->lockfd = -1;
	msgpack_sbuffer_init(&sp->sb);
	sp->fsync = cfg->fsync;
	sp->max_bytes = cfg->max_bytes ? cfg->max_bytes : (1ull << 30);
	sp->seg_bytes = cfg->segment_bytes;
	if (!sp->seg_bytes) {
		sp->seg_bytes = sp->max_bytes / 8;
		if (sp->seg_bytes > (64ull << 20))
			sp->seg_bytes = 64ull << 20;
		if (sp->seg_bytes < (64ull << 10))
			sp->seg_bytes = 64ull << 10;
	}
	sp->dir = strdup(cfg->dir);
	if (!sp->dir) {
		err = -ENOMEM;
		goto fail;
	}
	err = spool_mkdirs(sp->dir);
	if (err) {
		pr_warn("spool: cannot create %s: %s\n", sp->dir, strerror(-err));
		goto fail;
	}
	sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		err = -errno;
		pr_warn("spool: cannot open %s: %s\n", sp->dir, strerror(errno));
		goto fail;
	}
	err = spool_check_dir(sp);
	if (err)
		goto fail;
	err = spool_scan(sp, &min_seq, &max_seq);
	if (err)
		goto fail;
	err = spool_recover_ack(sp);
	if (err)
		goto fail;
	*out = sp;
	return 0;
fail:
	spool_close(sp);
	return err;
}

static int spool_sync_locked(struct spool *sp)
{
	if (sp->wfd >= 0 && fsync(sp->wfd))
		return -errno;
	return 0;
}

void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	if (sp->fsync != SPOOL_FSYNC_NEVER)
		spool_sync_locked(sp);
	if (sp->wfd >= 0)
		close(sp->wfd);
	if (sp->rfd >= 0)
		close(sp->rfd);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	if (sp->lockfd >= 0)
		close(sp->lockfd);        /* releases the flock */
	free(sp->segs);
	msgpack_sbuffer_destroy(&sp->sb);
	pthread_mutex_destroy(&sp->mu);
	free(sp->dir);
	free(sp);
}

static int spool_encode(struct spool *sp, const char *event_id, uint64_t ts_ns,
			const char *json, size_t len)
{
	msgpack_packer pk;
	size_t idlen = strlen(event_id);

	msgpack_sbuffer_clear(&sp->sb);
	msgpack_packer_init(&pk, &sp->sb, msgpack_sbuffer_write);
	if (msgpack_pack_array(&pk, 3) ||
	    msgpack_pack_str(&pk, idlen) || msgpack_pack_str_body(&pk, event_id, idlen) ||
	    msgpack_pack_uint64(&pk, ts_ns) ||
	    msgpack_pack_str(&pk, len) || msgpack_pack_str_body(&pk, json, len))
		return -ENOMEM;
	return 0;
}

static int spool_rotate(struct spool *sp)
{
	if (sp->wfd < 0)
		return 0;
	if (sp->fsync != SPOOL_FSYNC_NEVER)
		spool_sync_locked(sp);
	close(sp->wfd);
	sp->wfd = -1;
	sp->wseq++;
	sp->woff = 0;
	return 0;
}

int spool_append(struct spool *sp, const char *event_id, uint64_t ts_ns,
		 const char *json, size_t len)
{
	uint8_t hdr[SPOOL_HDR];
	struct iovec iov[2];
	uint64_t total;
	ssize_t n;
	int err = 0;

	pthread_mutex_lock(&sp->mu);
	err = spool_encode(sp, event_id, ts_ns, json, len);
	if (err)
		goto fail;
	total = SPOOL_HDR + sp->sb.size;
	if (sp->sb.size > SPOOL_MAX_ENTRY || sp->st.disk_bytes + total > sp->max_bytes) {
		err = -ENOSPC;
		sp->st.dropped++;
		sp->st.dropped_bytes += len;
		goto out;
	}
	if (sp->wfd >= 0 && sp->woff > 0 && sp->woff + total > sp->seg_bytes)
		spool_rotate(sp);
	if (sp->wfd < 0) {
		char name[32];
		int tries = 0;

		for (;;) {
			if (sp->wseq > SPOOL_SEQ_MAX) {
				err = -EOVERFLOW;
				goto fail;
			}
			spool_seg_name(name, sizeof(name), sp->wseq);
			/* a new number: a file already there was not made by this spool */
			sp->wfd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | SPOOL_OPEN_FLAGS,
					 0600);
			if (sp->wfd >= 0 || errno != EEXIST || ++tries > 16)
				break;
			sp->st.foreign++;
			sp->wseq++;
		}
		if (sp->wfd < 0) {
			err = -errno;
			pr_warn("spool: cannot create %s/%s: %s\n", sp->dir, name, strerror(errno));
			goto fail;
		}
		if (spool_segs_add(sp, sp->wseq)) {
			close(sp->wfd);
			sp->wfd = -1;
			unlinkat(sp->dirfd, name, 0);
			err = -ENOMEM;
			goto fail;
		}
		sp->woff = 0;
		sp->st.segments++;
		if (sp->fsync != SPOOL_FSYNC_NEVER)
			fsync(sp->dirfd);
	}
	spool_put32(hdr, SPOOL_MAGIC);
	spool_put32(hdr + 4, (uint32_t)sp->sb.size);
	spool_put32(hdr + 8, spool_crc(hdr + 4, sp->sb.data, sp->sb.size));
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = sp->sb.data;
	iov[1].iov_len = sp->sb.size;
	n = pwritev(sp->wfd, iov, 2, (off_t)sp->woff);
	if (n != (ssize_t)total) {
		err = n < 0 ? -errno : -EIO;
		/* a partial entry would read as torn: cut it off so the next one lands clean */
		if (ftruncate(sp->wfd, (off_t)sp->woff))
			spool_rotate(sp);
		goto fail;
	}
	sp->woff += total;
	sp->st.disk_bytes += total;
	sp->st.appended++;
	sp->st.appended_bytes += len;
	if (sp->fsync == SPOOL_FSYNC_ALWAYS && fdatasync(sp->wfd)) {
		err = -errno;
		goto out;
	}
	goto out;
fail:
	sp->st.write_errors++;
out:
	pthread_mutex_unlock(&sp->mu);
	return err;
}

int spool_sync(struct spool *sp)
{
	int err = 0;

	pthread_mutex_lock(&sp->mu);
	if (sp->fsync != SPOOL_FSYNC_NEVER && sp->wfd >= 0 && fdatasync(sp->wfd))
		err = -errno;
	pthread_mutex_unlock(&sp->mu);
	return err;
}

void spool_entry_free(struct spool_entry *e)
{
	if (!e)
		return;
	free(e->event_id);
	free(e->json);
	memset(e, 0, sizeof(*e));
}

static char *spool_dup_str(const struct mp_val *v, size_t *len)
{
	char *s;

	if (v->type != MP_STR && v->type != MP_BIN)
		return NULL;
	/* v->n is at most the payload's length: mp_read checked it is present */
	s = malloc(v->n + 1);
	if (!s)
		return NULL;
	memcpy(s, v->s, v->n);
	s[v->n] = '\0';
	if (len)
		*len = v->n;
	return s;
}

/* The payload must be exactly [event_id, ts_ns, json]. Decoded with the shared
 * bounds-checked cursor (mp.c): nothing is allocated from a count in the data,
 * only copies of strings that are present in full. */
int spool_entry_decode(const void *p, size_t n, struct spool_entry *e)
{
	struct mp m = { p, (const uint8_t *)p + n, false };
	struct mp_val a, id, ts, js;

	memset(e, 0, sizeof(*e));
	if (!mp_read(&m, &a) || a.type != MP_ARR || a.u != 3 ||
	    !mp_read(&m, &id) || !mp_read(&m, &ts) || !mp_uint(&ts, &e->ts_ns) ||
	    !mp_read(&m, &js) || m.p != m.end)
		return -EBADMSG;
	e->event_id = spool_dup_str(&id, NULL);
	e->json = spool_dup_str(&js, &e->len);
	if (!e->event_id || !e->json) {
		spool_entry_free(e);
		return -EBADMSG;
	}
	return 0;
}

/* Move the reader to the next segment. */
static void spool_next_seg(struct spool *sp)
{
	sp->rseq++;
	sp->roff = 0;
}

/* Give up on the rest of the segment being read: the active one up to what the
 * writer has written so far, a sealed one entirely. */
static void spool_skip_rest(struct spool *sp, bool active)
{
	if (active)
		sp->roff = sp->woff;
	else
		spool_next_seg(sp);
}

int spool_read(struct spool *sp, struct spool_entry *e)
{
	uint8_t hdr[SPOOL_HDR];
	char *payload = NULL;
	uint64_t end;
	uint32_t len;
	int ret = 0;

	memset(e, 0, sizeof(*e));
	pthread_mutex_lock(&sp->mu);
	for (;;) {
		bool active = sp->wfd >= 0 && sp->rseq == sp->wseq;
		struct stat stt;

		if (sp->rseq > sp->wseq || (sp->rseq == sp->wseq && sp->wfd < 0))
			break;
		if (active && sp->roff >= sp->woff)
			break;
		if (!spool_segs_has(sp, sp->rseq)) {
			/* missing numbers are jumped over at once, not probed one by one */
			size_t i = spool_segs_lower(sp, sp->rseq);
			uint64_t next = i < sp->nsegs && sp->segs[i] < sp->wseq ? sp->segs[i] : sp->wseq;

			/* the acked segment itself may be gone (drained): not a loss */
			sp->st.skipped_segments += next - sp->rseq - (sp->rseq == sp->ack.seg ? 1 : 0);
			sp->rseq = next;
			sp->roff = 0;
			continue;
		}
		if (sp->rfd < 0 || sp->rfd_seq != sp->rseq) {
			char name[32];

			if (sp->rfd >= 0)
				close(sp->rfd);
			spool_seg_name(name, sizeof(name), sp->rseq);
			sp->rfd = openat(sp->dirfd, name, O_RDONLY | SPOOL_OPEN_FLAGS);
			if (sp->rfd < 0) {
				if (errno == ENOENT || errno == ELOOP) {
					/* removed (or replaced by a symlink) behind our back */
					spool_segs_del(sp, sp->rseq);
					continue;
				}
				ret = -errno;
				break;
			}
			sp->rfd_seq = sp->rseq;
		}
		if (active) {
			end = sp->woff;
		} else {
			if (fstat(sp->rfd, &stt)) {
				ret = -errno;
				break;
			}
			end = (uint64_t)stt.st_size;
		}
		if (sp->roff > end || end - sp->roff < SPOOL_HDR) {
			if (sp->roff < end)
				sp->st.torn++;
			spool_next_seg(sp);
			continue;
		}
		if (pread(sp->rfd, hdr, sizeof(hdr), (off_t)sp->roff) != (ssize_t)sizeof(hdr)) {
			ret = -EIO;
			break;
		}
		len = spool_get32(hdr + 4);
		if (spool_get32(hdr) != SPOOL_MAGIC || len > SPOOL_MAX_ENTRY) {
			/* no trustworthy length: nothing after this point can be framed */
			sp->st.corrupt++;
			spool_skip_rest(sp, active);
			continue;
		}
		if (len > end - sp->roff - SPOOL_HDR) {
			sp->st.torn++;
			spool_skip_rest(sp, active);
			continue;
		}
		payload = malloc(len ? len : 1);
		if (!payload) {
			ret = -ENOMEM;
			break;
		}
		if (pread(sp->rfd, payload, len, (off_t)(sp->roff + SPOOL_HDR)) != (ssize_t)len) {
			ret = -EIO;
			break;
		}
		sp->roff += SPOOL_HDR + len;
		if (spool_crc(hdr + 4, payload, len) != spool_get32(hdr + 8) ||
		    spool_entry_decode(payload, len, e)) {
			sp->st.corrupt++;
			free(payload);
			payload = NULL;
			continue;
		}
		sp->st.read++;
		ret = 1;
		break;
	}
	pthread_mutex_unlock(&sp->mu);
	free(payload);
	return ret;
}

void spool_tell(struct spool *sp, struct spool_pos *pos)
{
	pthread_mutex_lock(&sp->mu);
	pos->seg = sp->rseq;
	pos->off = sp->roff;
	pthread_mutex_unlock(&sp->mu);
}

static int spool_pos_cmp(const struct spool_pos *a, const struct spool_pos *b)
{
	if (a->seg != b->seg)
		return a->seg < b->seg ? -1 : 1;
	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	return 0;
}

int spool_ack(struct spool *sp, const struct spool_pos *pos)
{
	int64_t size;
	int err = 0;

	pthread_mutex_lock(&sp->mu);
	if (spool_pos_cmp(pos, &sp->ack) <= 0)
		goto out;
	err = spool_write_ack(sp, pos);
	if (err) {
		pr_warn("spool: cannot persist the ack position in %s: %s\n", sp->dir, strerror(-err));
		goto out;
	}
	sp->ack = *pos;
	sp->st.acked++;
	while (sp->nsegs && sp->segs[0] < pos->seg && sp->segs[0] < sp->wseq)
		spool_unlink_seg(sp, sp->segs[0]);
	if (pos->seg > sp->first_seq)
		sp->first_seq = pos->seg;
	if (sp->wfd >= 0 && pos->seg == sp->wseq && pos->off >= sp->woff) {
		/* drained: drop the active segment so an idle spool holds no files */
		close(sp->wfd);
		sp->wfd = -1;
		if (sp->rfd >= 0 && sp->rfd_seq == sp->wseq) {
			close(sp->rfd);
			sp->rfd = -1;
		}
		spool_unlink_seg(sp, sp->wseq);
		sp->wseq++;
		sp->woff = 0;
		if (sp->rseq < sp->wseq) {
			sp->rseq = sp->wseq;
			sp->roff = 0;
		}
		sp->ack_in_disk = 0;
		goto out;
	}
	size = spool_seg_size(sp, pos->seg);
	sp->ack_in_disk = size >= 0 ? pos->off : 0;
out:
	pthread_mutex_unlock(&sp->mu);
	return err;
}

void spool_rewind(struct spool *sp)
{
	pthread_mutex_lock(&sp->mu);
	sp->rseq = sp->ack.seg;
	sp->roff = sp->ack.off;
	pthread_mutex_unlock(&sp->mu);
}

uint64_t spool_pending_bytes(struct spool *sp)
{
	uint64_t n;

	pthread_mutex_lock(&sp->mu);
	n = sp->st.disk_bytes > sp->ack_in_disk ? sp->st.disk_bytes - sp->ack_in_disk : 0;
	pthread_mutex_unlock(&sp->mu);
	return n;
}

bool spool_empty(struct spool *sp)
{
	return spool_pending_bytes(sp) == 0;
}

void spool_get_stats(struct spool *sp, struct spool_stats *st)
{
	pthread_mutex_lock(&sp->mu);
	*st = sp->st;
	pthread_mutex_unlock(&sp->mu);
}
