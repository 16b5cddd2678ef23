/*
 * acme-tls/1 handshakes (RFC 8737) over memory BIOs.
 *
 * Byte flow and ownership. OpenSSL never sees a socket:
 *
 *   client bytes --acme_tls_feed()--> rbio --SSL_do_handshake()--> ssl
 *   ssl --(handshake records, alerts, close_notify)--> wbio --acme_tls_take()--> caller
 *
 * Both BIOs are memory BIOs owned by the SSL (SSL_set_bio() hands them over);
 * t->rbio and t->wbio are borrowed pointers, valid exactly as long as t->ssl.
 * When t is freed the ctx may keep the pair, reset, for a later handshake:
 * BIO_reset() zeroes a memory BIO's bytes, so nothing of one client reaches
 * the next, and the next handshake skips the allocations a new pair repeats.
 * rbio is set to report "retry" when empty, so running out of client bytes
 * reads as SSL_ERROR_WANT_READ, never as EOF. wbio grows as OpenSSL writes:
 * its size is bounded by the handshake itself (one server flight, an alert,
 * a close_notify), and the input is bounded by ACME_TLS_FEED_MAX.
 *
 * The certificate cache. ctx->cache[slot] holds the X509 and EVP_PKEY parsed
 * from the entry version that last used that store slot. A store version is
 * never reused and an entry's payload never changes under one version, so
 * (slot, version) names one payload forever: a cache hit needs no compare of
 * the DER. The cache holds one reference to each object;
 * SSL_use_cert_and_key() takes its own, so replacing a cached pair never
 * pulls the rug from under a handshake still in flight with the old one.
 * Parsing is most of the cost of a first handshake, and the first handshake
 * for a new challenge is the CA's: acme_tls_warm() fills the cache from the
 * store as entries appear, so that the validator finds it filled.
 *
 * The error queue. OpenSSL reports failures on a per-thread queue, and
 * SSL_get_error() looks at that queue before anything else: one stale entry
 * left behind turns the next handshake's harmless WANT_READ on the same
 * thread into SSL_ERROR_SSL. So every path out of this file that may have
 * touched OpenSSL leaves the queue empty, and acme_tls_step() also empties
 * it on entry, in case some other module on this worker thread did not.
 *
 * Refusals happen as early as OpenSSL allows, before a certificate is sent:
 * a hello without ALPN or without acme-tls/1 gets no_application_protocol, a
 * hello whose SNI (as OpenSSL reads it) is not the entry's name gets
 * unrecognized_name. The caller chose the entry from its own hello parser;
 * re-checking OpenSSL's reading of the same bytes means a disagreement
 * between the two parsers can never make us answer for another name.
 *
 * Nothing here is global except constant data; one ctx per worker thread.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509.h>

#include "proxy/acme_tls.h"
#include "common/log.h"
#include "common/ossl.h"

/*
 * Client bytes accepted per handshake. A ClientHello is at most a few KiB
 * (the proxy caps it before we get it), the client's second flight is a
 * few hundred bytes without client certificates: anything near this is not
 * a validator.
 */
#define ACME_TLS_FEED_MAX (64 * 1024)

#define ACME_TLS_ERR_MAX 160

/*
 * Idle BIO pairs a ctx keeps: enough for the handshakes a worker has in
 * flight at once, and only pairs whose buffers stayed small, so a client
 * that sent near ACME_TLS_FEED_MAX does not pin its buffer.
 */
#define ACME_TLS_IDLE_MAX 16
#define ACME_TLS_IDLE_BUF_MAX (16 * 1024)

/* The ALPN protocol id, and the same as a one-entry wire list. */
static const uint8_t acme_alpn_id[] = "acme-tls/1";
#define ACME_ALPN_ID_LEN (sizeof(acme_alpn_id) - 1)

/* TLS 1.2 record header (alert, 3.3, length 2), then fatal, unrecognized_name. */
const uint8_t acme_tls_alert_unrecognized_name[7] = {
	0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70,
};

struct acme_tls_cached {
	uint64_t version;	/* the store version cert and key came from */
	X509 *cert;		/* NULL: nothing cached for this slot */
	EVP_PKEY *key;
};

struct acme_tls_bios {
	BIO *rbio;
	BIO *wbio;
};

