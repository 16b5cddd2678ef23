/*
 * floodload: the background floods and the validator of bench/run's flood
 * scenarios. Every mode runs until -d seconds have passed or SIGTERM, then
 * prints one "RESULT key=value ..." line on stdout.
 *
 *   floodload hold -p PORT/KIND [-p ...] -n N [-i MS] [-s SNI] [-d SECONDS]
 *     Opens N connections spread over the ports and holds them. KIND is
 *     "tls" or "http". Without -i a connection never sends (idle); with -i
 *     it sends its ClientHello (tls) or request head (http) one byte every
 *     MS milliseconds (slow). A connection the server closes is counted and
 *     replaced at once, so the pressure stays. "READY held=K" goes to
 *     stdout once all N are connected (or after 60 s with what it has).
 *
 *   floodload churn -p PORT/KIND [-p ...] -k hello|garbage -c CONC [-s SNI]
 *     CONC connections at a time, each new one to the next port: "hello"
 *     sends a ClientHello for SNI (tls ports) and reads until the server
 *     or the upstream behind it closes; "garbage" sends, by turns, an
 *     invalid ClientHello, a bad PROXY header (tls ports) or an oversized
 *     request head, a bad PROXY header (http ports), and reads until close.
 *
 *   floodload validate --http PORT --https PORT -s NAME -T TOKEN -K KEYAUTH
 *                      [-r RATE] [-w TIMEOUT]
 *     What a CA does: RATE http-01 GETs and RATE acme-tls/1 handshakes a
 *     second, each on a new connection, started on schedule whatever the
 *     earlier ones are doing (a slow answer never delays the next check),
 *     each checked (status 200 and the exact key authorization; ALPN
 *     acme-tls/1 and the acmeIdentifier of the key authorization's
 *     SHA-256). A check that has no good answer within TIMEOUT seconds
 *     (default 10, about what a CA allows) fails. Latency: from socket()
 *     to the verified answer. Waited: the latency less the CPU time the
 *     checker's own thread ran for the check (its TLS and HTTP client
 *     work and the system calls it made, which on loopback deliver what it
 *     sends), which leaves the time it waited: for the server, and for the
 *     kernel to carry the packets. That CPU time is reported too: a check
 *     takes at least that long whatever the server does, so its p99 is a
 *     floor under the run's p99.
 *
 * Connections are closed with an RST (SO_LINGER 0), so neither side keeps
 * TIME_WAIT sockets from the floods.
 *
 * Build: cc -O2 -o floodload floodload.c -lssl -lcrypto -lpthread
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "acme_ident.h"

#define MAX_PORTS 8
#define CHURN_DEADLINE_S 10.0	/* a churned connection left hanging this long fails */
#define OVERSIZED_HEAD (64 * 1024)

enum port_kind { PK_HTTP, PK_TLS };

struct port {
	uint16_t num;
	enum port_kind kind;
};

static struct {
	const char *mode, *sni, *name, *token, *keyauth, *churn_kind;
	struct port ports[MAX_PORTS];
	int nports;
	int n, conc;
	int interval_ms;
	double seconds, rate, timeout;
	uint16_t http_port, https_port;
	bool trace;
} o = { .sni = "flood.example.com", .n = 1000, .conc = 256, .seconds = 10,
	.rate = 20, .timeout = 10, .churn_kind = "hello" };

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static void die(const char *msg)
{
	fprintf(stderr, "floodload: %s\n", msg);
	ERR_print_errors_fp(stderr);
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: floodload hold  -p PORT/tls|http ... -n N [-i MS] [-s SNI] [-d S]\n"
		"       floodload churn -p PORT/tls|http ... -k hello|garbage -c CONC [-s SNI] [-d S]\n"
		"       floodload validate --http PORT --https PORT -s NAME -T TOKEN -K KEYAUTH\n"
		"                          [-r RATE] [-w TIMEOUT] [-d S] [--trace]\n"
		"  --trace: each check on stderr (start s, kind, ms, result, then ms to\n"
		"  connect and to the server's first byte, its own port, and the ms its\n"
		"  thread ran for it), to line a validator's slow checks up with what the\n"
		"  server and the kernel did\n");
	exit(2);
}

