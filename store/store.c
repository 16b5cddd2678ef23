/*
 * Layout of the store file (all offsets from the start of the mapping; the
 * file never holds a pointer):
 *
 *   [header page][index 0][index 1][slot 0][slot 1]...[slot capacity-1]
 *
 * The index is an open-addressing hash table (linear probing) of 32-bit
 * cells: 0 is empty, INDEX_TOMB a deleted cell, anything else slot+1. There
 * are two index copies; the header names the active one. Small changes are
 * made in the active copy, one aligned 32-bit store at a time, so a reader
 * always sees a cell as it was or as it is. A full rebuild (to drop
 * tombstones, or to repair after a killed writer) is written into the idle
 * copy and published by flipping active_index.
 *
 * Every change by the writer also bumps header->mutations. A reader that
 * misses compares mutations before and after its probe and tries again if it
 * moved, so a lookup that raced a replace or a rebuild (and followed a cell
 * to a slot that was reused under it) never reports a false miss. A hit
 * needs no such check: it is validated by the slot's own sequence counter
 * and by comparing kind and key inside the copy.
 *
 * Slot lifecycle, writer side (readers see only even sequence values as
 * stable):
 *   free --(seq odd, fill, seq even)--> used, unpublished
 *        --(index cell := slot+1)-----> used, published
 *        --(cell := tomb or other)----> used, unpublished
 *        --(seq odd, state free, even)-> free
 * A killed writer leaves at worst one slot with an odd counter; the next
 * writer frees it and rebuilds the index from the slots, keeping the newest
 * version when a replace was interrupted with both versions in slots.
 *
 * Whoever can write the file decides which challenges the gateway answers,
 * so the file is trusted only as far as its owner: it must belong to the
 * writer's user, be writable by nobody else, and sit in a directory nobody
 * else can change (common/shmfile.h checks all three on what it opened).
 * It is created mode 0640, its group the readers'. Readers also take every
 * offset and size from the header once, at open, into struct store, since
 * the header stays writable by the writer: a value read twice from it may
 * not be the value that was checked.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/edge.h"
#include "common/log.h"
#include "store/layout.h"

#define READ_RETRIES 64		/* seqlock retries on one slot */
#define LOOKUP_RETRIES 8	/* whole-probe retries when mutations moved */

/*
 * Everything that says where things are in the mapping is copied here from
 * the header once it is validated, and only these copies are used after:
 * the header stays writable by the writer (and by anyone who can write the
 * file), so a field read twice may change between the check and the use,
 * and an offset taken from it would send a reader outside the mapping.
 */
struct store {
	int fd;
	int lock_fd;			/* writer only */
	bool writer;
	uint8_t *base;
	size_t map_len;
	struct store_hdr *hdr;		/* counters and flags only, never offsets */
	struct store_slot *slots;
	uint64_t index_off[2];
	uint64_t hash_seed;
	uint32_t capacity;		/* live entries at most */
	uint32_t nslots;		/* capacity + 1: a replace always has room */
	uint32_t mask;			/* nbuckets - 1 */
	uint32_t *free_stack;		/* writer only: free slot numbers */
	uint32_t nfree;
};

const char *store_kind_name(enum store_kind kind)
{
	switch (kind) {
	case STORE_HTTP01:
		return "http-01";
	case STORE_TLSALPN01:
		return "tls-alpn-01";
	}
	return "unknown";
}

static uint32_t next_pow2(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* Seeded FNV-1a with a final avalanche, so clustering needs the seed. */
static uint64_t key_hash(uint64_t seed, enum store_kind kind, const char *key,
			 size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	h = (h ^ (uint8_t)kind) * 0x100000001b3ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)key[i]) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint32_t *index_cells(const struct store *st, uint32_t which)
{
	return (uint32_t *)(st->base + st->index_off[which & 1]);
}

static _Atomic uint32_t *cell_at(uint32_t *cells, uint32_t i)
{
	return (_Atomic uint32_t *)&cells[i];
}

