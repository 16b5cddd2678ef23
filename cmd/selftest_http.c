/*
 * The http-01 check as Let's Encrypt's validator makes it: GET
 * http://NAME/.well-known/acme-challenge/TOKEN on port 80 with Host NAME,
 * redirects followed to http or https on ports 80 and 443 only, at most
 * 10, and the body compared with the key authorization after trailing
 * white space is trimmed. Also the name resolution the checks share.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "cmd/selftest_int.h"
#include "common/log.h"

#define REDIRECTS_MAX 10

/* ---- addresses --------------------------------------------------------- */

static bool same_addr(const struct sockaddr_storage *a,
		      const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

static size_t add_addr(struct sockaddr_storage *out, size_t n, size_t cap,
		       const struct sockaddr *sa)
{
	struct sockaddr_storage ss = {0};

	memcpy(&ss, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in));
	for (size_t i = 0; i < n; i++)
		if (same_addr(&out[i], &ss))
			return n;
	if (n < cap)
		out[n++] = ss;
	return n;
}

/* One lookup; on the heap, as a lookup still running must keep it. */
struct lookup {
	struct gaicb cb;
	char name[IDENT_NAME_MAX + 1];
};

/* DNS through getaddrinfo_a(), so that the wait has an end. */
static size_t resolve_dns(const struct st *st, const char *name,
			  struct sockaddr_storage *out, size_t cap, char *err,
			  size_t errlen)
{
	static const struct addrinfo hints = {.ai_family = AF_UNSPEC,
					      .ai_socktype = SOCK_STREAM};
	struct lookup *l = calloc(1, sizeof(*l));
	struct gaicb *list[1];
	struct timespec ts = {st->connect_ms / 1000, (st->connect_ms % 1000) * 1000000L};
	size_t n = 0;
	int ret;

	if (!l) {
		err_set(err, errlen, "out of memory");
		return 0;
	}
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->cb.ar_name = l->name;
	l->cb.ar_request = &hints;
	list[0] = &l->cb;
	ret = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (ret == 0) {
		while ((ret = gai_suspend((const struct gaicb *const *)list, 1, &ts))
		       == EAI_INTR)
			;
		if (ret == EAI_AGAIN && gai_cancel(&l->cb) == EAI_NOTCANCELED) {
			/* Still running: l stays with it until the process ends. */
			err_set(err, errlen, "no address: DNS gave no answer for %s within %us",
				name, st->connect_ms / 1000);
			return 0;
		}
		ret = gai_error(&l->cb);
	}
	if (ret != 0) {
		err_set(err, errlen, "no address: %s has no A or AAAA record (%s)",
			name, gai_strerror(ret));
		free(l);
		return 0;
	}
	for (struct addrinfo *ai = l->cb.ar_result; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			n = add_addr(out, n, cap, ai->ai_addr);
	freeaddrinfo(l->cb.ar_result);
	free(l);
	if (!n)
		err_set(err, errlen, "no address: %s has no A or AAAA record", name);
	return n;
}

size_t st_resolve(const struct st *st, const char *name,
		  struct sockaddr_storage *out, size_t cap, char *err,
		  size_t errlen)
{
	struct ident id;
	size_t n = 0;

	for (size_t i = 0; i < st->nresolve; i++)
		if (strcmp(st->resolve[i].name, name) == 0)
			n = add_addr(out, n, cap, (const struct sockaddr *)&st->resolve[i].sa);
	if (n)
		return n;
	if (ident_parse(name, strlen(name), &id) == 0 && id.type != IDENT_DNS) {
		struct sockaddr_storage ss = {0};
		if (id.type == IDENT_IPV4) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, id.addr, 4);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, id.addr, 16);
		}
		return add_addr(out, 0, cap, (const struct sockaddr *)&ss);
	}
	return resolve_dns(st, name, out, cap, err, errlen);
}

/* ---- outcomes ------------------------------------------------------------ */

