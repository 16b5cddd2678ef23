/*
 * tlsload: the TLS load client of bench/run.
 *
 * Full mode (default): N threads, each doing full TLS handshakes one after
 * the other (a new SSL per connection, no session cache, no tickets, so no
 * resumption), with SNI and the ALPN list given (-a, one protocol; "none"
 * offers none). A handshake counts as a success only when it completed,
 * the server selected exactly the protocol offered, and, with -e, the
 * peer certificate carries the acmeIdentifier extension
 * (1.3.6.1.5.5.7.1.31, RFC 8737) whose OCTET STRING is the expected
 * SHA-256. After the handshake the connection is closed at once (-x close,
 * default) or read until the server closes (-x drain: an acme-tls/1 server
 * sends close_notify and closes).
 *
 * Replay mode (-r): one real handshake is made at start over memory BIOs,
 * checked as above, and its ClientHello is kept together with the number
 * of TLS records the server sent in its first flight (TLS 1.3: ServerHello
 * up to the server Finished; TLS 1.2: up to ServerHelloDone). Then every
 * connection sends those ClientHello bytes and reads that many records
 * (the first one must be a handshake record, not an alert), and closes.
 * A replayed hello can never complete a handshake, but it makes the server
 * do all of its own work for one (key exchange, signature) at a fraction
 * of the client's CPU cost, so one client core can saturate a server core.
 *
 * Every connection is closed with an RST (SO_LINGER 0) so the client keeps
 * no TIME_WAIT sockets. Output: a human line on stderr and one line
 *   RESULT ok=N fail=N secs=S rate=R connect=N handshake=N alpn=N ident=N short=N alert=N
 * on stdout. Exit 0 when at least one connection succeeded.
 *
 * Build: cc -O2 -o tlsload tlsload.c -lssl -lcrypto -lpthread
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/edge.h"
#include "acme_ident.h"
#define IO_TIMEOUT_S 5

enum fail_kind { F_CONNECT, F_HANDSHAKE, F_ALPN, F_IDENT, F_SHORT, F_ALERT, F_N };
static const char *fail_names[F_N] = {
	"connect", "handshake", "alpn", "ident", "short", "alert",
};

struct opts {
	const char *host, *port, *sni, *alpn, *expect_hex, *after;
	int threads;
	double seconds;
	bool replay, tls12, tls13, verbose;
};

struct counters {
	uint64_t ok;
	uint64_t fail[F_N];
	char pad[64];
};

static struct opts o = {
	.host = "127.0.0.1", .sni = NULL, .alpn = "acme-tls/1",
	.after = "close", .threads = 1, .seconds = 2.0,
};
static struct sockaddr_storage peer;
static socklen_t peer_len;
static SSL_CTX *ctx;
static unsigned char alpn_wire[256];
static unsigned alpn_wire_len;
static unsigned char expect[32];
static bool have_expect;
static ASN1_OBJECT *acme_oid;
static unsigned char *hello;
static size_t hello_len;
static int flight_records;
static atomic_bool stop;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "tlsload: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	ERR_print_errors_fp(stderr);
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tlsload -p PORT -s SNI [-H HOST] [-a ALPN|none] [-e SHA256HEX]\n"
		"               [-t THREADS] [-d SECONDS] [-r] [-x close|drain]\n"
		"               [--tls12|--tls13] [-v]\n"
		"  -r  replay a ClientHello captured from one real handshake at start\n"
		"      and read the server's first flight (up to its Finished)\n");
	exit(2);
}

static void parse_expect(const char *s)
{
	size_t n = 0;

	for (; *s && n < 64; s++) {
		int v;
		if (*s == ':')
			continue;
		v = hex_digit((uint8_t)*s);
		if (v < 0)
			die("bad hex in -e: %s", s);
		if (n % 2 == 0)
			expect[n / 2] = (unsigned char)(v << 4);
		else
			expect[n / 2] |= (unsigned char)v;
		n++;
	}
	if (n != 64 || *s)
		die("-e wants 64 hex digits (a SHA-256)%s", "");
	have_expect = true;
}

static int tcp_connect(void)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int one = 1;
	int fd = socket(peer.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* RST on close: no TIME_WAIT piles up on the client side. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(fd, (struct sockaddr *)&peer, peer_len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool send_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* The checks every completed handshake must pass. */
