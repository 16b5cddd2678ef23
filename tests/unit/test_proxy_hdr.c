/*
 * Unit tests for proxy_hdr_parse() and the v1/v2 encoders: a table of v1
 * and v2 headers (and streams that are not PROXY headers at all), each fed
 * whole, one byte at a time and split in two at every offset, the input
 * placed right before a PROT_NONE page; then encoder -> parser round trips.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>	/* check.h uses abort() */
#include <string.h>
#include <sys/un.h>

#include "check.h"
#include "feed.h"
#include "wire/proxy_hdr.h"

struct pcase {
	const char *name;
	const char *in;
	size_t len;
	size_t hdr_len;		/* success: header bytes; 0 means len */
	int rc;			/* 1 = success, else the WIRE_ code */
	int version;
	bool local;
	const char *src;	/* "a.b.c.d:port", "[v6]:port"; NULL: local */
	const char *dst;
	size_t tlv_len;
};

#define S(s) .in = (s), .len = sizeof(s) - 1
#define V1(s) .rc = 1, .version = 1, S(s)
#define BAD .rc = WIRE_INVALID
#define NOTPROXY .rc = WIRE_NOTPROXY

/* v2 signature, then ver_cmd, fam, length; literals split after escapes. */
#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define V2_TCP4(len) SIG "\x21\x11\x00" len
#define ADDR4 "\xc0\x00\x02\x01" "\xc6\x33\x64\x02" "\xdc\x04" "\x01\xbb"
#define ADDR6 "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01" \
	      "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01" "\x00\x01" "\x00\x02"

#define L57 "PROXY UNKNOWN 0123456789012345678901234567890123456789012"
#define L105 L57 "012345678901234567890123456789012345678901234567"

