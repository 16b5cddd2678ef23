/*
 * PROXY protocol v1/v2 parser and encoders.
 *
 * The parser is stateless and rescans buf from the start on each call (a
 * header is at most 552 bytes). It decides as early as the bytes allow:
 * "not a PROXY header" on the first byte that differs from both signatures,
 * a bad v1 protocol word or v2 version/command/family as soon as it is
 * there, an oversized v2 length before its body arrives; a v1 line without
 * CRLF in its first 107 bytes is refused. A decided result never changes
 * when more bytes arrive.
 *
 * Addresses are parsed here rather than with inet_pton(): the peer's bytes
 * are not NUL-terminated, and the text forms accepted are narrower (no
 * leading zeros in an IPv4 octet, which some parsers read as octal).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wire/proxy_hdr.h"

static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

static const uint8_t v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};
#define V2_SIG_LEN sizeof(v2_sig)

#define V2_VERSION 0x2
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_AF_UNSPEC 0x0
#define V2_AF_INET 0x1
#define V2_AF_INET6 0x2
#define V2_AF_UNIX 0x3
#define V2_TP_UNSPEC 0x0
#define V2_TP_STREAM 0x1
#define V2_TP_DGRAM 0x2

#define V2_ADDR_INET_LEN 12	/* 2 x 4 address bytes, 2 x 2 port bytes */
#define V2_ADDR_INET6_LEN 36
#define V2_ADDR_UNIX_LEN 216	/* 2 x 108 path bytes */

#define PP2_TYPE_SSL 0x20
#define PP2_SSL_FIXED_LEN 5	/* client (1), verify (4) */

/* 1: all of sig matched; 0: the available bytes match a prefix; -1: no. */
static int sig_match(const uint8_t *buf, size_t len, const uint8_t *sig,
		     size_t sig_len)
{
	size_t n = len < sig_len ? len : sig_len;

	if (memcmp(buf, sig, n) != 0)
		return -1;
	return n == sig_len ? 1 : 0;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}


/* A decimal 0..max of 1..5 digits, no leading zero except "0" itself. */
static bool parse_dec(const uint8_t *p, size_t n, uint32_t max, uint32_t *v)
{
	uint32_t x = 0;
	size_t i;

	if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
		return false;
	for (i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return false;
		x = x * 10 + (uint32_t)(p[i] - '0');
	}
	if (x > max)
		return false;
	*v = x;
	return true;
}

/* Exactly "a.b.c.d", every part a strict decimal 0..255. */
static bool parse_ip4(const uint8_t *p, size_t n, uint8_t out[4])
{
	size_t i = 0, part;

	for (part = 0; part < 4; part++) {
		size_t s = i;
		uint32_t v;

		while (i < n && p[i] != '.')
			i++;
		if (!parse_dec(p + s, i - s, 255, &v))
			return false;
		out[part] = (uint8_t)v;
		if (part < 3) {
			if (i == n)
				return false;
			i++;	/* the '.' */
		}
	}
	return i == n;
}

/*
 * RFC 4291 §2.2 text: eight groups of 1..4 hex digits, at most one "::"
 * standing for one or more zero groups, optionally ending in a dotted quad
 * that stands for the last two groups.
 */
static bool parse_ip6(const uint8_t *p, size_t n, uint8_t out[16])
{
	uint16_t w[8];
	int nw = 0, gap = -1, k;
	size_t i = 0;

	if (n < 2)
		return false;
	if (p[0] == ':') {
		if (p[1] != ':')
			return false;
		gap = 0;
		i = 2;
	}
	while (i < n) {
		size_t s = i;
		uint32_t v = 0;

		while (i < n && i - s < 4 && hex_digit(p[i]) >= 0)
			v = v * 16 + (uint32_t)hex_digit(p[i++]);
		if (i < n && p[i] == '.') {
			uint8_t q[4];

			if (nw > 6 || !parse_ip4(p + s, n - s, q))
				return false;
			w[nw++] = (uint16_t)(q[0] << 8 | q[1]);
			w[nw++] = (uint16_t)(q[2] << 8 | q[3]);
			break;	/* the dotted quad ran to the end */
		}
		if (i == s || nw == 8)
			return false;
		w[nw++] = (uint16_t)v;
		if (i == n)
			break;
		if (p[i] != ':')
			return false;
		if (++i == n)
			return false;	/* a trailing single ':' */
		if (p[i] == ':') {
			if (gap >= 0)
				return false;
			gap = nw;
			i++;
		}
	}
	if (gap < 0 ? nw != 8 : nw > 7)
		return false;

	memset(out, 0, 16);
	if (gap < 0)
		gap = nw;
	for (k = 0; k < gap; k++) {
		out[2 * k] = (uint8_t)(w[k] >> 8);
		out[2 * k + 1] = (uint8_t)w[k];
	}
	for (k = gap; k < nw; k++) {
		int d = 8 - (nw - k);

		out[2 * d] = (uint8_t)(w[k] >> 8);
		out[2 * d + 1] = (uint8_t)w[k];
	}
	return true;
}

