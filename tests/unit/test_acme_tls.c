/*
 * acme_tls: server handshakes driven against a real OpenSSL client in the
 * same process, each side on its own pair of memory BIOs, with the test
 * moving bytes between them the way the proxy's connection loop will
 * (whole flights, or one byte at a time each way).
 *
 * Entries are built by certgen_build() exactly as solver-api stores them:
 * key = the SNI name (ident_sni_name), payload = cert DER || PKCS#8 key DER.
 *
 * OpenSSL's allocator is routed through counting hooks installed before
 * any OpenSSL call, so "no growth over 2000 handshakes" is measured in
 * bytes here, on top of LSan's leak report at exit.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>	/* before check.h, which uses abort() */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/acme_tls.h"
#include "solver-api/certgen.h"
#include "check.h"
#include "common/ident.h"
#include "store/store.h"

#define NSLOTS 16
#define VALID_S 86400u

/* ---- counting allocator hooks ---------------------------------------- */

/* A header keeps the size and max_align_t alignment of the user block. */
#define HOOK_HDR 16

static long live_bytes;	/* updated atomically: the thread test allocates too */

static void *hook_malloc(size_t n, const char *file, int line)
{
	unsigned char *p = malloc(HOOK_HDR + n);

	(void)file;
	(void)line;
	if (!p)
		return NULL;
	memcpy(p, &n, sizeof(n));
	__atomic_add_fetch(&live_bytes, (long)n, __ATOMIC_RELAXED);
	return p + HOOK_HDR;
}

static void hook_free(void *ptr, const char *file, int line)
{
	unsigned char *p = ptr;
	size_t n;

	(void)file;
	(void)line;
	if (!p)
		return;
	p -= HOOK_HDR;
	memcpy(&n, p, sizeof(n));
	__atomic_sub_fetch(&live_bytes, (long)n, __ATOMIC_RELAXED);
	free(p);
}

static void *hook_realloc(void *ptr, size_t n, const char *file, int line)
{
	unsigned char *p = ptr, *q;
	size_t old;

	if (!p)
		return hook_malloc(n, file, line);
	if (n == 0) {
		hook_free(ptr, file, line);
		return NULL;
	}
	p -= HOOK_HDR;
	memcpy(&old, p, sizeof(old));
	q = realloc(p, HOOK_HDR + n);
	if (!q)
		return NULL;
	memcpy(q, &n, sizeof(n));
	__atomic_add_fetch(&live_bytes, (long)n - (long)old, __ATOMIC_RELAXED);
	return q + HOOK_HDR;
}

static long live_now(void)
{
	return __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
}

/* ---- entries ---------------------------------------------------------- */

struct fixture {
	const char *text;	/* the identifier as an API client gives it */
	struct ident id;
	struct certgen_der der;
	struct store_entry e;
};

static int fixture_build(struct fixture *f, const char *text, uint32_t slot,
			 uint64_t version)
{
	uint8_t digest[32];
	char err[256];
	int n;

	memset(f, 0, sizeof(*f));
	f->text = text;
	if (ident_parse(text, strlen(text), &f->id) < 0)
		return -1;
	/* Any 32 bytes do: acme_tls never looks inside the extension. */
	if (!EVP_Digest(text, strlen(text), digest, NULL, EVP_sha256(), NULL))
		return -1;
	if (certgen_build(&f->id, digest, VALID_S, &f->der, err,
			  sizeof(err)) < 0) {
		fprintf(stderr, "certgen_build(%s): %s\n", text, err);
		return -1;
	}
	BUG_ON(f->der.cert_len + f->der.key_len > STORE_PAYLOAD_MAX);

	f->e.kind = STORE_TLSALPN01;
	n = ident_sni_name(&f->id, f->e.key, sizeof(f->e.key));
	if (n < 0)
		return -1;
	f->e.key_len = (uint8_t)n;
	memcpy(f->e.ident, f->id.name, f->id.name_len + 1);
	f->e.ident_len = (uint8_t)f->id.name_len;
	memcpy(f->e.payload, f->der.cert, f->der.cert_len);
	memcpy(f->e.payload + f->der.cert_len, f->der.key, f->der.key_len);
	f->e.cert_len = (uint32_t)f->der.cert_len;
	f->e.payload_len = (uint32_t)(f->der.cert_len + f->der.key_len);
	f->e.slot = slot;
	f->e.version = version;
	f->e.created_ms = 1;
	f->e.expires_ms = INT64_MAX;
	return 0;
}

static void fixture_free(struct fixture *f)
{
	certgen_der_free(&f->der);
}

/* ---- the in-process client and the byte pump ------------------------- */

static const uint8_t alpn_acme[] = "\x0a" "acme-tls/1";
static const uint8_t alpn_h2[] = "\x02" "h2";
static const uint8_t alpn_h2_acme[] = "\x02" "h2" "\x0a" "acme-tls/1";

struct hs_opts {
	SSL_CTX *cctx;			/* the client's context (versions) */
	const uint8_t *alpn;		/* wire format; NULL: no ALPN at all */
	size_t alpn_len;
	const char *sni;		/* NULL: no SNI */
	size_t chunk;			/* bytes moved per turn each way; 0: all */
	bool stale_errors;		/* dirty the error queue before each step */
	double *server_s;		/* when set, adds the time spent in acme_tls_* */
	bool client_closes;		/* client sends close_notify once finished */
};