static struct sockaddr_in loopback(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* A non-blocking socket whose connect to the port has started; -1 when even
 * that failed (out of descriptors or ports). */
static int start_connect(uint16_t port)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct sockaddr_in a = loopback(port);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- the messages sent ------------------------------------------------- */

static unsigned char *hello;	/* a ClientHello for o.sni, ALPN http/1.1 */
static size_t hello_len;
static char http_head[512];
static size_t http_head_len;

/* A ClientHello as OpenSSL writes it, taken from a memory BIO: no server
 * is needed to make one. */
static void make_hello(void)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	SSL *s;

	if (!c || !rb || !wb)
		die("SSL setup");
	SSL_CTX_set_alpn_protos(c, alpn, sizeof(alpn) - 1);
	s = SSL_new(c);
	if (!s || !SSL_set_tlsext_host_name(s, o.sni))
		die("SSL setup");
	SSL_set_bio(s, rb, wb);
	SSL_set_connect_state(s);
	(void)SSL_do_handshake(s);
	hello_len = BIO_ctrl_pending(wb);
	hello = malloc(hello_len);
	if (!hello_len || !hello || BIO_read(wb, hello, (int)hello_len) != (int)hello_len)
		die("no ClientHello made");
	SSL_free(s);
	SSL_CTX_free(c);
	http_head_len = (size_t)snprintf(http_head, sizeof(http_head),
					 "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: floodload\r\n"
					 "Accept: */*\r\n\r\n", o.sni);
}

struct msg {
	const unsigned char *p;
	size_t len;
};

static struct msg first_message(enum port_kind k)
{
	if (k == PK_TLS)
		return (struct msg){ hello, hello_len };
	return (struct msg){ (const unsigned char *)http_head, http_head_len };
}

/* The garbage of the churn flood, by turns per port kind. */
static unsigned char bad_hello[517];
static unsigned char *oversized;
static const char bad_proxy_v1[] = "PROXY TCP4 999.0.0.1 10.0.0.1 65536 80\r\nGET / HTTP/1.1\r\n\r\n";
static const unsigned char bad_proxy_v2[] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
	0x21, 0x11, 0xff, 0xff,	/* PROXY, TCP4, a length past any bound */
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
};

static void make_garbage(void)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: www.example.com\r\nX-Fill: ";

	/* A handshake record announcing a ClientHello, then bytes that are no
	 * ClientHello: the version, lengths and extensions are all wrong. */
	memset(bad_hello, 0xa5, sizeof(bad_hello));
	memcpy(bad_hello, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x09\x09", 11);
	oversized = malloc(OVERSIZED_HEAD);
	if (!oversized)
		die("out of memory");
	memset(oversized, 'a', OVERSIZED_HEAD);
	memcpy(oversized, head, sizeof(head) - 1);
}

static struct msg garbage_message(enum port_kind k, unsigned turn)
{
	if (k == PK_TLS)
		return turn % 2 ? (struct msg){ bad_proxy_v2, sizeof(bad_proxy_v2) }
				: (struct msg){ bad_hello, sizeof(bad_hello) };
	return turn % 2 ? (struct msg){ (const unsigned char *)bad_proxy_v1,
					sizeof(bad_proxy_v1) - 1 }
			: (struct msg){ oversized, OVERSIZED_HEAD };
}

/* ---- hold: idle and slow connections ----------------------------------- */

enum { H_FREE, H_CONNECTING, H_OPEN };

struct held {
	int fd;
	int state;
	int port;
	size_t sent;
	double next;		/* slow: when the next byte goes */
	struct held *q_next;	/* slow: the FIFO of byte sends */
	bool in_q;		/* in the FIFO, perhaps from before a reconnect */
};

struct fifo {
	struct held *head, *tail;
};

