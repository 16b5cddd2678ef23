/*
 * libFuzzer harness for common/ident.c. The input goes whole to every
 * parser; if it holds a '\n', the part before is also tried as a pattern
 * and the part after as a wire name against it. Invariants that must hold
 * for every input trap, so a violation is a crash libFuzzer keeps:
 *  - an accepted identifier's canonical form parses to itself;
 *  - ident_sni_name() never writes past cap;
 *  - pattern_match_name() agrees with ident_parse() + pattern_match();
 *  - a CIDR has no host bits and contains its own network address;
 *  - addr_format() output parses back to the same socket address;
 *  - digest and key-authorization results are consistent with the input.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "common/ident.h"

#define ASSERT(c)                                                         \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

#define SNI_CAP (IDENT_REVERSE_MAX > IDENT_NAME_MAX + 1 ?                  \
		 IDENT_REVERSE_MAX : IDENT_NAME_MAX + 1)
#define CANARY 0xa5

static const char *const fixed_patterns[] = {
	"*", "example.com", "*.example.com", "*.com", "1.2.3.4",
	"10.0.0.0/8", "0.0.0.0/0", "::/0", "2001:db8::/32", "::1",
};

static struct ident_pattern patterns[ARRAY_SIZE(fixed_patterns)];
static int patterns_ready;

static void setup(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(fixed_patterns); i++)
		ASSERT(pattern_parse(fixed_patterns[i],
				     strlen(fixed_patterns[i]),
				     &patterns[i]) == 0);
	patterns_ready = 1;
}

static bool canary_intact(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != CANARY)
			return false;
	return true;
}

static void check_ident(const struct ident *id, const uint8_t *data,
			size_t size)
{
	unsigned char buf[SNI_CAP + 16];
	struct ident again;
	size_t cap;
	int n;

	ASSERT(id->type == IDENT_DNS || id->type == IDENT_IPV4 ||
	       id->type == IDENT_IPV6);
	ASSERT(id->name_len > 0 && id->name_len <= IDENT_NAME_MAX);
	ASSERT(strlen(id->name) == id->name_len);
	if (id->type == IDENT_DNS)
		for (size_t i = 0; i < id->name_len; i++) {
			char c = id->name[i];

			ASSERT((c >= 'a' && c <= 'z') ||
			       (c >= '0' && c <= '9') || c == '-' || c == '.');
		}

	ASSERT(ident_parse(id->name, id->name_len, &again) == 0);
	ASSERT(again.type == id->type && again.name_len == id->name_len);
	ASSERT(memcmp(again.name, id->name, id->name_len) == 0);
	ASSERT(memcmp(again.addr, id->addr, sizeof(id->addr)) == 0);

	/* The full buffer always suffices. */
	memset(buf, CANARY, sizeof(buf));
	n = ident_sni_name(id, (char *)buf, SNI_CAP);
	ASSERT(n > 0 && (size_t)n < SNI_CAP && buf[n] == '\0');
	ASSERT(strlen((char *)buf) == (size_t)n);
	ASSERT(canary_intact(buf + SNI_CAP, sizeof(buf) - SNI_CAP));
	if (id->type == IDENT_DNS)
		ASSERT((size_t)n == id->name_len &&
		       memcmp(buf, id->name, id->name_len) == 0);

	/* A cap picked by the input: success or -1, never a write past it. */
	cap = size ? data[0] % (SNI_CAP + 1) : 0;
	memset(buf, CANARY, sizeof(buf));
	n = ident_sni_name(id, (char *)buf, cap);
	ASSERT(n == -1 || ((size_t)n < cap && buf[n] == '\0'));
	ASSERT(canary_intact(buf + cap, sizeof(buf) - cap));
}

/* pattern_match_name() must be a faster spelling of parse + match. */
static void check_name_against(const struct ident_pattern *p,
			       const char *name, size_t len)
{
	struct ident id;
	bool want = ident_parse(name, len, &id) == 0 && pattern_match(p, &id);

	ASSERT(pattern_match_name(p, name, len) == want);
}

