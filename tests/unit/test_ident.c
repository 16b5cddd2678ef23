/*
 * Unit tests for common/ident.c. Every input goes through check_guarded(),
 * so a parser that reads one byte past its length faults at once; inputs
 * are written with S() so that embedded NULs keep their length.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>	/* before check.h, which uses abort() */
#include <string.h>
#include <sys/un.h>

#include "check.h"
#include "common/ident.h"

struct bytes {
	const char *s;
	size_t len;
};

#define S(lit) { (lit), sizeof(lit) - 1 }

/* Renders an input for a failure message: non-printables as \xNN. */
static const char *show(const char *s, size_t len)
{
	static char buf[4 * 80 + 8];
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < sizeof(buf) - 4; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o,
					      "\\x%02x", c);
	}
	if (len > 80)
		memcpy(buf + o, "...", 4);
	else
		buf[o] = '\0';
	return buf;
}

static int parse_g(const char *s, size_t len, struct ident *id)
{
	return ident_parse(check_guarded(s, len), len, id);
}

static int pattern_g(const char *s, size_t len, struct ident_pattern *p)
{
	return pattern_parse(check_guarded(s, len), len, p);
}

static int pattern_str(const char *s, struct ident_pattern *p)
{
	return pattern_g(s, strlen(s), p);
}

/* A name of exactly total octets: 63-octet labels, the last one shorter. */
static void long_name(char *buf, size_t total, char fill)
{
	size_t i;

	for (i = 0; i < total; i++)
		buf[i] = (i % 64 == 63) ? '.' : fill;
	buf[total] = '\0';
	/* Never end on a dot: that would be the optional root dot. */
	if (buf[total - 1] == '.')
		buf[total - 2] = '.', buf[total - 1] = fill;
}

/* ---------------------------------------------------------------- idents */

struct good_ident {
	const char *in;
	enum ident_type type;
	const char *canon;
};

static const struct good_ident good_idents[] = {
	{ "example.com", IDENT_DNS, "example.com" },
	{ "Example.COM", IDENT_DNS, "example.com" },
	{ "example.com.", IDENT_DNS, "example.com" },
	{ "a", IDENT_DNS, "a" },
	{ "localhost", IDENT_DNS, "localhost" },
	{ "a-b.c--d.example", IDENT_DNS, "a-b.c--d.example" },
	{ "xn--bcher-kva.example", IDENT_DNS, "xn--bcher-kva.example" },
	{ "1a.example.com", IDENT_DNS, "1a.example.com" },
	{ "123.example.com", IDENT_DNS, "123.example.com" },
	{ "1.2.3.example", IDENT_DNS, "1.2.3.example" },
	{ "0x.example", IDENT_DNS, "0x.example" },
	{ "example.0xg", IDENT_DNS, "example.0xg" },
	{ "example.a1", IDENT_DNS, "example.a1" },
	{ "WWW.Example.Org.", IDENT_DNS, "www.example.org" },
	{ "1.2.3.4", IDENT_IPV4, "1.2.3.4" },
	{ "0.0.0.0", IDENT_IPV4, "0.0.0.0" },
	{ "255.255.255.255", IDENT_IPV4, "255.255.255.255" },
	{ "192.0.2.10", IDENT_IPV4, "192.0.2.10" },
	{ "10.0.100.1", IDENT_IPV4, "10.0.100.1" },
	{ "::1", IDENT_IPV6, "::1" },
	{ "[::1]", IDENT_IPV6, "::1" },
	{ "::", IDENT_IPV6, "::" },
	{ "2001:DB8::1", IDENT_IPV6, "2001:db8::1" },
	{ "2001:0db8:0000:0000:0000:0000:0000:0001", IDENT_IPV6, "2001:db8::1" },
	{ "[2001:db8::A]", IDENT_IPV6, "2001:db8::a" },
	{ "2001:db8:0:0:1:0:0:1", IDENT_IPV6, "2001:db8::1:0:0:1" },
	{ "64:ff9b::1.2.3.4", IDENT_IPV6, "64:ff9b::102:304" },
	{ "fe80::1", IDENT_IPV6, "fe80::1" },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IDENT_IPV6,
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
};

static const struct bytes bad_idents[] = {
	S(""), S("."), S(".."), S("a..b"), S(".a.com"), S("a.com.."),
	S("-a.com"), S("a-.com"), S("a.-b.com"), S("a.b-.com"), S("a.com-"),
	S("a_b.com"), S("_acme-challenge.example.com"),
	S("*"), S("*.a.com"), S("a.*.com"), S("*a.com"),
	S("ex ample.com"), S(" example.com"), S("example.com "),
	S("exa\tmple.com"), S("example.com\n"), S("example.com\r\n"),
	S("example.com\0"), S("exa\0mple.com"), S("\0"),
	S("b\xc3\xbc" "cher.example"), S("\xff.com"), S("example.\x80"),
	S("a/b.com"), S("a:b"), S("a\\.com"), S("@example.com"),
	S("example.com/"), S("example.com:80"), S("user@example.com"),
	S("1.2.3"), S("1.2.3.4.5"), S("256.1.1.1"), S("1.2.3.256"),
	S("01.2.3.4"), S("1.2.3.04"), S("00.1.2.3"), S("1.2.3.0004"),
	S("0x7f.0.0.1"), S("127.1"), S("1.2.3.4."), S("+1.2.3.4"),
	S("-1.2.3.4"), S("1.2.3.-4"), S("1..2.3"), S("1.2.3.4 "),
	S("example.123"), S("example.0x1f"), S("example.0X"), S("1"),
	S("::ffff:1.2.3.4"), S("::ffff:102:304"), S("[::ffff:1.2.3.4]"),
	S("::FFFF:7f00:1"),
	S("fe80::1%eth0"), S("[fe80::1%eth0]"), S("fe80::1%1"),
	S("[::1"), S("::1]"), S("[[::1]]"), S("[1.2.3.4]"), S("[]"), S("["),
	S("[example.com]"), S("[::1]:80"), S("1.2.3.4:80"),
	S("1:2:3:4:5:6:7:8:9"), S("1::2::3"), S(":::"), S("::g"),
	S(":1::"), S("00001::"), S("::1.02.3.4"), S(" ::1"), S("::1 "),
	S("::1\0"), S("[::1]\0"),
};