static void set_in4(struct sockaddr_storage *ss, const uint8_t a[4],
		    uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	memcpy(&sin->sin_addr, a, 4);
}

static void set_in6(struct sockaddr_storage *ss, const uint8_t a[16],
		    uint16_t port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(&sin6->sin6_addr, a, 16);
}

/* Splits off the next space-separated word; empty words are refused. */
static bool next_word(const uint8_t *p, size_t n, size_t *i, size_t *ws,
		      size_t *wl, bool last)
{
	size_t s = *i;

	while (*i < n && p[*i] != ' ')
		(*i)++;
	if (*i == s)
		return false;
	*ws = s;
	*wl = *i - s;
	if (last)
		return *i == n;
	if (*i == n)
		return false;
	(*i)++;
	return true;
}

/* The v1 line between "PROXY " and CRLF. */
static int parse_v1_line(const uint8_t *p, size_t n, struct proxy_hdr *h)
{
	size_t i = 5, s[4], l[4];
	uint32_t sport, dport;
	bool v6;
	int k;

	if (n >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (n == 7 || p[7] == ' ')) {
		/* Whatever follows UNKNOWN is to be ignored. */
		h->local = true;
		return 0;
	}
	if (n < 5 || memcmp(p, "TCP", 3) != 0 || (p[3] != '4' && p[3] != '6') ||
	    p[4] != ' ')
		return WIRE_INVALID;
	v6 = p[3] == '6';
	for (k = 0; k < 4; k++) {
		if (!next_word(p, n, &i, &s[k], &l[k], k == 3))
			return WIRE_INVALID;
	}
	if (!parse_dec(p + s[2], l[2], 65535, &sport) ||
	    !parse_dec(p + s[3], l[3], 65535, &dport))
		return WIRE_INVALID;
	if (v6) {
		uint8_t a[16], b[16];

		if (!parse_ip6(p + s[0], l[0], a) ||
		    !parse_ip6(p + s[1], l[1], b))
			return WIRE_INVALID;
		set_in6(&h->src, a, (uint16_t)sport);
		set_in6(&h->dst, b, (uint16_t)dport);
	} else {
		uint8_t a[4], b[4];

		if (!parse_ip4(p + s[0], l[0], a) ||
		    !parse_ip4(p + s[1], l[1], b))
			return WIRE_INVALID;
		set_in4(&h->src, a, (uint16_t)sport);
		set_in4(&h->dst, b, (uint16_t)dport);
	}
	return 0;
}

/*
 * While the line is incomplete, refuse early when the protocol word can
 * already not be one of TCP4, TCP6, UNKNOWN.
 */
static bool v1_word_possible(const uint8_t *p, size_t n)
{
	static const char *const words[] = { "TCP4 ", "TCP6 ", "UNKNOWN" };
	size_t k;

	for (k = 0; k < ARRAY_SIZE(words); k++) {
		size_t wl = strlen(words[k]);	/* our literal */

		if (memcmp(p, words[k], n < wl ? n : wl) == 0)
			return true;
	}
	return false;
}

static int parse_v1(const uint8_t *buf, size_t len, struct proxy_hdr *h)
{
	size_t lim = len < PROXY_HDR_V1_MAX_LEN ? len : PROXY_HDR_V1_MAX_LEN;
	size_t i;
	int rc;

	for (i = V1_SIG_LEN; i < lim; i++) {
		if (buf[i] == '\r' || buf[i] == '\n')
			break;
	}
	if (!v1_word_possible(buf + V1_SIG_LEN, i - V1_SIG_LEN))
		return WIRE_INVALID;
	if (i == lim)
		return len >= PROXY_HDR_V1_MAX_LEN ? WIRE_INVALID :
						     WIRE_PARTIAL;
	/* A bare LF, or a CR whose LF would be byte 108. */
	if (buf[i] != '\r' || i + 1 == PROXY_HDR_V1_MAX_LEN)
		return WIRE_INVALID;
	if (i + 1 == len)
		return WIRE_PARTIAL;
	if (buf[i + 1] != '\n')
		return WIRE_INVALID;

	rc = parse_v1_line(buf + V1_SIG_LEN, i - V1_SIG_LEN, h);
	if (rc < 0)
		return rc;
	h->version = 1;
	h->len = i + 2;
	return 0;
}

