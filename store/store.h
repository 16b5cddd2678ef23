/*
 * The shared-memory token store: one writer (solver-api), any number of
 * read-only readers (proxy workers, in other processes).
 *
 * Readers never block, never allocate and never see a torn entry: every
 * slot carries a sequence counter (odd while the writer changes it) and a
 * reader copies the entry out and keeps the copy only if the counter did not
 * move. A writer killed at any instant leaves at worst a slot with an odd
 * counter (readers skip it) and an index entry that may point at it; the
 * next writer repairs both when it opens the store.
 *
 * A put is visible to every reader when store_put() returns: there is no
 * cache between the writer and the mapping the readers use.
 */
#ifndef EDGE_STORE_H
#define EDGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/shmfile.h"

#define STORE_LAYOUT_VERSION 1
#define STORE_KEY_MAX 255
#define STORE_IDENT_MAX 253
#define STORE_CLIENT_MAX 63
#define STORE_SLOT_SIZE 8192
#define STORE_PAYLOAD_MAX 7552
#define STORE_CAPACITY_MAX 65536

enum store_kind {
	STORE_HTTP01 = 1,	/* key: the token; payload: key authorization */
	STORE_TLSALPN01 = 2,	/* key: the SNI name; payload: cert DER || key DER */
};

/*
 * One entry, as the writer gives it and as a reader gets a copy of it.
 * Strings are NUL-terminated within their arrays and also carry lengths.
 */
struct store_entry {
	uint8_t kind;			/* enum store_kind */
	uint8_t key_len;
	uint8_t ident_len;		/* 0: not bound to an identifier */
	uint8_t client_len;		/* the API client that put it */
	uint32_t payload_len;
	uint32_t cert_len;		/* tls-alpn-01: payload[0, cert_len) is the cert */
	uint32_t slot;			/* set by lookups; stable for the entry's life */
	uint64_t version;		/* store-wide, increases on every put */
	int64_t created_ms;		/* wall clock */
	int64_t expires_ms;		/* wall clock; never served at or after */
	char key[STORE_KEY_MAX + 1];
	char ident[STORE_IDENT_MAX + 1];
	char client[STORE_CLIENT_MAX + 1];
	uint8_t payload[STORE_PAYLOAD_MAX];
};

struct store_stats {
	uint32_t capacity;
	uint32_t used;
	uint32_t used_http01;
	uint32_t used_tlsalpn01;
	uint64_t puts;			/* versions handed out since creation */
};

struct store;

/*
 * Opens the store for writing, creating it when absent (and its lock file,
 * path + ".lock"), owned by own.uid and readable by own.gid. Only one
 * writer may hold a store: a second one gets -EBUSY, and a clear message in
 * err. A file or directory anyone but own.uid (or root, for the directory)
 * could have written is refused (-EPERM; see common/shmfile.h). An
 * existing store whose layout or capacity differs from what is asked is
 * refused (-EPROTO, -EEXIST) rather than reinterpreted or wiped. Opening
 * repairs whatever a killed writer left behind. Returns 0 or -errno.
 */
int store_open_writer(const char *path, uint32_t capacity,
		      struct shm_owner own, struct store **out, char *err,
		      size_t errlen);

/*
 * Maps an existing store read-only, after checking that it belongs to
 * writer (the user the writer runs as) and that nobody else could have
 * written it or its directory (-EPERM), then its header (magic, layout
 * version, sizes) before trusting any offset. Returns 0 or -errno with a
 * message in err (-ENOENT: not created yet; -EPROTO: another layout).
 */
int store_open_reader(const char *path, uid_t writer, struct store **out,
		      char *err, size_t errlen);

void store_close(struct store *st);

/*
 * Inserts or replaces the entry with the same kind and key. The previous
 * entry stays readable until the new one is, so a reader sees one or the
 * other, never neither. Fills e->version and e->slot. Returns 0 when
 * created, 1 when replaced, -ENOSPC when full (after sweeping expired
 * entries), -EINVAL when the entry is malformed.
 */
int store_put(struct store *st, struct store_entry *e, int64_t now_ms);

/* Returns 0, or -ENOENT when no entry has that kind and key. */
int store_delete(struct store *st, enum store_kind kind, const char *key,
		 size_t key_len);

/* Frees every entry expired at now_ms; returns how many. */
unsigned store_sweep(struct store *st, int64_t now_ms);

/*
 * Copies out the live entry with that kind and key. O(1) expected, no
 * allocation, no lock, no syscall. Returns 0, or -ENOENT when absent or
 * expired at now_ms.
 */
int store_lookup(const struct store *st, enum store_kind kind,
		 const char *key, size_t key_len, int64_t now_ms,
		 struct store_entry *out);

/*
 * Calls fn with a consistent copy of every live entry, in slot order, using
 * *scratch as the copy. Stops early when fn returns non-zero and returns
 * that value; otherwise 0.
 */
int store_iterate(const struct store *st, int64_t now_ms,
		  int (*fn)(const struct store_entry *e, void *arg),
		  void *arg, struct store_entry *scratch);

void store_get_stats(const struct store *st, struct store_stats *out);

/*
 * For a reader that keeps something derived from entries (a parsed
 * certificate) and wants to learn which entries are new without copying
 * each one out.
 *
 * store_changes() moves whenever the writer has changed an entry, after
 * the change is readable: one load tells whether anything is new.
 * store_nslots() is the number of slots, and store_slot_version() says
 * whether slot s (below that number) holds a live entry of that kind, and
 * its version: 1, 0 when it holds none (free, another kind, expired at
 * now_ms), -EAGAIN when the writer kept changing it. A version names one
 * payload forever. store_read_slot() copies out the live entry in slot s,
 * with the same returns.
 */
uint64_t store_changes(const struct store *st);
uint32_t store_nslots(const struct store *st);
int store_slot_version(const struct store *st, uint32_t s,
		       enum store_kind kind, int64_t now_ms, uint64_t *version);
int store_read_slot(const struct store *st, uint32_t s, int64_t now_ms,
		    struct store_entry *out);

const char *store_kind_name(enum store_kind kind);

#endif
