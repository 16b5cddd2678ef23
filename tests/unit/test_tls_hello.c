/*
 * Unit tests for tls_hello_parse(): ClientHellos are built here by a small
 * builder (no OpenSSL), then every case is fed whole, one byte at a time and
 * split in two at every offset, each time placed right before a PROT_NONE
 * page so that an over-read faults. Two real hellos captured from
 * `openssl s_client -alpn acme-tls/1` (TLS 1.2 and 1.3) are embedded below;
 * the same bytes are seeds in tests/fuzz/corpus/tls_hello/.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>	/* check.h uses abort() */
#include <string.h>

#include "check.h"
#include "feed.h"
#include "wire/tls_hello.h"

#define SCRATCH_CAP 16384
#define BLD_CAP 40000

static uint8_t scratch[SCRATCH_CAP];

/* Real ClientHellos (xxd -i), server name example.com, ALPN acme-tls/1. */
static const unsigned char real_tls12[] = {
	0x16, 0x03, 0x01, 0x00, 0xdc, 0x01, 0x00, 0x00, 0xd8, 0x03, 0x03, 0x24,
	0x57, 0x77, 0x2f, 0x8e, 0xa2, 0xe5, 0xab, 0x76, 0x1d, 0xd2, 0x04, 0x3c,
	0x78, 0x41, 0x53, 0x98, 0x49, 0xe4, 0x71, 0x92, 0xe5, 0x31, 0x4b, 0x1a,
	0x0a, 0x9b, 0x67, 0x4b, 0x32, 0x8b, 0x3c, 0x00, 0x00, 0x38, 0xc0, 0x2c,
	0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa, 0xc0, 0x2b,
	0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23,
	0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09,
	0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c,
	0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0x77, 0x00, 0x00,
	0x00, 0x10, 0x00, 0x0e, 0x00, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70,
	0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00,
	0x01, 0x02, 0x00, 0x0a, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x1d, 0x00, 0x17,
	0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x00, 0x23, 0x00, 0x00, 0x00, 0x10,
	0x00, 0x0d, 0x00, 0x0b, 0x0a, 0x61, 0x63, 0x6d, 0x65, 0x2d, 0x74, 0x6c,
	0x73, 0x2f, 0x31, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00,
	0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08,
	0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08,
	0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03,
	0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02
};
static const unsigned char real_tls13[] = {
	0x16, 0x03, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0xfd, 0x03, 0x03, 0x51,
	0x44, 0xb0, 0x0e, 0xae, 0x86, 0x25, 0xca, 0x43, 0xc4, 0x4d, 0x39, 0xdd,
	0x2c, 0x69, 0x12, 0x5e, 0xa6, 0x96, 0x4a, 0x89, 0xc9, 0x0b, 0x2e, 0x2f,
	0xde, 0x50, 0xd1, 0xd0, 0xe3, 0xba, 0x24, 0x20, 0xc0, 0x46, 0x44, 0xc9,
	0x6b, 0x34, 0xe8, 0x6f, 0x76, 0x6b, 0xfe, 0x3e, 0x98, 0xbc, 0x4b, 0x2a,
	0x27, 0x7f, 0x98, 0x90, 0xb4, 0x20, 0x65, 0x00, 0xa9, 0x7e, 0x4f, 0xcf,
	0x32, 0x9b, 0xf4, 0x4f, 0x00, 0x08, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
	0x00, 0xff, 0x01, 0x00, 0x00, 0xac, 0x00, 0x00, 0x00, 0x10, 0x00, 0x0e,
	0x00, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63,
	0x6f, 0x6d, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a,
	0x00, 0x16, 0x00, 0x14, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19,
	0x00, 0x18, 0x01, 0x00, 0x01, 0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04,
	0x00, 0x23, 0x00, 0x00, 0x00, 0x10, 0x00, 0x0d, 0x00, 0x0b, 0x0a, 0x61,
	0x63, 0x6d, 0x65, 0x2d, 0x74, 0x6c, 0x73, 0x2f, 0x31, 0x00, 0x16, 0x00,
	0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x1e, 0x00, 0x1c, 0x04,
	0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08,
	0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05,
	0x01, 0x06, 0x01, 0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04, 0x00, 0x2d,
	0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d,
	0x00, 0x20, 0xf0, 0x71, 0x1f, 0x3c, 0xb2, 0x4f, 0xee, 0xf9, 0xcc, 0x3e,
	0x3e, 0x6c, 0x39, 0xc4, 0x3d, 0x0a, 0x31, 0xf4, 0x0b, 0x76, 0x35, 0x95,
	0x71, 0x4d, 0x98, 0xfd, 0xa8, 0x26, 0x97, 0xc6, 0x03, 0x20
};

