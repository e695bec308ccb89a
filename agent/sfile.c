/* Files the agent creates (recordings, convert output, NDJSON output, dead letters):
 * 0600 so captured traffic is not readable by other users (the umask can only make
 * it stricter), O_NOFOLLOW so a symlink planted at the name cannot redirect a write.
 * Owns: nothing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sfile.h"

int sfile_create_excl(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, SFILE_MODE);

	return fd < 0 ? -errno : fd;
}

FILE *sfile_fopen(const char *path, const char *mode)
{
	int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, fd;
	FILE *f;

	if (!strcmp(mode, "a"))
		flags |= O_APPEND;
	else if (!strcmp(mode, "w"))
		flags |= O_TRUNC;
	else {
		errno = EINVAL;
		return NULL;
	}
	fd = open(path, flags, SFILE_MODE);
	if (fd < 0)
		return NULL;
	f = fdopen(fd, mode);
	if (!f) {
		int e = errno;

		close(fd);
		errno = e;
	}
	return f;
}

int sfile_tmp_beside(const char *final, char *tmp, size_t cap)
{
	int n = snprintf(tmp, cap, "%s.tmp-XXXXXX", final), fd;

	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);   /* mode 0600, O_EXCL */
	return fd < 0 ? -errno : fd;
}

int sfile_same(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) || stat(b, &sb))
		return 0;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}