static enum fail_kind check_session(SSL *ssl)
{
	const unsigned char *sel = NULL;
	unsigned sel_len = 0;

	if (alpn_wire_len) {
		SSL_get0_alpn_selected(ssl, &sel, &sel_len);
		if (sel_len != alpn_wire[0] || memcmp(sel, alpn_wire + 1, sel_len) != 0)
			return F_ALPN;
	}
	if (have_expect) {
		X509 *cert = SSL_get1_peer_certificate(ssl);
		bool ok = acme_ident_ok(cert, acme_oid, expect);

		X509_free(cert);
		if (!ok)
			return F_IDENT;
	}
	return F_N;
}

static SSL *ssl_new(void)
{
	SSL *ssl = SSL_new(ctx);

	if (!ssl)
		return NULL;
	if (o.sni && !SSL_set_tlsext_host_name(ssl, o.sni)) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* One full handshake on a socket: success or the reason it failed. */
static enum fail_kind one_full(void)
{
	int fd = tcp_connect();
	enum fail_kind r;
	SSL *ssl;

	if (fd < 0)
		return F_CONNECT;
	ssl = ssl_new();
	if (!ssl) {
		close(fd);
		return F_HANDSHAKE;
	}
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		r = F_HANDSHAKE;
		ERR_clear_error();
		goto out;
	}
	r = check_session(ssl);
	if (r == F_N && strcmp(o.after, "drain") == 0) {
		char buf[4096];
		/* Until close_notify or EOF: the server saw our Finished. */
		while (SSL_read(ssl, buf, sizeof(buf)) > 0)
			;
		ERR_clear_error();
	}
out:
	SSL_free(ssl);
	close(fd);
	return r;
}

/*
 * A streaming record counter: feed it bytes, it counts complete TLS
 * records and remembers the content type of the first one.
 */
struct rec_counter {
	unsigned char hdr[5];
	unsigned hdr_have;
	size_t body_left;
	int records;
	int first_type;
};

static void rc_feed(struct rec_counter *rc, const unsigned char *p, size_t n)
{
	while (n > 0) {
		if (rc->body_left > 0) {
			size_t k = n < rc->body_left ? n : rc->body_left;
			rc->body_left -= k;
			p += k;
			n -= k;
			if (rc->body_left == 0)
				rc->records++;
			continue;
		}
		rc->hdr[rc->hdr_have++] = *p++;
		n--;
		if (rc->hdr_have == 5) {
			rc->hdr_have = 0;
			if (rc->first_type < 0)
				rc->first_type = rc->hdr[0];
			rc->body_left = (size_t)rc->hdr[3] << 8 | rc->hdr[4];
			if (rc->body_left == 0)
				rc->records++;
		}
	}
}

/* One replayed ClientHello: read the server's first flight, then RST. */
static enum fail_kind one_replay(void)
{
	struct rec_counter rc = { .first_type = -1 };
	unsigned char buf[16384];
	enum fail_kind r = F_N;
	int fd = tcp_connect();

	if (fd < 0)
		return F_CONNECT;
	if (!send_all(fd, hello, hello_len)) {
		r = F_SHORT;
		goto out;
	}
	while (rc.records < flight_records) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = F_SHORT;
			break;
		}
		rc_feed(&rc, buf, (size_t)n);
		if (rc.first_type == 21) {	/* alert */
			r = F_ALERT;
			break;
		}
	}
	if (r == F_N && rc.first_type != 22)
		r = F_ALERT;
out:
	close(fd);
	return r;
}