static void test_ident_good(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(good_idents); i++) {
		const struct good_ident *t = &good_idents[i];
		struct ident id, again;

		CHECKF(parse_g(t->in, strlen(t->in), &id) == 0, "%s", t->in);
		CHECKF(id.type == t->type, "%s: type %d", t->in, id.type);
		CHECKF(strcmp(id.name, t->canon) == 0, "%s -> %s", t->in,
		       id.name);
		CHECKF(id.name_len == strlen(id.name), "%s", t->in);
		/* The canonical form is a fixed point. */
		CHECKF(parse_g(id.name, id.name_len, &again) == 0 &&
		       again.type == id.type &&
		       strcmp(again.name, id.name) == 0 &&
		       memcmp(again.addr, id.addr, sizeof(id.addr)) == 0,
		       "%s reparse", t->in);
	}

	/* Address bytes, not just the text. */
	struct ident id;

	CHECK(parse_g("192.0.2.10", 10, &id) == 0 &&
	      memcmp(id.addr, "\xc0\x00\x02\x0a", 4) == 0);
	CHECK(parse_g("[2001:db8::1]", 13, &id) == 0 &&
	      memcmp(id.addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01",
		     16) == 0);
}

static void test_ident_bad(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_idents); i++) {
		const struct bytes *t = &bad_idents[i];
		struct ident id;

		memset(&id, 0xa5, sizeof(id));
		CHECKF(parse_g(t->s, t->len, &id) == -1, "accepted \"%s\"",
		       show(t->s, t->len));
		CHECKF(id.type == 0 && id.name_len == 0, "leftovers \"%s\"",
		       show(t->s, t->len));
	}
}

static void test_ident_lengths(void)
{
	char buf[400];
	struct ident id;

	/* Label: 63 octets fit, 64 do not, in any position. */
	memset(buf, 'a', 63);
	memcpy(buf + 63, ".com", 5);
	CHECK(parse_g(buf, 67, &id) == 0 && id.name_len == 67);
	memset(buf, 'a', 64);
	memcpy(buf + 64, ".com", 5);
	CHECK(parse_g(buf, 68, &id) == -1);
	memcpy(buf, "x.", 2);
	memset(buf + 2, 'b', 64);
	CHECK(parse_g(buf, 66, &id) == -1);
	CHECK(parse_g(buf, 65, &id) == 0);

	/* Name: 253 octets fit, with or without the root dot; 254 do not. */
	long_name(buf, 253, 'c');
	CHECK(parse_g(buf, 253, &id) == 0 && id.name_len == 253);
	buf[253] = '.';
	CHECK(parse_g(buf, 254, &id) == 0 && id.name_len == 253);
	long_name(buf, 254, 'c');
	CHECK(parse_g(buf, 254, &id) == -1);
	buf[254] = '.';
	CHECK(parse_g(buf, 255, &id) == -1);
	/* An uppercase maximum folds in place without growing. */
	long_name(buf, 253, 'Q');
	CHECK(parse_g(buf, 253, &id) == 0 && id.name[0] == 'q' &&
	      id.name[252] == 'q' && id.name[253] == '\0');
}

/*
 * Our dotted-quad grammar is documented to equal glibc's inet_pton: check
 * that on every combination of a few awkward parts.
 */
static void test_ipv4_vs_inet_pton(void)
{
	static const char *parts[] = {
		"0", "00", "01", "1", "9", "10", "99", "255", "256", "010",
		"1000", "", "x", "-1",
	};
	size_t n = ARRAY_SIZE(parts), mismatches = 0;

	for (size_t a = 0; a < n; a++)
		for (size_t b = 0; b < n; b++)
			for (size_t c = 0; c < n; c++)
				for (size_t d = 0; d < n; d++) {
					char s[64];
					unsigned char bin[4];
					struct ident id;
					int want, got;

					snprintf(s, sizeof(s), "%s.%s.%s.%s",
						 parts[a], parts[b], parts[c],
						 parts[d]);
					want = inet_pton(AF_INET, s, bin) == 1;
					got = parse_g(s, strlen(s), &id) == 0 &&
					      id.type == IDENT_IPV4;
					if (want != got ||
					    (got && memcmp(bin, id.addr, 4))) {
						mismatches++;
						fprintf(stderr, "ipv4 %s: %d/%d\n",
							s, want, got);
					}
				}
	CHECK(mismatches == 0);
}

struct sni_case {
	const char *in;
	const char *sni;
};

