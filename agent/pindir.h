/* Pin-directory ownership: the bpffs mount, the pin directory, the stats-map pin and,
 * in every capture mode, the owner record (PIN_DIR/owner) that refuses a second live agent. */
#ifndef ST_PINDIR_H
#define ST_PINDIR_H

#include <limits.h>

struct bpf_map;

struct pindir {
	char dir[PATH_MAX];
	char stats_path[PATH_MAX];   /* PIN_DIR/stats */
	char links_dir[PATH_MAX];    /* PIN_DIR/links: one pin per tc/xdp link */
	char owner_path[PATH_MAX];   /* PIN_DIR/owner: pid and start time of the owner */
	int have_dir;                /* made by us or taken over: removed at exit if empty */
	int have_links_dir;
	int stats_pinned;
	int owner_fd;
	int owner_pinned;
	int recovered;               /* this start took over a crashed agent's pin dir */
};

void pindir_init(struct pindir *p);
/* Mounts bpffs at /sys/fs/bpf when nothing is mounted there. 0 or -errno. */
int pindir_ensure_bpffs(void);
/* Creates dir if needed and becomes its owner: -EBUSY while another live agent owns
 * it; a dead owner's record and link pins are removed (and ->recovered set). */
int pindir_take_owner(struct pindir *p, const char *dir);
/* Creates dir if needed and pins map at dir/stats, replacing a stale pin. */
int pindir_pin_stats(struct pindir *p, const char *dir, struct bpf_map *map);
/* Removes what this process pinned or created (after the links are detached). */
void pindir_close(struct pindir *p);

#endif
