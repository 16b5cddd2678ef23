/*
 * Who each part of the gateway runs as, and so who owns the shared file
 * it writes: the API writes the token store, the proxy its statistics
 * file. A part's file belongs to that part's user and is readable by the
 * other part's group; a reader accepts a file only when it belongs to the
 * user of the part that writes it.
 */
#ifndef EDGE_PRIV_H
#define EDGE_PRIV_H

#include <sys/types.h>

#include "common/shmfile.h"

enum priv_part {
	PRIV_API = 0,		/* writes the token store */
	PRIV_PROXY = 1,		/* writes the proxy statistics file */
};

/* The user part runs as: the one its shared file must belong to. */
uid_t priv_uid(enum priv_part part);

/* The owner and readers' group of the shared file part writes. */
struct shm_owner priv_owner(enum priv_part part);

#endif
