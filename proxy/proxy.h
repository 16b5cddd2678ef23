#ifndef EDGE_PROXY_H
#define EDGE_PROXY_H

#include "common/cfg.h"

/*
 * Runs the proxy until SIGTERM/SIGINT (then drains for up to [proxy]
 * grace); SIGHUP reloads routes, upstreams, policies and timeouts. Takes
 * ownership of cfg. Returns the process exit code.
 */
int proxy_main(struct cfg *cfg, const char *cfg_path);

#endif