static void fifo_push(struct fifo *f, struct held *h)
{
	h->in_q = true;
	h->q_next = NULL;
	if (f->tail)
		f->tail->q_next = h;
	else
		f->head = h;
	f->tail = h;
}

static struct held *fifo_pop(struct fifo *f)
{
	struct held *h = f->head;

	if (h) {
		f->head = h->q_next;
		if (!f->head)
			f->tail = NULL;
		h->in_q = false;
	}
	return h;
}

static int run_hold(void)
{
	/* Connects in flight at once: enough to fill quickly, few enough that
	 * the listen backlogs of the server are never the thing measured. */
	const int max_pending = 256;
	struct held *hs = calloc((size_t)o.n, sizeof(*hs));
	struct epoll_event evs[512];
	struct fifo slowq = { 0 };
	uint64_t closed = 0, failed = 0, bytes = 0, established = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC), pending = 0, open_n = 0, next_slot = 0;
	double t0 = now_s(), ready_by = t0 + 60;
	bool ready = false;

	if (!hs || ep < 0)
		die("setup");
	for (int i = 0; i < o.n; i++)
		hs[i] = (struct held){ .fd = -1, .port = i % o.nports };
	while (!stopping && now_s() - t0 < o.seconds) {
		double now = now_s();
		int n;

		/* (Re)open free slots, a bounded number at a time. */
		for (int scanned = 0; pending < max_pending && scanned < o.n; scanned++) {
			struct held *h = &hs[next_slot];
			next_slot = (next_slot + 1) % o.n;
			if (h->state != H_FREE)
				continue;
			h->fd = start_connect(o.ports[h->port].num);
			if (h->fd < 0) {
				failed++;
				break;
			}
			struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
						  .data.ptr = h };
			epoll_ctl(ep, EPOLL_CTL_ADD, h->fd, &ev);
			h->state = H_CONNECTING;
			h->sent = 0;
			pending++;
		}
		if (!ready && (open_n == o.n || now >= ready_by)) {
			printf("READY held=%d\n", open_n);
			fflush(stdout);
			ready = true;
		}
		n = epoll_wait(ep, evs, 512, 20);
		for (int i = 0; i < n; i++) {
			struct held *h = evs[i].data.ptr;
			uint32_t e = evs[i].events;
			bool gone = (e & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;

			if (!gone && (e & EPOLLIN)) {
				char buf[4096];
				ssize_t r = recv(h->fd, buf, sizeof(buf), 0);
				gone = r == 0 || (r < 0 && errno != EAGAIN);
			}
			if (gone) {
				if (h->state == H_CONNECTING) {
					pending--;
					failed++;
				} else {
					open_n--;
					closed++;
				}
				close(h->fd);	/* its FIFO entry is skipped or reused */
				h->fd = -1;
				h->state = H_FREE;
				continue;
			}
			if (h->state == H_CONNECTING && (e & EPOLLOUT)) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
							  .data.ptr = h };
				epoll_ctl(ep, EPOLL_CTL_MOD, h->fd, &ev);
				h->state = H_OPEN;
				pending--;
				open_n++;
				established++;
				/* A slot still queued from its previous connection
				 * keeps its place (and time): the FIFO stays ordered. */
				if (o.interval_ms > 0 && !h->in_q) {
					h->next = now_s() + (double)(rand() % o.interval_ms) / 1000.0;
					fifo_push(&slowq, h);
				}
			}
		}
		/* Slow: one byte for each connection whose turn has come. The FIFO
		 * stays ordered because every connection waits the same interval. */
		now = now_s();
		while (slowq.head && slowq.head->next <= now) {
			struct held *h = fifo_pop(&slowq);
			if (h->state != H_OPEN)
				continue;	/* closed since; its replacement queued anew */
			struct msg m = first_message(o.ports[h->port].kind);
			if (h->sent < m.len && send(h->fd, m.p + h->sent, 1, MSG_NOSIGNAL) == 1) {
				h->sent++;
				bytes++;
			}
			h->next = now + o.interval_ms / 1000.0;
			fifo_push(&slowq, h);
		}
	}
	if (!ready)
		printf("READY held=%d\n", open_n);
	printf("RESULT mode=hold held=%d wanted=%d established=%llu closed_by_server=%llu "
	       "connect_failed=%llu bytes=%llu secs=%.2f rate=%.1f\n", open_n, o.n,
	       (unsigned long long)established, (unsigned long long)closed,
	       (unsigned long long)failed, (unsigned long long)bytes, now_s() - t0,
	       (double)open_n);
	return 0;
}

