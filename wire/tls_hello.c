/*
 * ClientHello reassembly and parsing (RFC 8446 §4.1.2, §5.1; RFC 6066 §3;
 * RFC 7301 §3.1).
 *
 * The parser is stateless: every call rescans buf from its start. Inputs are
 * bounded by the caller's peek buffer (a hello is rarely above 2 KiB), and
 * rescanning is what makes the result independent of how the stream was
 * split into reads. Two stages:
 *
 *  1. Record layer: walk the records, check each header byte as soon as it
 *     is there (so junk is refused on its first byte), and copy the fragment
 *     bytes into scratch until the handshake message is complete. The 4-byte
 *     handshake header is kept aside first, so a length above scratch_cap is
 *     refused (WIRE_TOOBIG) before a single body byte is stored.
 *  2. Message: the reassembled ClientHello is parsed with bounded readers;
 *     every length is checked against the bytes that enclose it, and every
 *     vector must end exactly where its parent says.
 *
 * Invariant for the caller: a decided result for a prefix of the stream is
 * the result for any longer stream, because every check only looks at bytes
 * before the point where it decides.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "wire/tls_hello.h"

#define TLS_CT_HANDSHAKE 22
#define TLS_HS_CLIENT_HELLO 1
#define TLS_RANDOM_LEN 32
#define TLS_SESSION_ID_MAX 32

#define TLS_EXT_SERVER_NAME 0
#define TLS_EXT_ALPN 16
#define TLS_EXT_SUPPORTED_VERSIONS 43

#define TLS_SNI_HOST_NAME 0
#define TLS_VERSION_13 0x0304

/*
 * A bounded reader over part of the reassembled message. off never exceeds
 * len; every accessor fails instead of reading past len.
 */
struct rd {
	const uint8_t *p;
	size_t len;
	size_t off;
};

static size_t rd_left(const struct rd *r)
{
	return r->len - r->off;
}

static bool rd_u8(struct rd *r, uint8_t *v)
{
	if (rd_left(r) < 1)
		return false;
	*v = r->p[r->off++];
	return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
	if (rd_left(r) < 2)
		return false;
	*v = (uint16_t)(r->p[r->off] << 8 | r->p[r->off + 1]);
	r->off += 2;
	return true;
}

static bool rd_skip(struct rd *r, size_t n)
{
	if (rd_left(r) < n)
		return false;
	r->off += n;
	return true;
}

/* Takes the next n bytes as a sub-reader. */
static bool rd_sub(struct rd *r, size_t n, struct rd *sub)
{
	if (rd_left(r) < n)
		return false;
	sub->p = r->p + r->off;
	sub->len = n;
	sub->off = 0;
	r->off += n;
	return true;
}

/* A vector with a one-byte length prefix (TLS "<0..2^8-1>"). */
static bool rd_vec8(struct rd *r, struct rd *sub)
{
	uint8_t n;

	return rd_u8(r, &n) && rd_sub(r, n, sub);
}

/* A vector with a two-byte length prefix (TLS "<0..2^16-1>"). */
static bool rd_vec16(struct rd *r, struct rd *sub)
{
	uint16_t n;

	return rd_u16(r, &n) && rd_sub(r, n, sub);
}

static struct slice rd_slice(const struct rd *r)
{
	return (struct slice){ .ptr = (const char *)r->p, .len = r->len };
}

/*
 * server_name (RFC 6066 §3): a non-empty ServerNameList. The first host_name
 * is the SNI; a second host_name is refused because the RFC forbids it and
 * because we and the upstream could otherwise route by different names.
 * Other name types are skipped (they have a u16 length like host_name).
 */
static int parse_sni(struct rd *ext, struct tls_hello *h)
{
	struct rd list, name;
	uint8_t type;

	if (!rd_vec16(ext, &list) || rd_left(ext) != 0 || list.len == 0)
		return WIRE_INVALID;
	while (rd_left(&list)) {
		if (!rd_u8(&list, &type) || !rd_vec16(&list, &name))
			return WIRE_INVALID;
		if (type != TLS_SNI_HOST_NAME)
			continue;
		if (h->has_sni)
			return WIRE_INVALID;
		if (name.len == 0 || name.len > TLS_SNI_MAX ||
		    memchr(name.p, 0, name.len))
			return WIRE_INVALID;
		h->sni = rd_slice(&name);
		h->has_sni = true;
	}
	return 0;
}

