/*
 * libFuzzer harness for the reader side of store/store.c. The proxy maps
 * the store file read-only and must never crash or misread whatever bytes
 * it holds, so: a valid store is built once, and each input is a list of
 * patches laid over a copy of it (most of the structure stays valid, so
 * the fuzzer reaches the deep paths: slots, index cells, seqlocks). The
 * patched file is opened with store_open_reader(); when that accepts it,
 * known and unknown keys are looked up and the store iterated. Invariants
 * that must hold for every file trap, so a violation is a crash libFuzzer
 * keeps:
 *  - a hit is for the kind and key asked, not expired at the given time;
 *  - every returned length is in range and every string NUL-terminated
 *    at its length;
 *  - iterate visits at most one entry per slot.
 *
 * Input format, repeated: sel (1 byte), off (2 bytes, little-endian),
 * n (1 byte, low 5 bits: 0..31 bytes follow). sel & 3 picks the region:
 *   0: the header fields (off % HDR_FIELDS)
 *   1: index cells: copy (off & 1), byte (off >> 1) % cell bytes
 *   2: slot (sel >> 2) % nslots, byte off % SLOT_META (metadata and the
 *      start of the payload)
 *   3: anywhere ((sel >> 2) << 16 | off) % file size; with sel & 0x80 and
 *      n == 0, truncates the file there instead
 * The region offsets come from the header of the file built at start-up,
 * read through the store's own layout (store/layout.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/edge.h"
#include "store/layout.h"
#include "store/store.h"

#define ASSERT(c)                                                         \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

#define CAPACITY 8
#define NSLOTS (CAPACITY + 1)
#define HDR_FIELDS 128		/* the used part of the header page */
_Static_assert(sizeof(struct store_hdr) <= HDR_FIELDS, "every header field is patched");
#define SLOT_META (offsetof(struct store_slot, payload) + 64)	/* metadata, then the payload's start */
#define T0 1700000000000LL	/* "now" for every entry made and looked up */

static uint8_t *image;		/* the pristine file */
static size_t image_len;
static uint64_t index_off[2], slots_off;
static uint32_t cell_bytes;
static int image_fd = -1;
static char image_path[64];

struct key {
	enum store_kind kind;
	const char *key;
};