static const struct sni_case sni_cases[] = {
	{ "Example.COM.", "example.com" },
	{ "192.0.2.1", "1.2.0.192.in-addr.arpa" },
	{ "0.0.0.0", "0.0.0.0.in-addr.arpa" },
	{ "255.254.10.100", "100.10.254.255.in-addr.arpa" },
	{ "2001:db8::1",
	  "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	  ".ip6.arpa" },
	{ "[FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:ABCD]",
	  "d.c.b.a.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f.f"
	  ".ip6.arpa" },
};

static void test_sni_name(void)
{
	char buf[IDENT_NAME_MAX + 8];
	struct ident id;

	for (size_t i = 0; i < ARRAY_SIZE(sni_cases); i++) {
		const struct sni_case *t = &sni_cases[i];
		size_t want = strlen(t->sni);
		int n;

		CHECKF(parse_g(t->in, strlen(t->in), &id) == 0, "%s", t->in);
		n = ident_sni_name(&id, buf, sizeof(buf));
		CHECKF(n == (int)want && strcmp(buf, t->sni) == 0, "%s -> %s",
		       t->in, buf);
		/*
		 * Exactly enough room (with the NUL) works; one less does
		 * not, and leaves the byte past cap alone.
		 */
		memset(buf, '#', sizeof(buf));
		CHECKF(ident_sni_name(&id, buf, want + 1) == (int)want &&
		       buf[want] == '\0', "%s exact cap", t->in);
		memset(buf, '#', sizeof(buf));
		CHECKF(ident_sni_name(&id, buf, want) == -1 &&
		       buf[want] == '#', "%s short cap", t->in);
	}

	/* The longest reverse form fits IDENT_REVERSE_MAX exactly. */
	CHECK(parse_g("::", 2, &id) == 0);
	CHECK(ident_sni_name(&id, buf, IDENT_REVERSE_MAX) ==
	      IDENT_REVERSE_MAX - 1);
	CHECK(ident_sni_name(&id, buf, 0) == -1);

	/* So does the longest name in IDENT_NAME_MAX + 1. */
	long_name(buf, 253, 'n');
	CHECK(parse_g(buf, 253, &id) == 0);
	CHECK(ident_sni_name(&id, buf, IDENT_NAME_MAX + 1) == 253);

	memset(&id, 0, sizeof(id));
	CHECK(ident_sni_name(&id, buf, sizeof(buf)) == -1);
}

/* ------------------------------------------------- tokens and keyauths */

#define TOK16 "abcdefghij-_0123"
#define TOK43 "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
#define THUMB "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"

static void test_tokens(void)
{
	char big[300];
	static const struct bytes bad[] = {
		S(""), S("abcdefghij-_012"), S("abcdefghij-_0123="),
		S("abcdefghij+_0123"), S("abcdefghij/_0123"),
		S("abcdefghij._0123"), S("abcdefghij _0123"),
		S("abcdefghij\0_0123"), S("abcdefghij\xc3\xa9_0123"),
		S(TOK43 "\n"), S(TOK43 "%2F"), S("../../../../etc/passwd"),
	};

	CHECK(token_valid(check_guarded(TOK16, 16), 16));
	CHECK(token_valid(check_guarded(TOK43, 43), 43));
	memset(big, 'A', sizeof(big));
	CHECK(token_valid(check_guarded(big, TOKEN_MAX), TOKEN_MAX));
	CHECK(!token_valid(check_guarded(big, TOKEN_MAX + 1), TOKEN_MAX + 1));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECKF(!token_valid(check_guarded(bad[i].s, bad[i].len),
				    bad[i].len), "%s", show(bad[i].s, bad[i].len));

	CHECK(thumbprint_valid(check_guarded(THUMB, 43), 43));
	CHECK(!thumbprint_valid(check_guarded(THUMB, 42), 42));
	CHECK(!thumbprint_valid(check_guarded(THUMB "A", 44), 44));
	CHECK(!thumbprint_valid(check_guarded(THUMB "=", 44), 44));
	CHECK(!thumbprint_valid(check_guarded("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX+",
					      43), 43));
	CHECK(!thumbprint_valid(check_guarded("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEu/0",
					      43), 43));
	CHECK(!thumbprint_valid(check_guarded("", 0), 0));
}

static void test_keyauth(void)
{
	static const struct bytes bad[] = {
		S(""), S("."), S(TOK43), S(TOK43 "."), S("." THUMB),
		S(TOK43 THUMB), S(TOK43 ".." THUMB), S(TOK43 "." THUMB "."),
		S(TOK43 "." THUMB ".x"), S("a.b." THUMB),
		S("abcdefghij-_012." THUMB),		/* short token */
		S(TOK43 ".LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX"),
		S(TOK43 "." THUMB "0"), S(TOK43 "." THUMB "\n"),
		S(TOK43 "." THUMB "\0"), S(TOK43 " ." THUMB),
		S(TOK43 ".LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX="),
	};
	struct slice tok, th;
	const char *g;

	g = check_guarded(TOK43 "." THUMB, 87);
	CHECK(keyauth_split(g, 87, &tok, &th) == 0);
	CHECK(tok.ptr == g && tok.len == 43);
	CHECK(th.ptr == g + 44 && th.len == 43);

	g = check_guarded(TOK16 "." THUMB, 60);
	CHECK(keyauth_split(g, 60, &tok, &th) == 0 && tok.len == 16);

	/* The longest legal one, and one byte more. */
	char big[KEYAUTH_MAX + 2];

	memset(big, 'T', TOKEN_MAX);
	big[TOKEN_MAX] = '.';
	memcpy(big + TOKEN_MAX + 1, THUMB, 43);
	CHECK(keyauth_split(check_guarded(big, KEYAUTH_MAX), KEYAUTH_MAX,
			    &tok, &th) == 0);
	memmove(big + 1, big, KEYAUTH_MAX);
	CHECK(keyauth_split(check_guarded(big, KEYAUTH_MAX + 1),
			    KEYAUTH_MAX + 1, &tok, &th) == -1);

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		tok.ptr = th.ptr = NULL;
		g = check_guarded(bad[i].s, bad[i].len);
		CHECKF(keyauth_split(g, bad[i].len, &tok, &th) == -1 &&
		       !tok.ptr && !th.ptr, "%s", show(bad[i].s, bad[i].len));
	}
}

/* ------------------------------------------------------------- digests */

#define HEX64 "000102030405060708090a0b0c0d0e0f" \
	      "f0e1d2c3b4a5968778695a4b3c2d1e0f"
#define HEXC "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:" \
	     "F0:E1:D2:C3:B4:A5:96:87:78:69:5A:4B:3C:2D:1E:0F"