/* ---- churn: new connections as fast as they go ------------------------- */

struct churn {
	int fd;
	bool connecting;
	struct msg m;
	size_t sent;
	size_t got;
	double deadline;
};

static int run_churn(void)
{
	struct churn *cs = calloc((size_t)o.conc, sizeof(*cs));
	struct epoll_event evs[512];
	uint64_t done = 0, failed = 0, timeouts = 0, bytes_in = 0;
	unsigned turn = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	bool garbage = strcmp(o.churn_kind, "garbage") == 0;
	double t0 = now_s(), last_sweep = t0;

	if (!cs || ep < 0)
		die("setup");
	for (int i = 0; i < o.conc; i++)
		cs[i].fd = -1;
	while (!stopping && now_s() - t0 < o.seconds) {
		double now = now_s();
		int n;

		for (int i = 0; i < o.conc; i++) {
			struct churn *c = &cs[i];
			if (c->fd >= 0)
				continue;
			const struct port *p = &o.ports[turn % (unsigned)o.nports];
			c->m = garbage ? garbage_message(p->kind, turn / (unsigned)o.nports)
				       : first_message(p->kind);
			turn++;
			c->fd = start_connect(p->num);
			if (c->fd < 0) {
				failed++;
				break;
			}
			c->connecting = true;
			c->sent = c->got = 0;
			c->deadline = now + CHURN_DEADLINE_S;
			struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
						  .data.ptr = c };
			epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		}
		n = epoll_wait(ep, evs, 512, 50);
		for (int i = 0; i < n; i++) {
			struct churn *c = evs[i].data.ptr;
			uint32_t e = evs[i].events;
			bool end = false, ok = false;

			if (c->fd < 0)
				continue;
			if (e & EPOLLOUT) {
				c->connecting = false;
				while (c->sent < c->m.len) {
					ssize_t w = send(c->fd, c->m.p + c->sent, c->m.len - c->sent,
							 MSG_NOSIGNAL);
					if (w <= 0)
						break;
					c->sent += (size_t)w;
				}
				if (c->sent == c->m.len) {
					struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
								  .data.ptr = c };
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
			}
			if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
				char buf[16384];
				for (;;) {
					ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
					if (r > 0) {
						c->got += (size_t)r;
						bytes_in += (uint64_t)r;
						continue;
					}
					if (r < 0 && errno == EAGAIN)
						break;
					/* EOF or reset: the connection's life is over. A
					 * garbage connection succeeds by being closed; a
					 * hello one by getting the upstream's answer. */
					end = true;
					ok = garbage ? !c->connecting : c->got > 0;
					break;
				}
			}
			if (end) {
				if (ok)
					done++;
				else
					failed++;
				close(c->fd);
				c->fd = -1;
			}
		}
		if (now - last_sweep > 0.5) {
			last_sweep = now;
			for (int i = 0; i < o.conc; i++)
				if (cs[i].fd >= 0 && now > cs[i].deadline) {
					timeouts++;
					close(cs[i].fd);
					cs[i].fd = -1;
				}
		}
	}
	double secs = now_s() - t0;
	printf("RESULT mode=churn kind=%s done=%llu failed=%llu timeouts=%llu bytes_in=%llu "
	       "secs=%.2f rate=%.1f\n", o.churn_kind, (unsigned long long)done,
	       (unsigned long long)failed, (unsigned long long)timeouts,
	       (unsigned long long)bytes_in, secs, (double)done / secs);
	return 0;
}

