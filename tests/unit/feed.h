/*
 * The feeding driver of the wire-parser unit tests. proxy/wire/wire.h
 * promises that a result never depends on how the bytes were split across
 * reads, so every case is fed three ways and each must give the same
 * result: whole, as every prefix (what a caller reading one byte at a time
 * sees), and in two calls split at every offset. Every parse sees its
 * input right before a PROT_NONE page (check_guarded): an over-read faults.
 */
#ifndef EDGE_FEED_H
#define EDGE_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"
#include "wire/wire.h"

enum feed_mode {
	FEED_WHOLE,
	FEED_BYTEWISE,
};

static inline const char *feed_mode_name(enum feed_mode mode)
{
	return mode == FEED_WHOLE ? "whole" : "bytewise";
}

/*
 * The parser under test. arg is the test's description of the case and
 * out its room for one result, both handed back as feed_run() got them.
 */
struct feed_ops {
	int (*parse)(const void *arg, const uint8_t *in, size_t len, void *out);
	/*
	 * Checks what the parse of in[0..len) just left in out. Only the
	 * success the case wants has fields worth comparing, so it is called
	 * for nothing else.
	 */
	void (*check)(const void *arg, enum feed_mode mode, int rc,
		      const void *out, const uint8_t *in, size_t len);
};

/*
 * The result a case table asks for: rc 1 is a success covering covers
 * bytes (0: all len of them), any other rc a WIRE_ code.
 */
static inline int feed_want(int rc, size_t covers, size_t len)
{
	return rc == 1 ? (int)(covers ? covers : len) : rc;
}

/*
 * Feeds the len bytes at in whole, then every prefix (PARTIAL until the
 * result is decided, then that same result for every longer prefix), then
 * in two calls split at every offset. want > 0 is the exact byte count,
 * else the WIRE_ code.
 */
static inline void feed_run(const char *name, const void *in, size_t len,
			    int want, const struct feed_ops *ops,
			    const void *arg, void *out)
{
	const uint8_t *g;
	size_t k, at = 0, bad = 0;
	int rc, first = WIRE_PARTIAL;

	g = check_guarded(in, len);
	rc = ops->parse(arg, g, len, out);
	CHECKF(rc == want, "%s: whole: rc %d, want %d", name, rc, want);
	if (rc > 0 && rc == want)
		ops->check(arg, FEED_WHOLE, rc, out, g, len);

	for (k = 0; k <= len; k++) {
		g = check_guarded(in, k);
		rc = ops->parse(arg, g, k, out);
		if (first == WIRE_PARTIAL) {
			if (rc != WIRE_PARTIAL) {
				first = rc;
				at = k;
				if (rc > 0 && rc == want)
					ops->check(arg, FEED_BYTEWISE, rc, out,
						   g, k);
			}
		} else if (rc != first) {
			bad++;
		}
	}
	CHECKF(first == want && bad == 0 && (want < 0 || at == (size_t)want),
	       "%s: bytewise: first %d at %zu, %zu changed", name, first, at,
	       bad);

	bad = 0;
	for (k = 0; k <= len; k++) {
		rc = ops->parse(arg, check_guarded(in, k), k, out);
		if (rc == WIRE_PARTIAL)
			rc = ops->parse(arg, check_guarded(in, len), len, out);
		if (rc != want)
			bad++;
	}
	CHECKF(bad == 0, "%s: split: %zu offsets differ", name, bad);
}

#endif