static void test_digest(void)
{
	static const uint8_t want[32] = {
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
		0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
		0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87,
		0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f,
	};
	static const struct bytes good[] = {
		S(HEX64),
		S("000102030405060708090A0B0C0D0E0FF0E1D2C3B4A5968778695A4B3C2D1E0F"),
		S("000102030405060708090a0B0c0D0e0FF0e1D2c3B4a5968778695a4B3c2D1e0f"),
		S(HEXC),
		S("00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:"
		  "f0:e1:d2:c3:b4:a5:96:87:78:69:5a:4b:3c:2d:1e:0f"),
	};
	static const struct bytes bad[] = {
		S(""), S("00"),
		S("000102030405060708090a0b0c0d0e0ff0e1d2c3b4a5968778695a4b3c2d1e0"),
		S(HEX64 "0"), S(HEX64 "\n"), S(" " HEX64), S(HEX64 "\0"),
		S("g00102030405060708090a0b0c0d0e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"),
		S("0x0102030405060708090a0b0c0d0e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"),
		S("-00102030405060708090a0b0c0d0e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"),
		S(HEXC ":"), S(":" HEXC), S(HEXC "\n"),
		S("00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:"
		  "f0:e1:d2:c3:b4:a5:96:87:78:69:5a:4b:3c:2d:1e"),
		S("00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f "
		  "f0 e1 d2 c3 b4 a5 96 87 78 69 5a 4b 3c 2d 1e 0f"),
		S("00-01-02-03-04-05-06-07-08-09-0a-0b-0c-0d-0e-0f-"
		  "f0-e1-d2-c3-b4-a5-96-87-78-69-5a-4b-3c-2d-1e-0f"),
		S("00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:"
		  "f0:e1:d2:c3:b4:a5:96:87:78:69:5a:4b:3c:2d:1e;0f"),
		/* right length, colons in the wrong places */
		S("000:1:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:"
		  "f0:e1:d2:c3:b4:a5:96:87:78:69:5a:4b:3c:2d:1e:0f"),
		S("0001:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:"
		  "f0:e1:d2:c3:b4:a5:96:87:78:69:5a:4b:3c:2d:1e:0f:"),
		/* mixed: some pairs joined, some not (64 + 31 bytes worth) */
		S("0001020304050607:08:09:0a:0b:0c:0d:0e:0f:"
		  "f0:e1:d2:c3:b4:a5:96:87:78:69:5a:4b:3c:2d:1e:0f:"
		  "00:00:00:00:00:00"),
		S("0:1:2:3:4:5:6:7:8:9:a:b:c:d:e:f:0:1:2:3:4:5:6:7:8:9:a:b:c:d:e:f"),
	};
	uint8_t out[32];

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		memset(out, 0x55, sizeof(out));
		CHECKF(digest_hex_decode(check_guarded(good[i].s, good[i].len),
					 good[i].len, out) == 0 &&
		       memcmp(out, want, 32) == 0, "good %zu", i);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(out, 0x55, sizeof(out));
		CHECKF(digest_hex_decode(check_guarded(bad[i].s, bad[i].len),
					 bad[i].len, out) == -1,
		       "%s", show(bad[i].s, bad[i].len));
		/* A refused input leaves the output untouched. */
		CHECK(out[0] == 0x55 && out[31] == 0x55);
	}
}

/* ------------------------------------------------------------ patterns */

struct pattern_parse_case {
	const char *in;
	int kind;		/* 0: refused */
};

static const struct pattern_parse_case pattern_parse_cases[] = {
	{ "*", PATTERN_ANY },
	{ "example.com", PATTERN_EXACT },
	{ "Example.COM.", PATTERN_EXACT },
	{ "192.0.2.1", PATTERN_EXACT },
	{ "[2001:db8::1]", PATTERN_EXACT },
	{ "2001:db8::1", PATTERN_EXACT },
	{ "*.example.com", PATTERN_SUFFIX },
	{ "*.Example.COM.", PATTERN_SUFFIX },
	{ "*.com", PATTERN_SUFFIX },
	{ "192.0.2.0/24", PATTERN_CIDR },
	{ "0.0.0.0/0", PATTERN_CIDR },
	{ "2001:db8::/32", PATTERN_CIDR },
	{ "::/0", PATTERN_CIDR },
	{ "192.0.2.7/32", PATTERN_CIDR },
	{ "", 0 },
	{ "**", 0 },
	{ "*.", 0 },
	{ "*..com", 0 },
	{ "*.*.example.com", 0 },
	{ "a.*.example.com", 0 },
	{ "*example.com", 0 },
	{ "ex*.com", 0 },
	{ "*.1.2.3.4", 0 },
	{ "*.::1", 0 },
	{ "*.[::1]", 0 },
	{ "* ", 0 },
	{ " *", 0 },
	{ "*.example.com ", 0 },
	{ "192.0.2.1/24", 0 },
	{ "192.0.2.0/33", 0 },
	{ "192.0.2.0/", 0 },
	{ "2001:db8::1/32", 0 },
	{ "example.com/24", 0 },
	{ "*.example.com/24", 0 },
	{ "::ffff:1.2.3.4", 0 },
	{ "1.2.3", 0 },
	{ "a_b.example.com", 0 },
};

static void test_pattern_parse(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(pattern_parse_cases); i++) {
		const struct pattern_parse_case *t = &pattern_parse_cases[i];
		struct ident_pattern p;
		int rc = pattern_str(t->in, &p);

		if (t->kind)
			CHECKF(rc == 0 && (int)p.kind == t->kind,
			       "\"%s\": rc %d kind %d", t->in, rc, p.kind);
		else
			CHECKF(rc == -1 && p.kind == 0, "accepted \"%s\"",
			       t->in);
	}

	struct ident_pattern p;

	CHECK(pattern_str("*.Example.COM.", &p) == 0 &&
	      strcmp(p.id.name, "example.com") == 0);
	CHECK(pattern_str("192.0.2.0/24", &p) == 0 &&
	      p.cidr.family == AF_INET && p.cidr.prefix == 24);
}

struct match_case {
	const char *pattern;
	const char *id;
	bool match;
};

