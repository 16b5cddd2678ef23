/*
 * libFuzzer harness for tls_hello_parse(). Beyond "does not crash under
 * ASan/UBSan" it checks the parser contract with __builtin_trap():
 *  - a result is one of the documented codes, consumed <= size;
 *  - slices lie inside the reassembled hello in scratch; SNI and ALPN
 *    satisfy what the parser promises (no NUL, 1..255, list walkable);
 *  - the prefix and split checks of wire_fuzz.h; a prefix that succeeds
 *    has the same fields;
 *  - a smaller scratch_cap gives TOOBIG exactly when the hello exceeds it,
 *    the input again in an exact-size heap copy.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/tls_hello.h"
#include "wire_fuzz.h"

#define CAP 16384

/*
 * A result with the scratch its slices point into: the whole input's and
 * a prefix's each have their own, so comparing them compares two parses.
 */
struct hello_out {
	struct tls_hello h;
	uint8_t scratch[CAP];
};

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

static int parse(const uint8_t *buf, size_t len, void *out)
{
	struct hello_out *o = out;

	return tls_hello_parse(buf, len, &o->h, o->scratch, CAP);
}

static void check(const void *out, const uint8_t *buf, size_t len)
{
	const struct hello_out *o = out;

	check_hello(&o->h, o->scratch, CAP);
}

static void check_same(const void *got, const uint8_t *p, size_t len,
		       const void *whole, const uint8_t *data)
{
	const struct hello_out *g = got, *w = whole;

	REQUIRE(same_hello(&g->h, &w->h));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fuzz_wire fw = { parse, 0, check, check_same };
	static struct hello_out whole, prefix;	/* 16 KiB each: off the stack */
	const struct tls_hello *h = &whole.h;
	uint32_t hash = fnv1a(data, size);
	size_t cap2;
	int rc, r;

	rc = fuzz_wire_run(&fw, data, size, &whole, &prefix);

	/* A smaller scratch: TOOBIG exactly when the hello does not fit. */
	if (rc > 0) {
		uint8_t *p = fuzz_copy(data, size);
		struct tls_hello h2;

		cap2 = (hash >> 8) % (h->hello_len + 64);
		r = tls_hello_parse(p, size, &h2, prefix.scratch, cap2);
		free(p);
		if (h->hello_len > cap2)
			REQUIRE(r == WIRE_TOOBIG);
		else
			REQUIRE(r == rc && same_hello(&h2, h));
	}
	return 0;
}