struct acme_tls_ctx {
	SSL_CTX *ssl_ctx;
	uint32_t nslots;
	struct acme_tls_cached *cache;	/* nslots entries, indexed by slot */
	unsigned nidle;
	struct acme_tls_bios idle[ACME_TLS_IDLE_MAX];	/* empty, ours alone */
	/* acme_tls_warm()'s pass over the store */
	uint64_t warm_seen;		/* store_changes() as the pass began */
	uint32_t warm_pos;		/* the next slot; UINT32_MAX: no pass */
	int64_t warm_next_ms;		/* no pass begins before (monotonic) */
	struct store_entry *warm_entry;	/* the copy a fill parses */
};

enum acme_tls_state {
	AT_RUNNING = 0,
	AT_DONE,
	AT_FAILED,
};

struct acme_tls {
	struct acme_tls_ctx *ctx;	/* takes the BIO pair back */
	SSL *ssl;
	BIO *rbio;			/* borrowed from ssl: client -> OpenSSL */
	BIO *wbio;			/* borrowed from ssl: OpenSSL -> client */
	size_t fed;			/* client bytes taken so far */
	enum acme_tls_state state;	/* DONE and FAILED are final */
	uint8_t name_len;
	char name[STORE_KEY_MAX + 1];	/* the SNI the entry answers for */
	char err[ACME_TLS_ERR_MAX];	/* first reason only: later ones are fallout */
};

/*
 * "what: <first queued OpenSSL reason>" into err, then an empty queue. The
 * first entry is the cause; later ones are the layers above it giving up.
 */
static void ossl_err(char *err, size_t errlen, const char *what)
{
	ossl_err_set(err, errlen, OSSL_PICK_FIRST, "no reason queued", "%s",
		     what);
}