static const struct pcase cases[] = {
	/* v1 */
	{ "v1 TCP4", V1("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
	  .src = "192.0.2.1:56324", .dst = "198.51.100.2:443" },
	{ "v1 TCP4 then HTTP",
	  V1("PROXY TCP4 10.0.0.1 10.0.0.2 1 80\r\nGET / HTTP/1.1\r\n"),
	  .hdr_len = sizeof("PROXY TCP4 10.0.0.1 10.0.0.2 1 80\r\n") - 1,
	  .src = "10.0.0.1:1", .dst = "10.0.0.2:80" },
	{ "v1 TCP4 ports 0 and 65535",
	  V1("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"),
	  .src = "0.0.0.0:0", .dst = "255.255.255.255:65535" },
	{ "v1 TCP6", V1("PROXY TCP6 2001:db8::1 ::1 1 2\r\n"),
	  .src = "[2001:db8::1]:1", .dst = "[::1]:2" },
	{ "v1 TCP6 eight groups, upper case",
	  V1("PROXY TCP6 2001:DB8:0:1:2:3:4:5 fe80:0:0:0:0:0:0:0 1 2\r\n"),
	  .src = "[2001:db8:0:1:2:3:4:5]:1", .dst = "[fe80::]:2" },
	{ "v1 TCP6 v4-mapped and trailing ::",
	  V1("PROXY TCP6 ::ffff:192.0.2.1 2001:db8:: 5 6\r\n"),
	  .src = "[::ffff:192.0.2.1]:5", .dst = "[2001:db8::]:6" },
	{ "v1 TCP6 longest line",
	  V1("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	  .src = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	  .dst = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535" },
	{ "v1 UNKNOWN", V1("PROXY UNKNOWN\r\n"), .local = true },
	{ "v1 UNKNOWN with addresses",
	  V1("PROXY UNKNOWN ffff:: ffff:: 65535 65535\r\n"), .local = true },
	{ "v1 UNKNOWN, 107 bytes", V1(L105 "\r\n"), .local = true },

	{ "v1 UNKNOWN, 108 bytes", S(L105 "x\r\n"), BAD },
	{ "v1 no CRLF in 107 bytes", S(L105 "xxxxxxxxxx"), BAD },
	{ "v1 CR as byte 107", S(L105 "x\r"), BAD },
	{ "v1 CR as byte 106", S(L105 "\r"), .rc = WIRE_PARTIAL },
	{ "v1 bare LF", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), BAD },
	{ "v1 CR without LF", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx"), BAD },
	{ "v1 TCP5", S("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), BAD },
	{ "v1 lowercase tcp4", S("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), BAD },
	{ "v1 UDP4", S("PROXY UDP4 "), BAD },
	{ "v1 UNKNOWNX", S("PROXY UNKNOWNX\r\n"), BAD },
	{ "v1 empty", S("PROXY \r\n"), BAD },
	{ "v1 two spaces", S("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), BAD },
	{ "v1 trailing space", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), BAD },
	{ "v1 missing port", S("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), BAD },
	{ "v1 extra field", S("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), BAD },
	{ "v1 octet leading zero", S("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"),
	  BAD },
	{ "v1 octet 256", S("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), BAD },
	{ "v1 three octets", S("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), BAD },
	{ "v1 five octets", S("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), BAD },
	{ "v1 empty octet", S("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n"), BAD },
	{ "v1 port leading zero", S("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"),
	  BAD },
	{ "v1 port 65536", S("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), BAD },
	{ "v1 port sign", S("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), BAD },
	{ "v1 TCP4 with IPv6", S("PROXY TCP4 ::1 ::1 1 2\r\n"), BAD },
	{ "v1 TCP6 with IPv4", S("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), BAD },
	{ "v1 IPv6 :::", S("PROXY TCP6 :::1 ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 two ::", S("PROXY TCP6 1::2::3 ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 five digits", S("PROXY TCP6 12345::1 ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 nine groups",
	  S("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 seven groups", S("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n"),
	  BAD },
	{ "v1 IPv6 :: for nothing",
	  S("PROXY TCP6 1:2:3:4::5:6:7:8 ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 trailing :", S("PROXY TCP6 1::2: ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 leading :", S("PROXY TCP6 :1::2 ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 zone", S("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 v4 in the middle",
	  S("PROXY TCP6 ::1.2.3.4:1 ::1 1 2\r\n"), BAD },
	{ "v1 IPv6 brackets", S("PROXY TCP6 [::1] ::1 1 2\r\n"), BAD },
	{ "v1 NUL in line", S("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), BAD },

	/* not a PROXY header, or not yet known */
	{ "empty", S(""), .rc = WIRE_PARTIAL },
	{ "P", S("P"), .rc = WIRE_PARTIAL },
	{ "PROXY", S("PROXY"), .rc = WIRE_PARTIAL },
	{ "v1 prefix", S("PROXY TCP4 1.2.3.4 "), .rc = WIRE_PARTIAL },
	{ "v2 signature prefix", S("\r\n\r\n\0\r"), .rc = WIRE_PARTIAL },
	{ "HTTP request", S("GET / HTTP/1.1\r\n"), NOTPROXY },
	{ "TLS hello", S("\x16\x03\x01\x00\xdc\x01\x00\x00\xd8\x03\x03"),
	  NOTPROXY },
	{ "PROXX", S("PROXX TCP4"), NOTPROXY },
	{ "PROXY without space", S("PROXY\tTCP4"), NOTPROXY },
	{ "lowercase proxy", S("proxy TCP4 "), NOTPROXY },
	{ "empty line then GET", S("\r\nGET / HTTP/1.1\r\n"), NOTPROXY },
	{ "two empty lines then GET", S("\r\n\r\nGET /"), NOTPROXY },
	{ "v2 signature, last byte wrong", S("\r\n\r\n\0\r\nQUIX"), NOTPROXY },

	/* v2 */
	{ "v2 TCP4", S(V2_TCP4("\x0c") ADDR4), .rc = 1, .version = 2,
	  .src = "192.0.2.1:56324", .dst = "198.51.100.2:443" },
	{ "v2 TCP4 then TLS",
	  S(V2_TCP4("\x0c") ADDR4 "\x16\x03\x01\x00\xdc"), .hdr_len = 28,
	  .rc = 1, .version = 2, .src = "192.0.2.1:56324",
	  .dst = "198.51.100.2:443" },
	{ "v2 TCP6", S(SIG "\x21\x21\x00\x24" ADDR6), .rc = 1, .version = 2,
	  .src = "[2001:db8::1]:1", .dst = "[::1]:2" },
	{ "v2 TCP4 with TLVs",
	  S(V2_TCP4("\x32") ADDR4 "\x01\x00\x02" "h2" "\x02\x00\x09"
	    "a.example" "\x04\x00\x00" "\x20\x00\x0f" "\x01" "\0\0\0\0"
	    "\x21\x00\x07" "TLSv1.3"),
	  .rc = 1, .version = 2, .src = "192.0.2.1:56324",
	  .dst = "198.51.100.2:443", .tlv_len = 38 },
	{ "v2 TCP6 with a TLV",
	  S(SIG "\x21\x21\x00\x29" ADDR6 "\x05\x00\x02" "id"), .rc = 1,
	  .version = 2, .src = "[2001:db8::1]:1", .dst = "[::1]:2",
	  .tlv_len = 5 },
	{ "v2 LOCAL", S(SIG "\x20\x00\x00\x00"), .rc = 1, .version = 2,
	  .local = true },
	{ "v2 LOCAL with addresses",
	  S(SIG "\x20\x11\x00\x0c" ADDR4), .rc = 1, .version = 2,
	  .local = true },
	{ "v2 LOCAL block skipped unread",
	  S(SIG "\x20\x00\x00\x05" "\xff\xff\xff\xff\xff"), .rc = 1,
	  .version = 2, .local = true },
	{ "v2 PROXY UNSPEC", S(SIG "\x21\x00\x00\x00"), .rc = 1,
	  .version = 2, .local = true },
	{ "v2 PROXY UDP4", S(SIG "\x21\x12\x00\x0c" ADDR4), .rc = 1,
	  .version = 2, .local = true },
	{ "v2 PROXY INET, UNSPEC transport",
	  S(SIG "\x21\x10\x00\x0c" ADDR4), .rc = 1, .version = 2,
	  .local = true },

	{ "v2 version 1", S(SIG "\x11\x11\x00\x0c" ADDR4), BAD },
	{ "v2 version 3", S(SIG "\x31"), BAD },
	{ "v2 command 2", S(SIG "\x22"), BAD },
	{ "v2 family 4", S(SIG "\x21\x41\x00\x0c" ADDR4), BAD },
	{ "v2 transport 3", S(SIG "\x21\x13\x00\x0c" ADDR4), BAD },
	{ "v2 TCP4 length 11", S(V2_TCP4("\x0b") ADDR4), BAD },
	{ "v2 TCP4 length 0", S(V2_TCP4("\x00")), BAD },
	{ "v2 TCP6 length 35", S(SIG "\x21\x21\x00\x23" ADDR6), BAD },
	{ "v2 TCP6 length of TCP4", S(SIG "\x21\x21\x00\x0c" ADDR4), BAD },
	{ "v2 UNIX length 12", S(SIG "\x21\x31\x00\x0c" ADDR4), BAD },
	{ "v2 TLV value past end",
	  S(V2_TCP4("\x11") ADDR4 "\x01\x00\x03" "h2"), BAD },
	{ "v2 TLV header cut",
	  S(V2_TCP4("\x0e") ADDR4 "\x01\x00"), BAD },
	{ "v2 TLV one byte",
	  S(V2_TCP4("\x0d") ADDR4 "\x04"), BAD },
	{ "v2 SSL TLV too short",
	  S(V2_TCP4("\x13") ADDR4 "\x20\x00\x04" "\x01\0\0\0"), BAD },
	{ "v2 SSL sub-TLV past end",
	  S(V2_TCP4("\x17") ADDR4 "\x20\x00\x08" "\x01\0\0\0\0"
	    "\x21\x00\x07"), BAD },
	{ "v2 length 537", S(SIG "\x21\x11\x02\x19"), .rc = WIRE_TOOBIG },
	{ "v2 length 65535", S(SIG "\x21\x11\xff\xff"), .rc = WIRE_TOOBIG },
	{ "v2 header cut", S(V2_TCP4("\x0c") "\xc0\x00\x02"),
	  .rc = WIRE_PARTIAL },
};

/* "a.b.c.d:port", "[v6]:port", or "" for AF_UNSPEC. */
static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(out, cap, "%s:%u", a, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(out, cap, "[%s]:%u", a, ntohs(s->sin6_port));
	} else {
		snprintf(out, cap, "%s", ss->ss_family ? "?" : "");
	}
}

static int parse(const void *arg, const uint8_t *in, size_t len, void *out)
{
	return proxy_hdr_parse(in, len, out);
}

static int parse_at(const char *in, size_t len, struct proxy_hdr *h)
{
	return proxy_hdr_parse(check_guarded(in, len), len, h);
}

static void check_fields(const void *arg, enum feed_mode m, int rc,
			 const void *out, const uint8_t *base, size_t len)
{
	const struct pcase *c = arg;
	const struct proxy_hdr *h = out;
	const char *mode = feed_mode_name(m);
	char s[80], d[80];
	const char *b = (const char *)base;

	/* Tying h->len to rc once, on the whole input, is enough. */
	if (m == FEED_WHOLE)
		CHECKF(h->len == (size_t)rc, "%s: len", c->name);
	fmt_addr(&h->src, s, sizeof(s));
	fmt_addr(&h->dst, d, sizeof(d));
	CHECKF(h->version == c->version && h->local == c->local,
	       "%s/%s: version %d local %d", c->name, mode, h->version,
	       h->local);
	CHECKF(strcmp(s, c->src ? c->src : "") == 0 &&
	       strcmp(d, c->dst ? c->dst : "") == 0,
	       "%s/%s: src '%s' dst '%s'", c->name, mode, s, d);
	CHECKF(h->tlvs.len == c->tlv_len && h->tlvs.ptr >= b &&
	       h->tlvs.ptr + h->tlvs.len <= b + len,
	       "%s/%s: tlvs %zu", c->name, mode, h->tlvs.len);
}

static void run(const struct pcase *c)
{
	static const struct feed_ops ops = { parse, check_fields };
	struct proxy_hdr h;

	feed_run(c->name, c->in, c->len, feed_want(c->rc, c->hdr_len, c->len),
		 &ops, c, &h);
}

/* NOTPROXY must come on the first byte that differs from both signatures. */
static void test_notproxy_early(void)
{
	struct proxy_hdr h;

	CHECK(parse_at("G", 1, &h) == WIRE_NOTPROXY);
	CHECK(parse_at("\x16", 1, &h) == WIRE_NOTPROXY);
	CHECK(parse_at("PR", 2, &h) == WIRE_PARTIAL);
	CHECK(parse_at("PRO ", 4, &h) == WIRE_NOTPROXY);
	CHECK(parse_at("\r\n\r\n\0\r\nQ", 8, &h) == WIRE_PARTIAL);
	CHECK(parse_at("\r\n\r\n\0\r\nX", 8, &h) == WIRE_NOTPROXY);
	CHECK(parse_at("\r\n\r\nG", 5, &h) == WIRE_NOTPROXY);
}

/* Headers too long for a string literal table: UNIX, the largest v2. */
static void test_v2_large(void)
{
	static uint8_t buf[PROXY_HDR_MAX_LEN + 8];
	struct pcase c = { .version = 2, .rc = 1 };
	size_t n;

	memcpy(buf, SIG, 12);
	buf[12] = 0x21;
	buf[13] = 0x31;		/* UNIX stream */
	buf[14] = 0;
	buf[15] = 216 + 6;
	memset(buf + 16, 'u', 216);
	memcpy(buf + 16 + 216, "\x04\x00\x03xyz", 6);
	c.name = "v2 UNIX stream with TLV";
	c.in = (const char *)buf;
	c.len = 16 + 216 + 6;
	c.local = true;
	c.tlv_len = 6;
	run(&c);

	/* TCP4 and one NOOP TLV filling the length to 536. */
	n = PROXY_HDR_V2_MAX_LEN;
	memcpy(buf, V2_TCP4("\x0c") ADDR4, 28);
	buf[14] = (uint8_t)(n >> 8);
	buf[15] = (uint8_t)n;
	buf[28] = 0x04;
	buf[29] = (uint8_t)((n - 15) >> 8);
	buf[30] = (uint8_t)(n - 15);
	memset(buf + 31, 0, n - 15);
	c = (struct pcase){ .name = "v2 length 536", .in = (const char *)buf,
			    .len = 16 + n, .rc = 1, .version = 2,
			    .src = "192.0.2.1:56324",
			    .dst = "198.51.100.2:443", .tlv_len = n - 12 };
	run(&c);

	/* One more byte of TLV: over the cap, refused before it arrives. */
	n++;
	buf[14] = (uint8_t)(n >> 8);
	buf[15] = (uint8_t)n;
	buf[30]++;
	c.name = "v2 length 537 (TLV)";
	c.len = 16 + n;
	c.rc = WIRE_TOOBIG;
	run(&c);
}

static struct sockaddr_storage mk4(const char *a, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	BUG_ON(inet_pton(AF_INET, a, &s->sin_addr) != 1);
	return ss;
}

static struct sockaddr_storage mk6(const char *a, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	BUG_ON(inet_pton(AF_INET6, a, &s->sin6_addr) != 1);
	return ss;
}

struct rt_case {
	const char *name;
	struct sockaddr_storage src, dst;
	bool null_src;
	const char *want_src;	/* after the round trip; NULL when local */
	const char *want_dst;
	const char *want_v1;	/* exact v1 line */
	size_t want_v2_len;
};

static void round_trip(const struct rt_case *r)
{
	const struct sockaddr *src = r->null_src ? NULL :
				     (const struct sockaddr *)&r->src;
	const struct sockaddr *dst = (const struct sockaddr *)&r->dst;
	char line[PROXY_HDR_V1_MAX_LEN];
	uint8_t bin[PROXY_HDR_MAX_LEN];
	struct proxy_hdr h;
	char s[80], d[80];
	int n;

	n = proxy_hdr_write_v1(line, sizeof(line), src, dst);
	CHECKF(n > 0 && (size_t)n == strlen(r->want_v1) &&
	       memcmp(line, r->want_v1, (size_t)n) == 0,
	       "%s: v1 line '%.*s'", r->name, n > 0 ? n : 0, line);
	CHECKF(proxy_hdr_write_v1(line, (size_t)(n - 1), src, dst) == -1,
	       "%s: v1 short cap", r->name);
	CHECKF(proxy_hdr_write_v1(line, (size_t)n, src, dst) == n,
	       "%s: v1 exact cap", r->name);
	CHECKF(proxy_hdr_parse((const uint8_t *)line, (size_t)n, &h) == n,
	       "%s: v1 parse", r->name);
	fmt_addr(&h.src, s, sizeof(s));
	fmt_addr(&h.dst, d, sizeof(d));
	CHECKF(h.version == 1 && h.local == !r->want_src &&
	       strcmp(s, r->want_src ? r->want_src : "") == 0 &&
	       strcmp(d, r->want_dst ? r->want_dst : "") == 0,
	       "%s: v1 round trip '%s' '%s'", r->name, s, d);

	n = proxy_hdr_write_v2(bin, sizeof(bin), src, dst);
	CHECKF(n > 0 && (size_t)n == r->want_v2_len, "%s: v2 len %d",
	       r->name, n);
	CHECKF(proxy_hdr_write_v2(bin, (size_t)(n - 1), src, dst) == -1,
	       "%s: v2 short cap", r->name);
	CHECKF(proxy_hdr_parse(bin, (size_t)n, &h) == n, "%s: v2 parse",
	       r->name);
	fmt_addr(&h.src, s, sizeof(s));
	fmt_addr(&h.dst, d, sizeof(d));
	CHECKF(h.version == 2 && h.local == !r->want_src &&
	       strcmp(s, r->want_src ? r->want_src : "") == 0 &&
	       strcmp(d, r->want_dst ? r->want_dst : "") == 0,
	       "%s: v2 round trip '%s' '%s'", r->name, s, d);
}

static void test_round_trips(void)
{
	struct sockaddr_storage un;
	size_t i;

	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNIX;

	const struct rt_case rts[] = {
		{ "v4", mk4("192.0.2.1", 56324), mk4("198.51.100.2", 443),
		  false, "192.0.2.1:56324", "198.51.100.2:443",
		  "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", 28 },
		{ "v6", mk6("2001:db8::1", 1), mk6("::1", 65535), false,
		  "[2001:db8::1]:1", "[::1]:65535",
		  "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", 52 },
		{ "v4 src, v6 dst", mk4("192.0.2.1", 7), mk6("2001:db8::2", 8),
		  false, "[::ffff:192.0.2.1]:7", "[2001:db8::2]:8",
		  "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 7 8\r\n", 52 },
		{ "v6 src, v4 dst", mk6("2001:db8::2", 0), mk4("10.1.2.3", 80),
		  false, "[2001:db8::2]:0", "[::ffff:10.1.2.3]:80",
		  "PROXY TCP6 2001:db8::2 ::ffff:10.1.2.3 0 80\r\n", 52 },
		{ "longest v6",
		  mk6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535),
		  mk6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535), false,
		  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535",
		  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
		  "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe "
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		  52 },
		{ "NULL src", mk4("0.0.0.0", 0), mk4("10.0.0.1", 80), true,
		  NULL, NULL, "PROXY UNKNOWN\r\n", 16 },
		{ "unix src", un, mk4("10.0.0.1", 80), false, NULL, NULL,
		  "PROXY UNKNOWN\r\n", 16 },
	};

	for (i = 0; i < ARRAY_SIZE(rts); i++)
		round_trip(&rts[i]);
}

int main(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		run(&cases[i]);
	test_notproxy_early();
	test_v2_large();
	test_round_trips();
	printf("%zu table cases\n", ARRAY_SIZE(cases));
	return check_done();
}
