/*
 * Identifiers, tokens, patterns and addresses (see ident.h).
 *
 * Every function here takes (pointer, length) from untrusted sources: a
 * byte at s[len] is never read, no input is assumed NUL-terminated, and
 * inet_pton() only ever sees a bounded local copy. Character classes are
 * plain ASCII tests rather than <ctype.h>, whose answers depend on the
 * locale and whose behaviour on bytes >= 0x80 differs between libcs.
 *
 * IPv4 literals are parsed by hand, strictly: exactly four decimal parts,
 * 0..255, no leading zeros, no sign, no spaces. glibc's inet_pton(AF_INET)
 * has the same grammar (it refuses "01.2.3.4" and "1.2.3"); doing it here
 * keeps the answer the same on every libc. The looser inet_aton() grammar
 * ("0x7f.1", "010.0.0.1", "127.1") is the one a peer could use to make a
 * name mean an address to one component and a host name to another, so
 * DNS names whose last label looks like a number are refused as well.
 */
#include "common/ident.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define LABEL_MAX 63
/* Longest text inet_pton(AF_INET6) can accept: 8 groups, or 6 + dotted quad. */
#define IPV6_TEXT_MAX (INET6_ADDRSTRLEN - 1)
/* "ffff:...:255.255.255.255/128" */
#define CIDR_TEXT_MAX (IPV6_TEXT_MAX + 4)
/* "[" v6 "]:65535" */
#define ADDR_TEXT_MAX (1 + IPV6_TEXT_MAX + 2 + 5)
/* Big enough for either a DNS name or the ip6.arpa form, plus NUL. */
#define SNI_BUF_MAX (IDENT_NAME_MAX + 1 > IDENT_REVERSE_MAX ?                \
		     IDENT_NAME_MAX + 1 : IDENT_REVERSE_MAX)

static const uint8_t v4_mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
};

static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_ldh(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-';
}

static inline bool is_b64url(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '_';
}


/* Only the bytes inet_pton(AF_INET6) can accept; keeps '%' and NUL out. */
static inline bool is_v6_char(unsigned char c)
{
	return hex_digit(c) >= 0 || c == ':' || c == '.';
}

/* ASCII case-insensitive equality; b is already lowercase. */
static bool caseeq_lower(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower((unsigned char)a[i]) != (unsigned char)b[i])
			return false;
	return true;
}

static bool is_v4_mapped(const uint8_t a[16])
{
	return memcmp(a, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

/* Strict dotted quad; see the comment at the top of the file. */
static bool ipv4_parse(const char *s, size_t len, uint8_t out[4])
{
	uint8_t tmp[4];
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start;
		unsigned int v = 0;

		if (part) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		start = i;
		while (i < len && i - start < 3 && is_digit(s[i]))
			v = v * 10 + (unsigned int)(s[i++] - '0');
		if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
			return false;
		tmp[part] = (uint8_t)v;
	}
	if (i != len)
		return false;
	memcpy(out, tmp, 4);
	return true;
}

/* Bare IPv6 text, no brackets, no zone id. */
static bool ipv6_parse(const char *s, size_t len, uint8_t out[16])
{
	char buf[IPV6_TEXT_MAX + 1];

	if (len < 2 || len > IPV6_TEXT_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_v6_char((unsigned char)s[i]))
			return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, out) == 1;
}

/* Appends the decimal form of v at p; returns the new end. */
static char *put_u8(char *p, unsigned int v)
{
	if (v >= 100)
		*p++ = (char)('0' + v / 100);
	if (v >= 10)
		*p++ = (char)('0' + v / 10 % 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

/*
 * WHATWG URL's "ends in a number": a last label of only digits, or "0x"
 * followed by hex digits, turns a host into an IPv4 address for browsers
 * and for inet_aton(). Such names must never be taken as DNS names.
 */
static bool label_is_numeric(const char *s, size_t len)
{
	size_t i;

	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < len; i++)
			if (hex_digit((unsigned char)s[i]) < 0)
				return false;
		return true;
	}
	for (i = 0; i < len; i++)
		if (!is_digit((unsigned char)s[i]))
			return false;
	return true;
}