static size_t layout_size(uint32_t capacity, uint32_t nbuckets,
			  uint64_t *index_off0, uint64_t *index_off1,
			  uint64_t *slots_off)
{
	size_t index_bytes = (size_t)nbuckets * sizeof(uint32_t);
	size_t page = 4096;

	index_bytes = (index_bytes + page - 1) / page * page;
	*index_off0 = STORE_HDR_SIZE;
	*index_off1 = *index_off0 + index_bytes;
	*slots_off = *index_off1 + index_bytes;
	return *slots_off + ((size_t)capacity + 1) * STORE_SLOT_SIZE;
}

/*
 * Copies a slot under its sequence counter. Returns 1 with a consistent used
 * entry in out, 0 when the slot is free (or malformed), -EAGAIN when the
 * writer kept changing it (or died mid-change).
 */
static int slot_read(const struct store *st, uint32_t s, struct store_entry *out)
{
	struct store_slot *slot = &st->slots[s];

	for (int tries = 0; tries < READ_RETRIES; tries++) {
		uint32_t seq1 = atomic_load_explicit(&slot->seq,
						     memory_order_acquire);
		if (seq1 & 1)
			continue;
		uint32_t state = slot->state;
		uint8_t kind = slot->kind;
		uint8_t key_len = slot->key_len;
		uint8_t ident_len = slot->ident_len;
		uint8_t client_len = slot->client_len;
		uint32_t payload_len = slot->payload_len;
		uint32_t cert_len = slot->cert_len;
		bool sane = state == SLOT_USED &&
			    (kind == STORE_HTTP01 || kind == STORE_TLSALPN01) &&
			    key_len > 0 && ident_len <= STORE_IDENT_MAX &&
			    client_len <= STORE_CLIENT_MAX &&
			    payload_len <= STORE_PAYLOAD_MAX &&
			    cert_len <= payload_len;
		if (sane) {
			out->kind = kind;
			out->key_len = key_len;
			out->ident_len = ident_len;
			out->client_len = client_len;
			out->payload_len = payload_len;
			out->cert_len = cert_len;
			out->version = slot->version;
			out->created_ms = slot->created_ms;
			out->expires_ms = slot->expires_ms;
			memcpy(out->key, slot->key, key_len);
			memcpy(out->ident, slot->ident, ident_len);
			memcpy(out->client, slot->client, client_len);
			memcpy(out->payload, slot->payload, payload_len);
		}
		atomic_thread_fence(memory_order_acquire);
		uint32_t seq2 = atomic_load_explicit(&slot->seq,
						     memory_order_relaxed);
		if (seq1 != seq2)
			continue;
		if (!sane)
			return 0;
		out->key[key_len] = '\0';
		out->ident[ident_len] = '\0';
		out->client[client_len] = '\0';
		out->slot = s;
		return 1;
	}
	return -EAGAIN;
}

/*
 * Probes the active index for kind+key. Returns the cell position and fills
 * out on a hit (1), or returns 0 on a miss; *pos is the first empty or
 * tombstone cell seen, for an insert.
 */
static int index_find(const struct store *st, enum store_kind kind,
		      const char *key, size_t key_len, struct store_entry *out,
		      uint32_t *pos, uint32_t *slot_out)
{
	const struct store_hdr *h = st->hdr;
	uint32_t which = atomic_load_explicit(&((struct store_hdr *)h)->active_index,
					      memory_order_acquire);
	uint32_t *cells = index_cells(st, which);
	uint32_t i = (uint32_t)key_hash(st->hash_seed, kind, key, key_len) & st->mask;
	uint32_t first_free = UINT32_MAX;

	for (uint32_t n = 0; n <= st->mask; n++, i = (i + 1) & st->mask) {
		uint32_t c = atomic_load_explicit(cell_at(cells, i),
						  memory_order_acquire);
		if (c == 0) {
			if (first_free == UINT32_MAX)
				first_free = i;
			break;
		}
		if (c == INDEX_TOMB) {
			if (first_free == UINT32_MAX)
				first_free = i;
			continue;
		}
		uint32_t s = c - 1;
		if (s >= st->nslots)
			continue;	/* never trust a cell blindly */
		if (slot_read(st, s, out) != 1)
			continue;
		if (out->kind == kind && out->key_len == key_len &&
		    memcmp(out->key, key, key_len) == 0) {
			if (pos)
				*pos = i;
			if (slot_out)
				*slot_out = s;
			return 1;
		}
	}
	if (pos)
		*pos = first_free;
	return 0;
}

