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
		if (mkdir(tmp, 0750) && errno != EEXIST)
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
	fd = openat(sp->dirfd, "ack.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
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

	fd = openat(sp->dirfd, "ack", O_RDONLY | O_CLOEXEC);
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
	if (fstatat(sp->dirfd, name, &stt, 0))
		return -errno;
	return stt.st_size;
}

static void spool_unlink_seg(struct spool *sp, uint64_t seq)
{
	char name[32];
	int64_t size = spool_seg_size(sp, seq);

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
		size = spool_seg_size(sp, seq);
		if (size < 0)
			continue;
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

int spool_open(struct spool **out, const struct spool_cfg *cfg)
{
	struct spool *sp;
	struct spool_pos ack = { 0, 0 };
	uint64_t min_seq, max_seq, seq;
	int64_t size;
	int err;

	*out = NULL;
	if (!cfg->dir || !*cfg->dir)
		return -EINVAL;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	pthread_mutex_init(&sp->mu, NULL);
	sp->wfd = sp->rfd = sp->dirfd = -1;
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
	err = spool_scan(sp, &min_seq, &max_seq);
	if (err)
		goto fail;
	if (spool_read_ack(sp, &ack)) {
		ack.seg = min_seq == UINT64_MAX ? 0 : min_seq;
		ack.off = 0;
	}
	for (seq = min_seq; min_seq != UINT64_MAX && seq < ack.seg && seq <= max_seq; seq++)
		spool_unlink_seg(sp, seq);
	sp->ack = ack;
	size = spool_seg_size(sp, ack.seg);
	sp->ack_in_disk = size >= 0 ? ((uint64_t)size < ack.off ? (uint64_t)size : ack.off) : 0;
	sp->first_seq = ack.seg;
	/* never reuse a number at or below the ack: it would count as delivered */
	sp->wseq = (max_seq > ack.seg ? max_seq : ack.seg) + 1;
	sp->rseq = ack.seg;
	sp->roff = ack.off;
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

		spool_seg_name(name, sizeof(name), sp->wseq);
		sp->wfd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (sp->wfd < 0) {
			err = -errno;
			pr_warn("spool: cannot create %s/%s: %s\n", sp->dir, name, strerror(errno));
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
		if (sp->rfd < 0 || sp->rfd_seq != sp->rseq) {
			char name[32];

			if (sp->rfd >= 0)
				close(sp->rfd);
			spool_seg_name(name, sizeof(name), sp->rseq);
			sp->rfd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
			if (sp->rfd < 0) {
				if (errno == ENOENT) {
					spool_next_seg(sp);
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
		if (sp->roff + SPOOL_HDR > end) {
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
		if (sp->roff + SPOOL_HDR + len > end) {
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
	uint64_t seq;
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
	for (seq = sp->first_seq; seq < pos->seg && seq < sp->wseq; seq++)
		spool_unlink_seg(sp, seq);
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
