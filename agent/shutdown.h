/* The bounded shutdown (issue 16 item 5): while the pipeline drains, a watcher thread
 * reads the signal fd. A second SIGINT/SIGTERM calls the hurry hook at once (every
 * stage stops waiting and spools what it holds); if draining is still running at the
 * hard deadline the process exits there. Owns: the watcher thread. */
#ifndef ST_SHUTDOWN_H
#define ST_SHUTDOWN_H

#include <stdint.h>

typedef void (*shutdown_hurry_cb)(void *ctx);

/* Starts the watcher on sfd (a signalfd for SIGINT, SIGTERM, SIGUSR1). hard_ms is a
 * st_mono_ms() time. Returns 0 or a negative errno (then there is no watcher and the
 * shutdown is bounded by the stages' own deadlines only). */
int shutdown_watch_start(int sfd, uint64_t hard_ms, shutdown_hurry_cb hurry, void *ctx);
/* Draining is over: stop and join the watcher. Safe when none was started. */
void shutdown_watch_stop(void);

#endif
