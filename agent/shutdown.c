/* See shutdown.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "shutdown.h"
#include "util.h"

static pthread_t sd_thr;
static int sd_started, sd_efd = -1, sd_sfd = -1;
static uint64_t sd_hard_ms;
static shutdown_hurry_cb sd_hurry;
static void *sd_ctx;

static void *shutdown_thread(void *arg)
{
	struct pollfd pfd[2] = { { .fd = sd_efd, .events = POLLIN }, { .fd = sd_sfd, .events = POLLIN } };
	struct signalfd_siginfo si;
	int hurried = 0;

	(void)arg;
	for (;;) {
		uint64_t now = st_mono_ms();

		if (now >= sd_hard_ms) {
			/* the stages missed their deadlines: this is the bound's backstop */
			pr_warn("shutdown: still draining at the --shutdown-timeout deadline (plus grace): "
				"exiting now, what was not spooled is lost\n");
			_exit(1);
		}
		if (poll(pfd, 2, (int)(sd_hard_ms - now)) < 0 && errno != EINTR)
			return NULL;
		if (pfd[0].revents)
			return NULL;
		while (pfd[1].revents && read(sd_sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGUSR1 || hurried)
				continue;
			hurried = 1;
			pr_warn("signal %u again: stopping now, spooling what is in memory\n", si.ssi_signo);
			sd_hurry(sd_ctx);
		}
	}
}

int shutdown_watch_start(int sfd, uint64_t hard_ms, shutdown_hurry_cb hurry, void *ctx)
{
	int err;

	if (sd_started || sfd < 0)
		return -EINVAL;
	sd_efd = eventfd(0, EFD_CLOEXEC);
	if (sd_efd < 0)
		return -errno;
	sd_sfd = sfd;
	sd_hard_ms = hard_ms;
	sd_hurry = hurry;
	sd_ctx = ctx;
	err = -pthread_create(&sd_thr, NULL, shutdown_thread, NULL);
	if (err) {
		close(sd_efd);
		sd_efd = -1;
		return err;
	}
	sd_started = 1;
	return 0;
}

void shutdown_watch_stop(void)
{
	uint64_t one = 1;

	if (!sd_started)
		return;
	if (write(sd_efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		pr_warn("shutdown: cannot wake the watcher: %s\n", strerror(errno));
	pthread_join(sd_thr, NULL);
	close(sd_efd);
	sd_efd = -1;
	sd_started = 0;
}
