/*
 * libFuzzer harness for proxy_hdr_parse() and the encoders. Checks with
 * __builtin_trap():
 *  - a result is one of the documented codes, consumed <= size and within
 *    the v1/v2 limits; addresses are AF_INET/AF_INET6 unless local;
 *  - the prefix and split checks of wire_fuzz.h (NOTPROXY is an error
 *    like the others); a prefix that succeeds has the same addresses;
 *  - a parsed header re-encoded with proxy_hdr_write_v1/v2 parses back to
 *    the same addresses, and addresses taken from the input bytes survive
 *    an encode -> parse round trip (IPv4 mapped when families are mixed).
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/proxy_hdr.h"
#include "wire_fuzz.h"

/* Compares the meaningful part of two parsed addresses. */
static bool same_addr(const struct sockaddr_storage *x,
		      const struct sockaddr_storage *y)
{
	if (x->ss_family != y->ss_family)
		return false;
	if (x->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)x;
		const struct sockaddr_in *b = (const struct sockaddr_in *)y;

		return a->sin_port == b->sin_port &&
		       a->sin_addr.s_addr == b->sin_addr.s_addr;
	}
	if (x->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)x;
		const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)y;

		return a->sin6_port == b->sin6_port &&
		       memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0;
	}
	return true;
}

static bool same_hdr(const struct proxy_hdr *x, const struct proxy_hdr *y)
{
	return x->version == y->version && x->local == y->local &&
	       x->len == y->len && x->tlvs.len == y->tlvs.len &&
	       same_addr(&x->src, &y->src) && same_addr(&x->dst, &y->dst);
}

static void check_hdr(const struct proxy_hdr *h, const uint8_t *base,
		      size_t len)
{
	const char *b = (const char *)base;

	REQUIRE(h->len == len);
	REQUIRE(h->version == 1 || h->version == 2);
	REQUIRE(h->version == 2 || len <= PROXY_HDR_V1_MAX_LEN);
	REQUIRE(len <= PROXY_HDR_MAX_LEN);
	REQUIRE(h->tlvs.len <= len && h->tlvs.ptr >= b &&
		h->tlvs.ptr + h->tlvs.len <= b + len);
	REQUIRE(h->version == 2 || h->tlvs.len == 0);
	if (h->local) {
		REQUIRE(h->src.ss_family == AF_UNSPEC &&
			h->dst.ss_family == AF_UNSPEC);
	} else {
		REQUIRE(h->src.ss_family == AF_INET ||
			h->src.ss_family == AF_INET6);
		REQUIRE(h->dst.ss_family == h->src.ss_family);
	}
}

/* Encodes src -> dst both ways and checks the parser gives them back. */
static void round_trip(const struct sockaddr_storage *src,
		       const struct sockaddr_storage *dst)
{
	char line[PROXY_HDR_V1_MAX_LEN];
	uint8_t bin[PROXY_HDR_MAX_LEN];
	struct proxy_hdr h1, h2;
	int n1, n2;

	n1 = proxy_hdr_write_v1(line, sizeof(line),
				(const struct sockaddr *)src,
				(const struct sockaddr *)dst);
	n2 = proxy_hdr_write_v2(bin, sizeof(bin),
				(const struct sockaddr *)src,
				(const struct sockaddr *)dst);
	REQUIRE(n1 > 0 && n2 > 0);
	REQUIRE(proxy_hdr_parse((const uint8_t *)line, (size_t)n1, &h1) == n1);
	REQUIRE(proxy_hdr_parse(bin, (size_t)n2, &h2) == n2);
	REQUIRE(h1.local == h2.local && same_addr(&h1.src, &h2.src) &&
		same_addr(&h1.dst, &h2.dst));
	if (src->ss_family == dst->ss_family && !h1.local) {
		REQUIRE(same_addr(&h1.src, src) && same_addr(&h1.dst, dst));
	}
}

/* Addresses from raw input bytes: families from one byte, then data. */
static void fuzz_encoders(const uint8_t *d, size_t size)
{
	struct sockaddr_storage ss[2];
	size_t i;

	if (size < 1 + 2 * 18)
		return;
	for (i = 0; i < 2; i++) {
		const uint8_t *p = d + 1 + 18 * i;
		unsigned int sel = (d[0] >> (2 * i)) & 3;

		memset(&ss[i], 0, sizeof(ss[i]));
		if (sel == 0 || sel == 3) {
			struct sockaddr_in *s = (struct sockaddr_in *)&ss[i];

			s->sin_family = AF_INET;
			memcpy(&s->sin_port, p, 2);
			memcpy(&s->sin_addr, p + 2, 4);
		} else if (sel == 1) {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss[i];

			s->sin6_family = AF_INET6;
			memcpy(&s->sin6_port, p, 2);
			memcpy(&s->sin6_addr, p + 2, 16);
		} else {
			ss[i].ss_family = AF_UNIX;
		}
	}
	round_trip(&ss[0], &ss[1]);
}

static int parse(const uint8_t *buf, size_t len, void *out)
{
	return proxy_hdr_parse(buf, len, out);
}

static void check(const void *out, const uint8_t *buf, size_t len)
{
	const struct proxy_hdr *h = out;

	check_hdr(h, buf, len);
	if (!h->local)
		round_trip(&h->src, &h->dst);
}

static void check_same(const void *got, const uint8_t *p, size_t len,
		       const void *whole, const uint8_t *data)
{
	REQUIRE(same_hdr(got, whole));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fuzz_wire fw = {
		parse, WIRE_NOTPROXY, check, check_same
	};
	struct proxy_hdr h, prefix;

	fuzz_wire_run(&fw, data, size, &h, &prefix);
	fuzz_encoders(data, size);
	return 0;
}