void st_addr_text(const struct sockaddr *sa, char *buf, size_t cap)
{
	const void *a = sa->sa_family == AF_INET6 ?
		(const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
		(const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (!inet_ntop(sa->sa_family, a, buf, (socklen_t)cap))
		snprintf(buf, cap, "?");
}

void st_connect_failed(struct st_outcome *out, const struct sockaddr *sa,
		       uint16_t port, int neg_errno)
{
	char host[INET6_ADDRSTRLEN];
	const char *what;

	st_addr_text(sa, host, sizeof(host));
	switch (-neg_errno) {
	case ECONNREFUSED:
		what = "connection refused: nothing listens there, or a firewall "
		       "rejects the port";
		break;
	case ETIMEDOUT:
		what = "timeout connecting: a firewall drops the packets, or no "
		       "host has that address";
		break;
	case EHOSTUNREACH:
	case ENETUNREACH:
		what = "no route to that address";
		break;
	default:
		what = strerror(-neg_errno);
		break;
	}
	snprintf(out->reason, sizeof(out->reason), "%s%s%s port %u: %s",
		 sa->sa_family == AF_INET6 ? "[" : "", host,
		 sa->sa_family == AF_INET6 ? "]" : "", port, what);
}

/* "(Server: nginx)" or "(no Server header)" for the last response. */
static void who_answered(const struct st_outcome *out, char *buf, size_t cap)
{
	if (out->server[0])
		snprintf(buf, cap, "Server: %s", out->server);
	else
		snprintf(buf, cap, "no Server header");
}

/* ---- the check ----------------------------------------------------------- */

struct hop {
	struct http_url url;
	struct sockaddr_storage sa;
	unsigned n;			/* redirects followed so far */
	char where[400];		/* the URL, cut for messages */
};

/* "http://host/path" of the hop, for messages. */
static void hop_text(struct hop *h)
{
	bool v6 = strchr(h->url.host, ':') != NULL;

	char port[8] = "";

	if (h->url.port_given)
		snprintf(port, sizeof(port), ":%u", h->url.port);
	snprintf(h->where, sizeof(h->where), "%s://%s%.120s%s%s%.200s",
		 h->url.https ? "https" : "http", v6 ? "[" : "", h->url.host,
		 v6 ? "]" : "", port, h->url.path);
}

/* Makes the request of one hop; 0 with st->f filled, or -1 after out. */
static int fetch_hop(struct st *st, struct hop *h, struct st_outcome *out)
{
	bool v6 = strchr(h->url.host, ':') != NULL;
	uint16_t port = h->url.https ? st->https_port : st->http_port;
	struct netio io;
	char req[HTTP_URL_PATH_MAX + HTTP_URL_HOST_MAX + 256], err[256];
	int n, ret;

	ret = net_connect(&io, (struct sockaddr *)&h->sa, port, st->connect_ms);
	if (ret) {
		st_connect_failed(out, (struct sockaddr *)&h->sa, port, ret);
		return -1;
	}
	io.deadline_ms = clock_mono_ms() + st->exchange_ms;
	if (h->url.https &&
	    net_tls(&io, st->tls, v6 || inet_pton(AF_INET, h->url.host, err) == 1 ?
		    NULL : h->url.host, NULL, err, sizeof(err))) {
		out->reached = true;
		snprintf(out->reason, sizeof(out->reason), "%s: TLS: %s", h->where,
			 err);
		net_close(&io);
		return -1;
	}
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s%s%s\r\n"
		     "User-Agent: acme-edge-selftest (like an ACME validator)\r\n"
		     "Accept: */*\r\nConnection: close\r\n\r\n", h->url.path,
		     v6 ? "[" : "", h->url.host, v6 ? "]" : "");
	ret = http_exchange(&io, req, (size_t)n, st->f, err, sizeof(err));
	net_close(&io);
	out->reached = true;
	if (ret) {
		snprintf(out->reason, sizeof(out->reason), "%s: %s", h->where, err);
		return -1;
	}
	out->status = st->f->head.status;
	snprintf(out->server, sizeof(out->server), "%.*s",
		 (int)st->f->head.server.len, st->f->head.server.ptr);
	for (char *p = out->server; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return 0;
}

static bool is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 ||
	       status == 307 || status == 308;
}

/* Moves h to the Location of st->f; 0, or -1 after out. */
static int follow(struct st *st, struct hop *h, struct st_outcome *out)
{
	const struct http_resp *r = &st->f->head;
	struct http_url next;
	char who[160], err[256], loc[200];
	struct sockaddr_storage addrs[1];
	int ret;

	who_answered(out, who, sizeof(who));
	snprintf(loc, sizeof(loc), "%.*s", (int)(r->location.len < 190 ?
		 r->location.len : 190), r->location.ptr);
	if (!r->location.ptr) {
		snprintf(out->reason, sizeof(out->reason), "%s: %d without a "
			 "Location (%s)", h->where, r->status, who);
		return -1;
	}
	ret = http_url_resolve(r->location.ptr, r->location.len, &h->url, &next);
	if (ret == HTTP_URL_SCHEME) {
		snprintf(out->reason, sizeof(out->reason), "redirected where a CA "
			 "will not follow: %s sends to %s, and a CA follows only "
			 "http and https (%s)", h->where, loc, who);
		return -1;
	}
	if (ret) {
		snprintf(out->reason, sizeof(out->reason), "%s: a Location a CA "
			 "cannot follow: %s (%s)", h->where, loc, who);
		return -1;
	}
	if (next.port_given && next.port != 80 && next.port != 443) {
		snprintf(out->reason, sizeof(out->reason), "redirected where a CA "
			 "will not follow: %s sends to %s, port %u; a CA follows "
			 "redirects only to ports 80 and 443 (%s)", h->where, loc,
			 next.port, who);
		return -1;
	}
	if (++h->n > REDIRECTS_MAX) {
		snprintf(out->reason, sizeof(out->reason), "more than %d redirects "
			 "(the last from %s)", REDIRECTS_MAX, h->where);
		return -1;
	}
	/* A redirect on the same name stays on the address under test. */
	if (strcmp(next.host, h->url.host) != 0) {
		if (!st_resolve(st, next.host, addrs, 1, err, sizeof(err))) {
			snprintf(out->reason, sizeof(out->reason), "%s redirects to "
				 "%s: %s", h->where, loc, err);
			return -1;
		}
		h->sa = addrs[0];
	}
	/* Ports 80 and 443 are the ones under test, whatever they are here. */
	next.port_given = false;
	h->url = next;
	hop_text(h);
	return 0;
}

/* Trailing white space trimmed, as the validator compares. */
static size_t trimmed(const uint8_t *b, size_t n)
{
	while (n && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\r' ||
		     b[n - 1] == '\n'))
		n--;
	return n;
}