static void msg_cb(int write_p, int version, int content_type, const void *buf,
		   size_t len, SSL *ssl, void *arg)
{
	const unsigned char *b = buf;
	bool *flight_done = arg;

	(void)version;
	(void)ssl;
	/* Server Finished (20) ends a TLS 1.3 server flight, ServerHelloDone
	 * (14) a TLS 1.2 one. */
	if (!write_p && content_type == 22 && len > 0 && (b[0] == 20 || b[0] == 14))
		*flight_done = true;
}

/*
 * The capture: one real handshake over memory BIOs, to keep the
 * ClientHello bytes and count the records of the server's first flight.
 */
static void capture(void)
{
	struct rec_counter rc = { .first_type = -1 };
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	bool flight_done = false, sent_hello = false;
	unsigned char buf[16384];
	enum fail_kind r;
	SSL *ssl = ssl_new();
	int fd = tcp_connect();

	if (fd < 0)
		die("capture: cannot connect to %s", o.port);
	if (!ssl || !rbio || !wbio)
		die("capture: %s", "SSL setup");
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	SSL_set_msg_callback(ssl, msg_cb);
	SSL_set_msg_callback_arg(ssl, &flight_done);
	for (;;) {
		int rv = SSL_do_handshake(ssl);
		size_t pend = BIO_ctrl_pending(wbio);

		if (pend > 0) {
			unsigned char *out = malloc(pend);
			if (!out || BIO_read(wbio, out, (int)pend) != (int)pend)
				die("capture: %s", "BIO_read");
			if (!sent_hello) {
				hello = out;
				hello_len = pend;
				sent_hello = true;
				if (!send_all(fd, out, pend))
					die("capture: %s", "send");
			} else {
				if (!send_all(fd, out, pend))
					die("capture: %s", "send");
				free(out);
			}
		}
		if (flight_done && flight_records == 0) {
			flight_records = rc.records;
			if (rc.body_left || rc.hdr_have)
				die("capture: server flight ends mid-record%s", "");
		}
		if (rv == 1)
			break;
		if (SSL_get_error(ssl, rv) != SSL_ERROR_WANT_READ)
			die("capture: handshake with port %s failed", o.port);
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			die("capture: server on port %s closed during the handshake", o.port);
		if (!flight_done)
			rc_feed(&rc, buf, (size_t)n);
		BIO_write(rbio, buf, (int)n);
	}
	r = check_session(ssl);
	if (r != F_N)
		die("capture: the real handshake failed its check: %s", fail_names[r]);
	if (flight_records <= 0 || rc.first_type != 22)
		die("capture: no server flight seen on port %s", o.port);
	if (o.verbose)
		fprintf(stderr, "tlsload: captured a %zu-byte ClientHello; %s; "
			"server flight %d records\n", hello_len,
			SSL_get_version(ssl), flight_records);
	SSL_free(ssl);
	close(fd);
}

static void *worker(void *arg)
{
	struct counters *c = arg;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		enum fail_kind r = o.replay ? one_replay() : one_full();
		if (r == F_N)
			c->ok++;
		else
			c->fail[r]++;
	}
	return NULL;
}