int store_lookup(const struct store *st, enum store_kind kind,
		 const char *key, size_t key_len, int64_t now_ms,
		 struct store_entry *out)
{
	struct store_hdr *h = st->hdr;

	if (key_len == 0 || key_len > STORE_KEY_MAX)
		return -ENOENT;
	for (int tries = 0; tries < LOOKUP_RETRIES; tries++) {
		uint64_t m1 = atomic_load(&h->mutations);
		if (index_find(st, kind, key, key_len, out, NULL, NULL))
			return out->expires_ms > now_ms ? 0 : -ENOENT;
		if (atomic_load(&h->mutations) == m1)
			break;
	}
	return -ENOENT;
}

int store_iterate(const struct store *st, int64_t now_ms,
		  int (*fn)(const struct store_entry *e, void *arg),
		  void *arg, struct store_entry *scratch)
{
	for (uint32_t s = 0; s < st->nslots; s++) {
		if (store_read_slot(st, s, now_ms, scratch) != 1)
			continue;
		int rc = fn(scratch, arg);
		if (rc)
			return rc;
	}
	return 0;
}

uint64_t store_changes(const struct store *st)
{
	return atomic_load_explicit(&st->hdr->mutations, memory_order_acquire);
}

uint32_t store_nslots(const struct store *st)
{
	return st->nslots;
}

/* slot_read()'s seqlock over the few fields that say what a slot holds. */
int store_slot_version(const struct store *st, uint32_t s,
		       enum store_kind kind, int64_t now_ms, uint64_t *version)
{
	struct store_slot *slot;

	if (s >= st->nslots)
		return 0;
	slot = &st->slots[s];
	for (int tries = 0; tries < READ_RETRIES; tries++) {
		uint32_t seq1 = atomic_load_explicit(&slot->seq,
						     memory_order_acquire);
		if (seq1 & 1)
			continue;
		bool live = slot->state == SLOT_USED && slot->kind == kind &&
			    slot->expires_ms > now_ms;
		uint64_t v = slot->version;

		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != seq1)
			continue;
		if (live)
			*version = v;
		return live;
	}
	return -EAGAIN;
}

int store_read_slot(const struct store *st, uint32_t s, int64_t now_ms,
		    struct store_entry *out)
{
	int rc;

	if (s >= st->nslots)
		return 0;
	rc = slot_read(st, s, out);
	return rc == 1 && out->expires_ms <= now_ms ? 0 : rc;
}

/* A count from the header, which another process may have scribbled on. */
static uint32_t count_at_most(const _Atomic uint32_t *c, uint32_t max)
{
	uint32_t v = atomic_load_explicit(c, memory_order_relaxed);

	return v < max ? v : max;
}

void store_get_stats(const struct store *st, struct store_stats *out)
{
	struct store_hdr *h = st->hdr;

	out->capacity = st->capacity;
	out->used = count_at_most(&h->used, st->capacity);
	out->used_http01 = count_at_most(&h->used_kind[STORE_HTTP01], st->capacity);
	out->used_tlsalpn01 = count_at_most(&h->used_kind[STORE_TLSALPN01],
					    st->capacity);
	out->puts = atomic_load_explicit(&h->next_version, memory_order_relaxed) - 1;
}