struct hs_result {
	enum acme_tls_status server;
	int client;			/* 1 finished, -1 failed, 0 stalled */
	int client_reason;		/* ERR_GET_REASON of the client's failure */
	size_t alert_pending;		/* server output waiting when it failed */
	bool done_seen;
	size_t unread_at_done;		/* client bytes not fed when DONE came */
	bool client_finished_at_done;
	size_t client_sent_after_done;	/* the client's bytes fed after DONE */
	int read_rc, read_err;		/* the client's SSL_read afterwards */
	int tickets;			/* sessions the client was handed */
	int queue_dirty;		/* calls that left the error queue dirty */
	char alpn[32];
	char version[16];
	uint8_t peer[4096];
	size_t peer_len;
	char err[200];
};

static int on_client_session(SSL *ssl, SSL_SESSION *sess)
{
	struct hs_result *r = SSL_get_app_data(ssl);

	(void)sess;
	r->tickets++;
	return 0;	/* not kept: OpenSSL frees it */
}

static SSL_CTX *client_ctx_new(int min_ver, int max_ver, bool seclevel0)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	BUG_ON(!c);
	if (min_ver)
		BUG_ON(!SSL_CTX_set_min_proto_version(c, min_ver));
	if (max_ver)
		BUG_ON(!SSL_CTX_set_max_proto_version(c, max_ver));
	/* TLS 1.0/1.1 need SHA-1 signatures, refused above level 0. */
	if (seclevel0)
		BUG_ON(!SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0"));
	/* Count every session (TLS 1.2 ID or TLS 1.3 ticket) offered to us. */
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT |
				       SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(c, on_client_session);
	return c;
}

static void queue_check(struct hs_result *r)
{
	if (ERR_peek_error()) {
		r->queue_dirty++;
		ERR_clear_error();
	}
}

/*
 * Runs the client against t until both sides stop moving. The client runs
 * first each turn, then its output goes to the server, the server steps,
 * and its output goes back: the order a proxy sees on a socket.
 */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pump(struct acme_tls *t, const struct hs_opts *o,
		 struct hs_result *r)
{
	double t0 = 0;
	size_t chunk = o->chunk ? o->chunk : 16384;
	uint8_t buf[16384];
	BIO *cin, *cout;
	SSL *c;
	int rc;

	memset(r, 0, sizeof(*r));
	r->server = ACME_TLS_WANT_READ;
	c = SSL_new(o->cctx);
	BUG_ON(!c);
	cin = BIO_new(BIO_s_mem());
	cout = BIO_new(BIO_s_mem());
	BUG_ON(!cin || !cout);
	BIO_set_mem_eof_return(cin, -1);
	SSL_set_bio(c, cin, cout);
	SSL_set_connect_state(c);
	SSL_set_app_data(c, r);
	if (o->sni)
		BUG_ON(!SSL_set_tlsext_host_name(c, o->sni));
	if (o->alpn)	/* 0 is success here, unlike nearly everywhere else */
		BUG_ON(SSL_set_alpn_protos(c, o->alpn,
					   (unsigned)o->alpn_len) != 0);

	for (int turn = 0; turn < 1000000; turn++) {
		bool moved = false;
		int n;

		if (r->client == 0) {
			rc = SSL_do_handshake(c);
			if (rc == 1) {
				r->client = 1;
				if (o->client_closes)
					SSL_shutdown(c);
			} else if (SSL_get_error(c, rc) != SSL_ERROR_WANT_READ) {
				r->client = -1;
				r->client_reason = ERR_GET_REASON(ERR_peek_error());
			}
			ERR_clear_error();
		}

		if (o->server_s)
			t0 = now_s();
		n = BIO_read(cout, buf, (int)chunk);
		if (n > 0) {
			moved = true;
			if (r->done_seen)
				r->client_sent_after_done += (size_t)n;
			if (acme_tls_feed(t, buf, (size_t)n) < 0)
				r->server = ACME_TLS_ERROR;
			queue_check(r);
		}
		if (r->server == ACME_TLS_WANT_READ) {
			if (o->stale_errors)
				ERR_raise(ERR_LIB_USER, 42);
			r->server = acme_tls_step(t);
			queue_check(r);
			if (r->server == ACME_TLS_ERROR)
				r->alert_pending = acme_tls_pending(t);
		}
		if (r->server == ACME_TLS_DONE && !r->done_seen) {
			r->done_seen = true;
			r->unread_at_done = BIO_ctrl_pending(cout);
			r->client_finished_at_done = r->client == 1;
		}

		n = (int)acme_tls_take(t, buf, chunk);
		if (o->server_s)
			*o->server_s += now_s() - t0;
		if (n > 0) {
			moved = true;
			BUG_ON(BIO_write(cin, buf, n) != n);
		}
		if (!moved && (r->client != 0 || r->server != ACME_TLS_WANT_READ))
			break;
		if (!moved && BIO_ctrl_pending(cout) == 0)
			break;	/* both waiting on each other: a stall */
	}

	snprintf(r->err, sizeof(r->err), "%s", acme_tls_error(t));
	if (r->client == 1) {
		const unsigned char *p;
		unsigned int len;
		X509 *peer;

		SSL_get0_alpn_selected(c, &p, &len);
		if (len < sizeof(r->alpn)) {
			memcpy(r->alpn, p, len);
			r->alpn[len] = '\0';
		}
		snprintf(r->version, sizeof(r->version), "%s",
			 SSL_get_version(c));
		peer = SSL_get1_peer_certificate(c);
		if (peer) {
			int dl = i2d_X509(peer, NULL);

			if (dl > 0 && (size_t)dl <= sizeof(r->peer)) {
				unsigned char *q = r->peer;

				r->peer_len = (size_t)i2d_X509(peer, &q);
			}
			X509_free(peer);
		}
		r->read_rc = SSL_read(c, buf, sizeof(buf));
		r->read_err = SSL_get_error(c, r->read_rc);
		ERR_clear_error();
	}
	SSL_free(c);
}