static void resolve(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int rc = getaddrinfo(o.host, o.port, &hints, &ai);

	if (rc != 0)
		die("cannot resolve the host: %s", gai_strerror(rc));
	memcpy(&peer, ai->ai_addr, ai->ai_addrlen);
	peer_len = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void setup_ctx(void)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		die("%s", "SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ctx, o.tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, o.tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (strcmp(o.alpn, "none") != 0) {
		size_t n = strlen(o.alpn);
		if (n == 0 || n > 255)
			die("bad ALPN protocol: %s", o.alpn);
		alpn_wire[0] = (unsigned char)n;
		memcpy(alpn_wire + 1, o.alpn, n);
		alpn_wire_len = (unsigned)n + 1;
		if (SSL_CTX_set_alpn_protos(ctx, alpn_wire, alpn_wire_len) != 0)
			die("%s", "SSL_CTX_set_alpn_protos");
	}
	acme_oid = OBJ_txt2obj(ACME_ID_OID, 1);
	if (!acme_oid)
		die("%s", "OBJ_txt2obj");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tls12", no_argument, NULL, '2' },
		{ "tls13", no_argument, NULL, '3' },
		{ "replay", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct counters *cnt;
	pthread_t *th;
	uint64_t ok = 0, fail[F_N] = { 0 }, nfail = 0;
	double t0, secs;
	int c;

	while ((c = getopt_long(argc, argv, "H:p:s:a:e:t:d:rx:v", lo, NULL)) != -1) {
		switch (c) {
		case 'H': o.host = optarg; break;
		case 'p': o.port = optarg; break;
		case 's': o.sni = optarg; break;
		case 'a': o.alpn = optarg; break;
		case 'e': o.expect_hex = optarg; break;
		case 't': o.threads = atoi(optarg); break;
		case 'd': o.seconds = atof(optarg); break;
		case 'r': o.replay = true; break;
		case 'x': o.after = optarg; break;
		case 'v': o.verbose = true; break;
		case '2': o.tls12 = true; break;
		case '3': o.tls13 = true; break;
		default: usage();
		}
	}
	if (!o.port || o.threads < 1 || o.threads > 1024 || o.seconds <= 0 ||
	    (strcmp(o.after, "close") && strcmp(o.after, "drain")) ||
	    (o.tls12 && o.tls13) || optind != argc)
		usage();
	if (o.expect_hex)
		parse_expect(o.expect_hex);
	signal(SIGPIPE, SIG_IGN);
	resolve();
	setup_ctx();
	if (o.replay)
		capture();
	else {
		enum fail_kind r = one_full();	/* fail early and clearly */
		if (r != F_N) {
			fprintf(stderr, "tlsload: port %s: ", o.port);
			die("the first handshake failed: %s", fail_names[r]);
		}
	}

	cnt = calloc((size_t)o.threads, sizeof(*cnt));
	th = calloc((size_t)o.threads, sizeof(*th));
	if (!cnt || !th)
		die("%s", "out of memory");
	t0 = now_s();
	for (int i = 0; i < o.threads; i++)
		if (pthread_create(&th[i], NULL, worker, &cnt[i]) != 0)
			die("%s", "pthread_create");
	while (now_s() - t0 < o.seconds) {
		double left = o.seconds - (now_s() - t0);
		struct timespec ts = { .tv_sec = (time_t)left,
				       .tv_nsec = (long)((left - (double)(time_t)left) * 1e9) };
		nanosleep(&ts, NULL);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < o.threads; i++)
		pthread_join(th[i], NULL);
	secs = now_s() - t0;
	for (int i = 0; i < o.threads; i++) {
		ok += cnt[i].ok;
		for (int k = 0; k < F_N; k++) {
			fail[k] += cnt[i].fail[k];
			nfail += cnt[i].fail[k];
		}
	}
	fprintf(stderr, "tlsload: %s %s:%s sni=%s alpn=%s threads=%d: %llu ok, "
		"%llu failed in %.2f s = %.1f/s\n", o.replay ? "replay" : "full",
		o.host, o.port, o.sni ? o.sni : "-", o.alpn, o.threads,
		(unsigned long long)ok, (unsigned long long)nfail, secs,
		(double)ok / secs);
	printf("RESULT ok=%llu fail=%llu secs=%.4f rate=%.1f",
	       (unsigned long long)ok, (unsigned long long)nfail, secs,
	       (double)ok / secs);
	for (int k = 0; k < F_N; k++)
		printf(" %s=%llu", fail_names[k], (unsigned long long)fail[k]);
	printf(" hello=%zu flight=%d\n", hello_len, flight_records);
	free(cnt);
	free(th);
	SSL_CTX_free(ctx);
	return ok > 0 ? 0 : 1;
}