/* TLVs: each a type, a 2-byte length and a value that fits exactly. */
static bool walk_tlvs(const uint8_t *p, size_t n, bool nested)
{
	while (n) {
		size_t vl;

		if (n < 3)
			return false;
		vl = (size_t)p[1] << 8 | p[2];
		if (vl > n - 3)
			return false;
		/* PP2_TYPE_SSL: client, verify, then sub-TLVs; one level. */
		if (!nested && p[0] == PP2_TYPE_SSL &&
		    (vl < PP2_SSL_FIXED_LEN ||
		     !walk_tlvs(p + 3 + PP2_SSL_FIXED_LEN,
				vl - PP2_SSL_FIXED_LEN, true)))
			return false;
		p += 3 + vl;
		n -= 3 + vl;
	}
	return true;
}

static int parse_v2(const uint8_t *buf, size_t len, struct proxy_hdr *h)
{
	const uint8_t *a = buf + PROXY_HDR_V2_HDR_LEN;
	unsigned int cmd, fam, tp;
	size_t blen, alen = 0;

	if (len < 13)
		return WIRE_PARTIAL;
	if (buf[12] >> 4 != V2_VERSION)
		return WIRE_INVALID;
	cmd = buf[12] & 0xf;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return WIRE_INVALID;
	if (len < 14)
		return WIRE_PARTIAL;
	fam = buf[13] >> 4;
	tp = buf[13] & 0xf;
	if (fam > V2_AF_UNIX || tp > V2_TP_DGRAM)
		return WIRE_INVALID;
	if (len < PROXY_HDR_V2_HDR_LEN)
		return WIRE_PARTIAL;
	blen = (size_t)buf[14] << 8 | buf[15];
	if (blen > PROXY_HDR_V2_MAX_LEN)
		return WIRE_TOOBIG;

	/*
	 * LOCAL (a health check from the balancer itself) and UNSPEC carry
	 * no addresses we may use: the block is skipped unread, as the
	 * specification asks of receivers.
	 */
	if (cmd == V2_CMD_PROXY && fam != V2_AF_UNSPEC) {
		alen = fam == V2_AF_INET ? V2_ADDR_INET_LEN :
		       fam == V2_AF_INET6 ? V2_ADDR_INET6_LEN :
		       V2_ADDR_UNIX_LEN;
		if (blen < alen)
			return WIRE_INVALID;
	}
	if (len < PROXY_HDR_V2_HDR_LEN + blen)
		return WIRE_PARTIAL;

	h->version = 2;
	h->len = PROXY_HDR_V2_HDR_LEN + blen;
	if (alen == 0) {
		h->local = true;
		return 0;
	}
	if (!walk_tlvs(a + alen, blen - alen, false))
		return WIRE_INVALID;
	h->tlvs = (struct slice){ .ptr = (const char *)a + alen,
				  .len = blen - alen };
	/* UNIX sockets and datagrams: nothing a TCP peer address can be. */
	if (fam == V2_AF_UNIX || tp != V2_TP_STREAM) {
		h->local = true;
		return 0;
	}
	if (fam == V2_AF_INET) {
		set_in4(&h->src, a, (uint16_t)(a[8] << 8 | a[9]));
		set_in4(&h->dst, a + 4, (uint16_t)(a[10] << 8 | a[11]));
	} else {
		set_in6(&h->src, a, (uint16_t)(a[32] << 8 | a[33]));
		set_in6(&h->dst, a + 16, (uint16_t)(a[34] << 8 | a[35]));
	}
	return 0;
}

int proxy_hdr_parse(const uint8_t *buf, size_t len, struct proxy_hdr *out)
{
	struct proxy_hdr h;
	int m1, m2, rc;

	if (len == 0)
		return WIRE_PARTIAL;
	m1 = sig_match(buf, len, (const uint8_t *)v1_sig, V1_SIG_LEN);
	m2 = sig_match(buf, len, v2_sig, V2_SIG_LEN);
	if (m1 < 0 && m2 < 0)
		return WIRE_NOTPROXY;
	if (m1 <= 0 && m2 <= 0)
		return WIRE_PARTIAL;

	memset(&h, 0, sizeof(h));
	h.tlvs.ptr = (const char *)buf;
	rc = m1 > 0 ? parse_v1(buf, len, &h) : parse_v2(buf, len, &h);
	if (rc < 0)
		return rc;
	*out = h;
	return (int)h.len;
}