/* Records the first reason a handshake failed; keeps it over later ones. */
static void __attribute__((format(printf, 2, 3)))
fail_reason(struct acme_tls *t, const char *fmt, ...)
{
	va_list ap;

	if (t->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
}

/*
 * Runs before OpenSSL looks at any extension: a hello that offers no ALPN at
 * all would otherwise never reach the ALPN callback and would get our
 * certificate before the post-handshake check refused it.
 */
static int on_client_hello(SSL *ssl, int *al, void *arg)
{
	struct acme_tls *t = SSL_get_app_data(ssl);
	const unsigned char *ext;
	size_t ext_len;

	(void)arg;
	if (!SSL_client_hello_get0_ext(ssl,
				       TLSEXT_TYPE_application_layer_protocol_negotiation,
				       &ext, &ext_len)) {
		fail_reason(t, "client hello offers no ALPN");
		*al = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/*
 * Called after every extension is parsed, SNI or not. The entry's key is
 * the canonical (lowercase, no trailing dot) name; SNI is compared as the
 * proxy's lookup compares it: without regard to ASCII case, one trailing
 * dot ignored. OpenSSL refuses a host_name holding a NUL, so strlen() is
 * its length.
 */
static int on_servername(SSL *ssl, int *al, void *arg)
{
	struct acme_tls *t = SSL_get_app_data(ssl);
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	size_t len;

	(void)arg;
	if (!sni) {
		fail_reason(t, "client hello carries no SNI");
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	len = strlen(sni);
	if (len && sni[len - 1] == '.')
		len--;
	if (len != t->name_len || strncasecmp(sni, t->name, len) != 0) {
		fail_reason(t, "SNI does not name the entry");
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Selects acme-tls/1 when the client's list holds it, wherever it is; any
 * other offer is refused with no_application_protocol (RFC 7301 §3.2)
 * rather than falling back to no ALPN, which a validator would reject only
 * after we had sent the certificate.
 */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	struct acme_tls *t = SSL_get_app_data(ssl);
	unsigned int off = 0;

	(void)arg;
	/* OpenSSL has checked the list's framing; bound every step anyway. */
	while (off < inlen) {
		unsigned int n = in[off];

		if (n == 0 || n > inlen - off - 1)
			break;
		if (n == ACME_ALPN_ID_LEN &&
		    memcmp(in + off + 1, acme_alpn_id, ACME_ALPN_ID_LEN) == 0) {
			*out = in + off + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		off += 1 + n;
	}
	fail_reason(t, "client does not offer acme-tls/1");
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

struct acme_tls_ctx *acme_tls_ctx_new(uint32_t nslots, char *err,
				      size_t errlen)
{
	struct acme_tls_ctx *ctx;
	SSL_CTX *sc;

	if (nslots == 0 || nslots > STORE_CAPACITY_MAX + 1) {
		err_set(err, errlen, "slot count %u out of range", nslots);
		return NULL;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		goto out_nomem;
	ctx->nslots = nslots;
	ctx->cache = calloc(nslots, sizeof(*ctx->cache));
	ctx->warm_entry = malloc(sizeof(*ctx->warm_entry));
	if (!ctx->cache || !ctx->warm_entry)
		goto out_nomem;
	ctx->warm_pos = UINT32_MAX;

	sc = SSL_CTX_new(TLS_server_method());
	if (!sc) {
		ossl_err(err, errlen, "SSL_CTX_new");
		goto out_free;
	}
	ctx->ssl_ctx = sc;
	if (!SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION)) {
		ossl_err(err, errlen, "SSL_CTX_set_min_proto_version");
		goto out_free;
	}
	/*
	 * Each validation is a fresh connection that must see the current
	 * certificate: no session cache, no TLS 1.2 tickets, and no TLS 1.3
	 * NewSessionTicket, which would otherwise follow the handshake and
	 * put bytes between our Finished and our close_notify.
	 */
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(sc, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	if (!SSL_CTX_set_num_tickets(sc, 0)) {
		ossl_err(err, errlen, "SSL_CTX_set_num_tickets");
		goto out_free;
	}
	/*
	 * The certificate is self-signed and sent alone (RFC 8737 §3): without
	 * this, every handshake would build a chain through the ctx's empty
	 * X509_STORE to arrive at the same single certificate.
	 */
	SSL_CTX_set_mode(sc, SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_client_hello_cb(sc, on_client_hello, NULL);
	SSL_CTX_set_tlsext_servername_callback(sc, on_servername);
	SSL_CTX_set_alpn_select_cb(sc, on_alpn, NULL);
	ERR_clear_error();
	return ctx;

out_nomem:
	err_set(err, errlen, "out of memory");
out_free:
	acme_tls_ctx_free(ctx);
	ERR_clear_error();
	return NULL;
}

static void cache_drop(struct acme_tls_cached *c)
{
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	c->cert = NULL;
	c->key = NULL;
	c->version = 0;
}

void acme_tls_ctx_free(struct acme_tls_ctx *ctx)
{
	if (!ctx)
		return;
	while (ctx->nidle) {
		ctx->nidle--;
		BIO_free(ctx->idle[ctx->nidle].rbio);
		BIO_free(ctx->idle[ctx->nidle].wbio);
	}
	if (ctx->cache) {
		for (uint32_t i = 0; i < ctx->nslots; i++)
			cache_drop(&ctx->cache[i]);
		free(ctx->cache);
	}
	free(ctx->warm_entry);
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

/*
 * Parses the entry's payload into c. Each DER part must be consumed exactly:
 * trailing bytes mean the writer and we disagree on the layout, and serving
 * half of what was meant is worse than refusing. On failure c is empty.
 */
static int cache_fill(struct acme_tls_cached *c, const struct store_entry *e,
		      char *err, size_t errlen)
{
	const unsigned char *p = e->payload;
	const unsigned char *end = e->payload + e->cert_len;
	long key_len = (long)(e->payload_len - e->cert_len);

	cache_drop(c);
	c->cert = d2i_X509(NULL, &p, (long)e->cert_len);
	if (!c->cert) {
		ossl_err(err, errlen, "certificate DER");
		goto out_drop;
	}
	if (p != end) {
		err_set(err, errlen, "certificate DER: %ld trailing bytes",
			(long)(end - p));
		goto out_drop;
	}
	end = e->payload + e->payload_len;
	c->key = d2i_AutoPrivateKey(NULL, &p, key_len);
	if (!c->key) {
		ossl_err(err, errlen, "private key DER");
		goto out_drop;
	}
	if (p != end) {
		err_set(err, errlen, "private key DER: %ld trailing bytes",
			(long)(end - p));
		goto out_drop;
	}
	if (!X509_check_private_key(c->cert, c->key)) {
		ossl_err(err, errlen, "private key does not match certificate");
		goto out_drop;
	}
	c->version = e->version;
	return 0;

out_drop:
	cache_drop(c);
	ERR_clear_error();
	return -1;
}

/*
 * The cache entry holding e's certificate and key, parsed now unless they
 * were already; NULL with a reason in err when e cannot be used.
 */
static struct acme_tls_cached *cache_get(struct acme_tls_ctx *ctx,
					 const struct store_entry *e,
					 char *err, size_t errlen)
{
	struct acme_tls_cached *c;

	if (e->kind != STORE_TLSALPN01) {
		err_set(err, errlen, "entry is not tls-alpn-01");
		return NULL;
	}
	if (e->slot >= ctx->nslots) {
		err_set(err, errlen, "slot %u out of range (%u slots)",
			e->slot, ctx->nslots);
		return NULL;
	}
	if (e->payload_len > STORE_PAYLOAD_MAX || e->cert_len == 0 ||
	    e->cert_len >= e->payload_len) {
		err_set(err, errlen,
			"bad payload layout (cert %u of %u bytes)",
			e->cert_len, e->payload_len);
		return NULL;
	}
	if (e->key_len == 0 || e->key[e->key_len] != '\0') {
		err_set(err, errlen, "entry has no name");
		return NULL;
	}
	c = &ctx->cache[e->slot];
	if ((!c->cert || c->version != e->version) &&
	    cache_fill(c, e, err, errlen) < 0)
		return NULL;
	return c;
}

/*
 * Slots a pass looks at per call, and the least time between the starts of
 * two passes. A look reads one cache line of a slot: a pass over the
 * largest store (65,537 slots) took 0.75 ms, and 25 ms the first time in a
 * process, while the kernel maps the pages (measured on the bench machine).
 * With the gap growing with the store, passes take well under one percent
 * of a worker however often the store changes, and a call stays short.
 */
#define WARM_PEEKS 512
#define WARM_GAP_MIN_MS 50
#define WARM_GAP_SLOTS_PER_MS 512

bool acme_tls_warm(struct acme_tls_ctx *ctx, const struct store *st,
		   int64_t now_ms)
{
	uint32_t n = store_nslots(st), end;
	int64_t wall_ms;
	char err[128];

	if (n > ctx->nslots)
		n = ctx->nslots;
	if (ctx->warm_pos >= n) {
		uint64_t changes = store_changes(st);

		if (changes == ctx->warm_seen || now_ms < ctx->warm_next_ms)
			return false;
		ctx->warm_seen = changes;
		ctx->warm_pos = 0;
		ctx->warm_next_ms = now_ms + WARM_GAP_MIN_MS +
				    n / WARM_GAP_SLOTS_PER_MS;
	}
	wall_ms = clock_wall_ms();
	end = n - ctx->warm_pos > WARM_PEEKS ? ctx->warm_pos + WARM_PEEKS : n;

	while (ctx->warm_pos < end) {
		uint32_t s = ctx->warm_pos++;
		struct acme_tls_cached *c = &ctx->cache[s];
		uint64_t version;

		if (store_slot_version(st, s, STORE_TLSALPN01, wall_ms,
				       &version) != 1 ||
		    c->version == version)
			continue;
		if (store_read_slot(st, s, wall_ms, ctx->warm_entry) == 1 &&
		    !cache_get(ctx, ctx->warm_entry, err, sizeof(err))) {
			/*
			 * Not tried again by a pass: the handshake that asks
			 * for it parses it once more and reports why it fails.
			 */
			c->version = ctx->warm_entry->version;
		}
		/* One parse a call: it is the costly part. */
		break;
	}
	if (ctx->warm_pos >= n)
		ctx->warm_pos = UINT32_MAX;
	return ctx->warm_pos != UINT32_MAX;
}

/* An empty memory BIO pair: an idle one when the ctx has one. */
static int bios_get(struct acme_tls_ctx *ctx, struct acme_tls_bios *b)
{
	if (ctx->nidle) {
		*b = ctx->idle[--ctx->nidle];
		return 0;
	}
	b->rbio = BIO_new(BIO_s_mem());
	b->wbio = BIO_new(BIO_s_mem());
	if (!b->rbio || !b->wbio) {
		BIO_free(b->rbio);
		BIO_free(b->wbio);
		return -1;
	}
	return 0;
}

static bool bio_small(BIO *b)
{
	BUF_MEM *bm = NULL;

	return BIO_get_mem_ptr(b, &bm) > 0 && bm &&
	       bm->max <= ACME_TLS_IDLE_BUF_MAX;
}

/*
 * Takes our own reference to t's pair when the ctx has room to keep it, so
 * that the SSL_free() which follows drops only the SSL's. Returns whether
 * it did; bios_put() then files the pair.
 */
static bool bios_hold(struct acme_tls_ctx *ctx, BIO *rbio, BIO *wbio)
{
	if (ctx->nidle == ACME_TLS_IDLE_MAX || !bio_small(rbio) ||
	    !bio_small(wbio))
		return false;
	if (!BIO_up_ref(rbio))
		return false;
	if (!BIO_up_ref(wbio)) {
		BIO_free(rbio);
		return false;
	}
	return true;
}

/* Empties a held pair, now ours alone, and makes it idle. */
static void bios_put(struct acme_tls_ctx *ctx, BIO *rbio, BIO *wbio)
{
	if (BIO_reset(rbio) <= 0 || BIO_reset(wbio) <= 0) {
		BIO_free(rbio);
		BIO_free(wbio);
		return;
	}
	ctx->idle[ctx->nidle].rbio = rbio;
	ctx->idle[ctx->nidle].wbio = wbio;
	ctx->nidle++;
}

struct acme_tls *acme_tls_new(struct acme_tls_ctx *ctx,
			      const struct store_entry *e, char *err,
			      size_t errlen)
{
	struct acme_tls_bios b;
	struct acme_tls_cached *c;
	struct acme_tls *t;

	c = cache_get(ctx, e, err, errlen);
	if (!c)
		return NULL;

	t = calloc(1, sizeof(*t));
	if (!t) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(t->name, e->key, e->key_len + 1);
	t->name_len = e->key_len;
	t->ctx = ctx;

	t->ssl = SSL_new(ctx->ssl_ctx);
	if (!t->ssl) {
		ossl_err(err, errlen, "SSL_new");
		goto out_free;
	}
	if (bios_get(ctx, &b) < 0) {
		ossl_err(err, errlen, "BIO_new");
		goto out_free;
	}
	/* Empty input means "wait for the client", not end of stream. */
	BIO_set_mem_eof_return(b.rbio, -1);
	SSL_set_bio(t->ssl, b.rbio, b.wbio);
	t->rbio = b.rbio;
	t->wbio = b.wbio;
	SSL_set_app_data(t->ssl, t);
	SSL_set_accept_state(t->ssl);

	/*
	 * One call for both: SSL_use_certificate() then SSL_use_PrivateKey()
	 * each looked the key type up and checked the pair again. Still one
	 * pair check per handshake (OpenSSL offers no per-SSL setter without
	 * it), on top of cache_fill()'s once per entry version; no
	 * SSL_check_private_key() beyond that, as it would buy nothing. No
	 * chain: the certificate goes alone.
	 */
	if (!SSL_use_cert_and_key(t->ssl, c->cert, c->key, NULL, 1)) {
		ossl_err(err, errlen, "SSL_use_cert_and_key");
		goto out_free;
	}
	return t;

out_free:
	acme_tls_free(t);
	ERR_clear_error();
	return NULL;
}

int acme_tls_feed(struct acme_tls *t, const uint8_t *buf, size_t len)
{
	int n;

	if (len == 0)
		return 0;
	if (len > ACME_TLS_FEED_MAX - t->fed) {
		fail_reason(t, "client sent over %d bytes in the handshake",
			    ACME_TLS_FEED_MAX);
		t->state = AT_FAILED;
		return -1;
	}
	/* len <= ACME_TLS_FEED_MAX, so the int conversion is exact. */
	n = BIO_write(t->rbio, buf, (int)len);
	if (n != (int)len) {
		/* A memory BIO only fails to take everything when out of memory. */
		ERR_clear_error();
		fail_reason(t, "out of memory buffering client bytes");
		t->state = AT_FAILED;
		return -1;
	}
	t->fed += len;
	return 0;
}

/*
 * ERR_clear_error() for the hot path, where the queue is almost always
 * empty already: ERR_clear_error() walks every slot of the queue whatever
 * it holds, while ERR_peek_error() is the very test SSL_get_error() applies,
 * and far cheaper. A zero peek means no entry SSL_get_error() could see.
 */
static void err_drain(void)
{
	if (ERR_peek_error())
		ERR_clear_error();
}

static const char *ssl_error_name(int code)
{
	switch (code) {
	case SSL_ERROR_SSL:
		return "protocol error";
	case SSL_ERROR_SYSCALL:
		return "I/O error";
	case SSL_ERROR_ZERO_RETURN:
		return "close_notify during handshake";
	case SSL_ERROR_WANT_WRITE:
		return "output blocked";
	default:
		return "unexpected state";
	}
}

/* Records why the handshake failed; the alert OpenSSL wrote stays in wbio. */
static enum acme_tls_status step_fail(struct acme_tls *t, int code)
{
	unsigned long e = ERR_peek_error();
	char reason[120];

	if (e) {
		ERR_error_string_n(e, reason, sizeof(reason));
		fail_reason(t, "%s: %s", ssl_error_name(code), reason);
	} else {
		fail_reason(t, "%s", ssl_error_name(code));
	}
	ERR_clear_error();
	t->state = AT_FAILED;
	return ACME_TLS_ERROR;
}

enum acme_tls_status acme_tls_step(struct acme_tls *t)
{
	const unsigned char *proto = NULL;
	unsigned int proto_len = 0;
	int rc, code;

	if (t->state == AT_DONE)
		return ACME_TLS_DONE;
	if (t->state == AT_FAILED)
		return ACME_TLS_ERROR;

	/* A stale entry would make SSL_get_error() report a failure. */
	err_drain();
	rc = SSL_do_handshake(t->ssl);
	if (rc != 1) {
		code = SSL_get_error(t->ssl, rc);
		if (code == SSL_ERROR_WANT_READ) {
			err_drain();
			return ACME_TLS_WANT_READ;
		}
		return step_fail(t, code);
	}

	/*
	 * The callbacks leave no way to finish without acme-tls/1, but the
	 * validator's rule is "negotiated exactly acme-tls/1", so say it here
	 * where it cannot be undone by a change to a callback.
	 */
	SSL_get0_alpn_selected(t->ssl, &proto, &proto_len);
	if (proto_len != ACME_ALPN_ID_LEN ||
	    memcmp(proto, acme_alpn_id, ACME_ALPN_ID_LEN) != 0) {
		fail_reason(t, "handshake finished without acme-tls/1");
		ERR_clear_error();
		t->state = AT_FAILED;
		return ACME_TLS_ERROR;
	}

	/*
	 * Queue our close_notify behind the last handshake message. 0 means
	 * "sent, the client's has not arrived", which is all we want: we never
	 * read past the handshake.
	 */
	rc = SSL_shutdown(t->ssl);
	if (rc < 0)
		return step_fail(t, SSL_get_error(t->ssl, rc));
	err_drain();
	t->state = AT_DONE;
	return ACME_TLS_DONE;
}

size_t acme_tls_pending(const struct acme_tls *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t acme_tls_take(struct acme_tls *t, uint8_t *buf, size_t cap)
{
	int n;

	if (cap == 0)
		return 0;
	if (cap > INT_MAX)
		cap = INT_MAX;
	/* An empty memory BIO returns -1 with "retry" set: nothing to send. */
	n = BIO_read(t->wbio, buf, (int)cap);
	return n > 0 ? (size_t)n : 0;
}

const char *acme_tls_error(const struct acme_tls *t)
{
	return t->err[0] ? t->err : "no error";
}

const char *acme_tls_version(const struct acme_tls *t)
{
	return SSL_get_version(t->ssl);
}

void acme_tls_free(struct acme_tls *t)
{
	bool keep;

	if (!t)
		return;
	/* t->rbio is set only once the SSL owns the pair. */
	keep = t->rbio && bios_hold(t->ctx, t->rbio, t->wbio);
	/*
	 * Frees rbio and wbio with it unless held; nothing of the client is
	 * read after.
	 */
	SSL_free(t->ssl);
	if (keep)
		bios_put(t->ctx, t->rbio, t->wbio);
	free(t);
}