/* ---- writer ----------------------------------------------------------- */

static void slot_begin(struct store_slot *slot)
{
	uint32_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);

	atomic_store_explicit(&slot->seq, seq | 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void slot_end(struct store_slot *slot)
{
	uint32_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);

	atomic_store_explicit(&slot->seq, (seq | 1) + 1, memory_order_release);
}

static void bump_mutations(struct store *st)
{
	atomic_fetch_add(&st->hdr->mutations, 1);
}

static void count_used(struct store *st, uint8_t kind, int delta)
{
	struct store_hdr *h = st->hdr;

	atomic_fetch_add_explicit(&h->used, (uint32_t)delta, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->used_kind[kind], (uint32_t)delta,
				  memory_order_relaxed);
}

static void slot_free(struct store *st, uint32_t s)
{
	struct store_slot *slot = &st->slots[s];

	slot_begin(slot);
	slot->state = SLOT_FREE;
	slot_end(slot);
	st->free_stack[st->nfree++] = s;
}

/*
 * Rebuilds the idle index copy from the slots and publishes it. Also the
 * repair path: slots a dead writer left mid-change are freed, and when an
 * interrupted replace left two used slots with one key, the newer wins.
 */
static void index_rebuild(struct store *st, int64_t now_ms)
{
	struct store_hdr *h = st->hdr;
	uint32_t idle = atomic_load(&h->active_index) ^ 1;
	uint32_t *cells = index_cells(st, idle);
	uint32_t used[3] = {0, 0, 0};
	uint64_t max_version = 0;
	struct store_entry *e = malloc(2 * sizeof(*e));

	BUG_ON(!e);
	memset(cells, 0, (size_t)(st->mask + 1) * sizeof(uint32_t));
	st->nfree = 0;
	for (uint32_t s = 0; s < st->nslots; s++) {
		struct store_slot *slot = &st->slots[s];
		uint32_t seq = atomic_load(&slot->seq);

		if (seq & 1) {
			/* A writer died inside slot_begin/slot_end. */
			slot->state = SLOT_FREE;
			atomic_store(&slot->seq, seq + 1);
		}
		if (slot_read(st, s, &e[0]) != 1 || e[0].expires_ms <= now_ms) {
			if (slot->state != SLOT_FREE) {
				slot_begin(slot);
				slot->state = SLOT_FREE;
				slot_end(slot);
			}
			st->free_stack[st->nfree++] = s;
			continue;
		}
		if (e[0].version > max_version)
			max_version = e[0].version;
		uint32_t i = (uint32_t)key_hash(st->hash_seed, e[0].kind, e[0].key,
						 e[0].key_len) & st->mask;
		for (;; i = (i + 1) & st->mask) {
			uint32_t c = cells[i];
			if (c == 0) {
				cells[i] = s + 1;
				used[e[0].kind]++;
				break;
			}
			/*
			 * Same key twice: keep the newer, free the older, but
			 * only once this index is published (below): until
			 * then readers probe the old index, which may point at
			 * the loser, and must keep finding it.
			 */
			if (slot_read(st, c - 1, &e[1]) == 1 && e[1].kind == e[0].kind &&
			    e[1].key_len == e[0].key_len &&
			    memcmp(e[1].key, e[0].key, e[0].key_len) == 0) {
				uint32_t loser = e[1].version > e[0].version ? s : c - 1;
				if (loser == c - 1)
					cells[i] = s + 1;
				st->free_stack[st->nfree++] = loser;
				break;
			}
		}
	}
	free(e);
	/* Hand out low slot numbers first: keeps the hot part of the file small. */
	for (uint32_t a = 0, b = st->nfree; a + 1 < b; a++, b--) {
		uint32_t t = st->free_stack[a];
		st->free_stack[a] = st->free_stack[b - 1];
		st->free_stack[b - 1] = t;
	}
	atomic_thread_fence(memory_order_release);
	atomic_store(&h->active_index, idle);
	atomic_store(&h->tombstones, 0);
	atomic_store(&h->used, used[1] + used[2]);
	atomic_store(&h->used_kind[STORE_HTTP01], used[STORE_HTTP01]);
	atomic_store(&h->used_kind[STORE_TLSALPN01], used[STORE_TLSALPN01]);
	if (atomic_load(&h->next_version) <= max_version)
		atomic_store(&h->next_version, max_version + 1);
	bump_mutations(st);
	/*
	 * Now free the duplicates that lost: the free_stack entries still
	 * marked used. As in store_put, mutations moved before (so a reader
	 * that probed the old index and then finds a loser freed retries)
	 * and moves again after.
	 */
	bool freed = false;
	for (uint32_t k = 0; k < st->nfree; k++) {
		struct store_slot *slot = &st->slots[st->free_stack[k]];

		if (slot->state != SLOT_FREE) {
			slot_begin(slot);
			slot->state = SLOT_FREE;
			slot_end(slot);
			freed = true;
		}
	}
	if (freed)
		bump_mutations(st);
}