/* ALPN (RFC 7301 §3.1): a non-empty list of names of 1..255 bytes each. */
static int parse_alpn(struct rd *ext, struct tls_hello *h)
{
	struct rd list, name;

	if (!rd_vec16(ext, &list) || rd_left(ext) != 0 || list.len == 0)
		return WIRE_INVALID;
	while (rd_left(&list)) {
		if (!rd_vec8(&list, &name) || name.len == 0)
			return WIRE_INVALID;
	}
	h->alpn = rd_slice(&list);
	h->has_alpn = true;
	return 0;
}

/* supported_versions (RFC 8446 §4.2.1): ProtocolVersion versions<2..254>. */
static int parse_versions(struct rd *ext, struct tls_hello *h)
{
	struct rd list;
	uint16_t v;

	if (!rd_vec8(ext, &list) || rd_left(ext) != 0 || list.len < 2 ||
	    list.len % 2)
		return WIRE_INVALID;
	while (rd_u16(&list, &v)) {
		if (v == TLS_VERSION_13)
			h->offers_tls13 = true;
	}
	return 0;
}

/*
 * The extensions block. Duplicates are refused (RFC 8446 §4.2) with a bitmap
 * of all 2^16 types: O(n) where a pairwise check over up to 4096 tiny
 * extensions would be quadratic. GREASE types are ordinary unknown types.
 */
