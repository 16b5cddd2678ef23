/*
 * acme-tls/1 handshakes (RFC 8737) answered in place, with OpenSSL driven
 * entirely through memory BIOs: OpenSSL never sees a socket. The caller
 * (the connection state machine, whatever its I/O backend) moves bytes:
 * what the client sent goes in with acme_tls_feed(), what OpenSSL wants
 * sent comes out with acme_tls_take().
 *
 * One acme_tls_ctx per worker thread: an SSL_CTX set up once (no session
 * cache, no tickets, TLS 1.2 minimum, ALPN selecting exactly acme-tls/1)
 * and a cache of parsed certificates and keys indexed by store slot, valid
 * for one entry version, so a certificate is parsed once per entry and not
 * once per handshake, and ahead of the first (acme_tls_warm). Not
 * thread-safe: a worker owns its ctx.
 */
#ifndef EDGE_ACME_TLS_H
#define EDGE_ACME_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct acme_tls_ctx;
struct acme_tls;

enum acme_tls_status {
	ACME_TLS_WANT_READ = 0,	/* feed more client bytes (after sending output) */
	ACME_TLS_DONE = 1,	/* handshake complete, close_notify queued */
	ACME_TLS_ERROR = -1,	/* failed; an alert may be queued for sending */
};

/* nslots: the store's slot count (capacity + 1), the cache's size. */
struct acme_tls_ctx *acme_tls_ctx_new(uint32_t nslots, char *err,
				      size_t errlen);
void acme_tls_ctx_free(struct acme_tls_ctx *ctx);

/*
 * Starts a server handshake for a tls-alpn-01 store entry (cert DER ||
 * PKCS#8 key DER). The parsed certificate and key come from the ctx's
 * cache when e->slot already holds e->version. Returns NULL with a reason
 * in err when the entry cannot be used.
 */
struct acme_tls *acme_tls_new(struct acme_tls_ctx *ctx,
			      const struct store_entry *e, char *err,
			      size_t errlen);

/*
 * Parses ahead the certificates of tls-alpn-01 entries new in st, so that
 * the first handshake for a new challenge (a CA's validation: it is the
 * first to ask) finds them parsed. Parsing is the costly part of a cache
 * fill: some 0.36 ms for a certificate and its P-256 key with OpenSSL 3.0,
 * 1.3 ms the first time in a process. Looks at a bounded number of slots
 * and parses at most one entry a call; call it once a loop turn, with
 * monotonic milliseconds. Returns true while a pass over the store is
 * under way: the loop should come round again without waiting.
 */
bool acme_tls_warm(struct acme_tls_ctx *ctx, const struct store *st,
		   int64_t now_ms);

/* Hands OpenSSL bytes the client sent. Returns 0, or -1 on allocation failure. */
int acme_tls_feed(struct acme_tls *t, const uint8_t *buf, size_t len);

/*
 * Advances the handshake as far as the input allows. On DONE, the
 * negotiated protocol is acme-tls/1 and a close_notify follows the last
 * handshake message in the output; no application data is ever read.
 */
enum acme_tls_status acme_tls_step(struct acme_tls *t);

/* Bytes waiting to be sent to the client. */
size_t acme_tls_pending(const struct acme_tls *t);

/* Moves up to cap pending bytes into buf; returns how many. */
size_t acme_tls_take(struct acme_tls *t, uint8_t *buf, size_t cap);

/* Why the last step failed, for the log (never secret material). */
const char *acme_tls_error(const struct acme_tls *t);

/* "TLSv1.3" etc., once DONE. */
const char *acme_tls_version(const struct acme_tls *t);

/* Hands its buffers back to the ctx it came from: free t before that ctx. */
void acme_tls_free(struct acme_tls *t);

/* Fatal alert record for refusing a hello before any handshake (no state). */
extern const uint8_t acme_tls_alert_unrecognized_name[7];

#endif