/* ---- validate: what a CA does, on schedule ----------------------------- */

enum vfail { V_OK, V_CONNECT, V_TIMEOUT, V_STATUS, V_BODY, V_HANDSHAKE, V_ALPN, V_IDENT, V_N };
static const char *vfail_names[V_N] = {
	"ok", "connect", "timeout", "status", "body", "handshake", "alpn", "ident",
};

struct check {
	bool tls;
	int idx;
	double start;
	double lat;		/* seconds; < 0 while running */
	double connected, answered;	/* when connect() completed, when the
					 * server's first byte was read (0: never) */
	double cpu;		/* seconds the checker's thread ran for it: the
				 * client's own work, not the server's */
	uint16_t port;		/* the check's own (client) port, for --trace:
				 * it names the connection in a kernel trace */
	enum vfail result;
};

static SSL_CTX *vctx;
static ASN1_OBJECT *acme_oid;
static unsigned char ka_sha[32];
static atomic_int running;

/* Connected within the time left, blocking with the time left as I/O
 * timeout afterwards; -1 on failure, with *why set. */
static int connect_by(struct check *c, uint16_t port, double deadline, enum vfail *why)
{
	struct sockaddr_in a = loopback(port);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int one = 1, err = 0;
	socklen_t el = sizeof(err);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct pollfd pf;
	double left;

	*why = V_CONNECT;
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (errno != EINPROGRESS)
			goto fail;
		pf = (struct pollfd){ .fd = fd, .events = POLLOUT };
		left = deadline - now_s();
		if (left <= 0 || poll(&pf, 1, (int)(left * 1000) + 1) != 1) {
			*why = V_TIMEOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err)
			goto fail;
	}
	c->connected = now_s();
	if (o.trace) {
		struct sockaddr_in me;
		socklen_t ml = sizeof(me);

		if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0)
			c->port = ntohs(me.sin_port);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	left = deadline - now_s();
	if (left <= 0) {
		*why = V_TIMEOUT;
		goto fail;
	}
	struct timeval tv = { .tv_sec = (time_t)left,
			      .tv_usec = (suseconds_t)((left - (double)(time_t)left) * 1e6) };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
fail:
	close(fd);
	return -1;
}

static enum vfail check_http(struct check *c, double deadline)
{
	char req[512], resp[8192];
	size_t have = 0, body_at = 0, clen = (size_t)-1;
	enum vfail why;
	int fd = connect_by(c, o.http_port, deadline, &why);
	int n = snprintf(req, sizeof(req),
			 "GET /.well-known/acme-challenge/%s HTTP/1.1\r\nHost: %s\r\n"
			 "User-Agent: floodload-validator\r\nAccept: */*\r\n"
			 "Connection: close\r\n\r\n", o.token, o.name);

	if (fd < 0)
		return why;
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return now_s() >= deadline ? V_TIMEOUT : V_CONNECT;
	}
	for (;;) {
		ssize_t r;

		if (body_at && clen != (size_t)-1 && have - body_at >= clen)
			break;		/* the whole body: no need to wait for the close */
		if (have == sizeof(resp) - 1)
			break;
		r = recv(fd, resp + have, sizeof(resp) - 1 - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			close(fd);
			return V_TIMEOUT;
		}
		if (r <= 0)
			break;
		if (!have)
			c->answered = now_s();
		have += (size_t)r;
		resp[have] = '\0';
		if (!body_at) {
			char *end = strstr(resp, "\r\n\r\n");
			if (end) {
				char *cl = strcasestr(resp, "\r\ncontent-length:");
				body_at = (size_t)(end + 4 - resp);
				if (cl && cl < end)
					clen = strtoul(cl + 17, NULL, 10);
			}
		}
	}
	close(fd);
	resp[have] = '\0';
	if (have < 12 || strncmp(resp, "HTTP/1.", 7) != 0 || strncmp(resp + 9, "200", 3) != 0)
		return V_STATUS;
	if (!body_at || have - body_at != strlen(o.keyauth) ||
	    memcmp(resp + body_at, o.keyauth, have - body_at) != 0)
		return V_BODY;
	return V_OK;
}

