/*
 * libFuzzer harness for tls_hello_parse(). Beyond "does not crash under
 * ASan/UBSan" it checks the parser contract with __builtin_trap():
 *  - a result is one of the documented codes, consumed <= size;
 *  - slices lie inside the reassembled hello in scratch; SNI and ALPN
 *    satisfy what the parser promises (no NUL, 1..255, list walkable);
 *  - prefixes: shorter than the consumed count give PARTIAL, at least as
 *    long give the same result and fields; for an error, a prefix gives
 *    PARTIAL or that error; split at a data-derived offset into two calls
 *    gives the whole-input result;
 *  - a smaller scratch_cap gives TOOBIG exactly when the hello exceeds it.
 * Prefixes are copied to exact-size heap buffers so an over-read past the
 * prefix length is caught by ASan, not hidden by the rest of the input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_hello.h"

#define CAP 16384

static uint8_t scratch[CAP];
static uint8_t scratch2[CAP];

#define REQUIRE(c)                                                        \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static bool slice_in(struct slice s, const uint8_t *base, size_t len)
{
	const char *b = (const char *)base;

	return s.ptr >= b && s.ptr <= b + len && s.len <= len &&
	       s.ptr + s.len <= b + len;
}

static void check_hello(const struct tls_hello *h, const uint8_t *sc,
			size_t cap)
{
	const uint8_t *a = (const uint8_t *)h->alpn.ptr;
	size_t off = 0, names = 0;

	REQUIRE(h->hello_len >= 4 && h->hello_len <= cap);
	REQUIRE(h->legacy_version >> 8 == 3);
	REQUIRE(h->record_version >= 0x0300 && h->record_version <= 0x0304);
	REQUIRE(h->has_sni || h->sni.len == 0);
	if (h->has_sni) {
		REQUIRE(slice_in(h->sni, sc, h->hello_len));
		REQUIRE(h->sni.len >= 1 && h->sni.len <= TLS_SNI_MAX);
		REQUIRE(!memchr(h->sni.ptr, 0, h->sni.len));
	}
	REQUIRE(h->has_alpn || h->alpn.len == 0);
	if (h->has_alpn) {
		REQUIRE(slice_in(h->alpn, sc, h->hello_len));
		REQUIRE(h->alpn.len >= 2);
		while (off < h->alpn.len) {
			REQUIRE(a[off] >= 1 && a[off] <= h->alpn.len - off - 1);
			REQUIRE(tls_hello_alpn_offers(h,
				(const char *)a + off + 1, a[off]));
			off += 1 + (size_t)a[off];
			names++;
		}
		REQUIRE(off == h->alpn.len);
		REQUIRE(tls_hello_alpn_only(h, (const char *)a + 1, a[0]) ==
			(names == 1));
	}
}

static bool same_hello(const struct tls_hello *x, const struct tls_hello *y)
{
	return x->has_sni == y->has_sni && x->has_alpn == y->has_alpn &&
	       x->offers_tls13 == y->offers_tls13 &&
	       x->legacy_version == y->legacy_version &&
	       x->record_version == y->record_version &&
	       x->hello_len == y->hello_len && x->sni.len == y->sni.len &&
	       x->alpn.len == y->alpn.len &&
	       (!x->sni.len ||
		memcmp(x->sni.ptr, y->sni.ptr, x->sni.len) == 0) &&
	       (!x->alpn.len ||
		memcmp(x->alpn.ptr, y->alpn.ptr, x->alpn.len) == 0);
}

static int parse_copy(const uint8_t *data, size_t k, struct tls_hello *h,
		      size_t cap)
{
	uint8_t *p = malloc(k ? k : 1);
	int rc;

	REQUIRE(p);
	memcpy(p, data, k);
	rc = tls_hello_parse(p, k, h, scratch2, cap);
	free(p);
	return rc;
}

static void check_prefix(const uint8_t *data, size_t size, size_t k, int rc,
			 const struct tls_hello *whole)
{
	struct tls_hello h;
	int r = parse_copy(data, k, &h, CAP);

	if (rc > 0) {
		if (k < (size_t)rc) {
			REQUIRE(r == WIRE_PARTIAL);
		} else {
			REQUIRE(r == rc);
			REQUIRE(same_hello(&h, whole));
		}
	} else if (rc == WIRE_PARTIAL) {
		REQUIRE(r == WIRE_PARTIAL);
	} else {
		REQUIRE(r == WIRE_PARTIAL || r == rc);
	}
	/* Split into two calls: the second sees everything. */
	if (r == WIRE_PARTIAL)
		r = parse_copy(data, size, &h, CAP);
	REQUIRE(r == rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_hello h;
	uint32_t hash = fnv1a(data, size);
	size_t cap2;
	int rc, r;

	rc = tls_hello_parse(data, size, &h, scratch, CAP);
	REQUIRE(rc > 0 || rc == WIRE_PARTIAL || rc == WIRE_INVALID ||
		rc == WIRE_TOOBIG);
	if (rc > 0) {
		REQUIRE((size_t)rc <= size);
		check_hello(&h, scratch, CAP);
	}

	check_prefix(data, size, hash % (size + 1), rc, &h);
	check_prefix(data, size, size / 2, rc, &h);
	if (rc > 0)
		check_prefix(data, size, (size_t)rc - 1, rc, &h);
	if (size > 0)
		check_prefix(data, size, size - 1, rc, &h);

	/* A smaller scratch: TOOBIG exactly when the hello does not fit. */
	if (rc > 0) {
		struct tls_hello h2;

		cap2 = (hash >> 8) % (h.hello_len + 64);
		r = parse_copy(data, size, &h2, cap2);
		if (h.hello_len > cap2)
			REQUIRE(r == WIRE_TOOBIG);
		else
			REQUIRE(r == rc && same_hello(&h2, &h));
	}
	return 0;
}
