#ifndef EDGE_SUPERVISOR_H
#define EDGE_SUPERVISOR_H

#include <stddef.h>

#include "common/cfg.h"

/* One part `acme-edge run` keeps alive: a name and its entry point. */
struct sv_part {
	const char *name;
	int (*main)(struct cfg *cfg, const char *cfg_path);
};

/*
 * Runs every part in a child process until SIGTERM/SIGINT; restarts a child
 * that dies (on cfg_path as it is then, or on the last config that loaded),
 * relays SIGHUP. Takes ownership of cfg, the config cfg_path held at start.
 * Returns the exit code.
 */
int sv_run(const struct sv_part *parts, size_t nparts, struct cfg *cfg,
	   const char *cfg_path);

#endif