/* acme_tls_new + pump + acme_tls_free; server = ERROR when new fails. */
static void handshake(struct acme_tls_ctx *ctx, const struct store_entry *e,
		      const struct hs_opts *o, struct hs_result *r)
{
	double t0 = o->server_s ? now_s() : 0;
	char err[160];
	struct acme_tls *t = acme_tls_new(ctx, e, err, sizeof(err));

	if (o->server_s)
		*o->server_s += now_s() - t0;
	if (!t) {
		memset(r, 0, sizeof(*r));
		r->server = ACME_TLS_ERROR;
		snprintf(r->err, sizeof(r->err), "acme_tls_new: %s", err);
		return;
	}
	pump(t, o, r);
	if (o->server_s)
		t0 = now_s();
	acme_tls_free(t);
	if (o->server_s)
		*o->server_s += now_s() - t0;
}

static bool served(const struct hs_result *r, const struct store_entry *e)
{
	return r->peer_len == e->cert_len &&
	       memcmp(r->peer, e->payload, e->cert_len) == 0;
}

/* Every property of a good validation, with the case named on failure. */
static void check_good(const char *what, const struct hs_result *r,
		       const struct store_entry *e, const char *want_version)
{
	CHECKF(r->server == ACME_TLS_DONE, "%s: server %d (%s)", what,
	       r->server, r->err);
	CHECKF(r->client == 1, "%s: client %d reason %d", what, r->client,
	       r->client_reason);
	CHECKF(strcmp(r->alpn, "acme-tls/1") == 0, "%s: alpn '%s'", what,
	       r->alpn);
	CHECKF(served(r, e), "%s: peer certificate is not the entry's", what);
	CHECKF(r->read_rc == 0 && r->read_err == SSL_ERROR_ZERO_RETURN,
	       "%s: client read %d err %d, want close_notify", what,
	       r->read_rc, r->read_err);
	CHECKF(r->tickets == 0, "%s: client got %d sessions", what,
	       r->tickets);
	CHECKF(r->queue_dirty == 0, "%s: error queue left dirty %d times",
	       what, r->queue_dirty);
	/*
	 * What the proxy relies on to close without an RST: by DONE the
	 * server has read every byte the client wrote (its Finished is the
	 * last), so nothing is left unread in the socket. In TLS 1.3 the
	 * client finished first; in TLS 1.2 the server's Finished is the
	 * last message, so the client finishes after us.
	 */
	CHECKF(r->done_seen && r->unread_at_done == 0,
	       "%s: server DONE with %zu client bytes unread", what,
	       r->unread_at_done);
	CHECKF(r->client_sent_after_done == 0,
	       "%s: client wrote %zu bytes after DONE", what,
	       r->client_sent_after_done);
	if (strcmp(r->version, "TLSv1.3") == 0)
		CHECKF(r->client_finished_at_done,
		       "%s: TLS 1.3 server DONE before the client finished",
		       what);
	if (want_version)
		CHECKF(strcmp(r->version, want_version) == 0,
		       "%s: version %s, want %s", what, r->version,
		       want_version);
}

static SSL_CTX *cctx_any, *cctx_12, *cctx_13, *cctx_11;

static struct hs_opts opts_for(const struct fixture *f, SSL_CTX *cctx,
			       size_t chunk)
{
	struct hs_opts o = {
		.cctx = cctx,
		.alpn = alpn_acme,
		.alpn_len = sizeof(alpn_acme) - 1,
		.sni = f->e.key,
		.chunk = chunk,
	};
	return o;
}

/* ---- cases ------------------------------------------------------------ */

static struct fixture fx[3];		/* DNS, IPv4, IPv6; slots 1..3 */

static void test_good(struct acme_tls_ctx *ctx)
{
	static const struct {
		SSL_CTX **cctx;
		const char *name, *version;
	} clients[] = {
		{ &cctx_any, "default", "TLSv1.3" },
		{ &cctx_12, "TLS 1.2", "TLSv1.2" },
		{ &cctx_13, "TLS 1.3", "TLSv1.3" },
	};
	static const size_t chunks[] = { 0, 1, 7 };

	for (size_t i = 0; i < ARRAY_SIZE(fx); i++)
		for (size_t v = 0; v < ARRAY_SIZE(clients); v++)
			for (size_t k = 0; k < ARRAY_SIZE(chunks); k++) {
				struct hs_opts o = opts_for(&fx[i],
							    *clients[v].cctx,
							    chunks[k]);
				struct hs_result r;
				char what[128];

				snprintf(what, sizeof(what),
					 "%s, %s, chunk %zu", fx[i].text,
					 clients[v].name, chunks[k]);
				handshake(ctx, &fx[i].e, &o, &r);
				check_good(what, &r, &fx[i].e,
					   clients[v].version);
			}
}

/* acme_tls_version and the server's view of the result. */
static void test_server_view(struct acme_tls_ctx *ctx)
{
	struct hs_opts o = opts_for(&fx[0], cctx_12, 0);
	struct hs_result r;
	char err[200];
	struct acme_tls *t = acme_tls_new(ctx, &fx[0].e, err, sizeof(err));

	CHECKF(t != NULL, "%s", err);
	if (!t)
		return;
	CHECK(acme_tls_pending(t) == 0);
	CHECK(acme_tls_step(t) == ACME_TLS_WANT_READ);	/* nothing fed yet */
	pump(t, &o, &r);
	check_good("server view", &r, &fx[0].e, "TLSv1.2");
	CHECK(strcmp(acme_tls_version(t), "TLSv1.2") == 0);
	CHECK(acme_tls_step(t) == ACME_TLS_DONE);	/* DONE is final */
	CHECK(acme_tls_pending(t) == 0);		/* no second close_notify */
	CHECK(strcmp(acme_tls_error(t), "no error") == 0);
	acme_tls_free(t);
}

