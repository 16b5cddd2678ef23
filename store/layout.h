/*
 * The store file's layout: the contract between the one writer (the API)
 * and every reader (the proxy's workers), and nothing else. Only store.c
 * reads or writes the file through it; the store's tests and its fuzzer
 * include it to reach into a file the way a dying writer or a hostile
 * process would leave it. The prose description of the layout and of the
 * slot lifecycle is at the top of store.c.
 *
 * Any change here changes the file format: bump STORE_LAYOUT_VERSION
 * (store.h) with it, so that a reader of another layout refuses the file
 * instead of misreading it.
 */
#ifndef EDGE_STORE_LAYOUT_H
#define EDGE_STORE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_MAGIC "ACMEEDGE"
#define STORE_HDR_SIZE 4096
#define INDEX_TOMB UINT32_MAX
#define SLOT_FREE 0
#define SLOT_USED 1

struct store_hdr {
	char magic[8];
	uint32_t layout_version;
	uint32_t hdr_size;
	uint32_t slot_size;
	uint32_t capacity;
	uint32_t nbuckets;		/* power of two, >= 2 * capacity */
	uint32_t reserved0;
	uint64_t index_off[2];
	uint64_t slots_off;
	uint64_t file_size;
	uint64_t hash_seed;
	_Atomic uint32_t active_index;
	_Atomic uint32_t tombstones;	/* in the active index */
	_Atomic uint64_t mutations;
	_Atomic uint64_t next_version;
	_Atomic uint32_t used;
	_Atomic uint32_t used_kind[3];
	_Atomic int32_t writer_pid;
};

struct store_slot {
	_Atomic uint32_t seq;
	uint32_t state;
	uint8_t kind;
	uint8_t key_len;
	uint8_t ident_len;
	uint8_t client_len;
	uint32_t payload_len;
	uint32_t cert_len;
	uint32_t reserved0;
	uint64_t version;
	int64_t created_ms;
	int64_t expires_ms;
	char key[STORE_KEY_MAX + 1];
	char ident[STORE_IDENT_MAX + 1 + 2];	/* padded to 256 */
	char client[STORE_CLIENT_MAX + 1];
	uint8_t reserved1[16];
	uint8_t payload[STORE_PAYLOAD_MAX];
};

_Static_assert(sizeof(struct store_hdr) <= STORE_HDR_SIZE, "header page");
_Static_assert(sizeof(struct store_slot) == STORE_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct store_slot, payload) == 640, "slot layout");
_Static_assert(STORE_SLOT_SIZE - 640 == STORE_PAYLOAD_MAX, "payload fills the slot");
_Static_assert(offsetof(struct store_hdr, writer_pid) == 112, "header layout");
_Static_assert(STORE_KEY_MAX <= UINT8_MAX && STORE_IDENT_MAX <= UINT8_MAX,
	       "lengths fit the slot's byte fields");

#endif