/*
 * The address of a TCP endpoint as 16 bytes (IPv4 mapped) plus whether it
 * is IPv4. False for NULL and for families we cannot express.
 */
static bool endpoint(const struct sockaddr *sa, uint8_t a16[16], bool *is4,
		     uint16_t *port)
{
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		memset(a16, 0, 10);
		a16[10] = 0xff;
		a16[11] = 0xff;
		memcpy(a16 + 12, &sin->sin_addr, 4);
		*is4 = true;
		*port = ntohs(sin->sin_port);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
			(const struct sockaddr_in6 *)sa;

		memcpy(a16, &sin6->sin6_addr, 16);
		*is4 = false;
		*port = ntohs(sin6->sin6_port);
		return true;
	}
	return false;
}

int proxy_hdr_write_v1(char *buf, size_t cap, const struct sockaddr *src,
		       const struct sockaddr *dst)
{
	char line[PROXY_HDR_V1_MAX_LEN + 1];
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	uint8_t sa[16], da[16];
	uint16_t sp, dp;
	bool s4, d4;
	int n;

	if (!endpoint(src, sa, &s4, &sp) || !endpoint(dst, da, &d4, &dp)) {
		n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
	} else if (s4 && d4) {
		inet_ntop(AF_INET, sa + 12, s, sizeof(s));
		inet_ntop(AF_INET, da + 12, d, sizeof(d));
		n = snprintf(line, sizeof(line), "PROXY TCP4 %s %s %u %u\r\n",
			     s, d, sp, dp);
	} else {
		inet_ntop(AF_INET6, sa, s, sizeof(s));
		inet_ntop(AF_INET6, da, d, sizeof(d));
		n = snprintf(line, sizeof(line), "PROXY TCP6 %s %s %u %u\r\n",
			     s, d, sp, dp);
	}
	/* The longest TCP6 line is 104 bytes: truncation is our bug. */
	BUG_ON(n < 0 || (size_t)n >= sizeof(line));
	if ((size_t)n > cap)
		return -1;
	memcpy(buf, line, (size_t)n);
	return n;
}

int proxy_hdr_write_v2(uint8_t *buf, size_t cap, const struct sockaddr *src,
		       const struct sockaddr *dst)
{
	uint8_t sa[16], da[16];
	uint16_t sp, dp;
	bool s4, d4, ok;
	size_t alen;
	uint8_t *a;

	ok = endpoint(src, sa, &s4, &sp) && endpoint(dst, da, &d4, &dp);
	alen = !ok ? 0 : (s4 && d4) ? V2_ADDR_INET_LEN : V2_ADDR_INET6_LEN;
	if (cap < PROXY_HDR_V2_HDR_LEN + alen)
		return -1;

	memcpy(buf, v2_sig, V2_SIG_LEN);
	buf[14] = 0;
	buf[15] = (uint8_t)alen;
	a = buf + PROXY_HDR_V2_HDR_LEN;
	if (!ok) {
		buf[12] = V2_VERSION << 4 | V2_CMD_LOCAL;
		buf[13] = V2_AF_UNSPEC << 4 | V2_TP_UNSPEC;
	} else if (alen == V2_ADDR_INET_LEN) {
		buf[12] = V2_VERSION << 4 | V2_CMD_PROXY;
		buf[13] = V2_AF_INET << 4 | V2_TP_STREAM;
		memcpy(a, sa + 12, 4);
		memcpy(a + 4, da + 12, 4);
		a[8] = (uint8_t)(sp >> 8);
		a[9] = (uint8_t)sp;
		a[10] = (uint8_t)(dp >> 8);
		a[11] = (uint8_t)dp;
	} else {
		buf[12] = V2_VERSION << 4 | V2_CMD_PROXY;
		buf[13] = V2_AF_INET6 << 4 | V2_TP_STREAM;
		memcpy(a, sa, 16);
		memcpy(a + 16, da, 16);
		a[32] = (uint8_t)(sp >> 8);
		a[33] = (uint8_t)sp;
		a[34] = (uint8_t)(dp >> 8);
		a[35] = (uint8_t)dp;
	}
	return (int)(PROXY_HDR_V2_HDR_LEN + alen);
}