/* ---- a byte builder that remembers where its length fields are ---- */

struct lenfield {
	size_t off;
	int width;
};

struct bld {
	uint8_t b[BLD_CAP];
	size_t len;
	size_t open[16];
	int open_w[16];
	int depth;
	struct lenfield fields[1024];
	int n_fields;
};

static void put8(struct bld *b, uint8_t v)
{
	BUG_ON(b->len >= BLD_CAP);
	b->b[b->len++] = v;
}

static void put16(struct bld *b, uint16_t v)
{
	put8(b, (uint8_t)(v >> 8));
	put8(b, (uint8_t)v);
}

static void putn(struct bld *b, const void *p, size_t n)
{
	BUG_ON(b->len + n > BLD_CAP);
	memcpy(b->b + b->len, p, n);
	b->len += n;
}

static void putfill(struct bld *b, uint8_t v, size_t n)
{
	BUG_ON(b->len + n > BLD_CAP);
	memset(b->b + b->len, v, n);
	b->len += n;
}

/* Reserves a big-endian length of width bytes, filled in by close_len(). */
static void open_len(struct bld *b, int width)
{
	BUG_ON(b->depth == (int)ARRAY_SIZE(b->open));
	b->open[b->depth] = b->len;
	b->open_w[b->depth++] = width;
	putfill(b, 0, (size_t)width);
}

static void close_len(struct bld *b)
{
	size_t at, n;
	int w, i;

	BUG_ON(b->depth == 0);
	at = b->open[--b->depth];
	w = b->open_w[b->depth];
	n = b->len - at - (size_t)w;
	for (i = w - 1; i >= 0; i--, n >>= 8)
		b->b[at + (size_t)i] = (uint8_t)n;
	BUG_ON(n != 0);
	BUG_ON(b->n_fields == (int)ARRAY_SIZE(b->fields));
	b->fields[b->n_fields++] = (struct lenfield){ at, w };
}