/* The first record the server sends marks its answer; what follows is the
 * client's own handshake work. */
static void first_record(int write_p, int version, int content_type, const void *buf,
			 size_t len, SSL *s, void *arg)
{
	struct check *c = arg;

	(void)version; (void)buf; (void)len; (void)s;
	if (!write_p && content_type == SSL3_RT_HEADER && !c->answered)
		c->answered = now_s();
}

static enum vfail check_tls(struct check *c, double deadline)
{
	const unsigned char *sel = NULL;
	unsigned sel_len = 0;
	enum vfail why;
	int fd = connect_by(c, o.https_port, deadline, &why);
	SSL *s;
	X509 *cert;

	if (fd < 0)
		return why;
	s = SSL_new(vctx);
	if (!s || !SSL_set_tlsext_host_name(s, o.name)) {
		SSL_free(s);
		close(fd);
		return V_HANDSHAKE;
	}
	SSL_set_fd(s, fd);
	if (o.trace) {
		SSL_set_msg_callback(s, first_record);
		SSL_set_msg_callback_arg(s, c);
	}
	if (SSL_connect(s) != 1) {
		why = now_s() >= deadline ? V_TIMEOUT : V_HANDSHAKE;
		ERR_clear_error();
		goto out;
	}
	SSL_get0_alpn_selected(s, &sel, &sel_len);
	if (sel_len != 10 || memcmp(sel, "acme-tls/1", 10) != 0) {
		why = V_ALPN;
		goto out;
	}
	cert = SSL_get1_peer_certificate(s);
	why = acme_ident_ok(cert, acme_oid, ka_sha) ? V_OK : V_IDENT;
	X509_free(cert);
out:
	SSL_free(s);
	close(fd);
	return why;
}

static void one_check(struct check *c)
{
	double deadline = c->start + o.timeout, cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	enum vfail r = c->tls ? check_tls(c, deadline) : check_http(c, deadline);
	double end = now_s();

	c->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	c->result = end > deadline && r == V_OK ? V_TIMEOUT : r;
	c->lat = end - c->start;
	atomic_fetch_sub(&running, 1);
}

/*
 * The checkers: threads started before the first check and kept, because
 * a new thread's first TLS handshake pays for OpenSSL's per-thread set-up
 * (its random generator among it), which is no part of the server's
 * answer. A check waits for none: with every checker busy (answers slow to
 * come), a new one is started for it.
 */
#define CHECKERS 32

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct check **queue;	/* a ring as long as the checks */
static int q_head, q_len, q_cap, idle;

static void *checker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&q_mu);
	for (;;) {
		while (q_len == 0) {
			idle++;
			pthread_cond_wait(&q_cv, &q_mu);
			idle--;
		}
		struct check *c = queue[q_head];
		q_head = (q_head + 1) % q_cap;
		q_len--;
		pthread_mutex_unlock(&q_mu);
		one_check(c);
		pthread_mutex_lock(&q_mu);
	}
	return NULL;
}

static bool start_checker(pthread_attr_t *at)
{
	pthread_t th;

	return pthread_create(&th, at, checker, NULL) == 0;
}

