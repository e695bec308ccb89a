/* Files the agent creates: private (0600 before the umask), never through a planted
 * symlink, never over an existing file unless the caller asks. Owns: nothing. */
#ifndef ST_SFILE_H
#define ST_SFILE_H

#include <stddef.h>
#include <stdio.h>

#define SFILE_MODE 0600

/* A new file that must not exist yet (O_EXCL, O_NOFOLLOW): fd or -errno. */
int sfile_create_excl(const char *path);
/* fopen(path, "w" or "a") but created 0600 and never following a symlink at path;
 * NULL with errno set. */
FILE *sfile_fopen(const char *path, const char *mode);
/* A fresh temporary file beside final ("final.tmp-XXXXXX", 0600): fd or -errno;
 * its name is written to tmp. Rename it over final once complete. */
int sfile_tmp_beside(const char *final, char *tmp, size_t cap);
/* 1 when a and b name the same file (device and inode), 0 if not or either is missing. */
int sfile_same(const char *a, const char *b);

#endif
