/*
 * What the parts of `acme-edge selftest` share: the run's settings and
 * state (selftest.c), and the two checks a validator makes (selftest_http.c
 * for http-01, selftest_tls.c for tls-alpn-01).
 */
#ifndef EDGE_CMD_SELFTEST_INT_H
#define EDGE_CMD_SELFTEST_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "cmd/netio.h"
#include "common/ident.h"

#define ST_RESOLVE_MAX 64
#define ST_ADDRS_MAX 16
#define ST_REASON_MAX 1200

/* One --resolve NAME:ADDR. */
struct st_override {
	char name[IDENT_NAME_MAX + 1];
	struct sockaddr_storage sa;
};

struct st {
	/* options */
	bool json;
	bool kind_http, kind_tls;
	uint16_t http_port, https_port;
	unsigned connect_ms, exchange_ms;
	struct st_override resolve[ST_RESOLVE_MAX];
	size_t nresolve;
	/* state */
	SSL_CTX *tls;
	struct fetch *f;		/* one exchange at a time */
};

/* What one check found. */
struct st_outcome {
	bool ok;
	bool reached;		/* something answered at that address */
	int status;		/* the last HTTP status, 0 for none */
	char server[128];	/* its Server field, "" for none */
	char reason[ST_REASON_MAX];
};

/*
 * The addresses of name: the --resolve ones, else the literal, else DNS
 * (A and AAAA, within the connect timeout). Returns how many (0: none,
 * with why in err).
 */
size_t st_resolve(const struct st *st, const char *name,
		  struct sockaddr_storage *out, size_t cap, char *err,
		  size_t errlen);

/* The address of sa as text, without its port. */
void st_addr_text(const struct sockaddr *sa, char *buf, size_t cap);

/* Sets out->reason to the words a failed connect deserves. */
void st_connect_failed(struct st_outcome *out, const struct sockaddr *sa,
		       uint16_t port, int neg_errno);

/* http-01 at one address: the URL, redirects, the body. */
void st_check_http01(struct st *st, const struct ident *id,
		     const struct sockaddr *sa, const char *token,
		     const char *keyauth, struct st_outcome *out);

/*
 * tls-alpn-01 at one address: the acme-tls/1 handshake and the certificate
 * (RFC 8737 §3). digest is the SHA-256 of the key authorization, or NULL
 * when it is not known (an entry another client placed).
 */
void st_check_tlsalpn01(struct st *st, const struct ident *id,
			const struct sockaddr *sa, const uint8_t *digest,
			struct st_outcome *out);

#endif