/* In the store (live, expired, replaced), deleted from it, never there. */
static const struct key keys[] = {
	{ STORE_HTTP01, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA" },
	{ STORE_HTTP01, "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0" },
	{ STORE_TLSALPN01, "www.example.test" },
	{ STORE_TLSALPN01, "4.3.2.1.in-addr.arpa" },
	{ STORE_HTTP01, "www.example.test" },
	{ STORE_HTTP01, "expired-token" },
	{ STORE_HTTP01, "deleted-token" },
	{ STORE_TLSALPN01, "replaced.example.test" },
	{ STORE_HTTP01, "never-put" },
	{ STORE_TLSALPN01, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA" },
	{ STORE_HTTP01, "a" },
};

static struct store_entry out;	/* 8 KiB: off the stack */

static void put(struct store *st, enum store_kind kind, const char *key,
		uint32_t plen, int64_t expires_ms)
{
	static struct store_entry e;

	memset(&e, 0, sizeof(e));
	e.kind = (uint8_t)kind;
	e.key_len = (uint8_t)strlen(key);
	memcpy(e.key, key, e.key_len);
	e.ident_len = 16;
	memcpy(e.ident, "www.example.test", 16);
	e.client_len = 7;
	memcpy(e.client, "certbot", 7);
	e.payload_len = plen;
	e.cert_len = kind == STORE_TLSALPN01 ? plen / 2 : 0;
	for (uint32_t i = 0; i < plen; i++)
		e.payload[i] = (uint8_t)(i * 7 + plen);
	e.created_ms = T0 - 1000;
	e.expires_ms = expires_ms;
	ASSERT(store_put(st, &e, T0) >= 0);
}

static void remove_image(void)
{
	unlink(image_path);
}

static void setup(void)
{
	char path[128], lock[140];
	struct store *st = NULL;
	char err[256];
	struct stat sb;
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/acme-edge-fuzz-store-%d",
		 (int)getpid());
	snprintf(lock, sizeof(lock), "%s.lock", path);
	unlink(path);
	if (store_open_writer(path, CAPACITY,
			      (struct shm_owner){geteuid(), getegid()}, &st, err,
			      sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_store: %s\n", err);
		abort();
	}
	put(st, keys[0].kind, keys[0].key, 87, T0 + 3600000);
	put(st, keys[1].kind, keys[1].key, 87, T0 + 3600000);
	put(st, keys[2].kind, keys[2].key, 1200, T0 + 3600000);
	put(st, keys[3].kind, keys[3].key, 900, T0 + 3600000);
	put(st, keys[4].kind, keys[4].key, 20, T0 + 3600000);
	put(st, keys[5].kind, keys[5].key, 30, T0 - 1);
	put(st, keys[6].kind, keys[6].key, 30, T0 + 3600000);
	ASSERT(store_delete(st, keys[6].kind, keys[6].key,
			    strlen(keys[6].key)) == 0);
	put(st, keys[7].kind, keys[7].key, 400, T0 + 3600000);
	put(st, keys[7].kind, keys[7].key, STORE_PAYLOAD_MAX, T0 + 3600000);
	store_close(st);

	fd = open(path, O_RDONLY);
	ASSERT(fd >= 0 && fstat(fd, &sb) == 0);
	image_len = (size_t)sb.st_size;
	image = malloc(image_len);
	ASSERT(image && pread(fd, image, image_len, 0) == (ssize_t)image_len);
	close(fd);
	unlink(path);
	unlink(lock);

	/* Where store.c put things; trip at once if that layout moved. */
	const struct store_hdr *hdr = (const struct store_hdr *)image;

	index_off[0] = hdr->index_off[0];
	index_off[1] = hdr->index_off[1];
	slots_off = hdr->slots_off;
	cell_bytes = hdr->nbuckets * 4;
	ASSERT(memcmp(hdr->magic, STORE_MAGIC, 8) == 0);
	ASSERT(index_off[0] < index_off[1] && index_off[1] < slots_off);
	ASSERT(slots_off + (uint64_t)NSLOTS * STORE_SLOT_SIZE == image_len);

	/*
	 * A real file, not a memfd: the reader opens by name and refuses
	 * /proc/self/fd/N, a symlink.
	 */
	snprintf(image_path, sizeof(image_path), "/dev/shm/acme-edge-fuzz-image-%d",
		 (int)getpid());
	image_fd = open(image_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT(image_fd >= 0);
	atexit(remove_image);
	ASSERT(pwrite(image_fd, image, image_len, 0) == (ssize_t)image_len);
}

/* The invariants for any entry a reader hands out. */
static void check_entry(const struct store_entry *e, int64_t now)
{
	ASSERT(e->kind == STORE_HTTP01 || e->kind == STORE_TLSALPN01);
	ASSERT(e->key_len >= 1 && e->key[e->key_len] == '\0');
	ASSERT(e->ident_len <= STORE_IDENT_MAX && e->ident[e->ident_len] == '\0');
	ASSERT(e->client_len <= STORE_CLIENT_MAX &&
	       e->client[e->client_len] == '\0');
	ASSERT(e->payload_len <= STORE_PAYLOAD_MAX);
	ASSERT(e->cert_len <= e->payload_len);
	ASSERT(e->slot < NSLOTS);
	ASSERT(e->expires_ms > now);
}

struct visit {
	int64_t now;
	uint32_t n;
	uint32_t seen[NSLOTS];
};

static int visit(const struct store_entry *e, void *arg)
{
	struct visit *v = arg;

	check_entry(e, v->now);
	ASSERT(v->seen[e->slot]++ == 0);
	v->n++;
	return 0;
}

static void lookup(const struct store *st, enum store_kind kind,
		   const char *key, size_t len, int64_t now)
{
	if (store_lookup(st, kind, key, len, now, &out) != 0)
		return;
	check_entry(&out, now);
	ASSERT(out.kind == kind && out.key_len == len &&
	       memcmp(out.key, key, len) == 0);
}

static void exercise(const struct store *st)
{
	static const int64_t nows[] = { T0, T0 - 10, INT64_MIN, INT64_MAX - 1 };
	static char longkey[STORE_KEY_MAX + 2];
	static struct store_entry scratch;
	struct store_stats ss;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		lookup(st, keys[i].kind, keys[i].key, strlen(keys[i].key),
		       nows[i % 2]);
	memset(longkey, 'k', sizeof(longkey) - 1);
	lookup(st, STORE_HTTP01, longkey, STORE_KEY_MAX, T0);
	lookup(st, STORE_HTTP01, longkey, STORE_KEY_MAX + 1, T0);
	lookup(st, STORE_HTTP01, longkey, 0, T0);
	lookup(st, (enum store_kind)0, keys[0].key, strlen(keys[0].key), T0);
	lookup(st, (enum store_kind)200, keys[0].key, strlen(keys[0].key), T0);

	for (size_t i = 0; i < ARRAY_SIZE(nows); i++) {
		struct visit v;

		memset(&v, 0, sizeof(v));
		v.now = nows[i];
		ASSERT(store_iterate(st, nows[i], visit, &v, &scratch) == 0);
		ASSERT(v.n <= NSLOTS);
	}
	/* The slot-by-slot look agrees with the copies, whatever the bytes. */
	(void)store_changes(st);
	ASSERT(store_nslots(st) <= NSLOTS);
	for (uint32_t s = 0; s <= store_nslots(st); s++) {
		int got = store_read_slot(st, s, T0, &scratch);
		uint64_t version;

		ASSERT(got == 0 || got == 1 || got == -EAGAIN);
		if (got == 1) {
			check_entry(&scratch, T0);
			ASSERT(scratch.slot == s);
		}
		for (int kind = STORE_HTTP01; kind <= STORE_TLSALPN01; kind++) {
			int peek = store_slot_version(st, s, (enum store_kind)kind,
						      T0, &version);

			ASSERT(peek == 0 || peek == 1 || peek == -EAGAIN);
			if (peek == 1 && got == 1)
				ASSERT(scratch.kind != kind ||
				       scratch.version == version);
		}
	}
	/*
	 * A truncation plus header patches can make a consistent store of a
	 * smaller capacity (never a larger one: offsets wrap at the file's
	 * size), so slot numbers stay below NSLOTS either way.
	 */
	store_get_stats(st, &ss);
	ASSERT(ss.capacity >= 1 && ss.capacity <= CAPACITY);
}

struct undo {
	size_t off, len;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct undo undo[4096];
	size_t nundo = 0;
	bool resized = false;
	struct store *st = NULL;
	char err[256];

	if (!image)
		setup();
	while (size >= 4 && nundo < ARRAY_SIZE(undo)) {
		uint8_t sel = data[0];
		size_t off = (size_t)data[1] | (size_t)data[2] << 8;
		size_t n = data[3] & 31, at;

		data += 4;
		size -= 4;
		if (n > size)
			n = size;
		switch (sel & 3) {
		case 0:
			at = off % HDR_FIELDS;
			break;
		case 1:
			at = index_off[off & 1] + (off >> 1) % cell_bytes;
			break;
		case 2:
			at = slots_off +
			     (size_t)((sel >> 2) % NSLOTS) * STORE_SLOT_SIZE +
			     off % SLOT_META;
			break;
		default:
			at = ((size_t)(sel >> 2) << 16 | off) % image_len;
			if ((sel & 0x80) && n == 0) {
				ASSERT(ftruncate(image_fd, (off_t)at) == 0);
				resized = true;
				continue;
			}
			break;
		}
		if (at + n > image_len)
			n = image_len - at;
		if (n && pwrite(image_fd, data, n, (off_t)at) == (ssize_t)n) {
			undo[nundo].off = at;
			undo[nundo].len = n;
			nundo++;
		}
		data += n;
		size -= n;
	}

	if (store_open_reader(image_path, geteuid(), &st, err, sizeof(err)) == 0) {
		exercise(st);
		store_close(st);
	} else {
		ASSERT(st == NULL);
	}

	/* Back to the pristine file for the next input. */
	if (resized) {
		ASSERT(ftruncate(image_fd, (off_t)image_len) == 0);
		ASSERT(pwrite(image_fd, image, image_len, 0) == (ssize_t)image_len);
	} else {
		for (size_t i = 0; i < nundo; i++)
			ASSERT(pwrite(image_fd, image + undo[i].off, undo[i].len,
				      (off_t)undo[i].off) == (ssize_t)undo[i].len);
	}
	return 0;
}