/* Client offers that must be refused, with the alert the client reads. */
static void test_refusals(struct acme_tls_ctx *ctx)
{
	struct hs_result r;
	struct hs_opts o;

	o = opts_for(&fx[0], cctx_any, 0);
	o.alpn = alpn_h2;
	o.alpn_len = sizeof(alpn_h2) - 1;
	handshake(ctx, &fx[0].e, &o, &r);
	CHECKF(r.server == ACME_TLS_ERROR, "h2 only: server %d", r.server);
	CHECKF(r.alert_pending > 0, "h2 only: no alert queued");
	CHECKF(r.client == -1 &&
	       r.client_reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL,
	       "h2 only: client %d reason %d", r.client, r.client_reason);
	CHECK(r.queue_dirty == 0);
	printf("h2 only: \"%s\"\n", r.err);

	o = opts_for(&fx[0], cctx_12, 0);
	o.alpn = alpn_h2;
	o.alpn_len = sizeof(alpn_h2) - 1;
	handshake(ctx, &fx[0].e, &o, &r);
	CHECKF(r.server == ACME_TLS_ERROR && r.alert_pending > 0 &&
	       r.client_reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL,
	       "h2 only, TLS 1.2: server %d client reason %d", r.server,
	       r.client_reason);

	o = opts_for(&fx[0], cctx_any, 0);
	o.alpn = NULL;
	handshake(ctx, &fx[0].e, &o, &r);
	CHECKF(r.server == ACME_TLS_ERROR && r.alert_pending > 0 &&
	       r.client_reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL,
	       "no ALPN: server %d client reason %d (%s)", r.server,
	       r.client_reason, r.err);
	CHECK(r.peer_len == 0);
	printf("no ALPN: \"%s\"\n", r.err);

	/* Other protocols beside acme-tls/1 are fine; it is what we pick. */
	o = opts_for(&fx[0], cctx_any, 0);
	o.alpn = alpn_h2_acme;
	o.alpn_len = sizeof(alpn_h2_acme) - 1;
	handshake(ctx, &fx[0].e, &o, &r);
	check_good("h2 + acme-tls/1", &r, &fx[0].e, NULL);

	o = opts_for(&fx[0], cctx_11, 0);
	handshake(ctx, &fx[0].e, &o, &r);
	CHECKF(r.server == ACME_TLS_ERROR, "TLS 1.1: server %d", r.server);
	CHECKF(r.alert_pending > 0, "TLS 1.1: no alert queued");
	CHECKF(r.client == -1 &&
	       r.client_reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION,
	       "TLS 1.1: client %d reason %d", r.client, r.client_reason);
	CHECK(r.queue_dirty == 0);
	printf("TLS 1.1: \"%s\" (client reason %d)\n", r.err,
	       r.client_reason);

	o = opts_for(&fx[0], cctx_any, 0);
	o.sni = "other.example.org";
	handshake(ctx, &fx[0].e, &o, &r);
	CHECKF(r.server == ACME_TLS_ERROR && r.alert_pending > 0 &&
	       r.client_reason == SSL_R_TLSV1_UNRECOGNIZED_NAME,
	       "wrong SNI: server %d client reason %d", r.server,
	       r.client_reason);
	CHECK(r.peer_len == 0);
	printf("wrong SNI: \"%s\"\n", r.err);

	o = opts_for(&fx[0], cctx_any, 0);
	o.sni = NULL;
	handshake(ctx, &fx[0].e, &o, &r);
	CHECKF(r.server == ACME_TLS_ERROR &&
	       r.client_reason == SSL_R_TLSV1_UNRECOGNIZED_NAME,
	       "no SNI: server %d client reason %d", r.server,
	       r.client_reason);

	/* SNI is a DNS name: case does not matter. */
	{
		char upper[STORE_KEY_MAX + 3];	/* the key, ".." */

		for (size_t i = 0; i <= fx[0].e.key_len; i++)
			upper[i] = (char)(fx[0].e.key[i] >= 'a' &&
					  fx[0].e.key[i] <= 'z' ?
					  fx[0].e.key[i] - 32 : fx[0].e.key[i]);
		o = opts_for(&fx[0], cctx_any, 0);
		o.sni = upper;
		handshake(ctx, &fx[0].e, &o, &r);
		check_good("upper-case SNI", &r, &fx[0].e, NULL);

		/* One trailing dot, as the proxy's lookup ignores it too. */
		snprintf(upper, sizeof(upper), "%s.", fx[0].e.key);
		o.sni = upper;
		handshake(ctx, &fx[0].e, &o, &r);
		check_good("SNI with a trailing dot", &r, &fx[0].e, NULL);

		snprintf(upper, sizeof(upper), "%s..", fx[0].e.key);
		handshake(ctx, &fx[0].e, &o, &r);
		CHECKF(r.server == ACME_TLS_ERROR, "SNI with two dots: %d",
		       r.server);

		/* A name that only starts like the entry's. */
		snprintf(upper, sizeof(upper), "%sx", fx[0].e.key);
		handshake(ctx, &fx[0].e, &o, &r);
		CHECKF(r.server == ACME_TLS_ERROR, "SNI longer: %d", r.server);
		memcpy(upper, fx[0].e.key, fx[0].e.key_len - 1);
		upper[fx[0].e.key_len - 1] = '\0';
		handshake(ctx, &fx[0].e, &o, &r);
		CHECKF(r.server == ACME_TLS_ERROR, "SNI shorter: %d", r.server);
	}
}

