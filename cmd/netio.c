/*
 * Deadline-bound client connections (netio.h). Sockets are non-blocking
 * from the start; OpenSSL drives them through SSL_ERROR_WANT_*, and each
 * wait is a poll() for the time left before the deadline.
 */
#include "cmd/netio.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/ossl.h"

/* Waits for events on fd until the deadline: 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = clock_mono_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int n;

		if (now >= deadline_ms)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)(deadline_ms - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

int net_connect(struct netio *io, const struct sockaddr *sa, uint16_t port,
		unsigned timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	uint64_t deadline = clock_mono_ms() + timeout_ms;
	int one = 1, soerr = 0, ret;
	socklen_t sl = sizeof(soerr);

	io->ssl = NULL;
	memcpy(&ss, sa, len);
	if (ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	io->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (io->fd < 0)
		return -errno;
	setsockopt(io->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(io->fd, (struct sockaddr *)&ss, len) == 0)
		return 0;
	if (errno != EINPROGRESS) {
		ret = -errno;
		goto fail;
	}
	ret = wait_fd(io->fd, POLLOUT, deadline);
	if (ret)
		goto fail;
	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
		soerr = errno;
	if (soerr == 0)
		return 0;
	ret = -soerr;
fail:
	close(io->fd);
	io->fd = -1;
	return ret;
}

/* After an SSL call failed with e: waits as OpenSSL asks, or gives up. */
static int tls_wait(struct netio *io, int e)
{
	if (e == SSL_ERROR_WANT_READ)
		return wait_fd(io->fd, POLLIN, io->deadline_ms);
	if (e == SSL_ERROR_WANT_WRITE)
		return wait_fd(io->fd, POLLOUT, io->deadline_ms);
	return -EPROTO;
}

int net_tls(struct netio *io, SSL_CTX *ctx, const char *sni, const char *alpn,
	    char *err, size_t errlen)
{
	unsigned char proto[256];
	size_t alen = alpn ? strlen(alpn) : 0;
	int r, e;

	ERR_clear_error();
	io->ssl = SSL_new(ctx);
	if (!io->ssl || !SSL_set_fd(io->ssl, io->fd)) {
		ossl_err_set(err, errlen, OSSL_PICK_FIRST, "out of memory", "TLS");
		return -1;
	}
	if (sni)
		SSL_set_tlsext_host_name(io->ssl, sni);
	if (alen && alen < sizeof(proto)) {
		proto[0] = (unsigned char)alen;
		memcpy(proto + 1, alpn, alen);
		SSL_set_alpn_protos(io->ssl, proto, (unsigned)alen + 1);
	}
	for (;;) {
		r = SSL_connect(io->ssl);
		if (r == 1)
			return 0;
		e = SSL_get_error(io->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			int w = tls_wait(io, e);
			if (w == 0)
				continue;
			err_set(err, errlen, "%s", w == -ETIMEDOUT ?
				"timeout during the TLS handshake" : strerror(-w));
			return -1;
		}
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			err_set(err, errlen, "the connection was closed during the "
				"TLS handshake");
		else
			ossl_err_set(err, errlen, OSSL_PICK_LAST, "refused",
				     "handshake failed");
		return -1;
	}
}

int net_write_all(struct netio *io, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w;
		int ret;

		if (io->ssl) {
			size_t done = 0;
			int r = SSL_write_ex(io->ssl, b, n, &done);
			if (r == 1) {
				b += done;
				n -= done;
				continue;
			}
			ret = tls_wait(io, SSL_get_error(io->ssl, r));
		} else {
			w = send(io->fd, b, n, MSG_NOSIGNAL);
			if (w > 0) {
				b += w;
				n -= (size_t)w;
				continue;
			}
			if (errno != EAGAIN && errno != EINTR)
				return -errno;
			ret = wait_fd(io->fd, POLLOUT, io->deadline_ms);
		}
		if (ret)
			return ret;
	}
	return 0;
}

ssize_t net_read(struct netio *io, void *p, size_t cap)
{
	for (;;) {
		int ret;

		if (io->ssl) {
			size_t got = 0;
			int r = SSL_read_ex(io->ssl, p, cap, &got), e;
			if (r == 1)
				return (ssize_t)got;
			e = SSL_get_error(io->ssl, r);
			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;
			/* A peer that closes without close_notify: the end too. */
			if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
				ERR_clear_error();
				return 0;
			}
			ret = tls_wait(io, e);
			ERR_clear_error();
		} else {
			ssize_t n = recv(io->fd, p, cap, 0);
			if (n >= 0)
				return n;
			if (errno != EAGAIN && errno != EINTR)
				return -errno;
			ret = wait_fd(io->fd, POLLIN, io->deadline_ms);
		}
		if (ret)
			return ret;
	}
}

void net_close(struct netio *io)
{
	if (io->ssl) {
		SSL_free(io->ssl);
		io->ssl = NULL;
	}
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}

int http_exchange(struct netio *io, const char *req, size_t req_len,
		  struct fetch *f, char *err, size_t errlen)
{
	bool eof = false;
	int hl = WIRE_PARTIAL, br = WIRE_PARTIAL;
	int ret = net_write_all(io, req, req_len);

	f->len = 0;
	f->body_len = 0;
	f->body_too_large = false;
	if (ret) {
		err_set(err, errlen, "sending the request: %s", strerror(-ret));
		return -1;
	}
	while (br == WIRE_PARTIAL) {
		if (!eof) {
			ssize_t n = f->len < sizeof(f->buf) ?
				net_read(io, f->buf + f->len, sizeof(f->buf) - f->len) : 0;
			if (n < 0) {
				err_set(err, errlen, "%s", n == -ETIMEDOUT ?
					"timeout waiting for the response" :
					strerror((int)-n));
				return -1;
			}
			/* A full buffer reads as the end: the body is judged cut. */
			eof = n == 0;
			f->len += (size_t)n;
		}
		if (hl == WIRE_PARTIAL)
			hl = http_resp_parse(f->buf, f->len, &f->head);
		if (hl == WIRE_PARTIAL) {
			if (eof) {
				err_set(err, errlen, f->len ? "the connection closed "
					"mid-response" : "the connection closed "
					"without a response");
				return -1;
			}
			continue;
		}
		if (hl < 0) {
			err_set(err, errlen, "the answer is not an HTTP/1.x response");
			return -1;
		}
		br = http_resp_body(&f->head, f->buf + hl, f->len - (size_t)hl, eof,
				    f->body, sizeof(f->body), &f->body_len);
	}
	if (br == WIRE_TOOBIG) {
		f->body_too_large = true;
		f->body_len = 0;
	} else if (br < 0) {
		err_set(err, errlen, "the response body is cut short or malformed");
		return -1;
	}
	return 0;
}
