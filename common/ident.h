/*
 * Names and addresses: ACME identifiers, http-01 tokens, key
 * authorizations, the identifier patterns that scope API clients and route
 * proxy traffic, CIDRs and listen addresses.
 *
 * Everything here is pure (no allocation, no I/O) so that the unit tests and
 * fuzzers link it alone, and every input is treated as untrusted bytes with
 * an explicit length: nothing here needs a NUL terminator.
 */
#ifndef EDGE_IDENT_H
#define EDGE_IDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/edge.h"

#define IDENT_NAME_MAX 253	/* RFC 1035 presentation form, no trailing dot */
#define IDENT_REVERSE_MAX 73	/* "x.x. ... ip6.arpa" for IPv6: 64 + 8 + NUL */
#define TOKEN_MIN 16		/* 96 bits of base64url; RFC 8555 asks for 128 */
#define TOKEN_MAX 255
#define THUMBPRINT_LEN 43	/* base64url(SHA-256), no padding */
#define KEYAUTH_MAX (TOKEN_MAX + 1 + THUMBPRINT_LEN)

enum ident_type {
	IDENT_DNS = 1,
	IDENT_IPV4 = 2,
	IDENT_IPV6 = 3,
};

/* A validated identifier in canonical form. */
struct ident {
	enum ident_type type;
	char name[IDENT_NAME_MAX + 1];	/* lowercase DNS name, or inet_ntop text */
	size_t name_len;
	uint8_t addr[16];		/* network order; 4 bytes used for IPv4 */
};

/*
 * Parses an identifier as an API client or a validator sends it: a DNS name
 * (LDH labels of 1..63 octets, 253 octets in all, one trailing dot allowed,
 * case folded), an IPv4 literal, or an IPv6 literal with or without
 * brackets. Wildcards are refused: ACME validates the base name. Also
 * refused: IPv4-mapped IPv6 and zone ids, IPv4 forms other than a strict
 * dotted quad ("01.2.3.4", "127.1"), and names whose last label reads as a
 * number ("1.2.3", "a.0x7f"), which browsers and inet_aton() take for IPv4,
 * and names in or under in-addr.arpa and ip6.arpa, which spell IP
 * identifiers in SNI (ident_sni_name) and must not be claimable as names.
 * Returns 0, or -1 when the input is not a valid identifier.
 */
int ident_parse(const char *s, size_t len, struct ident *out);

/*
 * The name a TLS-ALPN-01 validator puts in SNI for this identifier (RFC
 * 8738 §6): the DNS name itself, or the in-addr.arpa / ip6.arpa form of an
 * address. Writes a NUL-terminated string; returns its length, or -1 when
 * cap is too small.
 */
int ident_sni_name(const struct ident *id, char *buf, size_t cap);

/* base64url alphabet only, TOKEN_MIN..TOKEN_MAX characters, no padding. */
bool token_valid(const char *s, size_t len);

/* Exactly THUMBPRINT_LEN base64url characters. */
bool thumbprint_valid(const char *s, size_t len);

/*
 * Splits a key authorization "token.thumbprint" (RFC 8555 §8.1) and
 * validates both halves. Returns 0 with the halves as slices of s, or -1.
 */
int keyauth_split(const char *s, size_t len, struct slice *token,
		  struct slice *thumbprint);

/*
 * Decodes a SHA-256 digest written as 64 hex digits, optionally separated
 * by colons ("ab:cd:..", as `openssl dgst -c` prints it). Returns 0 or -1.
 */
int digest_hex_decode(const char *s, size_t len, uint8_t out[32]);

enum pattern_kind {
	PATTERN_ANY = 1,	/* "*": every name and address */
	PATTERN_EXACT = 2,	/* "example.com", or an IP literal */
	PATTERN_SUFFIX = 3,	/* "*.example.com": any name below, not itself */
	PATTERN_CIDR = 4,	/* "192.0.2.0/24", "2001:db8::/32": IP identifiers */
};

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network order, host bits cleared */
	uint8_t prefix;
};

struct ident_pattern {
	enum pattern_kind kind;
	struct ident id;	/* EXACT: the identifier; SUFFIX: the parent name */
	struct cidr cidr;	/* CIDR */
};

/* Parses one pattern word. Returns 0, or -1 with nothing usable in out. */
int pattern_parse(const char *s, size_t len, struct ident_pattern *out);

/* Whether an identifier falls within a pattern. */
bool pattern_match(const struct ident_pattern *p, const struct ident *id);

/*
 * Whether a name as seen on the wire (SNI, or a Host header already stripped
 * of its port and brackets) falls within a pattern. The name is compared
 * case-insensitively and need not be a valid identifier: anything invalid
 * simply does not match.
 */
bool pattern_match_name(const struct ident_pattern *p, const char *name,
			size_t len);

/*
 * "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). Host
 * bits past the prefix and ranges inside ::ffff:0:0/96 are refused.
 */
int cidr_parse(const char *s, size_t len, struct cidr *out);

/*
 * Whether a socket address (IPv4, IPv6, or IPv4-mapped IPv6) is inside. A
 * mapped peer counts as its IPv4 address: it matches IPv4 ranges only,
 * never an IPv6 one such as ::/0. Other families never match.
 */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/*
 * Parses a listen or upstream address: "127.0.0.1:80", "[::1]:80",
 * "0.0.0.0:80", "[::]:80". A port is required (1..65535); names are not
 * resolved (a gateway must not block on DNS). Returns 0 or -1.
 */
int addr_parse(const char *s, size_t len, struct sockaddr_storage *out,
	       socklen_t *out_len);

/* "1.2.3.4:80" or "[::1]:80" into buf (NUL-terminated); returns buf. */
const char *addr_format(const struct sockaddr *sa, char *buf, size_t cap);
#define ADDR_STRLEN 64

#endif