static bool entry_valid(const struct store_entry *e)
{
	if (e->kind != STORE_HTTP01 && e->kind != STORE_TLSALPN01)
		return false;
	if (e->key_len == 0 ||
	    e->ident_len > STORE_IDENT_MAX || e->client_len > STORE_CLIENT_MAX)
		return false;
	if (e->payload_len == 0 || e->payload_len > STORE_PAYLOAD_MAX ||
	    e->cert_len > e->payload_len)
		return false;
	if (e->kind == STORE_TLSALPN01 &&
	    (e->cert_len == 0 || e->cert_len == e->payload_len))
		return false;
	return memchr(e->key, '\0', e->key_len) == NULL;
}

int store_put(struct store *st, struct store_entry *e, int64_t now_ms)
{
	struct store_hdr *h = st->hdr;
	struct store_entry *old;
	uint32_t pos, old_slot = UINT32_MAX;
	int found;

	BUG_ON(!st->writer);
	if (!entry_valid(e))
		return -EINVAL;
	old = malloc(sizeof(*old));
	if (!old)
		return -ENOMEM;
	found = index_find(st, e->kind, e->key, e->key_len, old, &pos, &old_slot);
	if (!found && atomic_load(&h->used) >= st->capacity) {
		if (store_sweep(st, now_ms) == 0) {
			free(old);
			return -ENOSPC;
		}
		/* The sweep may have compacted the index: probe again. */
		found = index_find(st, e->kind, e->key, e->key_len, old, &pos,
				   &old_slot);
	}
	free(old);
	/* Load factor stays <= 3/4 (see maybe_compact), so a cell is free. */
	BUG_ON(pos == UINT32_MAX);
	/* used <= capacity < nslots: a spare slot exists even for a replace. */
	BUG_ON(st->nfree == 0);

	uint32_t s = st->free_stack[--st->nfree];
	struct store_slot *slot = &st->slots[s];

	e->version = atomic_fetch_add(&h->next_version, 1);
	e->slot = s;
	slot_begin(slot);
	slot->state = SLOT_USED;
	slot->kind = e->kind;
	slot->key_len = e->key_len;
	slot->ident_len = e->ident_len;
	slot->client_len = e->client_len;
	slot->payload_len = e->payload_len;
	slot->cert_len = e->cert_len;
	slot->version = e->version;
	slot->created_ms = e->created_ms;
	slot->expires_ms = e->expires_ms;
	memcpy(slot->key, e->key, e->key_len);
	slot->key[e->key_len] = '\0';
	memcpy(slot->ident, e->ident, e->ident_len);
	slot->ident[e->ident_len] = '\0';
	memcpy(slot->client, e->client, e->client_len);
	slot->client[e->client_len] = '\0';
	memcpy(slot->payload, e->payload, e->payload_len);
	slot_end(slot);

	uint32_t *cells = index_cells(st, atomic_load(&h->active_index));
	/* One store publishes the new entry, and for a replace retires the old. */
	uint32_t prev = atomic_exchange(cell_at(cells, pos), s + 1);
	if (prev == INDEX_TOMB)
		atomic_fetch_sub(&h->tombstones, 1);
	count_used(st, e->kind, 1);
	bump_mutations(st);
	if (found) {
		count_used(st, e->kind, -1);
		slot_free(st, old_slot);
		bump_mutations(st);
	}
	return found ? 1 : 0;
}