/*
 * A validator that closes as soon as its handshake is done (Go's Close()
 * sends close_notify): in TLS 1.3 its close_notify can arrive in the same
 * read as its Finished, or after our DONE. Either way DONE, and the extra
 * bytes are simply never read.
 */
static void test_client_closes(struct acme_tls_ctx *ctx)
{
	static const size_t chunks[] = { 0, 1 };
	SSL_CTX *cctxs[] = { cctx_12, cctx_13 };

	for (size_t v = 0; v < ARRAY_SIZE(cctxs); v++)
		for (size_t k = 0; k < ARRAY_SIZE(chunks); k++) {
			struct hs_opts o = opts_for(&fx[2], cctxs[v], chunks[k]);
			struct hs_result r;

			o.client_closes = true;
			handshake(ctx, &fx[2].e, &o, &r);
			CHECKF(r.server == ACME_TLS_DONE && r.client == 1 &&
			       served(&r, &fx[2].e) && r.queue_dirty == 0 &&
			       r.read_rc == 0 &&
			       r.read_err == SSL_ERROR_ZERO_RETURN,
			       "client closes, %s, chunk %zu: server %d client %d (%s)",
			       v ? "TLS 1.3" : "TLS 1.2", chunks[k], r.server,
			       r.client, r.err);
			printf("client closes, %s, chunk %zu: %zu client bytes after DONE\n",
			       v ? "TLS 1.3" : "TLS 1.2", chunks[k],
			       r.client_sent_after_done);
		}
}

static void feed_str(struct acme_tls *t, const char *s)
{
	CHECK(acme_tls_feed(t, (const uint8_t *)s, strlen(s)) == 0);
}