/* Hands c to an idle checker, or to a new one; false when none starts. */
static bool submit(struct check *c, pthread_attr_t *at)
{
	bool need;

	pthread_mutex_lock(&q_mu);
	queue[(q_head + q_len++) % q_cap] = c;
	need = q_len > idle;
	pthread_cond_signal(&q_cv);
	pthread_mutex_unlock(&q_mu);
	return !need || start_checker(at);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted v[0..n-1]. */
static double pct(const double *v, int n, double p)
{
	int k;

	if (n == 0)
		return 0;
	k = (int)(p / 100.0 * n + 0.999999) - 1;
	return v[k < 0 ? 0 : (k >= n ? n - 1 : k)];
}

static void report(const char *tag, struct check *cs, int n, int want_tls)
{
	double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
	double *w = malloc(sizeof(double) * (size_t)(n ? n : 1));
	double *c = malloc(sizeof(double) * (size_t)(n ? n : 1));
	int m = 0, fails = 0, by[V_N] = { 0 };

	if (!v || !w || !c)
		die("out of memory");

	for (int i = 0; i < n; i++) {
		if (want_tls >= 0 && cs[i].tls != (want_tls == 1))
			continue;
		if (cs[i].result != V_OK) {
			fails++;
			by[cs[i].result]++;
			continue;
		}
		w[m] = (cs[i].lat - cs[i].cpu) * 1000.0;
		c[m] = cs[i].cpu * 1000.0;
		v[m++] = cs[i].lat * 1000.0;
	}
	qsort(v, (size_t)m, sizeof(double), cmp_double);
	qsort(w, (size_t)m, sizeof(double), cmp_double);
	qsort(c, (size_t)m, sizeof(double), cmp_double);
	printf(" %sn=%d %sfail=%d %sp50=%.3f %sp99=%.3f %smax=%.3f", tag, m + fails, tag, fails,
	       tag, pct(v, m, 50), tag, pct(v, m, 99), tag, m ? v[m - 1] : 0.0);
	printf(" %swait_p50=%.3f %swait_p99=%.3f", tag, pct(w, m, 50), tag, pct(w, m, 99));
	printf(" %scpu_p50=%.3f %scpu_p99=%.3f", tag, pct(c, m, 50), tag, pct(c, m, 99));
	free(w);
	free(c);
	if (want_tls < 0)
		for (int k = 1; k < V_N; k++)
			if (by[k])
				printf(" fail_%s=%d", vfail_names[k], by[k]);
	free(v);
}

static int run_validate(void)
{
	int total = (int)(o.seconds * o.rate * 2) + 2, issued = 0;
	struct check *cs = calloc((size_t)total, sizeof(*cs));
	pthread_attr_t at;
	double t0, wait_end;

	if (!cs || !o.name || !o.token || !o.keyauth || !o.http_port || !o.https_port)
		usage();
	SHA256((const unsigned char *)o.keyauth, strlen(o.keyauth), ka_sha);
	acme_oid = OBJ_txt2obj(ACME_ID_OID, 1);
	vctx = SSL_CTX_new(TLS_client_method());
	if (!vctx || !acme_oid)
		die("SSL setup");
	SSL_CTX_set_min_proto_version(vctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(vctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(vctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(vctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_set_alpn_protos(vctx, (const unsigned char *)"\x0a" "acme-tls/1", 11) != 0)
		die("ALPN");
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	q_cap = total;
	queue = calloc((size_t)total, sizeof(*queue));
	if (!queue)
		die("out of memory");
	for (int i = 0; i < CHECKERS; i++)
		if (!start_checker(&at))
			die("pthread_create");
	/* Every checker waiting before the schedule starts. */
	for (;;) {
		pthread_mutex_lock(&q_mu);
		bool all = idle == CHECKERS;
		pthread_mutex_unlock(&q_mu);
		if (all)
			break;
		usleep(1000);
	}
	t0 = now_s();
	/* http-01 checks on the schedule's whole steps, acme-tls/1 ones half a
	 * step later: the two kinds never start together. */
	while (!stopping && issued < total - 1) {
		double due = t0 + (issued / 2) / o.rate + (issued % 2) / (2 * o.rate);
		double now = now_s();

		if (due - t0 >= o.seconds)
			break;
		if (due > now) {
			double d = due - now;
			struct timespec ts = { .tv_sec = (time_t)d,
					       .tv_nsec = (long)((d - (double)(time_t)d) * 1e9) };
			nanosleep(&ts, NULL);
			continue;
		}
		struct check *c = &cs[issued];
		c->tls = issued % 2 == 1;
		c->idx = issued;
		c->lat = -1;
		c->start = now_s();
		atomic_fetch_add(&running, 1);
		if (!submit(c, &at))
			die("pthread_create");
		issued++;
	}
	/* The last checks may take up to their timeout. */
	wait_end = now_s() + o.timeout + 1;
	while (atomic_load(&running) > 0 && now_s() < wait_end)
		usleep(10000);
	if (atomic_load(&running) > 0)
		die("checks still running after their timeout");
	if (o.trace)
		fprintf(stderr, "START %.4f (CLOCK_MONOTONIC s)\n", t0);
	for (int i = 0; o.trace && i < issued; i++)
		fprintf(stderr, "CHECK %.4f %s %.3f %s connect %.3f answer %.3f port %u cpu %.3f\n",
			cs[i].start - t0, cs[i].tls ? "tls" : "http", cs[i].lat * 1000.0,
			vfail_names[cs[i].result],
			cs[i].connected ? (cs[i].connected - cs[i].start) * 1000.0 : -1.0,
			cs[i].answered ? (cs[i].answered - cs[i].start) * 1000.0 : -1.0,
			(unsigned)cs[i].port, cs[i].cpu * 1000.0);
	printf("RESULT mode=validate secs=%.2f", now_s() - t0);
	report("", cs, issued, -1);
	report("http_", cs, issued, 0);
	report("tls_", cs, issued, 1);
	printf("\n");
	return 0;
}

static void add_port(const char *s)
{
	char *slash;
	long num = strtol(s, &slash, 10);

	if (o.nports == MAX_PORTS || num <= 0 || num > 65535 || *slash != '/')
		usage();
	o.ports[o.nports].num = (uint16_t)num;
	if (strcmp(slash + 1, "tls") == 0)
		o.ports[o.nports].kind = PK_TLS;
	else if (strcmp(slash + 1, "http") == 0)
		o.ports[o.nports].kind = PK_HTTP;
	else
		usage();
	o.nports++;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "http", required_argument, NULL, 'h' },
		{ "https", required_argument, NULL, 'S' },
		{ "trace", no_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { .sa_handler = on_term };
	struct rlimit rl;
	int c;

	if (argc < 2)
		usage();
	o.mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "p:n:i:s:d:k:c:T:K:r:w:", lo, NULL)) != -1) {
		switch (c) {
		case 'p': add_port(optarg); break;
		case 'n': o.n = atoi(optarg); break;
		case 'i': o.interval_ms = atoi(optarg); break;
		case 's': o.sni = o.name = optarg; break;
		case 'd': o.seconds = atof(optarg); break;
		case 'k': o.churn_kind = optarg; break;
		case 'c': o.conc = atoi(optarg); break;
		case 'T': o.token = optarg; break;
		case 'K': o.keyauth = optarg; break;
		case 'r': o.rate = atof(optarg); break;
		case 'w': o.timeout = atof(optarg); break;
		case 'h': o.http_port = (uint16_t)atoi(optarg); break;
		case 'S': o.https_port = (uint16_t)atoi(optarg); break;
		case 't': o.trace = true; break;
		default: usage();
		}
	}
	if (optind != argc || o.seconds <= 0 || o.n < 1 || o.n > 1000000 || o.conc < 1 ||
	    o.conc > 100000 || o.interval_ms < 0 || o.rate <= 0 || o.rate > 1000 ||
	    o.timeout <= 0)
		usage();
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	srand((unsigned)getpid());
	if (strcmp(o.mode, "validate") == 0)
		return run_validate();
	if (o.nports == 0)
		usage();
	make_hello();
	if (strcmp(o.mode, "hold") == 0)
		return run_hold();
	if (strcmp(o.mode, "churn") == 0) {
		if (strcmp(o.churn_kind, "hello") && strcmp(o.churn_kind, "garbage"))
			usage();
		make_garbage();
		return run_churn();
	}
	usage();
	return 2;
}
