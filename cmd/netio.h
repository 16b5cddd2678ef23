/*
 * Client connections for `acme-edge selftest`, plain or TLS, where every
 * wait ends by a deadline: a connect, a handshake, each read and write
 * poll()s for at most the time left, so an address that swallows packets
 * or a server that trickles bytes costs a bounded time.
 */
#ifndef EDGE_CMD_NETIO_H
#define EDGE_CMD_NETIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "wire/http_resp.h"

struct netio {
	int fd;
	SSL *ssl;			/* NULL: plain TCP */
	uint64_t deadline_ms;		/* clock_mono_ms() */
};

/*
 * Connects to sa with its port replaced by port, within timeout_ms; the
 * connection's later waits end at io->deadline_ms, which the caller sets.
 * Returns 0, or -errno (-ETIMEDOUT when the time ran out).
 */
int net_connect(struct netio *io, const struct sockaddr *sa, uint16_t port,
		unsigned timeout_ms);

/*
 * A TLS handshake on a connected io, verifying nothing (a validator takes
 * any certificate): SNI sni when not NULL, ALPN alpn (one protocol) when
 * not NULL. Returns 0, or -1 with the reason in err.
 */
int net_tls(struct netio *io, SSL_CTX *ctx, const char *sni, const char *alpn,
	    char *err, size_t errlen);

/* 0, or -errno. */
int net_write_all(struct netio *io, const void *p, size_t n);

/* Bytes read (> 0), 0 at the end of the stream, or -errno. */
ssize_t net_read(struct netio *io, void *p, size_t cap);

void net_close(struct netio *io);

/* One HTTP exchange read back whole: its head and its decoded body. */
#define FETCH_BUF_MAX (HTTP_RESP_HEAD_MAX + 65536)
#define FETCH_BODY_MAX 65536

struct fetch {
	struct http_resp head;
	uint8_t buf[FETCH_BUF_MAX];	/* what was received */
	size_t len;
	uint8_t body[FETCH_BODY_MAX];
	size_t body_len;
	bool body_too_large;		/* the head is good, the body is cut */
};

/*
 * Sends req (a whole request) on io and reads the response up to its end
 * or the deadline. Returns 0 with *f filled, or -1 with the reason in err
 * (connection reset, timeout, not HTTP).
 */
int http_exchange(struct netio *io, const char *req, size_t req_len,
		  struct fetch *f, char *err, size_t errlen);

#endif