static void retire(struct store *st, uint32_t pos, uint32_t s, uint8_t kind)
{
	struct store_hdr *h = st->hdr;
	uint32_t *cells = index_cells(st, atomic_load(&h->active_index));

	atomic_store(cell_at(cells, pos), INDEX_TOMB);
	atomic_fetch_add(&h->tombstones, 1);
	count_used(st, kind, -1);
	bump_mutations(st);
	slot_free(st, s);
	bump_mutations(st);
}

static void maybe_compact(struct store *st, int64_t now_ms)
{
	if (atomic_load(&st->hdr->tombstones) > (st->mask + 1) / 4)
		index_rebuild(st, now_ms);
}

int store_delete(struct store *st, enum store_kind kind, const char *key,
		 size_t key_len)
{
	struct store_entry *e;
	uint32_t pos, s;
	int found;

	BUG_ON(!st->writer);
	if (key_len == 0 || key_len > STORE_KEY_MAX)
		return -ENOENT;
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	found = index_find(st, kind, key, key_len, e, &pos, &s);
	free(e);
	if (!found)
		return -ENOENT;
	retire(st, pos, s, (uint8_t)kind);
	maybe_compact(st, 0);
	return 0;
}

unsigned store_sweep(struct store *st, int64_t now_ms)
{
	struct store_entry *e;
	unsigned n = 0;

	BUG_ON(!st->writer);
	/*
	 * Two copies: the probe must not write over the key it looks for
	 * (e[0].key), or any equal-length neighbour on the chain would match.
	 */
	e = malloc(2 * sizeof(*e));
	if (!e)
		return 0;
	for (uint32_t s = 0; s < st->nslots; s++) {
		uint32_t pos, found_slot;

		if (slot_read(st, s, &e[0]) != 1 || e[0].expires_ms > now_ms)
			continue;
		if (index_find(st, e[0].kind, e[0].key, e[0].key_len, &e[1], &pos,
			       &found_slot) && found_slot == s) {
			retire(st, pos, s, e[0].kind);
			n++;
		}
	}
	free(e);
	if (n)
		maybe_compact(st, now_ms);
	return n;
}

/* ---- opening ---------------------------------------------------------- */

