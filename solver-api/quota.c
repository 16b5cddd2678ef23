/*
 * Per-client quotas ([client NAME] max_entries): how many live entries a
 * client holds, so that one client cannot fill the store for every other.
 *
 * The API is the store's only writer, so it can keep the owner and expiry
 * of every slot beside the store, filled once from the store at start and
 * then by the write path (handlers.c, apply_put/apply_delete). Expired
 * entries the store frees on its own (the sweep, a put into a full store)
 * need no bookkeeping: a slot counts only until its expiry.
 */
#include <string.h>

#include "common/edge.h"
#include "solver-api/internal.h"

/* The id of a client name, interned for the life of the process; 1-based. */
static uint32_t quota_intern(struct quota *q, const char *name)
{
	for (uint32_t i = 0; i < q->nnames; i++)
		if (strcmp(q->names[i], name) == 0)
			return i + 1;
	q->names = realloc(q->names, (q->nnames + 1) * sizeof(*q->names));
	BUG_ON(!q->names);
	snprintf(q->names[q->nnames], sizeof(*q->names), "%s", name);
	return ++q->nnames;
}

static void quota_grow(struct quota *q, uint32_t slot)
{
	uint32_t n = q->nslots;

	if (slot < n)
		return;
	while (n <= slot)
		n = n ? 2 * n : 64;
	q->owner = realloc(q->owner, n * sizeof(*q->owner));
	q->expires = realloc(q->expires, n * sizeof(*q->expires));
	BUG_ON(!q->owner || !q->expires);
	memset(q->owner + q->nslots, 0, (n - q->nslots) * sizeof(*q->owner));
	q->nslots = n;
}

void quota_note_put(struct quota *q, const struct store_entry *e)
{
	quota_grow(q, e->slot);
	q->owner[e->slot] = quota_intern(q, e->client);
	q->expires[e->slot] = e->expires_ms;
}

void quota_note_free(struct quota *q, uint32_t slot)
{
	if (slot < q->nslots)
		q->owner[slot] = 0;
}

static int note_one(const struct store_entry *e, void *arg)
{
	quota_note_put(arg, e);
	return 0;
}

void quota_load(struct quota *q, const struct store *st,
		struct store_entry *scratch, int64_t now)
{
	store_iterate(st, now, note_one, q, scratch);
}

unsigned quota_held(const struct quota *q, const char *client, int64_t now)
{
	uint32_t id = 0;
	unsigned n = 0;

	for (uint32_t i = 0; i < q->nnames && !id; i++)
		if (strcmp(q->names[i], client) == 0)
			id = i + 1;
	for (uint32_t s = 0; id && s < q->nslots; s++)
		n += q->owner[s] == id && q->expires[s] > now;
	return n;
}

void quota_free(struct quota *q)
{
	free(q->owner);
	free(q->expires);
	free(q->names);
	memset(q, 0, sizeof(*q));
}