static const struct match_case match_cases[] = {
	{ "*", "example.com", true },
	{ "*", "1.2.3.4", true },
	{ "*", "::1", true },
	{ "example.com", "example.com", true },
	{ "example.com", "EXAMPLE.com.", true },
	{ "Example.COM", "example.com", true },
	{ "example.com", "www.example.com", false },
	{ "example.com", "example.co", false },
	{ "example.com", "example.com.au", false },
	{ "www.example.com", "example.com", false },
	{ "1.2.3.4", "1.2.3.4", true },
	{ "1.2.3.4", "1.2.3.5", false },
	{ "1.2.3.4", "4.3.2.1.in-addr.arpa", false },
	{ "2001:db8::1", "[2001:DB8:0::1]", true },
	{ "2001:db8::1", "2001:db8::2", false },
	{ "*.example.com", "www.example.com", true },
	{ "*.example.com", "a.b.example.com", true },
	{ "*.example.com", "WWW.Example.Com.", true },
	{ "*.example.com", "example.com", false },
	{ "*.example.com", "badexample.com", false },
	{ "*.example.com", "www.badexample.com", false },
	{ "*.example.com", "example.com.evil.net", false },
	{ "*.example.com", "www.example.co", false },
	{ "*.example.com", "1.2.3.4", false },
	{ "*.com", "example.com", true },
	{ "*.com", "com", false },
	{ "192.0.2.0/24", "192.0.2.0", true },
	{ "192.0.2.0/24", "192.0.2.255", true },
	{ "192.0.2.0/24", "192.0.3.0", false },
	{ "192.0.2.0/24", "example.com", false },
	{ "192.0.2.0/24", "::1", false },
	{ "10.0.0.0/9", "10.127.255.255", true },
	{ "10.0.0.0/9", "10.128.0.0", false },
	{ "0.0.0.0/0", "255.255.255.255", true },
	{ "0.0.0.0/0", "::", false },
	{ "2001:db8::/32", "2001:db8:ffff::1", true },
	{ "2001:db8::/32", "2001:db9::1", false },
	{ "2001:db8::/32", "192.0.2.1", false },
	{ "::/0", "ffff::", true },
	{ "::/0", "1.2.3.4", false },
	{ "192.0.2.7/32", "192.0.2.7", true },
	{ "192.0.2.7/32", "192.0.2.6", false },
};

static void test_pattern_match(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(match_cases); i++) {
		const struct match_case *t = &match_cases[i];
		struct ident_pattern p;
		struct ident id;
		size_t n = strlen(t->id);

		if (pattern_str(t->pattern, &p) != 0) {
			CHECKF(0, "pattern %s", t->pattern);
			continue;
		}
		if (parse_g(t->id, n, &id) == 0)
			CHECKF(pattern_match(&p, &id) == t->match, "%s ~ %s",
			       t->pattern, t->id);
		else
			CHECKF(!t->match, "%s: bad ident", t->id);
		/* The wire form gives the same answer without an ident. */
		CHECKF(pattern_match_name(&p, check_guarded(t->id, n), n) ==
		       t->match, "name %s ~ %s", t->pattern, t->id);
	}
}

struct name_case {
	const char *pattern;
	struct bytes name;
	bool match;
};

static const struct name_case name_cases[] = {
	{ "example.com", S("example.com"), true },
	{ "example.com", S("EXAMPLE.COM"), true },
	{ "example.com", S("example.com."), true },
	{ "example.com", S("example.com.."), false },
	{ "example.com", S("example.com\0"), false },
	{ "example.com", S("example\0com"), false },
	{ "example.com", S("\0example.com"), false },
	{ "example.com", S("example.co\xed"), false },
	{ "example.com", S("exampl\xc5.com"), false },
	{ "example.com", S("ex\xc3\xa4mple.com"), false },
	{ "example.com", S(""), false },
	{ "example.com", S("."), false },
	{ "example.com", S("example.com:443"), false },
	{ "example.com", S("Example.Com "), false },
	{ "*.example.com", S("www.example.com"), true },
	{ "*.example.com", S("WWW.EXAMPLE.COM."), true },
	{ "*.example.com", S(".example.com"), false },
	{ "*.example.com", S("..example.com"), false },
	{ "*.example.com", S("*.example.com"), false },
	{ "*.example.com", S("a_b.example.com"), false },
	{ "*.example.com", S("a b.example.com"), false },
	{ "*.example.com", S("\0.example.com"), false },
	{ "*.example.com", S("-a.example.com"), false },
	{ "*.example.com", S("w\xc3\xa9.example.com"), false },
	{ "*.example.com", S("www.example.com\0"), false },
	{ "*.example.com", S("www.example.com/"), false },
	{ "*", S("example.com"), true },
	{ "*", S("1.2.3.4"), true },
	{ "*", S("::1"), true },
	{ "*", S("[::1]"), true },
	{ "*", S("\0"), false },
	{ "*", S(""), false },
	{ "*", S("exa mple"), false },
	{ "*", S("\xff"), false },
	{ "*", S("1.2.3"), false },
	{ "*", S("::ffff:1.2.3.4"), false },
	{ "1.2.3.4", S("1.2.3.4"), true },
	{ "1.2.3.4", S("1.2.3.4\0"), false },
	{ "1.2.3.4", S("01.2.3.4"), false },
	{ "1.2.3.4", S("1.2.3.4."), false },
	{ "::1", S("[::1]"), true },
	{ "::1", S("0:0::1"), true },
	{ "::1", S("::1%lo"), false },
	{ "::1", S("::1\0"), false },
	{ "127.0.0.0/8", S("127.0.0.1"), true },
	{ "127.0.0.0/8", S("127.1"), false },
	{ "127.0.0.0/8", S("0x7f.0.0.1"), false },
	{ "127.0.0.0/8", S("::ffff:127.0.0.1"), false },
	{ "127.0.0.0/8", S("127.0.0.1\0"), false },
	{ "127.0.0.0/8", S("localhost"), false },
	{ "::/0", S("[2001:db8::1]"), true },
	{ "::/0", S("2001:db8::1%eth0"), false },
};

