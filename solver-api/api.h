/*
 * solver-api: the REST API through which ACME clients push challenges into
 * the token store (README, "The solver API"). The only writer of the
 * store.
 */
#ifndef EDGE_API_H
#define EDGE_API_H

#include "common/cfg.h"

/*
 * Serves the API until SIGTERM or SIGINT. SIGHUP re-reads cfg_path and
 * applies what can change without a restart (clients, TTLs, log level).
 * Takes ownership of cfg. Returns the process exit code.
 */
int api_main(struct cfg *cfg, const char *cfg_path);

#endif