/*
 * Whether a name (any case, no trailing dot) is a reverse-mapping zone or
 * below one. Such names are how a validator spells an IP identifier in
 * SNI (RFC 8738 §6), so they are never DNS identifiers of their own: a
 * client allowed "*.in-addr.arpa" could otherwise answer acme-tls/1 for
 * an address that belongs to another client.
 */
static bool in_reverse_zone(const char *s, size_t len)
{
	static const char *const zones[] = {"in-addr.arpa", "ip6.arpa"};

	for (size_t i = 0; i < ARRAY_SIZE(zones); i++) {
		size_t zlen = strlen(zones[i]);

		if (len < zlen || (len > zlen && s[len - zlen - 1] != '.'))
			continue;
		if (caseeq_lower(s + len - zlen, zones[i], zlen))
			return true;
	}
	return false;
}

/*
 * Validates a DNS name in place, without copying: LDH labels of 1..63
 * octets, no hyphen at either end of a label, 253 octets at most once one
 * trailing dot is dropped, last label not numeric, not in a reverse zone.
 * *name_len gets the length without that dot.
 */
static bool dns_name_check(const char *s, size_t len, size_t *name_len)
{
	size_t label_start = 0;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > IDENT_NAME_MAX)
		return false;

	for (size_t i = 0; i <= len; i++) {
		size_t label_len;

		if (i < len && s[i] != '.') {
			if (!is_ldh((unsigned char)s[i]))
				return false;
			continue;
		}
		label_len = i - label_start;
		if (label_len == 0 || label_len > LABEL_MAX)
			return false;
		if (s[label_start] == '-' || s[i - 1] == '-')
			return false;
		if (i == len && label_is_numeric(s + label_start, label_len))
			return false;
		label_start = i + 1;
	}
	if (in_reverse_zone(s, len))
		return false;
	*name_len = len;
	return true;
}

static void ident_set_v4(struct ident *out, const uint8_t a[4])
{
	char *p = out->name;

	out->type = IDENT_IPV4;
	memcpy(out->addr, a, 4);
	for (int i = 0; i < 4; i++) {
		if (i)
			*p++ = '.';
		p = put_u8(p, a[i]);
	}
	*p = '\0';
	out->name_len = (size_t)(p - out->name);
}

static bool ident_set_v6(struct ident *out, const uint8_t a[16])
{
	/*
	 * A mapped address names an IPv4 host under an IPv6 spelling: two
	 * texts, one identity, and patterns written for one miss the other.
	 */
	if (is_v4_mapped(a))
		return false;
	out->type = IDENT_IPV6;
	memcpy(out->addr, a, 16);
	if (!inet_ntop(AF_INET6, a, out->name, sizeof(out->name)))
		return false;
	out->name_len = strlen(out->name);
	return true;
}

/* An IP literal: dotted quad, or IPv6 with or without brackets. */
static bool ip_literal_parse(const char *s, size_t len, struct ident *out)
{
	uint8_t a[16];

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		return ipv6_parse(s, len, a) && ident_set_v6(out, a);
	}
	if (ipv4_parse(s, len, a)) {
		ident_set_v4(out, a);
		return true;
	}
	return ipv6_parse(s, len, a) && ident_set_v6(out, a);
}