static void test_pattern_match_name(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(name_cases); i++) {
		const struct name_case *t = &name_cases[i];
		struct ident_pattern p;

		if (pattern_str(t->pattern, &p) != 0) {
			CHECKF(0, "pattern %s", t->pattern);
			continue;
		}
		CHECKF(pattern_match_name(&p, check_guarded(t->name.s,
							    t->name.len),
					  t->name.len) == t->match,
		       "%s ~ \"%s\"", t->pattern,
		       show(t->name.s, t->name.len));
	}

	/* Huge lengths are refused without being read to the end. */
	static char huge[1 << 20];
	struct ident_pattern p;
	const char *pats[] = { "*", "example.com", "*.example.com",
			       "10.0.0.0/8", "::1" };

	memset(huge, 'a', sizeof(huge));
	memcpy(huge + sizeof(huge) - 12, ".example.com", 12);
	for (size_t i = 0; i < ARRAY_SIZE(pats); i++) {
		CHECK(pattern_str(pats[i], &p) == 0);
		CHECKF(!pattern_match_name(&p, check_guarded(huge,
							     sizeof(huge)),
					   sizeof(huge)), "huge vs %s",
		       pats[i]);
	}
	/* An unknown kind matches nothing. */
	memset(&p, 0, sizeof(p));
	CHECK(!pattern_match_name(&p, "example.com", 11));
}

/* ---------------------------------------------------------------- cidrs */

struct cidr_parse_case {
	const char *in;
	int family;		/* 0: refused */
	int prefix;
};

static const struct cidr_parse_case cidr_parse_cases[] = {
	{ "10.0.0.0/8", AF_INET, 8 },
	{ "0.0.0.0/0", AF_INET, 0 },
	{ "1.2.3.4/32", AF_INET, 32 },
	{ "1.2.3.4", AF_INET, 32 },
	{ "128.0.0.0/1", AF_INET, 1 },
	{ "2001:db8::/32", AF_INET6, 32 },
	{ "2001:DB8::/32", AF_INET6, 32 },
	{ "::/0", AF_INET6, 0 },
	{ "::1/128", AF_INET6, 128 },
	{ "::1", AF_INET6, 128 },
	{ "2001:db8::/127", AF_INET6, 127 },
	{ "8000::/1", AF_INET6, 1 },
	{ "::/80", AF_INET6, 80 },
	{ "", 0, 0 },
	{ "/8", 0, 0 },
	{ "10.0.0.1/8", 0, 0 },
	{ "1.2.3.5/31", 0, 0 },
	{ "1.2.3.4/31", AF_INET, 31 },
	{ "10.0.0.0/33", 0, 0 },
	{ "10.0.0.0/", 0, 0 },
	{ "10.0.0.0/08", 0, 0 },
	{ "10.0.0.0/-1", 0, 0 },
	{ "10.0.0.0/+8", 0, 0 },
	{ "10.0.0.0/ 8", 0, 0 },
	{ "10.0.0.0/8 ", 0, 0 },
	{ " 10.0.0.0/8", 0, 0 },
	{ "10.0.0.0/8/8", 0, 0 },
	{ "10.0.0.0/1000", 0, 0 },
	{ "10.0.0/8", 0, 0 },
	{ "010.0.0.0/8", 0, 0 },
	{ "10/8", 0, 0 },
	{ "::/129", 0, 0 },
	{ "2001:db8::1/32", 0, 0 },
	{ "::1/127", 0, 0 },
	{ "::ffff:10.0.0.0/104", 0, 0 },
	{ "::ffff:1.2.3.4", 0, 0 },
	{ "::ffff:0:0/96", 0, 0 },
	{ "[::1]/128", 0, 0 },
	{ "[::1]", 0, 0 },
	{ "fe80::/64%eth0", 0, 0 },
	{ "fe80::%eth0/64", 0, 0 },
	{ "example.com/8", 0, 0 },
};

static void test_cidr_parse(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(cidr_parse_cases); i++) {
		const struct cidr_parse_case *t = &cidr_parse_cases[i];
		struct cidr c;
		int rc;

		memset(&c, 0x5a, sizeof(c));
		rc = cidr_parse(check_guarded(t->in, strlen(t->in)),
				strlen(t->in), &c);
		if (t->family)
			CHECKF(rc == 0 && c.family == t->family &&
			       c.prefix == t->prefix, "%s", t->in);
		else
			CHECKF(rc == -1, "accepted %s", t->in);
	}
	/* Embedded NUL after a valid prefix. */
	struct cidr c;

	CHECK(cidr_parse(check_guarded("10.0.0.0/8\0", 11), 11, &c) == -1);
	CHECK(cidr_parse(check_guarded("10.0.0.0\0/8", 11), 11, &c) == -1);
}

static struct sockaddr_storage sa4(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	sin->sin_family = AF_INET;
	BUG_ON(inet_pton(AF_INET, ip, &sin->sin_addr) != 1);
	return ss;
}

static struct sockaddr_storage sa6(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	sin6->sin6_family = AF_INET6;
	BUG_ON(inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 1);
	return ss;
}

struct cidr_match_case {
	const char *cidr;
	const char *peer;	/* contains ':' -> AF_INET6 sockaddr */
	bool match;
};

static const struct cidr_match_case cidr_match_cases[] = {
	{ "10.0.0.0/8", "10.1.2.3", true },
	{ "10.0.0.0/8", "11.0.0.0", false },
	{ "10.0.0.0/8", "::ffff:10.1.2.3", true },
	{ "10.0.0.0/8", "::ffff:11.1.2.3", false },
	{ "10.0.0.0/8", "::10.1.2.3", false },
	{ "10.0.0.0/8", "64:ff9b::10.1.2.3", false },
	{ "10.0.0.0/8", "::ffff:0:10.1.2.3", false },
	{ "0.0.0.0/0", "1.2.3.4", true },
	{ "0.0.0.0/0", "::ffff:1.2.3.4", true },
	{ "0.0.0.0/0", "::1", false },
	{ "1.2.3.4/32", "1.2.3.4", true },
	{ "1.2.3.4/32", "1.2.3.5", false },
	{ "1.2.3.4", "::ffff:1.2.3.4", true },
	{ "192.168.0.0/23", "192.168.1.255", true },
	{ "192.168.0.0/23", "192.168.2.0", false },
	{ "2001:db8::/32", "2001:db8:1::1", true },
	{ "2001:db8::/32", "2001:db9::", false },
	{ "2001:db8::/32", "10.0.0.1", false },
	{ "::/0", "::1", true },
	{ "::/0", "ffff:ffff::", true },
	{ "::/0", "1.2.3.4", false },
	/* A mapped peer is an IPv4 peer, even to the any-IPv6 range. */
	{ "::/0", "::ffff:1.2.3.4", false },
	{ "::1/128", "::1", true },
	{ "::1/128", "::2", false },
	{ "::1", "::1", true },
	{ "2001:db8::/127", "2001:db8::1", true },
	{ "2001:db8::/127", "2001:db8::2", false },
	{ "8000::/1", "ffff::", true },
	{ "8000::/1", "7fff::", false },
};