static int map_store(struct store *st, int prot, char *err, size_t errlen,
		     const char *path)
{
	struct stat sb;
	struct store_hdr hdr;

	if (fstat(st->fd, &sb) != 0)
		return -errno;
	if ((size_t)sb.st_size < sizeof(hdr)) {
		err_set(err, errlen, "%s: too small to be a token store", path);
		return -EPROTO;
	}
	if (pread(st->fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		return -EIO;
	if (memcmp(hdr.magic, STORE_MAGIC, 8) != 0) {
		err_set(err, errlen, "%s: not an acme-edge token store (bad magic)",
			path);
		return -EPROTO;
	}
	if (hdr.layout_version != STORE_LAYOUT_VERSION ||
	    hdr.hdr_size != STORE_HDR_SIZE || hdr.slot_size != STORE_SLOT_SIZE) {
		err_set(err, errlen,
			"%s: store layout version %u (slot %u bytes), this build "
			"reads version %u (slot %u bytes); stop the old writer and "
			"remove the file",
			path, hdr.layout_version, hdr.slot_size,
			STORE_LAYOUT_VERSION, STORE_SLOT_SIZE);
		return -EPROTO;
	}
	uint64_t off0, off1, soff;
	size_t want;
	if (hdr.capacity == 0 || hdr.capacity > STORE_CAPACITY_MAX ||
	    hdr.nbuckets != next_pow2(2 * hdr.capacity))
		goto bad;
	want = layout_size(hdr.capacity, hdr.nbuckets, &off0, &off1, &soff);
	if (hdr.index_off[0] != off0 || hdr.index_off[1] != off1 ||
	    hdr.slots_off != soff || hdr.file_size != want ||
	    (uint64_t)sb.st_size != want)
		goto bad;
	st->map_len = want;
	st->base = mmap(NULL, want, prot, MAP_SHARED, st->fd, 0);
	if (st->base == MAP_FAILED) {
		st->base = NULL;
		return -errno;
	}
	st->hdr = (struct store_hdr *)st->base;
	st->slots = (struct store_slot *)(st->base + soff);
	st->index_off[0] = off0;
	st->index_off[1] = off1;
	st->hash_seed = hdr.hash_seed;
	st->capacity = hdr.capacity;
	st->nslots = hdr.capacity + 1;
	st->mask = hdr.nbuckets - 1;
	return 0;
bad:
	err_set(err, errlen, "%s: store header is inconsistent (capacity %u)",
		path, hdr.capacity);
	return -EPROTO;
}

int store_open_reader(const char *path, uid_t writer, struct store **out,
		      char *err, size_t errlen)
{
	const struct shm_owner own = {.uid = writer, .gid = (gid_t)-1};
	struct store *st;
	const char *name;
	int dirfd, rc;

	dirfd = shm_dir_open(path, writer, &name, err, errlen);
	if (dirfd < 0)
		return dirfd;
	st = calloc(1, sizeof(*st));
	if (!st) {
		close(dirfd);
		return -ENOMEM;
	}
	st->lock_fd = -1;
	st->fd = shm_openat(dirfd, path, name, O_RDONLY, &own, 0, err, errlen);
	close(dirfd);
	if (st->fd < 0) {
		rc = st->fd;
		free(st);
		return rc;
	}
	rc = map_store(st, PROT_READ, err, errlen, path);
	if (rc) {
		if (rc != -EPROTO)
			err_set(err, errlen, "%s: %s", path, strerror(-rc));
		store_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

/*
 * Creates a fresh store beside the final path (under a name nobody can
 * guess, so nobody can plant it first) and renames it into place, so a
 * reader can never map a half-initialised file.
 */
static int store_create(int dirfd, const char *path, const char *name,
			uint32_t capacity, const struct shm_owner *own, char *err,
			size_t errlen)
{
	char tmp[4096];
	struct store_hdr hdr;
	uint64_t off0, off1, soff;
	uint32_t nbuckets = next_pow2(2 * capacity);
	size_t size = layout_size(capacity, nbuckets, &off0, &off1, &soff);
	int fd, rc = 0;

	fd = shm_create_temp(dirfd, path, own, tmp, sizeof(tmp), err, errlen);
	if (fd < 0)
		return fd;
	/* ftruncate gives zeroes: every slot free, both indexes empty. */
	if (ftruncate(fd, (off_t)size) != 0) {
		rc = -errno;
		err_set(err, errlen, "%s: cannot size %s to %zu bytes: %s", path,
			tmp, size, strerror(errno));
		goto out;
	}
	memset(&hdr, 0, sizeof(hdr));
	memcpy(hdr.magic, STORE_MAGIC, 8);
	hdr.layout_version = STORE_LAYOUT_VERSION;
	hdr.hdr_size = STORE_HDR_SIZE;
	hdr.slot_size = STORE_SLOT_SIZE;
	hdr.capacity = capacity;
	hdr.nbuckets = nbuckets;
	hdr.index_off[0] = off0;
	hdr.index_off[1] = off1;
	hdr.slots_off = soff;
	hdr.file_size = size;
	if (getrandom(&hdr.hash_seed, sizeof(hdr.hash_seed), 0) !=
	    (ssize_t)sizeof(hdr.hash_seed)) {
		rc = -errno;
		err_set(err, errlen, "%s: getrandom: %s", path, strerror(errno));
		goto out;
	}
	atomic_init(&hdr.next_version, 1);
	if (pwrite(fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    fsync(fd) != 0) {
		rc = -EIO;
		err_set(err, errlen, "%s: cannot write the header of %s", path, tmp);
		goto out;
	}
	if (renameat(dirfd, tmp, dirfd, name) != 0) {
		rc = -errno;
		err_set(err, errlen, "%s: %s", path, strerror(errno));
	}
out:
	close(fd);
	if (rc)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

int store_open_writer(const char *path, uint32_t capacity,
		      struct shm_owner own, struct store **out, char *err,
		      size_t errlen)
{
	char lock_path[4096], lock_name[4096];
	struct store *st;
	const char *name;
	int dirfd, rc;

	if (capacity == 0 || capacity > STORE_CAPACITY_MAX) {
		err_set(err, errlen, "capacity must be 1..%u", STORE_CAPACITY_MAX);
		return -EINVAL;
	}
	if ((size_t)snprintf(lock_path, sizeof(lock_path), "%s.lock", path) >=
	    sizeof(lock_path))
		return -ENAMETOOLONG;
	dirfd = shm_dir_open(path, own.uid, &name, err, errlen);
	if (dirfd < 0)
		return dirfd;
	snprintf(lock_name, sizeof(lock_name), "%s.lock", name);
	st = calloc(1, sizeof(*st));
	if (!st) {
		close(dirfd);
		return -ENOMEM;
	}
	st->fd = -1;
	st->writer = true;
	/*
	 * The lock lives in its own file so that it also covers creating the
	 * store; flock dies with its holder, so a killed writer never blocks
	 * the next one.
	 */
	st->lock_fd = shm_openat(dirfd, lock_path, lock_name, O_RDWR | O_CREAT,
				 &own, 0600, err, errlen);
	if (st->lock_fd < 0) {
		rc = st->lock_fd;
		goto fail;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		err_set(err, errlen, "%s: another writer holds the store", path);
		goto fail;
	}
	st->fd = shm_openat(dirfd, path, name, O_RDWR, &own, 0, err, errlen);
	if (st->fd == -ENOENT) {
		rc = store_create(dirfd, path, name, capacity, &own, err, errlen);
		if (rc)
			goto fail;
		st->fd = shm_openat(dirfd, path, name, O_RDWR, &own, 0, err,
				    errlen);
	}
	if (st->fd < 0) {
		rc = st->fd;
		goto fail;
	}
	rc = map_store(st, PROT_READ | PROT_WRITE, err, errlen, path);
	if (rc) {
		if (rc != -EPROTO)
			err_set(err, errlen, "%s: %s", path, strerror(-rc));
		goto fail;
	}
	if (st->capacity != capacity) {
		err_set(err, errlen,
			"%s holds a store of capacity %u but the config asks for "
			"%u; stop the gateway and remove the file to resize",
			path, st->capacity, capacity);
		rc = -EEXIST;
		goto fail;
	}
	st->free_stack = calloc((size_t)capacity + 1, sizeof(uint32_t));
	if (!st->free_stack) {
		rc = -ENOMEM;
		goto fail;
	}
	close(dirfd);
	index_rebuild(st, 0);
	atomic_store(&st->hdr->writer_pid, (int32_t)getpid());
	*out = st;
	return 0;
fail:
	close(dirfd);
	store_close(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->base)
		munmap(st->base, st->map_len);
	if (st->fd >= 0)
		close(st->fd);
	if (st->writer && st->lock_fd >= 0)
		close(st->lock_fd);
	free(st->free_stack);
	free(st);
}