void st_check_http01(struct st *st, const struct ident *id,
		     const struct sockaddr *sa, const char *token,
		     const char *keyauth, struct st_outcome *out)
{
	struct hop h = {0};
	char who[160];
	size_t n;

	memcpy(&h.sa, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						    : sizeof(struct sockaddr_in));
	snprintf(h.url.host, sizeof(h.url.host), "%s", id->name);
	h.url.port = 80;
	snprintf(h.url.path, sizeof(h.url.path), "/.well-known/acme-challenge/%s",
		 token);
	hop_text(&h);
	for (;;) {
		if (fetch_hop(st, &h, out))
			return;
		if (!is_redirect(out->status))
			break;
		if (follow(st, &h, out))
			return;
	}
	who_answered(out, who, sizeof(who));
	if (out->status != 200) {
		snprintf(out->reason, sizeof(out->reason), "%s answered %d: %s "
			 "(%s)", h.where, out->status,
			 strcmp(out->server, "acme-edge") == 0 ?
			 "acme-edge holds no such challenge there (another gateway "
			 "with its own store?)" : "answered by something else, not "
			 "acme-edge", who);
		return;
	}
	n = trimmed(st->f->body, st->f->body_len);
	if (st->f->body_too_large || n != strlen(keyauth) ||
	    memcmp(st->f->body, keyauth, n) != 0) {
		snprintf(out->reason, sizeof(out->reason), "wrong body from %s: "
			 "%s, not the key authorization (%s)", h.where,
			 st->f->body_too_large ? "over 64 KiB" : "another text",
			 who);
		return;
	}
	out->ok = true;
	snprintf(out->reason, sizeof(out->reason), "ok%s%s", h.n ? " after "
		 "redirects to " : "", h.n ? h.where : "");
}