static int parse_extensions(struct rd *blk, struct tls_hello *h)
{
	uint64_t seen[65536 / 64];
	struct rd ext;
	uint16_t type;
	int rc;

	memset(seen, 0, sizeof(seen));
	while (rd_left(blk)) {
		if (!rd_u16(blk, &type) || !rd_vec16(blk, &ext))
			return WIRE_INVALID;
		if (seen[type / 64] & (UINT64_C(1) << (type % 64)))
			return WIRE_INVALID;
		seen[type / 64] |= UINT64_C(1) << (type % 64);

		switch (type) {
		case TLS_EXT_SERVER_NAME:
			rc = parse_sni(&ext, h);
			break;
		case TLS_EXT_ALPN:
			rc = parse_alpn(&ext, h);
			break;
		case TLS_EXT_SUPPORTED_VERSIONS:
			rc = parse_versions(&ext, h);
			break;
		default:
			rc = 0;
			break;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * The ClientHello body (after the 4-byte handshake header). The optional
 * extensions block must end exactly at the end of the message.
 */
static int parse_client_hello(const uint8_t *msg, size_t len,
			      struct tls_hello *h)
{
	struct rd m = { .p = msg, .len = len, .off = 0 };
	struct rd v, blk;

	if (!rd_u16(&m, &h->legacy_version) || h->legacy_version >> 8 != 3)
		return WIRE_INVALID;
	if (!rd_skip(&m, TLS_RANDOM_LEN))
		return WIRE_INVALID;
	if (!rd_vec8(&m, &v) || v.len > TLS_SESSION_ID_MAX)
		return WIRE_INVALID;
	if (!rd_vec16(&m, &v) || v.len < 2 || v.len % 2)
		return WIRE_INVALID;
	if (!rd_vec8(&m, &v) || v.len < 1)
		return WIRE_INVALID;
	if (rd_left(&m) == 0)
		return 0;	/* no extensions at all: legal before TLS 1.3 */
	if (!rd_vec16(&m, &blk) || rd_left(&m) != 0)
		return WIRE_INVALID;
	return parse_extensions(&blk, h);
}

int tls_hello_parse(const uint8_t *buf, size_t len, struct tls_hello *out,
		    uint8_t *scratch, size_t scratch_cap)
{
	uint8_t hs_hdr[TLS_HS_HDR_LEN];
	size_t pos = 0;		/* start of the current record in buf */
	size_t have = 0;	/* handshake bytes reassembled so far */
	size_t need = 0;	/* message length incl. header, 0: unknown */
	uint16_t rec_ver = 0;
	struct tls_hello h;
	int rc;

	for (;;) {
		size_t avail = len - pos, rlen, fav, i = 0;
		const uint8_t *rec = buf + pos;

		/*
		 * Record header, one byte at a time so that a stream which
		 * is not TLS (or an SSLv2-style hello, first byte >= 0x80)
		 * is refused on its first byte.
		 */
		if (avail < 1)
			return WIRE_PARTIAL;
		if (rec[0] != TLS_CT_HANDSHAKE)
			return WIRE_INVALID;
		if (avail < 2)
			return WIRE_PARTIAL;
		if (rec[1] != 3)
			return WIRE_INVALID;
		if (avail < 3)
			return WIRE_PARTIAL;
		if (rec[2] > 4)
			return WIRE_INVALID;
		if (avail < TLS_RECORD_HDR_LEN)
			return WIRE_PARTIAL;
		rlen = (size_t)rec[3] << 8 | rec[4];
		if (rlen == 0 || rlen > TLS_RECORD_MAX_FRAGMENT)
			return WIRE_INVALID;
		if ((uint16_t)(0x0300 | rec[2]) > rec_ver)
			rec_ver = (uint16_t)(0x0300 | rec[2]);

		/* The fragment bytes that have arrived. */
		fav = avail - TLS_RECORD_HDR_LEN;
		if (fav > rlen)
			fav = rlen;
		rec += TLS_RECORD_HDR_LEN;

		while (i < fav) {
			size_t n;

			if (have < TLS_HS_HDR_LEN) {
				hs_hdr[have++] = rec[i++];
				if (hs_hdr[0] != TLS_HS_CLIENT_HELLO)
					return WIRE_INVALID;
				if (have < TLS_HS_HDR_LEN)
					continue;
				need = TLS_HS_HDR_LEN +
				       ((size_t)hs_hdr[1] << 16 |
					(size_t)hs_hdr[2] << 8 | hs_hdr[3]);
				if (need > scratch_cap)
					return WIRE_TOOBIG;
				memcpy(scratch, hs_hdr, TLS_HS_HDR_LEN);
				continue;
			}
			/*
			 * The hello precedes a key change, so it must end
			 * with its record (RFC 8446 §5.1): a client has
			 * nothing else to say in this flight.
			 */
			if (have == need)
				return WIRE_INVALID;
			n = need - have;
			if (n > fav - i)
				n = fav - i;
			memcpy(scratch + have, rec + i, n);
			have += n;
			i += n;
		}
		/* Same rule, decided before the rest of the record arrives. */
		if (need && have == need && fav < rlen)
			return WIRE_INVALID;
		if (fav < rlen)
			return WIRE_PARTIAL;
		pos += TLS_RECORD_HDR_LEN + rlen;
		if (need && have == need)
			break;
	}

	memset(&h, 0, sizeof(h));
	rc = parse_client_hello(scratch + TLS_HS_HDR_LEN,
				need - TLS_HS_HDR_LEN, &h);
	if (rc < 0)
		return rc;
	h.record_version = rec_ver;
	h.hello_len = need;
	/* pos is at most len, and len is bounded by the caller's buffer. */
	BUG_ON(pos > len || pos > (size_t)INT32_MAX);
	*out = h;
	return (int)pos;
}

bool tls_hello_alpn_offers(const struct tls_hello *h, const char *proto,
			   size_t len)
{
	const uint8_t *p = (const uint8_t *)h->alpn.ptr;
	size_t off = 0;

	if (!h->has_alpn)
		return false;
	while (off < h->alpn.len) {
		size_t n = p[off];

		/* Validated by the parser; still never step out. */
		if (n > h->alpn.len - off - 1)
			return false;
		if (n == len && memcmp(p + off + 1, proto, len) == 0)
			return true;
		off += 1 + n;
	}
	return false;
}

bool tls_hello_alpn_only(const struct tls_hello *h, const char *proto,
			 size_t len)
{
	const uint8_t *p = (const uint8_t *)h->alpn.ptr;

	return h->has_alpn && len > 0 && len <= 255 &&
	       h->alpn.len == len + 1 && p[0] == len &&
	       memcmp(p + 1, proto, len) == 0;
}