static void test_garbage(struct acme_tls_ctx *ctx)
{
	/* A handshake record whose ClientHello body is cut short. */
	static const uint8_t bad_hello[] = {
		0x16, 0x03, 0x01, 0x00, 0x08,
		0x01, 0x00, 0x00, 0x04, 0x03, 0x03, 0xff, 0xff,
	};
	char err[200];
	struct acme_tls *t;
	uint8_t out[64];
	size_t n;

	t = acme_tls_new(ctx, &fx[0].e, err, sizeof(err));
	BUG_ON(!t);
	feed_str(t, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
	CHECK(acme_tls_step(t) == ACME_TLS_ERROR);
	CHECK(strcmp(acme_tls_error(t), "no error") != 0);
	CHECK(ERR_peek_error() == 0);
	CHECK(acme_tls_step(t) == ACME_TLS_ERROR);	/* ERROR is final */
	printf("HTTP request: \"%s\", %zu bytes of alert\n", acme_tls_error(t),
	       acme_tls_pending(t));
	acme_tls_free(t);

	t = acme_tls_new(ctx, &fx[0].e, err, sizeof(err));
	BUG_ON(!t);
	CHECK(acme_tls_feed(t, bad_hello, sizeof(bad_hello)) == 0);
	CHECK(acme_tls_step(t) == ACME_TLS_ERROR);
	CHECK(strcmp(acme_tls_error(t), "no error") != 0);
	CHECK(ERR_peek_error() == 0);
	n = acme_tls_take(t, out, sizeof(out));
	/* decode_error: 15 03 0x 00 02 02 32 */
	CHECKF(n == 7 && out[0] == 0x15 && out[5] == 2 && out[6] == 50,
	       "bad hello: %zu bytes of output", n);
	CHECK(acme_tls_pending(t) == 0);
	printf("cut hello: \"%s\"\n", acme_tls_error(t));
	acme_tls_free(t);

	/* 64 KiB of input is the most a handshake may take. */
	t = acme_tls_new(ctx, &fx[0].e, err, sizeof(err));
	BUG_ON(!t);
	{
		static uint8_t junk[4096];
		bool ok = true;

		memset(junk, 0x16, sizeof(junk));
		for (int i = 0; i < 16; i++)
			ok &= acme_tls_feed(t, junk, sizeof(junk)) == 0;
		CHECKF(ok, "64 KiB refused early");
		CHECK(acme_tls_feed(t, junk, 1) == -1);
		CHECK(acme_tls_step(t) == ACME_TLS_ERROR);
		CHECK(strstr(acme_tls_error(t), "bytes") != NULL);
		printf("over 64 KiB: \"%s\"\n", acme_tls_error(t));
	}
	acme_tls_free(t);

	/* One oversized feed is refused whole. */
	t = acme_tls_new(ctx, &fx[0].e, err, sizeof(err));
	BUG_ON(!t);
	{
		uint8_t *big = calloc(1, 64 * 1024 + 1);

		BUG_ON(!big);
		CHECK(acme_tls_feed(t, big, 64 * 1024 + 1) == -1);
		free(big);
	}
	acme_tls_free(t);

	CHECK(ERR_peek_error() == 0);
}

static void expect_refused(struct acme_tls_ctx *ctx,
			   const struct store_entry *e, const char *what)
{
	char err[200] = "";
	struct acme_tls *t = acme_tls_new(ctx, e, err, sizeof(err));

	CHECKF(t == NULL, "%s: accepted", what);
	CHECKF(err[0] != '\0', "%s: no reason", what);
	CHECKF(ERR_peek_error() == 0, "%s: error queue left dirty", what);
	ERR_clear_error();
	acme_tls_free(t);
	printf("%s: \"%s\"\n", what, err);
}

static void test_bad_entries(struct acme_tls_ctx *ctx)
{
	struct store_entry *e = malloc(sizeof(*e));
	const struct store_entry *a = &fx[0].e, *b = &fx[1].e;
	uint32_t key_b_len = b->payload_len - b->cert_len;

	BUG_ON(!e);

	*e = *a;
	e->slot = NSLOTS;
	expect_refused(ctx, e, "slot == nslots");
	e->slot = UINT32_MAX;
	expect_refused(ctx, e, "slot UINT32_MAX");

	*e = *a;
	e->kind = STORE_HTTP01;
	expect_refused(ctx, e, "http-01 entry");

	*e = *a;
	e->cert_len = 0;
	expect_refused(ctx, e, "cert_len 0");
	e->cert_len = e->payload_len;
	expect_refused(ctx, e, "no key part");
	e->cert_len = e->payload_len + 1;
	expect_refused(ctx, e, "cert_len past payload");
	*e = *a;
	e->payload_len = STORE_PAYLOAD_MAX + 1;
	expect_refused(ctx, e, "payload_len past the array");

	/* Fresh versions below so the cache cannot answer for these. */
	*e = *a;
	e->slot = 9;
	e->version = 900;
	memcpy(e->payload + a->cert_len, b->payload + b->cert_len, key_b_len);
	e->payload_len = a->cert_len + key_b_len;
	expect_refused(ctx, e, "key of another certificate");

	*e = *a;
	e->slot = 9;
	e->version = 901;
	e->payload[0] ^= 0xff;
	expect_refused(ctx, e, "certificate DER garbage");

	*e = *a;
	e->slot = 9;
	e->version = 902;
	e->payload[a->cert_len + 1] ^= 0x55;
	expect_refused(ctx, e, "key DER garbage");

	/* cert || 00 || key with cert_len covering the stray byte. */
	*e = *a;
	e->slot = 9;
	e->version = 903;
	e->payload[a->cert_len] = 0;
	memcpy(e->payload + a->cert_len + 1, a->payload + a->cert_len,
	       a->payload_len - a->cert_len);
	e->cert_len = a->cert_len + 1;
	e->payload_len = a->payload_len + 1;
	expect_refused(ctx, e, "byte between certificate and key");

	/* key || 00: trailing bytes after the key. */
	*e = *a;
	e->slot = 9;
	e->version = 904;
	e->payload[a->payload_len] = 0;
	e->payload_len = a->payload_len + 1;
	expect_refused(ctx, e, "byte after the key");

	/* A failed parse leaves the slot usable for the next version. */
	*e = *a;
	e->slot = 9;
	e->version = 905;
	{
		struct hs_opts o = opts_for(&fx[0], cctx_any, 0);
		struct hs_result r;

		handshake(ctx, e, &o, &r);
		check_good("slot after a refused entry", &r, e, NULL);
	}
	free(e);
}

/*
 * The cache, seen from outside: (slot, version) is what it trusts. The same
 * version with a different payload still serves the parsed certificate of
 * the first (impossible with a real store, proof of a hit here); a new
 * version in the slot serves the new one.
 */
static void test_cache(struct acme_tls_ctx *ctx)
{
	struct store_entry *e = malloc(sizeof(*e));
	struct fixture *g = malloc(sizeof(*g));
	struct hs_result r;
	struct hs_opts o;

	BUG_ON(!e || !g);
	BUG_ON(fixture_build(g, "example.com", 5, 10) < 0);
	*e = g->e;	/* certificate A */

	o = opts_for(g, cctx_any, 0);
	handshake(ctx, e, &o, &r);
	check_good("cache: A v10", &r, &g->e, NULL);

	/* Payload of a second certificate, same name, same (slot, version). */
	fixture_free(g);
	BUG_ON(fixture_build(g, "example.com", 5, 10) < 0);
	handshake(ctx, &g->e, &o, &r);
	CHECKF(r.server == ACME_TLS_DONE && served(&r, e),
	       "cache: same version did not hit (server %d)", r.server);
	CHECK(!served(&r, &g->e));

	g->e.version = 11;
	handshake(ctx, &g->e, &o, &r);
	check_good("cache: B v11", &r, &g->e, NULL);

	e->version = 12;
	handshake(ctx, e, &o, &r);
	check_good("cache: A v12", &r, e, NULL);

	/* A handshake keeps its pair when the slot moves on under it. */
	{
		char err[200];
		struct acme_tls *t1, *t2;

		e->version = 13;
		t1 = acme_tls_new(ctx, e, err, sizeof(err));
		g->e.version = 14;
		t2 = acme_tls_new(ctx, &g->e, err, sizeof(err));
		CHECK(t1 && t2);
		if (t1 && t2) {
			pump(t1, &o, &r);
			check_good("cache: replaced under t1", &r, e, NULL);
			pump(t2, &o, &r);
			check_good("cache: t2", &r, &g->e, NULL);
		}
		acme_tls_free(t1);
		acme_tls_free(t2);
	}
	fixture_free(g);
	free(g);
	free(e);
}

/* Calls acme_tls_warm() until its pass is over, which it must be soon. */
static void warm_all(struct acme_tls_ctx *ctx, const struct store *st,
		     int64_t now_ms)
{
	unsigned calls = 1;

	while (acme_tls_warm(ctx, st, now_ms) && calls < 1000)
		calls++;
	CHECKF(calls < 1000, "warm: the pass did not end");
}

/*
 * A handshake with e's slot and version but other's payload serves what
 * the cache holds for that version: e's certificate when a pass parsed it.
 */
static bool warmed(struct acme_tls_ctx *ctx, const struct store_entry *e,
		   struct fixture *other)
{
	struct hs_result r;
	struct hs_opts o = opts_for(other, cctx_any, 0);

	other->e.slot = e->slot;
	other->e.version = e->version;
	handshake(ctx, &other->e, &o, &r);
	return r.server == ACME_TLS_DONE && served(&r, e);
}

/*
 * acme_tls_warm() against a real store: new tls-alpn-01 entries are parsed
 * before any handshake asks for them, a pass ends, a new one waits for the
 * store to change and for its gap, and an entry that cannot be parsed
 * neither stops a pass nor is served.
 */
static void test_warm(void)
{
	struct shm_owner own = {.uid = geteuid(), .gid = getegid()};
	struct fixture *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct store_entry *e = malloc(sizeof(*e));
	struct store *w = NULL, *rd = NULL;
	struct acme_tls_ctx *ctx;
	char path[96], lock[104], err[200];
	int64_t now = 1000;

	BUG_ON(!a || !b || !e);
	snprintf(path, sizeof(path), "/dev/shm/acme-edge-test-acme-tls-%d",
		 (int)getpid());
	snprintf(lock, sizeof(lock), "%s.lock", path);
	CHECKF(store_open_writer(path, NSLOTS - 1, own, &w, err, sizeof(err)) == 0,
	       "%s", err);
	CHECKF(store_open_reader(path, geteuid(), &rd, err, sizeof(err)) == 0,
	       "%s", err);
	ctx = acme_tls_ctx_new(NSLOTS, err, sizeof(err));
	BUG_ON(!w || !rd || !ctx);
	BUG_ON(fixture_build(a, "warm.example.com", 0, 0) < 0 ||
	       fixture_build(b, "warm.example.com", 0, 0) < 0);

	/* Nothing stored yet: a pass over empty slots, over at once. */
	CHECK(!acme_tls_warm(ctx, rd, now));
	CHECK(!acme_tls_warm(ctx, rd, now += 2000));

	/* An http-01 entry beside it, parsed by nobody. */
	memset(e, 0, sizeof(*e));
	e->kind = STORE_HTTP01;
	memcpy(e->key, "warmtoken", 9);
	e->key_len = 9;
	e->payload_len = 5;
	memcpy(e->payload, "ka.ka", 5);
	e->created_ms = 1;
	e->expires_ms = INT64_MAX;
	CHECK(store_put(w, e, 1) == 0);
	CHECK(store_put(w, &a->e, 1) == 0);
	warm_all(ctx, rd, now += 2000);
	CHECK(warmed(ctx, &a->e, b));

	/* A put right after the pass waits for the gap; nothing before. */
	CHECK(store_put(w, &b->e, 1) == 1);
	CHECK(!acme_tls_warm(ctx, rd, now + 1));
	warm_all(ctx, rd, now += 2000);
	CHECK(warmed(ctx, &b->e, a));
	CHECK(!acme_tls_warm(ctx, rd, now += 2000));

	/* A payload that does not parse: the pass ends, no handshake starts. */
	a->e.payload[0] ^= 0xff;
	CHECK(store_put(w, &a->e, 1) == 1);
	warm_all(ctx, rd, now += 2000);
	CHECK(acme_tls_new(ctx, &a->e, err, sizeof(err)) == NULL);
	CHECKF(strstr(err, "certificate DER") != NULL, "warm: %s", err);
	CHECK(!acme_tls_warm(ctx, rd, now += 2000));

	acme_tls_ctx_free(ctx);
	store_close(rd);
	store_close(w);
	unlink(path);
	unlink(lock);
	fixture_free(a);
	fixture_free(b);
	free(a);
	free(b);
	free(e);
}

/* Someone else's stale error on this thread must not fail our handshake. */
static void test_stale_queue(struct acme_tls_ctx *ctx)
{
	struct hs_opts o = opts_for(&fx[1], cctx_any, 1);
	struct hs_result r;

	o.stale_errors = true;
	handshake(ctx, &fx[1].e, &o, &r);
	r.queue_dirty = 0;	/* the hook itself dirtied it, on purpose */
	check_good("stale errors before each step", &r, &fx[1].e, NULL);

	/* A failure followed by a success on the same thread. */
	o = opts_for(&fx[1], cctx_any, 0);
	o.alpn = alpn_h2;
	o.alpn_len = sizeof(alpn_h2) - 1;
	handshake(ctx, &fx[1].e, &o, &r);
	CHECK(r.server == ACME_TLS_ERROR);
	o = opts_for(&fx[1], cctx_any, 0);
	handshake(ctx, &fx[1].e, &o, &r);
	check_good("success after a failure", &r, &fx[1].e, NULL);
}

static int run_many(struct acme_tls_ctx *ctx, SSL_CTX *cctx, int n,
		    double *server_s)
{
	int good = 0;

	for (int i = 0; i < n; i++) {
		const struct fixture *f = &fx[i % ARRAY_SIZE(fx)];
		struct hs_opts o = opts_for(f, cctx, 0);
		struct hs_result r;

		o.server_s = server_s;

		handshake(ctx, &f->e, &o, &r);
		good += r.server == ACME_TLS_DONE && r.client == 1 &&
			served(&r, &f->e) && r.read_err == SSL_ERROR_ZERO_RETURN;
	}
	return good;
}

/*
 * 2000 handshakes on one ctx: every one good, and OpenSSL's live bytes
 * after them what they were before (after a warm-up that fills the cache
 * and OpenSSL's lazily built tables).
 */
static void test_many(struct acme_tls_ctx *ctx, bool hooks)
{
	double t0, dt, srv = 0;
	long before, after;
	int good;

	CHECK(run_many(ctx, cctx_any, 30, NULL) == 30);
	before = live_now();
	t0 = now_s();
	good = run_many(ctx, cctx_any, 2000, &srv);
	dt = now_s() - t0;
	after = live_now();
	CHECKF(good == 2000, "%d of 2000 handshakes good", good);
	if (hooks) {
		CHECKF(after - before <= 0,
		       "live OpenSSL bytes grew by %ld over 2000 handshakes",
		       after - before);
		printf("live OpenSSL bytes: %ld before, %ld after 2000 handshakes\n",
		       before, after);
	}
	printf("TLS 1.3: %.0f handshakes/s (server and client in-process, one thread); "
	       "server side alone %.0f/s\n", 2000 / dt, 2000 / srv);

	srv = 0;
	t0 = now_s();
	good = run_many(ctx, cctx_12, 2000, &srv);
	dt = now_s() - t0;
	CHECKF(good == 2000, "%d of 2000 TLS 1.2 handshakes good", good);
	printf("TLS 1.2: %.0f handshakes/s (server and client in-process, one thread); "
	       "server side alone %.0f/s\n", 2000 / dt, 2000 / srv);
}

/* ---- threads: one ctx each, nothing shared but the entries ----------- */

#define NTHREADS 4
#define PER_THREAD 200

struct worker {
	pthread_t tid;
	int good;
	char err[200];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct acme_tls_ctx *ctx = acme_tls_ctx_new(NSLOTS, w->err,
						    sizeof(w->err));

	if (!ctx)
		return NULL;
	/* Interleave failures so a dirty queue would show up as losses. */
	for (int i = 0; i < PER_THREAD; i++) {
		const struct fixture *f = &fx[i % ARRAY_SIZE(fx)];
		struct hs_opts o = opts_for(f, (i & 1) ? cctx_12 : cctx_13,
					    (i % 5 == 0) ? 3 : 0);
		struct hs_result r;

		if (i % 7 == 0) {
			o.alpn = alpn_h2;
			o.alpn_len = sizeof(alpn_h2) - 1;
			handshake(ctx, &f->e, &o, &r);
			w->good += r.server == ACME_TLS_ERROR;
			continue;
		}
		handshake(ctx, &f->e, &o, &r);
		w->good += r.server == ACME_TLS_DONE && r.client == 1 &&
			   served(&r, &f->e) && r.queue_dirty == 0;
	}
	acme_tls_ctx_free(ctx);
	return NULL;
}

static void test_threads(void)
{
	struct worker w[NTHREADS];

	memset(w, 0, sizeof(w));
	for (int i = 0; i < NTHREADS; i++)
		BUG_ON(pthread_create(&w[i].tid, NULL, worker_main, &w[i]));
	for (int i = 0; i < NTHREADS; i++) {
		BUG_ON(pthread_join(w[i].tid, NULL));
		CHECKF(w[i].good == PER_THREAD, "thread %d: %d of %d good (%s)",
		       i, w[i].good, PER_THREAD, w[i].err);
	}
}

static void test_ctx_args(void)
{
	char err[200] = "";

	CHECK(acme_tls_ctx_new(0, err, sizeof(err)) == NULL);
	CHECK(err[0] != '\0');
	CHECK(acme_tls_ctx_new(STORE_CAPACITY_MAX + 2, err, sizeof(err)) ==
	      NULL);
	acme_tls_ctx_free(NULL);
	acme_tls_free(NULL);
}

static void test_alert_bytes(void)
{
	static const uint8_t want[7] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112 };

	CHECK(memcmp(acme_tls_alert_unrecognized_name, want, 7) == 0);
}

