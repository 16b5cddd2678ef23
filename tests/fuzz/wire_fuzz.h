/*
 * What the wire-parser harnesses (ClientHello, HTTP head, PROXY header)
 * share: __builtin_trap() checks and the prefix-and-split invariants of
 * proxy/wire/wire.h. For a prefix of the input: shorter than what the whole
 * input's success covers gives PARTIAL, at least as long gives the same
 * result and fields; for an error, a prefix gives PARTIAL or that error;
 * and a call that stopped at PARTIAL, made again with the whole input,
 * gives the whole-input result. Prefixes are copied to exact-size heap
 * buffers so an over-read past the prefix is caught by ASan, not hidden by
 * the rest of the input.
 */
#ifndef EDGE_WIRE_FUZZ_H
#define EDGE_WIRE_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/edge.h"
#include "wire/wire.h"

#define REQUIRE(c)                                                        \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

static inline uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static inline bool slice_in(struct slice s, const uint8_t *base, size_t len)
{
	const char *b = (const char *)base;

	return s.ptr >= b && s.ptr <= b + len && s.len <= len &&
	       s.ptr + s.len <= b + len;
}

/* The first k bytes of data in a heap block of exactly k bytes. */
static inline uint8_t *fuzz_copy(const uint8_t *data, size_t k)
{
	uint8_t *p = malloc(k ? k : 1);

	REQUIRE(p);
	memcpy(p, data, k);
	return p;
}

/* The parser under test, as fuzz_wire_run() drives it. */
struct fuzz_wire {
	/* Parses buf[0..len) into out. */
	int (*parse)(const uint8_t *buf, size_t len, void *out);
	/* A result code of this parser's own beyond wire.h's three, or 0. */
	int own_code;
	/*
	 * Traps unless out, the whole input's success covering len bytes of
	 * buf, keeps what the parser promises of a result.
	 */
	void (*check)(const void *out, const uint8_t *buf, size_t len);
	/*
	 * Traps unless got, the success a prefix gave (parsed from p, still
	 * allocated, len bytes consumed), equals whole, the whole input's
	 * (parsed from data).
	 */
	void (*same)(const void *got, const uint8_t *p, size_t len,
		     const void *whole, const uint8_t *data);
};

/* rc is what the whole input gave; out is room for one more result. */
static inline void fuzz_prefix(const struct fuzz_wire *fw,
			       const uint8_t *data, size_t size, size_t k,
			       int rc, const void *whole, void *out)
{
	uint8_t *p = fuzz_copy(data, k);
	int r = fw->parse(p, k, out);

	if (rc > 0) {
		if (k < (size_t)rc) {
			REQUIRE(r == WIRE_PARTIAL);
		} else {
			REQUIRE(r == rc);
			fw->same(out, p, (size_t)r, whole, data);
		}
	} else if (rc == WIRE_PARTIAL) {
		REQUIRE(r == WIRE_PARTIAL);
	} else {
		REQUIRE(r == WIRE_PARTIAL || r == rc);
	}
	free(p);
	/* Split into two calls: the second sees everything. */
	if (r == WIRE_PARTIAL)
		r = fw->parse(data, size, out);
	REQUIRE(r == rc);
}

/*
 * Parses the whole input into whole and checks the result, then tries the
 * prefixes worth trying: one at a data-derived offset, the half, one byte
 * short of a success, one byte short of the input. prefix is room for
 * their results. Returns the whole input's result.
 */
static inline int fuzz_wire_run(const struct fuzz_wire *fw,
				const uint8_t *data, size_t size, void *whole,
				void *prefix)
{
	int rc = fw->parse(data, size, whole);

	REQUIRE(rc > 0 || rc == WIRE_PARTIAL || rc == WIRE_INVALID ||
		rc == WIRE_TOOBIG || (fw->own_code && rc == fw->own_code));
	if (rc > 0) {
		REQUIRE((size_t)rc <= size);
		fw->check(whole, data, (size_t)rc);
	}

	fuzz_prefix(fw, data, size, fnv1a(data, size) % (size + 1), rc, whole,
		    prefix);
	fuzz_prefix(fw, data, size, size / 2, rc, whole, prefix);
	if (rc > 0)
		fuzz_prefix(fw, data, size, (size_t)rc - 1, rc, whole, prefix);
	if (size > 0)
		fuzz_prefix(fw, data, size, size - 1, rc, whole, prefix);
	return rc;
}

#endif