int ident_parse(const char *s, size_t len, struct ident *out)
{
	uint8_t a[4];
	size_t n;

	memset(out, 0, sizeof(*out));
	/* The longest valid input is a full-length name plus its dot. */
	if (len == 0 || len > IDENT_NAME_MAX + 1)
		return -1;

	if (s[0] == '[' || memchr(s, ':', len)) {
		if (!ip_literal_parse(s, len, out))
			goto fail;
		return 0;
	}
	if (ipv4_parse(s, len, a)) {
		ident_set_v4(out, a);
		return 0;
	}
	if (!dns_name_check(s, len, &n))
		goto fail;
	out->type = IDENT_DNS;
	for (size_t i = 0; i < n; i++)
		out->name[i] = (char)ascii_lower((unsigned char)s[i]);
	out->name[n] = '\0';
	out->name_len = n;
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

int ident_sni_name(const struct ident *id, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[SNI_BUF_MAX];
	char *p = tmp;
	size_t n;

	switch (id->type) {
	case IDENT_DNS:
		if (id->name_len > IDENT_NAME_MAX)
			return -1;
		memcpy(tmp, id->name, id->name_len);
		p += id->name_len;
		break;
	case IDENT_IPV4:
		for (int i = 3; i >= 0; i--) {
			p = put_u8(p, id->addr[i]);
			*p++ = '.';
		}
		memcpy(p, "in-addr.arpa", 12);
		p += 12;
		break;
	case IDENT_IPV6:
		/* RFC 3596 §2.5: nibbles least significant first. */
		for (int i = 15; i >= 0; i--) {
			*p++ = hex[id->addr[i] & 0xf];
			*p++ = '.';
			*p++ = hex[id->addr[i] >> 4];
			*p++ = '.';
		}
		memcpy(p, "ip6.arpa", 8);
		p += 8;
		break;
	default:
		return -1;
	}
	*p = '\0';
	n = (size_t)(p - tmp);
	if (n >= cap)
		return -1;
	memcpy(buf, tmp, n + 1);
	return (int)n;
}

static bool b64url_run(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_b64url((unsigned char)s[i]))
			return false;
	return true;
}

bool token_valid(const char *s, size_t len)
{
	return len >= TOKEN_MIN && len <= TOKEN_MAX && b64url_run(s, len);
}

bool thumbprint_valid(const char *s, size_t len)
{
	return len == THUMBPRINT_LEN && b64url_run(s, len);
}

int keyauth_split(const char *s, size_t len, struct slice *token,
		  struct slice *thumbprint)
{
	const char *dot;
	size_t tlen;

	if (len > KEYAUTH_MAX)
		return -1;
	dot = memchr(s, '.', len);
	if (!dot)
		return -1;
	tlen = (size_t)(dot - s);
	/* Neither half's alphabet has '.', so exactly one dot is implied. */
	if (!token_valid(s, tlen) ||
	    !thumbprint_valid(dot + 1, len - tlen - 1))
		return -1;
	token->ptr = s;
	token->len = tlen;
	thumbprint->ptr = dot + 1;
	thumbprint->len = len - tlen - 1;
	return 0;
}