static void check_pattern(const struct ident_pattern *p)
{
	switch (p->kind) {
	case PATTERN_ANY:
		break;
	case PATTERN_EXACT:
		ASSERT(pattern_match(p, &p->id));
		ASSERT(pattern_match_name(p, p->id.name, p->id.name_len));
		break;
	case PATTERN_SUFFIX:
		/* The parent itself is outside; one label below is in. */
		ASSERT(p->id.type == IDENT_DNS);
		ASSERT(!pattern_match(p, &p->id));
		if (p->id.name_len + 2 <= IDENT_NAME_MAX) {
			char below[IDENT_NAME_MAX + 1];

			below[0] = 'x';
			below[1] = '.';
			memcpy(below + 2, p->id.name, p->id.name_len);
			ASSERT(pattern_match_name(p, below,
						  p->id.name_len + 2));
		}
		break;
	case PATTERN_CIDR:
		ASSERT(p->cidr.family == AF_INET || p->cidr.family == AF_INET6);
		break;
	default:
		ASSERT(0);
	}
}

static void check_cidr(const struct cidr *c)
{
	struct sockaddr_storage ss = { 0 };
	unsigned int bits = c->family == AF_INET ? 32 : 128;

	ASSERT(c->family == AF_INET || c->family == AF_INET6);
	ASSERT(c->prefix <= bits);
	for (unsigned int i = c->prefix; i < bits; i++)
		ASSERT(!(c->addr[i / 8] & (0x80 >> (i % 8))));
	if (c->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, c->addr, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, c->addr, 16);
	}
	ASSERT(cidr_match(c, (struct sockaddr *)&ss));
}

static void check_addr(const struct sockaddr_storage *ss, socklen_t sl)
{
	char buf[ADDR_STRLEN];
	struct sockaddr_storage again;
	socklen_t sl2 = 0;

	ASSERT(ss->ss_family == AF_INET || ss->ss_family == AF_INET6);
	addr_format((const struct sockaddr *)ss, buf, sizeof(buf));
	ASSERT(addr_parse(buf, strlen(buf), &again, &sl2) == 0);
	ASSERT(sl2 == sl && memcmp(ss, &again, sl) == 0);
}

static void check_digest(const uint8_t *data, size_t size,
			 const uint8_t d[32])
{
	static const char hex[] = "0123456789abcdef";
	size_t step = size == 64 ? 2 : 3;

	ASSERT(size == 64 || size == 95);
	for (size_t i = 0; i < 32; i++) {
		/* Fold input case: the decoder accepts both. */
		char hi = (char)(data[i * step] | 0x20);
		char lo = (char)(data[i * step + 1] | 0x20);

		ASSERT(hi == hex[d[i] >> 4] && lo == hex[d[i] & 0xf]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct ident id;
	struct ident_pattern pat;
	struct cidr c;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	struct slice tok, th;
	uint8_t digest[32];
	const char *nl;

	if (!patterns_ready)
		setup();

	if (ident_parse(s, size, &id) == 0)
		check_ident(&id, data, size);

	if (pattern_parse(s, size, &pat) == 0)
		check_pattern(&pat);

	for (size_t i = 0; i < ARRAY_SIZE(patterns); i++)
		check_name_against(&patterns[i], s, size);

	if (cidr_parse(s, size, &c) == 0)
		check_cidr(&c);

	if (addr_parse(s, size, &ss, &sl) == 0)
		check_addr(&ss, sl);

	if (digest_hex_decode(s, size, digest) == 0)
		check_digest(data, size, digest);

	if (keyauth_split(s, size, &tok, &th) == 0) {
		ASSERT(tok.ptr == s && th.ptr == s + tok.len + 1);
		ASSERT(tok.len + 1 + th.len == size && s[tok.len] == '.');
		ASSERT(token_valid(tok.ptr, tok.len));
		ASSERT(thumbprint_valid(th.ptr, th.len));
	}

	/* "pattern\nname": arbitrary patterns against arbitrary names. */
	nl = memchr(s, '\n', size);
	if (nl) {
		size_t plen = (size_t)(nl - s);

		if (pattern_parse(s, plen, &pat) == 0)
			check_name_against(&pat, nl + 1, size - plen - 1);
	}
	return 0;
}
