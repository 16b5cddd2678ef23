/*
 * Who each part of the gateway runs as, and so who owns the shared file
 * it writes: the API writes the token store, the proxy its statistics
 * file. A part's file belongs to that part's user and is readable by the
 * other part's group (mode 0640); a reader accepts a file only when it
 * belongs to the user of the part that writes it.
 *
 * Started as root, each part binds its listeners as root and then becomes
 * the user its section names ([api] user, [proxy] user) for good: that
 * user's groups only, real, effective and saved ids all that user's, no
 * capability left. Two users make the store's "one writer" hold against
 * the internet-facing proxy itself: the proxy's user cannot open the store
 * for writing, and the API's user cannot write the proxy's statistics.
 * Started as any other user, that user runs every part, and the keys must
 * name it or be absent.
 */
#ifndef EDGE_PRIV_H
#define EDGE_PRIV_H

#include <stddef.h>
#include <sys/types.h>

#include "common/cfg.h"
#include "common/shmfile.h"

enum priv_part {
	PRIV_API = 0,		/* writes the token store */
	PRIV_PROXY = 1,		/* writes the proxy statistics file */
};

/*
 * Looks the users and groups of cfg up and makes them the ones the parts
 * of this process (and of the children it forks after) run as. Nothing
 * changes on failure: -errno and the reason, naming the key, in err.
 * Until it is called, every part is this process's own user.
 */
int priv_resolve(const struct cfg *cfg, char *err, size_t errlen);

/* The user part runs as: the one its shared file must belong to. */
uid_t priv_uid(enum priv_part part);

/* The group part runs as. */
gid_t priv_gid(enum priv_part part);

/* The owner and readers' group of the shared file part writes. */
struct shm_owner priv_owner(enum priv_part part);

/*
 * Becomes part's user for good, when running as root and its section names
 * one (once its listeners are bound: nothing after needs root), and checks
 * that root cannot be had back. Still root without a user: a warning.
 * Returns 0, or -1 after logging why (then the part must stop).
 */
int priv_drop(enum priv_part part);

#endif