int main(void)
{
	struct acme_tls_ctx *ctx;
	static const char *texts[] = {
		"acme-edge.example.com", "192.0.2.7", "2001:db8::1:2",
	};
	char err[200];
	bool hooks;

	/* Before any OpenSSL call, or OpenSSL refuses (returns 0). */
	hooks = CRYPTO_set_mem_functions(hook_malloc, hook_realloc, hook_free);
	if (!hooks)
		printf("allocator hooks refused: growth measured by LSan only\n");

	for (size_t i = 0; i < ARRAY_SIZE(fx); i++)
		BUG_ON(fixture_build(&fx[i], texts[i], (uint32_t)i + 1,
				     (uint64_t)i + 1) < 0);
	cctx_any = client_ctx_new(0, 0, false);
	cctx_12 = client_ctx_new(TLS1_2_VERSION, TLS1_2_VERSION, false);
	cctx_13 = client_ctx_new(TLS1_3_VERSION, TLS1_3_VERSION, false);
	cctx_11 = client_ctx_new(TLS1_VERSION, TLS1_1_VERSION, true);

	ctx = acme_tls_ctx_new(NSLOTS, err, sizeof(err));
	CHECKF(ctx != NULL, "%s", err);
	if (!ctx)
		return check_done();

	test_alert_bytes();
	test_ctx_args();
	test_good(ctx);
	test_server_view(ctx);
	test_refusals(ctx);
	test_client_closes(ctx);
	test_garbage(ctx);
	test_bad_entries(ctx);
	test_cache(ctx);
	test_warm();
	test_stale_queue(ctx);
	test_threads();
	test_many(ctx, hooks);

	acme_tls_ctx_free(ctx);
	SSL_CTX_free(cctx_any);
	SSL_CTX_free(cctx_12);
	SSL_CTX_free(cctx_13);
	SSL_CTX_free(cctx_11);
	for (size_t i = 0; i < ARRAY_SIZE(fx); i++)
		fixture_free(&fx[i]);
	return check_done();
}