/* Adds delta to the big-endian number of width bytes at p (wrapping). */
static void bump(uint8_t *p, int width, int delta)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < width; i++)
		v = v << 8 | p[i];
	v += (uint32_t)delta;
	for (i = width - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* ---- ClientHello specs ---- */

enum ext_kind { EK_RAW, EK_SNI, EK_ALPN, EK_VERSIONS, EK_PAD };

struct ext_spec {
	uint16_t type;
	enum ext_kind kind;
	const char *arg;	/* raw data, host, encoded ALPN or versions */
	size_t arg_len;		/* EK_PAD: number of zero bytes */
};

#define X_RAW(t, s) { (t), EK_RAW, (s), sizeof(s) - 1 }
#define X_SNI(s) { 0, EK_SNI, (s), sizeof(s) - 1 }
#define X_ALPN(s) { 16, EK_ALPN, (s), sizeof(s) - 1 }
#define X_VERS(s) { 43, EK_VERSIONS, (s), sizeof(s) - 1 }
#define X_PAD(n) { 21, EK_PAD, NULL, (n) }

/* Encoded ALPN lists; literals split so hex escapes cannot run on. */
#define ALPN_ACME "\x0a" "acme-tls/1"
#define ALPN_H2_H11 "\x02" "h2" "\x08" "http/1.1"
#define VERS_13_12 "\x03\x04\x03\x03"

struct hello_spec {
	const char *name;
	uint8_t hs_type;	/* 0 means 1 (ClientHello) */
	uint16_t legacy;	/* 0 means 0x0303 */
	size_t sid_len;
	size_t n_suites;	/* 0 means 3 */
	bool odd_suites;	/* one extra byte in cipher_suites */
	bool no_comp;		/* empty compression_methods */
	bool no_ext_block;
	struct ext_spec ext[8];
	size_t frag;		/* record fragment size; 0 = one record */
	uint8_t rec_minor;	/* record version 3.x; 0xff means 3.1 */
	uint8_t rec2_type;	/* content type of records after the first */
	bool extra_in_last;	/* a stray byte after the hello, same record */
	const char *trailer;	/* bytes after the hello's records */
	size_t trailer_len;
	size_t cap;		/* scratch cap; 0 = SCRATCH_CAP */
	int rc;			/* 1 = success, else the WIRE_ code */
	/* expected on success */
	const char *sni;
	const char *alpn_only;
	const char *offers;	/* one more protocol that must be offered */
	bool tls13;
};

static size_t ext_count(const struct hello_spec *s)
{
	size_t n = 0;

	while (n < ARRAY_SIZE(s->ext) && (s->ext[n].kind != EK_RAW ||
					  s->ext[n].arg != NULL))
		n++;
	return n;
}

static void build_msg(const struct hello_spec *s, struct bld *b)
{
	size_t i, n;

	memset(b, 0, sizeof(*b));
	put8(b, s->hs_type ? s->hs_type : 1);
	open_len(b, 3);
	put16(b, s->legacy ? s->legacy : 0x0303);
	for (i = 0; i < 32; i++)
		put8(b, (uint8_t)(0xa0 + i));
	open_len(b, 1);
	putfill(b, 0x5a, s->sid_len);
	close_len(b);
	open_len(b, 2);
	n = s->n_suites ? s->n_suites : 3;
	for (i = 0; i < n; i++)
		put16(b, (uint16_t)(0x1301 + i));
	if (s->odd_suites)
		put8(b, 0);
	close_len(b);
	open_len(b, 1);
	if (!s->no_comp)
		put8(b, 0);
	close_len(b);
	if (!s->no_ext_block) {
		open_len(b, 2);
		for (i = 0; i < ext_count(s); i++) {
			const struct ext_spec *e = &s->ext[i];

			put16(b, e->type);
			open_len(b, 2);
			switch (e->kind) {
			case EK_RAW:
				putn(b, e->arg, e->arg_len);
				break;
			case EK_SNI:
				open_len(b, 2);
				put8(b, 0);
				open_len(b, 2);
				putn(b, e->arg, e->arg_len);
				close_len(b);
				close_len(b);
				break;
			case EK_ALPN:
				open_len(b, 2);
				putn(b, e->arg, e->arg_len);
				close_len(b);
				break;
			case EK_VERSIONS:
				open_len(b, 1);
				putn(b, e->arg, e->arg_len);
				close_len(b);
				break;
			case EK_PAD:
				putfill(b, 0, e->arg_len);
				break;
			}
			close_len(b);
		}
		close_len(b);
	}
	close_len(b);
}

/*
 * Wraps a handshake message into records of frag bytes (0: as few as
 * possible); the record length fields are remembered in out->fields.
 */
static void wrap(const struct hello_spec *s, const uint8_t *msg, size_t len,
		 struct bld *out)
{
	size_t off = 0, frag = s->frag ? s->frag : TLS_RECORD_MAX_FRAGMENT;
	int rec = 0;

	memset(out, 0, sizeof(*out));
	while (off < len) {
		size_t n = len - off < frag ? len - off : frag;

		put8(out, rec && s->rec2_type ? s->rec2_type : 22);
		put8(out, 3);
		put8(out, s->rec_minor == 0xff ? 1 : s->rec_minor);
		open_len(out, 2);
		putn(out, msg + off, n);
		if (off + n == len && s->extra_in_last)
			put8(out, 0);
		close_len(out);
		off += n;
		rec++;
	}
}

/* ---- feeding, through feed.h ---- */

struct want {
	const char *sni;
	const char *alpn_only;
	const char *offers;
	bool tls13;
};

/* What a fed case is checked against besides its result code. */
struct feed_arg {
	const char *name;
	size_t cap;		/* scratch_cap */
	const struct want *w;	/* NULL when the case cannot succeed */
};

static int parse(const void *arg, const uint8_t *in, size_t len, void *out)
{
	const struct feed_arg *a = arg;

	/* Stale bytes from the last parse must not pass for this one's. */
	memset(scratch, 0xee, sizeof(scratch));
	return tls_hello_parse(in, len, out, scratch, a->cap);
}

static int parse_at(const uint8_t *in, size_t len, size_t cap,
		    struct tls_hello *h)
{
	struct feed_arg a = { .cap = cap };

	return parse(&a, check_guarded(in, len), len, h);
}

static bool in_scratch(struct slice s, size_t hello_len)
{
	const char *lo = (const char *)scratch;

	return s.ptr >= lo && s.ptr + s.len <= lo + hello_len;
}

static void check_fields(const void *arg, enum feed_mode m, int rc,
			 const void *out, const uint8_t *in, size_t len)
{
	const struct feed_arg *a = arg;
	const char *name = a->name, *mode = feed_mode_name(m);
	const struct tls_hello *h = out;
	const struct want *w = a->w;

	CHECKF(h->hello_len <= SCRATCH_CAP, "%s/%s: hello_len", name, mode);
	if (w->sni) {
		CHECKF(h->has_sni && h->sni.len == strlen(w->sni) &&
		       memcmp(h->sni.ptr, w->sni, h->sni.len) == 0 &&
		       in_scratch(h->sni, h->hello_len),
		       "%s/%s: sni '%.*s'", name, mode, (int)h->sni.len,
		       h->sni.ptr);
	} else {
		CHECKF(!h->has_sni && h->sni.len == 0, "%s/%s: unexpected sni",
		       name, mode);
	}
	if (w->alpn_only) {
		CHECKF(tls_hello_alpn_only(h, w->alpn_only,
					   strlen(w->alpn_only)) &&
		       tls_hello_alpn_offers(h, w->alpn_only,
					     strlen(w->alpn_only)),
		       "%s/%s: alpn only %s", name, mode, w->alpn_only);
	} else {
		CHECKF(!tls_hello_alpn_only(h, "acme-tls/1", 10),
		       "%s/%s: alpn only acme-tls/1 unexpectedly", name, mode);
	}
	if (w->offers)
		CHECKF(tls_hello_alpn_offers(h, w->offers, strlen(w->offers)),
		       "%s/%s: alpn offers %s", name, mode, w->offers);
	if (h->has_alpn)
		CHECKF(in_scratch(h->alpn, h->hello_len), "%s/%s: alpn slice",
		       name, mode);
	else
		CHECKF(!tls_hello_alpn_offers(h, "h2", 2),
		       "%s/%s: offers without alpn", name, mode);
	CHECKF(h->offers_tls13 == w->tls13, "%s/%s: offers_tls13 %d", name,
	       mode, h->offers_tls13);
}

/* want_rc > 0 is the exact byte count, else the WIRE_ code. */
static void run(const char *name, const uint8_t *in, size_t len, size_t cap,
		int want_rc, const struct want *w)
{
	static const struct feed_ops ops = { parse, check_fields };
	struct feed_arg a = { name, cap, w };
	struct tls_hello h;

	feed_run(name, in, len, want_rc, &ops, &a, &h);
}

static void run_spec(const struct hello_spec *s)
{
	static struct bld msg, stream;
	struct want w = { s->sni, s->alpn_only, s->offers, s->tls13 };
	size_t recs;
	int want;

	build_msg(s, &msg);
	wrap(s, msg.b, msg.len, &stream);
	recs = stream.len;
	if (s->trailer)
		putn(&stream, s->trailer, s->trailer_len);
	want = s->rc == 1 ? (int)recs : s->rc;
	run(s->name, stream.b, stream.len, s->cap ? s->cap : SCRATCH_CAP, want,
	    &w);
}

#define A16 "aaaaaaaaaaaaaaaa"
#define A64 A16 A16 A16 A16
#define A255 A64 A64 A64 A16 A16 A16 "aaaaaaaaaaaaaaa"
#define APPDATA "\x17\x03\x03\x00\x05hello"

static const struct hello_spec specs[] = {
	{ .name = "sni+alpn acme-tls/1 only",
	  .ext = { X_SNI("example.com"), X_ALPN(ALPN_ACME),
		   X_VERS(VERS_13_12) },
	  .rc = 1, .sni = "example.com", .alpn_only = "acme-tls/1",
	  .tls13 = true },
	{ .name = "alpn h2 + http/1.1",
	  .ext = { X_SNI("www.example.org"), X_ALPN(ALPN_H2_H11) },
	  .rc = 1, .sni = "www.example.org", .offers = "http/1.1" },
	{ .name = "grease extensions and grease alpn",
	  .ext = { X_RAW(0x0a0a, ""), X_SNI("a.example"),
		   X_ALPN("\x02\x1a\x1a" ALPN_ACME), X_RAW(0xfafa, "\x00"),
		   X_VERS("\x3a\x3a\x03\x04\x03\x03") },
	  .rc = 1, .sni = "a.example", .offers = "acme-tls/1",
	  .tls13 = true },
	{ .name = "alpn first, sni last",
	  .ext = { X_ALPN(ALPN_ACME), X_VERS("\x03\x04"),
		   X_RAW(10, "\x00\x02\x00\x1d"), X_SNI("last.example") },
	  .rc = 1, .sni = "last.example", .alpn_only = "acme-tls/1",
	  .tls13 = true },
	{ .name = "no sni",
	  .ext = { X_ALPN("\x02" "h2") },
	  .rc = 1, .offers = "h2" },
	{ .name = "no extensions at all", .no_ext_block = true, .rc = 1 },
	{ .name = "empty extension block", .rc = 1 },
	{ .name = "session id 32", .sid_len = 32,
	  .ext = { X_SNI("example.com") }, .rc = 1, .sni = "example.com" },
	{ .name = "legacy_version 3.1", .legacy = 0x0301, .rc = 1 },
	{ .name = "tls 1.2 only versions",
	  .ext = { X_VERS("\x03\x03") }, .rc = 1 },
	{ .name = "two records",
	  .ext = { X_SNI("example.com"), X_ALPN(ALPN_ACME) }, .frag = 50,
	  .rc = 1, .sni = "example.com", .alpn_only = "acme-tls/1" },
	{ .name = "three records",
	  .ext = { X_SNI("example.com"), X_ALPN(ALPN_ACME) }, .frag = 40,
	  .rc = 1, .sni = "example.com", .alpn_only = "acme-tls/1" },
	{ .name = "1-byte fragments",
	  .ext = { X_SNI("example.com"), X_ALPN(ALPN_ACME),
		   X_VERS(VERS_13_12) },
	  .frag = 1, .rc = 1, .sni = "example.com",
	  .alpn_only = "acme-tls/1", .tls13 = true },
	{ .name = "3-byte fragments (header split)",
	  .ext = { X_SNI("example.com") }, .frag = 3, .rc = 1,
	  .sni = "example.com" },
	{ .name = "record version 3.0", .rec_minor = 0, .rc = 1 },
	{ .name = "record version 3.4", .rec_minor = 4, .rc = 1 },
	{ .name = "record version 3.5", .rec_minor = 5, .rc = WIRE_INVALID },
	{ .name = "application data after the hello",
	  .ext = { X_SNI("example.com"), X_ALPN(ALPN_ACME) },
	  .trailer = APPDATA, .trailer_len = sizeof(APPDATA) - 1, .rc = 1,
	  .sni = "example.com", .alpn_only = "acme-tls/1" },
	{ .name = "split hello then application data",
	  .ext = { X_SNI("example.com"), X_ALPN(ALPN_ACME) }, .frag = 30,
	  .trailer = APPDATA, .trailer_len = sizeof(APPDATA) - 1, .rc = 1,
	  .sni = "example.com", .alpn_only = "acme-tls/1" },
	{ .name = "garbage after the hello's records",
	  .ext = { X_SNI("example.com") }, .trailer = "\x00\xff",
	  .trailer_len = 2, .rc = 1, .sni = "example.com" },
	{ .name = "sni 255 bytes",
	  .ext = { X_SNI(A255) },
	  .rc = 1, .sni = A255 },
	{ .name = "sni list: other type first, then host_name",
	  .ext = { X_RAW(0, "\x00\x0b\x07\x00\x01x" "\x00\x00\x04" "a.bc") },
	  .rc = 1, .sni = "a.bc" },
	{ .name = "padding, hello over 2 full records and a bit",
	  .ext = { X_SNI("example.com"), X_PAD(16300) }, .frag = 8192,
	  .rc = 1,
	  .sni = "example.com" },

	/* invalid */
	{ .name = "handshake type 2 (ServerHello)", .hs_type = 2,
	  .rc = WIRE_INVALID },
	{ .name = "legacy_version 2.0", .legacy = 0x0200, .rc = WIRE_INVALID },
	{ .name = "session id 33", .sid_len = 33, .rc = WIRE_INVALID },
	{ .name = "odd cipher_suites", .odd_suites = true,
	  .rc = WIRE_INVALID },
	{ .name = "no compression methods", .no_comp = true,
	  .rc = WIRE_INVALID },
	{ .name = "duplicate sni extension",
	  .ext = { X_SNI("a.example"), X_ALPN(ALPN_ACME), X_SNI("b.example") },
	  .rc = WIRE_INVALID },
	{ .name = "duplicate unknown extension",
	  .ext = { X_RAW(0x1234, "x"), X_RAW(0x1234, "") },
	  .rc = WIRE_INVALID },
	{ .name = "duplicate grease extension",
	  .ext = { X_RAW(0x2a2a, ""), X_RAW(0x2a2a, "") },
	  .rc = WIRE_INVALID },
	{ .name = "sni with NUL",
	  .ext = { X_SNI("example.com\0.evil") }, .rc = WIRE_INVALID },
	{ .name = "sni empty host_name", .ext = { X_SNI("") },
	  .rc = WIRE_INVALID },
	{ .name = "sni 256 bytes",
	  .ext = { X_SNI(A255 "a") },
	  .rc = WIRE_INVALID },
	{ .name = "sni two host_names",
	  .ext = { X_RAW(0, "\x00\x0a\x00\x00\x02" "ab" "\x00\x00\x02" "cd") },
	  .rc = WIRE_INVALID },
	{ .name = "sni empty list", .ext = { X_RAW(0, "\x00\x00") },
	  .rc = WIRE_INVALID },
	{ .name = "sni empty extension", .ext = { X_RAW(0, "") },
	  .rc = WIRE_INVALID },
	{ .name = "alpn empty list", .ext = { X_ALPN("") },
	  .rc = WIRE_INVALID },
	{ .name = "alpn empty name", .ext = { X_ALPN("\x02" "h2" "\x00") },
	  .rc = WIRE_INVALID },
	{ .name = "alpn name past list",
	  .ext = { X_ALPN("\x03" "h2") }, .rc = WIRE_INVALID },
	{ .name = "supported_versions odd",
	  .ext = { X_VERS("\x03\x04\x03") }, .rc = WIRE_INVALID },
	{ .name = "supported_versions empty",
	  .ext = { X_VERS("") }, .rc = WIRE_INVALID },
	{ .name = "alert record in the middle",
	  .ext = { X_SNI("example.com") }, .frag = 20, .rec2_type = 21,
	  .rc = WIRE_INVALID },
	{ .name = "ccs record in the middle",
	  .ext = { X_SNI("example.com") }, .frag = 20, .rec2_type = 20,
	  .rc = WIRE_INVALID },
	{ .name = "stray byte after hello in its record",
	  .ext = { X_SNI("example.com") }, .extra_in_last = true,
	  .rc = WIRE_INVALID },
	{ .name = "stray byte after split hello",
	  .ext = { X_SNI("example.com") }, .frag = 30,
	  .extra_in_last = true, .rc = WIRE_INVALID },

	/* over the scratch buffer */
	{ .name = "padding over scratch_cap",
	  .ext = { X_SNI("example.com"), X_PAD(17000) },
	  .rc = WIRE_TOOBIG },
	{ .name = "small scratch_cap",
	  .ext = { X_SNI("example.com") }, .cap = 64, .rc = WIRE_TOOBIG },
	{ .name = "small scratch_cap, 1-byte fragments",
	  .ext = { X_SNI("example.com") }, .cap = 64, .frag = 1,
	  .rc = WIRE_TOOBIG },
	{ .name = "scratch_cap exactly the hello",
	  .ext = { X_SNI("example.com") }, .cap = 4 + 2 + 32 + 1 + 8 + 2 + 2 +
						4 + 2 + 3 + 11,
	  .rc = 1, .sni = "example.com" },
	{ .name = "scratch_cap one below the hello",
	  .ext = { X_SNI("example.com") }, .cap = 4 + 2 + 32 + 1 + 8 + 2 + 2 +
						4 + 2 + 3 + 11 - 1,
	  .rc = WIRE_TOOBIG },
};

/* Streams that are not a hello at all, or broken in the record layer. */
struct raw_case {
	const char *name;
	const char *in;
	size_t len;
	int rc;
};

#define RAW(n, s, r) { (n), (s), sizeof(s) - 1, (r) }

static const struct raw_case raws[] = {
	RAW("empty", "", WIRE_PARTIAL),
	RAW("record header prefix", "\x16\x03\x01\x00", WIRE_PARTIAL),
	RAW("handshake header prefix", "\x16\x03\x01\x00\x30\x01\x00",
	    WIRE_PARTIAL),
	RAW("alert record first", "\x15\x03\x03\x00\x02\x02\x28",
	    WIRE_INVALID),
	RAW("application data first", "\x17\x03\x03\x00\x01x", WIRE_INVALID),
	RAW("sslv2 hello", "\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10",
	    WIRE_INVALID),
	RAW("zero-length record", "\x16\x03\x01\x00\x00", WIRE_INVALID),
	RAW("record over 2^14", "\x16\x03\x01\x40\x01\x01", WIRE_INVALID),
	RAW("record major 2", "\x16\x02\x00\x00\x05", WIRE_INVALID),
	RAW("record version 3.5", "\x16\x03\x05\x00\x05", WIRE_INVALID),
	RAW("http request", "GET / HTTP/1.1\r\n", WIRE_INVALID),
	RAW("proxy header", "PROXY TCP4 ", WIRE_INVALID),
	RAW("handshake type 0", "\x16\x03\x01\x00\x04\x00\x00\x00\x00",
	    WIRE_INVALID),
	RAW("empty client hello", "\x16\x03\x01\x00\x04\x01\x00\x00\x00",
	    WIRE_INVALID),
	RAW("hello length 16 MiB", "\x16\x03\x01\x00\x04\x01\xff\xff\xff",
	    WIRE_TOOBIG),
};

/*
 * Every length field of a good hello, one up and one down: body fields
 * must give INVALID; the handshake and record lengths may also leave the
 * parser waiting (PARTIAL), but never succeed.
 */
static void test_length_fields(const struct hello_spec *s)
{
	static struct bld msg, stream, mut;
	static const int deltas[] = { 1, -1 };
	char name[128];
	size_t recs_len;
	int i, d, r, n_body;

	build_msg(s, &msg);
	n_body = msg.n_fields;
	for (i = 0; i < n_body; i++) {
		bool is_hs_len = msg.fields[i].off == 1;

		for (d = 0; d < 2; d++) {
			struct bld m = msg;

			bump(m.b + msg.fields[i].off, msg.fields[i].width,
			     deltas[d]);
			wrap(s, m.b, m.len, &mut);
			r = parse_at(mut.b, mut.len, SCRATCH_CAP,
				     &(struct tls_hello){ 0 });
			snprintf(name, sizeof(name), "%s: field @%zu/%d %+d",
				 s->name, msg.fields[i].off,
				 msg.fields[i].width, deltas[d]);
			if (is_hs_len)
				CHECKF(r == WIRE_INVALID || r == WIRE_PARTIAL,
				       "%s: rc %d", name, r);
			else
				run(name, mut.b, mut.len, SCRATCH_CAP,
				    WIRE_INVALID, NULL);
		}
	}

	wrap(s, msg.b, msg.len, &stream);
	recs_len = stream.len;
	for (i = 0; i < stream.n_fields; i++) {
		for (d = 0; d < 2; d++) {
			mut = stream;
			bump(mut.b + stream.fields[i].off, 2, deltas[d]);
			r = parse_at(mut.b, recs_len, SCRATCH_CAP,
				     &(struct tls_hello){ 0 });
			CHECKF(r == WIRE_INVALID || r == WIRE_PARTIAL,
			       "%s: record %d len %+d: rc %d", s->name, i,
			       deltas[d], r);
		}
	}
}

/* The real hellos: as captured, and re-fragmented into small records. */
static void test_real(const char *name, const uint8_t *in, size_t len,
		      bool tls13)
{
	static struct bld stream;
	static const size_t frags[] = { 1, 2, 7, 64, 100 };
	struct want w = { "example.com", "acme-tls/1", NULL, tls13 };
	struct hello_spec s = { 0 };
	char n[96];
	size_t i;

	run(name, in, len, SCRATCH_CAP, (int)len, &w);
	BUG_ON(len < 5 || in[0] != 22);
	for (i = 0; i < ARRAY_SIZE(frags); i++) {
		s.frag = frags[i];
		s.rec_minor = in[2];
		wrap(&s, in + 5, len - 5, &stream);
		snprintf(n, sizeof(n), "%s in %zu-byte records", name,
			 frags[i]);
		run(n, stream.b, stream.len, SCRATCH_CAP, (int)stream.len, &w);
	}
}

static void test_helpers(void)
{
	struct tls_hello h = { 0 };
	static const char list[] = ALPN_H2_H11 ALPN_ACME;

	CHECK(!tls_hello_alpn_offers(&h, "h2", 2));
	CHECK(!tls_hello_alpn_only(&h, "h2", 2));
	h.has_alpn = true;
	h.alpn = (struct slice){ list, sizeof(list) - 1 };
	CHECK(tls_hello_alpn_offers(&h, "h2", 2));
	CHECK(tls_hello_alpn_offers(&h, "http/1.1", 8));
	CHECK(tls_hello_alpn_offers(&h, "acme-tls/1", 10));
	CHECK(!tls_hello_alpn_offers(&h, "acme-tls", 8));
	CHECK(!tls_hello_alpn_offers(&h, "h", 1));
	CHECK(!tls_hello_alpn_only(&h, "acme-tls/1", 10));
	h.alpn = (struct slice){ ALPN_ACME, sizeof(ALPN_ACME) - 1 };
	CHECK(tls_hello_alpn_only(&h, "acme-tls/1", 10));
	CHECK(!tls_hello_alpn_only(&h, "acme-tls/2", 10));
	CHECK(!tls_hello_alpn_only(&h, "acme-tls/", 9));
}

int main(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(specs); i++)
		run_spec(&specs[i]);
	for (i = 0; i < ARRAY_SIZE(raws); i++)
		run(raws[i].name, (const uint8_t *)raws[i].in, raws[i].len,
		    SCRATCH_CAP, raws[i].rc, NULL);
	test_length_fields(&specs[0]);
	test_length_fields(&specs[11]);	/* three records */
	test_real("real openssl tls1.2 hello", real_tls12,
		  sizeof(real_tls12), false);
	test_real("real openssl tls1.3 hello", real_tls13,
		  sizeof(real_tls13), true);
	test_helpers();
	return check_done();
}
