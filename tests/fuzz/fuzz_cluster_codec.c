/*
 * libFuzzer harness for solver-api/cluster_codec.c: the bytes a node reads
 * from Redis (events from the channel and entry hashes, acknowledgements)
 * come from peers and from whoever else can write to Redis. Invariants that
 * trap on violation:
 *  - a decoded put is an entry the store would take (lengths in bounds,
 *    certificate inside the payload, a key and a client);
 *  - whatever decodes re-encodes to the very same bytes (one encoding per
 *    event, so two nodes never disagree about what a message says);
 *  - an acknowledgement that decodes re-encodes to the same bytes.
 */
#include <string.h>

#include "common/edge.h"
#include "solver-api/cluster_codec.h"

#define ASSERT(c)                                                         \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

static struct store_entry entry;
static uint8_t again[CLC_MSG_MAX];

static void check_event(const uint8_t *data, size_t size)
{
	struct clc_event ev;
	size_t n, b = 0;

	if (clc_decode(data, size, &ev, &entry) != 0)
		return;
	n = clc_version_prefix(ev.version, (char *)again, sizeof(again));
	ASSERT(n > 0);
	switch (ev.op) {
	case CLC_PUT:
		ASSERT(entry.payload_len > 0 && entry.payload_len <= STORE_PAYLOAD_MAX);
		ASSERT(entry.cert_len <= entry.payload_len);
		ASSERT(entry.key_len > 0 && entry.client_len > 0);
		ASSERT(strlen(entry.key) == entry.key_len);
		b = clc_encode_put(ev.origin, ev.write_id, &entry, again + n,
				   sizeof(again) - n);
		break;
	case CLC_DEL:
		b = clc_encode_del(ev.origin, ev.write_id, ev.kind, ev.key,
				   ev.key_len, ev.expires_ms, again + n,
				   sizeof(again) - n);
		break;
	case CLC_HIT:
		b = clc_encode_hit(ev.origin, ev.kind, ev.key, ev.key_len, ev.hit_ms,
				   ev.outcome, ev.peer, again + n, sizeof(again) - n);
		break;
	default:
		ASSERT(0);
	}
	ASSERT(b > 0 && n + b == size && memcmp(again, data, size) == 0);
}

static void check_ack(const uint8_t *data, size_t size)
{
	char node[CLC_NODE_MAX + 1], buf[CLC_ACK_MAX + 1];
	uint64_t id;
	size_t n;

	if (clc_ack_decode((const char *)data, size, &id, node) != 0)
		return;
	n = clc_ack_encode(id, node, buf, sizeof(buf));
	ASSERT(n > 0 && n == size && memcmp(buf, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_event(data, size);
	check_ack(data, size);
	return 0;
}