static void test_cidr_match(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(cidr_match_cases); i++) {
		const struct cidr_match_case *t = &cidr_match_cases[i];
		struct sockaddr_storage ss;
		struct cidr c;

		if (cidr_parse(t->cidr, strlen(t->cidr), &c) != 0) {
			CHECKF(0, "cidr %s", t->cidr);
			continue;
		}
		ss = strchr(t->peer, ':') ? sa6(t->peer) : sa4(t->peer);
		CHECKF(cidr_match(&c, (struct sockaddr *)&ss) == t->match,
		       "%s ~ %s", t->cidr, t->peer);
	}

	/* Other families never match, whatever the bytes behind them. */
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct cidr c;

	CHECK(cidr_parse("0.0.0.0/0", 9, &c) == 0);
	CHECK(!cidr_match(&c, (struct sockaddr *)&sun));
	CHECK(cidr_parse("::/0", 4, &c) == 0);
	CHECK(!cidr_match(&c, (struct sockaddr *)&sun));
	struct sockaddr_storage unspec = { .ss_family = AF_UNSPEC };
	CHECK(!cidr_match(&c, (struct sockaddr *)&unspec));
}

/* ----------------------------------------------------------- addresses */

struct addr_case {
	const char *in;
	int family;
	const char *formatted;
};

