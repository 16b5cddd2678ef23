/*
 * The bytes nodes of a cluster exchange through Redis: one replicated
 * event (a put, a delete, a hit record) and one acknowledgement. Pure: no
 * I/O, no allocation, so the unit test and the fuzzer drive it alone.
 *
 * An event travels as "<version>:<body>": the body is what a node encodes,
 * the decimal version is what Redis assigned when it ordered the write (the
 * write script prepends it, atomically with storing the same bytes in the
 * entry's hash, so the hash and the channel carry identical messages).
 *
 * Body, all integers big-endian:
 *   u8 format (1) | u8 op ('P', 'D', 'H') | u8 n, origin node[n] |
 *   u64 write id | u8 kind | u8 n, key[n] | then by op:
 *   P: u8 n, identifier[n] | u8 n, client[n] | i64 created_ms |
 *      i64 expires_ms | u32 cert_len | u32 payload_len | payload
 *   D: i64 expires_ms (how long the tombstone must outlive the entry)
 *   H: i64 time_ms | u8 outcome | u8 n, peer[n]
 *
 * Decoding trusts nothing: every length is checked against what is left
 * and against the store's limits, names and keys against their character
 * sets, and trailing bytes are an error. A decoded put is a valid store
 * entry (store_put would accept it).
 */
#ifndef EDGE_CLUSTER_CODEC_H
#define EDGE_CLUSTER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define CLC_FORMAT 1
#define CLC_NODE_MAX 63
#define CLC_PEER_MAX 63
#define CLC_VERSION_DIGITS 19
/* The largest body: a put with every field at its longest. */
#define CLC_BODY_MAX (2 + 1 + CLC_NODE_MAX + 8 + 1 + 1 + STORE_KEY_MAX + \
		      1 + STORE_IDENT_MAX + 1 + STORE_CLIENT_MAX + 8 + 8 + \
		      4 + 4 + STORE_PAYLOAD_MAX)
#define CLC_MSG_MAX (CLC_VERSION_DIGITS + 1 + CLC_BODY_MAX)
/* "<write id> <node>" */
#define CLC_ACK_MAX (20 + 1 + CLC_NODE_MAX)

enum clc_op {
	CLC_PUT = 'P',
	CLC_DEL = 'D',
	CLC_HIT = 'H',
};

/* The largest enum pstats_outcome (HIT_STATELESS); the codec links no stats. */
#define CLC_OUTCOME_MAX 4

struct clc_event {
	uint64_t version;	/* Redis's order; 0 for hit records */
	uint8_t op;		/* enum clc_op */
	uint8_t kind;		/* enum store_kind */
	uint8_t key_len;
	uint8_t outcome;	/* H: enum pstats_outcome's values, 1..CLC_OUTCOME_MAX */
	uint64_t write_id;	/* the origin's; 0: nobody waits for acks */
	int64_t expires_ms;	/* P: the entry's; D: the tombstone's */
	int64_t hit_ms;		/* H */
	char key[STORE_KEY_MAX + 1];
	char origin[CLC_NODE_MAX + 1];
	char peer[CLC_PEER_MAX + 1];	/* H */
};

/* A node name: 1..63 of [A-Za-z0-9._-] (what [cluster] node accepts). */
bool clc_node_valid(const char *s, size_t len);

/*
 * Bodies. Each returns the length written into out, or 0 when cap is too
 * small or an argument is out of range (a name too long, an invalid entry).
 */
size_t clc_encode_put(const char *origin, uint64_t write_id,
		      const struct store_entry *e, uint8_t *out, size_t cap);
size_t clc_encode_del(const char *origin, uint64_t write_id, uint8_t kind,
		      const char *key, size_t key_len, int64_t expires_ms,
		      uint8_t *out, size_t cap);
size_t clc_encode_hit(const char *origin, uint8_t kind, const char *key,
		      size_t key_len, int64_t time_ms, uint8_t outcome,
		      const char *peer, uint8_t *out, size_t cap);

/* "<version>:" in front of a body already at out + the returned length. */
size_t clc_version_prefix(uint64_t version, char *out, size_t cap);

/*
 * Decodes "<version>:<body>". For a put, the entry is written to *entry
 * (which must not be NULL then; pass NULL to refuse puts). Returns 0, or
 * -1 for anything malformed; *ev and *entry are then unspecified.
 */
int clc_decode(const uint8_t *msg, size_t len, struct clc_event *ev,
	       struct store_entry *entry);

/* Acknowledgements: "<write id> <node>", decimal. */
size_t clc_ack_encode(uint64_t write_id, const char *node, char *out,
		      size_t cap);
int clc_ack_decode(const char *msg, size_t len, uint64_t *write_id,
		   char node[CLC_NODE_MAX + 1]);

#endif