int digest_hex_decode(const char *s, size_t len, uint8_t out[32])
{
	uint8_t tmp[32];
	size_t step;

	/* Either 64 bare digits or 32 pairs joined by 31 colons. */
	if (len == 64)
		step = 2;
	else if (len == 32 * 3 - 1)
		step = 3;
	else
		return -1;

	for (size_t i = 0; i < 32; i++) {
		const char *p = s + i * step;
		int hi = hex_digit((unsigned char)p[0]);
		int lo = hex_digit((unsigned char)p[1]);

		if (hi < 0 || lo < 0)
			return -1;
		if (step == 3 && i < 31 && p[2] != ':')
			return -1;
		tmp[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(out, tmp, sizeof(tmp));
	return 0;
}

/* Whether the first bits of a and b agree. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned int bits)
{
	unsigned int whole = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (!rest)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return ((a[whole] ^ b[whole]) & mask) == 0;
}

static bool host_bits_zero(const uint8_t *a, unsigned int alen,
			   unsigned int bits)
{
	for (unsigned int i = bits; i < alen * 8; i++)
		if (a[i / 8] & (0x80 >> (i % 8)))
			return false;
	return true;
}

/* 1-3 decimal digits, no leading zero except "0" itself. */
static bool prefix_len_parse(const char *s, size_t len, unsigned int max,
			     unsigned int *out)
{
	unsigned int v = 0;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned int)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

int cidr_parse(const char *s, size_t len, struct cidr *out)
{
	struct cidr c = { 0 };
	const char *slash;
	size_t alen;
	unsigned int prefix, max;

	if (len == 0 || len > CIDR_TEXT_MAX)
		return -1;
	slash = memchr(s, '/', len);
	alen = slash ? (size_t)(slash - s) : len;

	if (ipv4_parse(s, alen, c.addr)) {
		c.family = AF_INET;
		max = 32;
	} else if (ipv6_parse(s, alen, c.addr)) {
		c.family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}

	prefix = max;
	if (slash && !prefix_len_parse(slash + 1, len - alen - 1, max, &prefix))
		return -1;
	/*
	 * Host bits set usually means a typo in the prefix length, which
	 * would silently widen or move the range: make the author fix it.
	 */
	if (!host_bits_zero(c.addr, max / 8, prefix))
		return -1;
	/*
	 * cidr_match() treats mapped peers as IPv4, so a range inside
	 * ::ffff:0:0/96 could never match anything: ask for the v4 form.
	 */
	if (c.family == AF_INET6 && prefix >= 96 && is_v4_mapped(c.addr))
		return -1;
	c.prefix = (uint8_t)prefix;
	*out = c;
	return 0;
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const uint8_t *a;
	int family;

	switch (sa->sa_family) {
	case AF_INET:
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		family = AF_INET;
		break;
	case AF_INET6:
		a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		family = AF_INET6;
		/*
		 * A v4 peer accepted on a dual-stack socket: it is that v4
		 * address, so only v4 ranges may speak for it.
		 */
		if (is_v4_mapped(a)) {
			a += 12;
			family = AF_INET;
		}
		break;
	default:
		return false;
	}
	if (family != c->family)
		return false;
	if (c->prefix > (family == AF_INET ? 32 : 128))
		return false;
	return prefix_eq(c->addr, a, c->prefix);
}

int pattern_parse(const char *s, size_t len, struct ident_pattern *out)
{
	memset(out, 0, sizeof(*out));
	/* "*." + a full-length name + its optional dot is the longest. */
	if (len == 0 || len > IDENT_NAME_MAX + 3)
		goto fail;

	if (len == 1 && s[0] == '*') {
		out->kind = PATTERN_ANY;
		return 0;
	}
	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		if (ident_parse(s + 2, len - 2, &out->id) != 0 ||
		    out->id.type != IDENT_DNS)
			goto fail;
		out->kind = PATTERN_SUFFIX;
		return 0;
	}
	if (memchr(s, '/', len)) {
		if (cidr_parse(s, len, &out->cidr) != 0)
			goto fail;
		out->kind = PATTERN_CIDR;
		return 0;
	}
	if (ident_parse(s, len, &out->id) != 0)
		goto fail;
	out->kind = PATTERN_EXACT;
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* name (length n, any case) lies strictly below parent (lowercase). */
static bool suffix_below(const char *name, size_t n, const char *parent,
			 size_t plen)
{
	/* At least one label, then a dot, then the parent. */
	if (n < plen + 2)
		return false;
	return name[n - plen - 1] == '.' &&
	       caseeq_lower(name + n - plen, parent, plen);
}

static bool cidr_match_ident(const struct cidr *c, const struct ident *id)
{
	if (id->type == IDENT_IPV4 && c->family == AF_INET)
		return c->prefix <= 32 && prefix_eq(c->addr, id->addr, c->prefix);
	if (id->type == IDENT_IPV6 && c->family == AF_INET6)
		return c->prefix <= 128 && prefix_eq(c->addr, id->addr, c->prefix);
	return false;
}

bool pattern_match(const struct ident_pattern *p, const struct ident *id)
{
	switch (p->kind) {
	case PATTERN_ANY:
		return true;
	case PATTERN_EXACT:
		if (p->id.type != id->type)
			return false;
		if (id->type == IDENT_DNS)
			return p->id.name_len == id->name_len &&
			       memcmp(p->id.name, id->name, id->name_len) == 0;
		return memcmp(p->id.addr, id->addr,
			      id->type == IDENT_IPV4 ? 4 : 16) == 0;
	case PATTERN_SUFFIX:
		return id->type == IDENT_DNS &&
		       suffix_below(id->name, id->name_len, p->id.name,
				    p->id.name_len);
	case PATTERN_CIDR:
		return cidr_match_ident(&p->cidr, id);
	}
	return false;
}

/*
 * Gives the same answer as ident_parse() followed by pattern_match(), but
 * names are compared in place: this runs on every SNI and Host header.
 */
bool pattern_match_name(const struct ident_pattern *p, const char *name,
			size_t len)
{
	struct ident id;
	size_t n;

	if (len == 0 || len > IDENT_NAME_MAX + 1)
		return false;

	switch (p->kind) {
	case PATTERN_ANY:
		if (dns_name_check(name, len, &n))
			return true;
		return ip_literal_parse(name, len, &id);
	case PATTERN_EXACT:
		if (p->id.type != IDENT_DNS)
			return ip_literal_parse(name, len, &id) &&
			       pattern_match(p, &id);
		/*
		 * The pattern is a valid name, so bytes that equal it (but
		 * for the case of letters) are one too.
		 */
		n = name[len - 1] == '.' ? len - 1 : len;
		return n == p->id.name_len &&
		       caseeq_lower(name, p->id.name, n);
	case PATTERN_SUFFIX:
		return dns_name_check(name, len, &n) &&
		       suffix_below(name, n, p->id.name, p->id.name_len);
	case PATTERN_CIDR:
		return ip_literal_parse(name, len, &id) &&
		       cidr_match_ident(&p->cidr, &id);
	}
	return false;
}

/* 1..65535, decimal, no sign, no leading zero. */
static bool port_parse(const char *s, size_t len, uint16_t *out)
{
	unsigned int v = 0;

	if (len == 0 || len > 5 || s[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned int)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

int addr_parse(const char *s, size_t len, struct sockaddr_storage *out,
	       socklen_t *out_len)
{
	const char *host = s, *colon;
	size_t hlen;
	uint16_t port;
	uint8_t a[16];
	bool v6;

	if (len == 0 || len > ADDR_TEXT_MAX)
		return -1;

	if (s[0] == '[') {
		const char *rb = memchr(s, ']', len);

		if (!rb)
			return -1;
		host = s + 1;
		hlen = (size_t)(rb - host);
		colon = rb + 1;
		v6 = true;
	} else {
		/*
		 * A dotted quad has no colon, so the first one ends it; an
		 * unbracketed IPv6 literal then fails the dotted-quad parse.
		 */
		colon = memchr(s, ':', len);
		if (!colon)
			return -1;
		hlen = (size_t)(colon - s);
		v6 = false;
	}
	if (colon >= s + len || *colon != ':')
		return -1;
	if (!port_parse(colon + 1, len - (size_t)(colon + 1 - s), &port))
		return -1;
	if (v6 ? !ipv6_parse(host, hlen, a) : !ipv4_parse(host, hlen, a))
		return -1;

	memset(out, 0, sizeof(*out));
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a, 16);
		*out_len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)out;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a, 4);
		*out_len = sizeof(*sin);
	}
	return 0;
}

const char *addr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN];

	if (cap == 0)
		return buf;

	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		if (!inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)))
			break;
		snprintf(buf, cap, "%s:%u", host, ntohs(sin->sin_port));
		return buf;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (!inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)))
			break;
		/*
		 * A scope id only appears on link-local peers; logging it
		 * tells fe80::1 on one interface from another.
		 */
		if (sin6->sin6_scope_id)
			snprintf(buf, cap, "[%s%%%u]:%u", host,
				 (unsigned int)sin6->sin6_scope_id,
				 ntohs(sin6->sin6_port));
		else
			snprintf(buf, cap, "[%s]:%u", host,
				 ntohs(sin6->sin6_port));
		return buf;
	}
	default:
		break;
	}
	snprintf(buf, cap, "(family %d)", (int)sa->sa_family);
	return buf;
}