static const struct addr_case good_addrs[] = {
	{ "127.0.0.1:80", AF_INET, "127.0.0.1:80" },
	{ "0.0.0.0:1", AF_INET, "0.0.0.0:1" },
	{ "255.255.255.255:65535", AF_INET, "255.255.255.255:65535" },
	{ "[::1]:80", AF_INET6, "[::1]:80" },
	{ "[::]:443", AF_INET6, "[::]:443" },
	{ "[2001:DB8:0::1]:8443", AF_INET6, "[2001:db8::1]:8443" },
	{ "[::ffff:1.2.3.4]:80", AF_INET6, "[::ffff:1.2.3.4]:80" },
	{ "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", AF_INET6,
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535" },
};

static const struct bytes bad_addrs[] = {
	S(""), S(":"), S(":80"), S("[]:80"), S("127.0.0.1"), S("127.0.0.1:"),
	S("127.0.0.1:0"), S("127.0.0.1:65536"), S("127.0.0.1:99999"),
	S("127.0.0.1:100000"), S("127.0.0.1:080"), S("127.0.0.1:+80"),
	S("127.0.0.1:-80"), S("127.0.0.1: 80"), S(" 127.0.0.1:80"),
	S("127.0.0.1:80 "), S("127.0.0.1:8080x"), S("127.0.0.1:80:80"),
	S("127.0.0.1:80\0"), S("127.0.0.1\0:80"), S("127.1:80"),
	S("01.2.3.4:80"), S("::1:80"), S("::1"), S("[::1]80"), S("[::1]:"),
	S("[::1"), S("[::1:80"), S("::1]:80"), S("[::1]:80]"),
	S("[[::1]]:80"), S("localhost:80"), S("example.com:443"),
	S("[fe80::1%eth0]:80"), S("[1.2.3.4]:80"), S("[::1]:0"),
	S("[::1]:65536"), S("*:80"), S("0x7f000001:80"),
	S("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:655350"),
};

static void test_addr(void)
{
	char buf[ADDR_STRLEN];

	for (size_t i = 0; i < ARRAY_SIZE(good_addrs); i++) {
		const struct addr_case *t = &good_addrs[i];
		struct sockaddr_storage ss, again;
		socklen_t sl = 0, sl2 = 0;
		size_t n = strlen(t->in);

		CHECKF(addr_parse(check_guarded(t->in, n), n, &ss, &sl) == 0,
		       "%s", t->in);
		CHECKF(ss.ss_family == t->family &&
		       sl == (t->family == AF_INET ?
			      sizeof(struct sockaddr_in) :
			      sizeof(struct sockaddr_in6)), "%s family", t->in);
		addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
		CHECKF(strcmp(buf, t->formatted) == 0, "%s -> %s", t->in, buf);
		/* What we print parses back to the same socket address. */
		CHECKF(addr_parse(buf, strlen(buf), &again, &sl2) == 0 &&
		       sl2 == sl && memcmp(&ss, &again, sl) == 0,
		       "%s round trip", t->in);
	}

	for (size_t i = 0; i < ARRAY_SIZE(bad_addrs); i++) {
		const struct bytes *t = &bad_addrs[i];
		struct sockaddr_storage ss;
		socklen_t sl = 0;

		CHECKF(addr_parse(check_guarded(t->s, t->len), t->len, &ss,
				  &sl) == -1, "accepted %s",
		       show(t->s, t->len));
	}

	/* Port bytes: network order. */
	struct sockaddr_storage ss;
	socklen_t sl;

	CHECK(addr_parse("10.0.0.1:8555", 13, &ss, &sl) == 0 &&
	      ((struct sockaddr_in *)&ss)->sin_port == htons(8555) &&
	      ((struct sockaddr_in *)&ss)->sin_addr.s_addr ==
	      htonl(0x0a000001));

	/* Unknown families, scope ids and short buffers still print. */
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	CHECK(strcmp(addr_format((struct sockaddr *)&sun, buf, sizeof(buf)),
		     "(family 1)") == 0);
	CHECK(addr_parse("[fe80::1]:80", 12, &ss, &sl) == 0);
	((struct sockaddr_in6 *)&ss)->sin6_scope_id = 2;
	CHECK(strcmp(addr_format((struct sockaddr *)&ss, buf, sizeof(buf)),
		     "[fe80::1%2]:80") == 0);
	memset(buf, '#', sizeof(buf));
	addr_format((struct sockaddr *)&ss, buf, 5);
	CHECK(memcmp(buf, "[fe8\0#", 6) == 0);
	memset(buf, '#', sizeof(buf));
	CHECK(addr_format((struct sockaddr *)&ss, buf, 0) == buf &&
	      buf[0] == '#');
	/* The longest form fits ADDR_STRLEN. */
	CHECK(addr_parse("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
			 47, &ss, &sl) == 0);
	((struct sockaddr_in6 *)&ss)->sin6_scope_id = 0xffffffffu;
	addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	CHECK(strlen(buf) == 58 && buf[57] == '5');
}

/* ------------------------------------------------- random consistency */

/*
 * Random short strings over the characters identifiers are made of: the
 * in-place matcher must agree with parse-then-match for every pattern, and
 * every accepted ident must survive a reparse of its canonical form.
 */
static void test_random_consistency(void)
{
	static const char alphabet[] = "aZ09-.:[]*/%_ \xc3\0";
	static const char *pats[] = {
		"*", "a.z", "*.a", "*.z9", "0.0.0.0/0", "9.0.0.0/8", "::/0",
		"a::/16", "0.9.9.0", "::a", "::",
	};
	struct ident_pattern p[ARRAY_SIZE(pats)];
	uint32_t x = 2463534242u;
	size_t bad = 0, accepted = 0;

	for (size_t i = 0; i < ARRAY_SIZE(pats); i++)
		CHECKF(pattern_str(pats[i], &p[i]) == 0, "%s", pats[i]);

	for (int iter = 0; iter < 200000; iter++) {
		char s[24];
		size_t len;
		struct ident id, again;
		char sni[IDENT_REVERSE_MAX > IDENT_NAME_MAX + 1 ?
			 IDENT_REVERSE_MAX : IDENT_NAME_MAX + 1];
		const char *g;
		bool ok;

		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		len = x % sizeof(s);
		for (size_t k = 0; k < len; k++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			s[k] = alphabet[x % (sizeof(alphabet) - 1)];
		}
		g = check_guarded(s, len);
		ok = ident_parse(g, len, &id) == 0;
		if (ok) {
			accepted++;
			if (ident_parse(id.name, id.name_len, &again) != 0 ||
			    strcmp(again.name, id.name) != 0 ||
			    ident_sni_name(&id, sni, sizeof(sni)) < 0)
				bad++;
		}
		for (size_t i = 0; i < ARRAY_SIZE(pats); i++) {
			bool want = ok && pattern_match(&p[i], &id);

			if (pattern_match_name(&p[i], g, len) != want) {
				bad++;
				fprintf(stderr, "%s ~ \"%s\": %d\n", pats[i],
					show(s, len), want);
			}
		}
	}
	CHECK(bad == 0);
	CHECKF(accepted > 1000, "only %zu accepted", accepted);
}

/* ------------------------------------------------------- reverse zones */

/*
 * Names in or under in-addr.arpa and ip6.arpa spell IP identifiers in SNI:
 * they are refused as DNS identifiers and patterns, and no pattern matches
 * them on the wire, while other names that merely look alike are fine.
 */
static void test_reverse_zones(void)
{
	static const char *const refused[] = {
		"in-addr.arpa", "IN-ADDR.ARPA.", "4.3.2.1.in-addr.arpa",
		"1.0.0.127.In-Addr.Arpa", "x.y.in-addr.arpa.", "ip6.arpa",
		"x.ip6.arpa", "Ip6.Arpa.",
	};
	static const char *const fine[] = {
		"arpa", "home.arpa", "xin-addr.arpa", "myip6.arpa",
		"in-addr.arpa.example.com", "ip6.arpa.net", "in-addr.arpaa",
	};
	static const char *const ips[] = { "1.2.3.4", "127.0.0.1", "::1",
					   "2001:db8::7" };
	struct ident_pattern p, any, arpa;
	struct ident id;
	char sni[IDENT_NAME_MAX + 1];

	CHECK(pattern_str("*", &any) == 0);
	CHECK(pattern_str("*.arpa", &arpa) == 0);
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		const char *n = refused[i];
		char star[IDENT_NAME_MAX + 3];

		CHECKF(parse_g(n, strlen(n), &id) == -1, "accepted %s", n);
		snprintf(star, sizeof(star), "*.%s", n);
		CHECKF(pattern_str(n, &p) == -1, "pattern %s", n);
		CHECKF(pattern_str(star, &p) == -1, "pattern %s", star);
		CHECKF(!pattern_match_name(&any, check_guarded(n, strlen(n)),
					   strlen(n)), "* ~ %s", n);
		CHECKF(!pattern_match_name(&arpa, check_guarded(n, strlen(n)),
					   strlen(n)), "*.arpa ~ %s", n);
	}
	for (size_t i = 0; i < ARRAY_SIZE(fine); i++) {
		const char *n = fine[i];

		CHECKF(parse_g(n, strlen(n), &id) == 0 && id.type == IDENT_DNS,
		       "refused %s", n);
		CHECKF(pattern_match_name(&any, check_guarded(n, strlen(n)),
					  strlen(n)), "* !~ %s", n);
	}
	/* The SNI spelling of every IP identifier is no identifier itself. */
	for (size_t i = 0; i < ARRAY_SIZE(ips); i++) {
		CHECK(parse_g(ips[i], strlen(ips[i]), &id) == 0);
		CHECK(ident_sni_name(&id, sni, sizeof(sni)) > 0);
		CHECKF(parse_g(sni, strlen(sni), &id) == -1, "accepted %s", sni);
	}
}

int main(void)
{
	test_ident_good();
	test_ident_bad();
	test_ident_lengths();
	test_ipv4_vs_inet_pton();
	test_sni_name();
	test_tokens();
	test_keyauth();
	test_digest();
	test_pattern_parse();
	test_pattern_match();
	test_pattern_match_name();
	test_cidr_parse();
	test_cidr_match();
	test_addr();
	test_random_consistency();
	test_reverse_zones();
	return check_done();
}
