#include "proxy/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/edge.h"
#include "common/log.h"
#include "common/priv.h"
#include "proxy/answer.h"
#include "proxy/evict.h"
#include "proxy/relay.h"
#include "wire/proxy_hdr.h"
#include "wire/tls_hello.h"

static const struct cfg_addr *route_servers(const struct conn *c, size_t *n)
{
	if (!c->route) {
		*n = 0;
		return NULL;
	}
	*n = c->https ? c->route->nhttps : c->route->nhttp;
	return c->https ? c->route->https : c->route->http;
}

/* No relay after all: an error page on :80; on :443 only a close says it. */
static void no_relay(struct worker *w, struct conn *c, int code,
		     const char *reason, int stat)
{
	if (c->https)
		conn_close(w, c, stat);
	else
		answer_http_error(w, c, code, reason, stat);
}

static void upstream_failed(struct worker *w, struct conn *c)
{
	pstats_add(w->stats, PS_UPSTREAM_UNREACHABLE, 1);
	log_ratelimited(&conn_lim_peer, LOG_LVL_WARN,
			"proxy: every %s upstream of route %s failed",
			c->https ? "https" : "http", c->route->name);
	no_relay(w, c, 502, "Bad Gateway", -1);
}

static void connect_next(struct worker *w, struct conn *c)
{
	size_t n;
	const struct cfg_addr *servers = route_servers(c, &n);
	const struct cfg_addr *a;
	int one = 1, fd;

	if (c->io.fd[SIDE_UPSTREAM] >= 0) {
		close(c->io.fd[SIDE_UPSTREAM]);
		c->io.fd[SIDE_UPSTREAM] = -1;
	}
	if (c->attempts >= n) {
		upstream_failed(w, c);
		return;
	}
	a = &servers[(c->server_next + c->attempts) % n];
	c->attempts++;
	/* AF_UNIX: the API's REST listener (upstream_forward_rest). */
	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
		    a->sa.ss_family == AF_UNIX ? 0 : IPPROTO_TCP);
	if (fd < 0) {
		log_err("proxy: socket: %s", strerror(errno));
		upstream_failed(w, c);
		return;
	}
	if (a->sa.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->io.fd[SIDE_UPSTREAM] = fd;
	timer_arm(w, c, TL_CONNECT);
	op_connect(w, c, (const struct sockaddr *)&a->sa, a->len);
}

/*
 * Both ends of the client's connection, for a PROXY header. The kernel
 * still gives a socket's own address after a reset (unlike its peer's).
 */
static bool addresses_known(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (c->local.sa.sa_family == AF_UNSPEC &&
	    getsockname(c->io.fd[SIDE_CLIENT], (struct sockaddr *)&ss, &len) == 0)
		conn_addr_set(&c->local, (const struct sockaddr *)&ss, len);
	return c->peer.sa.sa_family != AF_UNSPEC &&
	       c->local.sa.sa_family != AF_UNSPEC;
}

/*
 * The connection keeps a reference to the config snapshot the route lives
 * in, so a reload while it connects cannot free it.
 */
static void hold_config(struct worker *w, struct conn *c)
{
	if (!c->lc) {
		c->lc = w->lc;
		atomic_fetch_add(&c->lc->refs, 1);
	}
}

/* Relays c to the n servers of c->route, once a relay may start. */
static void forward_to(struct worker *w, struct conn *c, size_t n)
{
	if (c->route->proxy_protocol != PP_OFF && !addresses_known(c)) {
		/* Relayed, the client would take the gateway's address. */
		log_ratelimited(&conn_lim_peer, LOG_LVL_WARN,
				"proxy: %s client of unknown address: route %s "
				"wants a PROXY header: closed",
				c->https ? "https" : "http", c->route->name);
		conn_close(w, c, PS_CLOSE_RESET);
		return;
	}
	if (!evict_for_relay(w, c)) {
		no_relay(w, c, 503, "Service Unavailable", PS_CLOSE_OVER_CAP);
		return;
	}
	/* Round-robin per worker: a shared counter would be a shared write. */
	c->server_next = (uint32_t)(w->now_ms + c->io.slot) % (uint32_t)n;
	c->attempts = 0;
	conn_state(w, c, ST_CONNECTING);
	connect_next(w, c);
}

void upstream_forward_rest(struct worker *w, struct conn *c)
{
	hold_config(w, c);
	c->route = &c->lc->cfg->rest_route;
	if (c->route->nhttp == 0) {
		answer_http_json_error(w, c, 503, "Service Unavailable",
				       "rest_unavailable", "the API has no REST "
				       "responder listener", -1);
		return;
	}
	forward_to(w, c, c->route->nhttp);
}

void upstream_forward(struct worker *w, struct conn *c, const char *name,
		      size_t name_len)
{
	size_t n;

	hold_config(w, c);
	c->route = cfg_route_for(c->lc->cfg, name, name_len);
	route_servers(c, &n);
	if (n == 0) {
		char esc[LOG_ESC_SIZE(TLS_SNI_MAX)];

		log_escape(esc, sizeof(esc), name, name_len);
		log_ratelimited(&conn_lim_peer, LOG_LVL_INFO,
				"proxy: no %s upstream for \"%s\"",
				c->https ? "https" : "http", esc);
		no_relay(w, c, 502, "Bad Gateway", PS_CLOSE_NO_ROUTE);
		return;
	}
	forward_to(w, c, n);
}

/*
 * Connected: the PROXY header (if the route wants one) and every byte read
 * from the client so far go first, then the relay takes over.
 */
static void on_connected(struct worker *w, struct conn *c)
{
	uint8_t *buf = relay_start_buf(w, c);
	uint32_t n = 0;

	pstats_add(w->stats, c->https ? PS_RELAYED_HTTPS : PS_RELAYED_HTTP, 1);
	if (c->route->proxy_protocol != PP_OFF) {
		int r = c->route->proxy_protocol == PP_V1
			? proxy_hdr_write_v1((char *)buf, RELAY_BUF, conn_peer(c),
					     &c->local.sa)
			: proxy_hdr_write_v2(buf, RELAY_BUF, conn_peer(c),
					     &c->local.sa);
		BUG_ON(r < 0);
		n = (uint32_t)r;
	}
	BUG_ON(n + c->in_len > RELAY_BUF);
	memcpy(buf + n, c->in, c->in_len);
	pstats_add(w->stats, PS_BYTES_TO_UPSTREAM, c->in_len);
	n += c->in_len;
	FREE_NULL(c->in);
	c->in_len = c->in_cap = 0;
	live_cfg_put(c->lc);
	c->lc = NULL;
	c->route = NULL;
	relay_start(w, c, n);
}

/*
 * The REST listener's socket may sit where others can create names
 * (/dev/shm): bearer tokens go only to a listener made by the API's user,
 * or by root (the API makes it before it drops root, as it does the store).
 */
static bool rest_peer_ok(struct conn *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(c->io.fd[SIDE_UPSTREAM], SOL_SOCKET, SO_PEERCRED, &cr,
		       &len) == 0 && (cr.uid == priv_uid(PRIV_API) || cr.uid == 0))
		return true;
	log_ratelimited(&conn_lim_peer, LOG_LVL_ERR, "proxy: the REST listener "
			"%s is not the API's (another user's socket): not used",
			c->route->http[0].sa.ss_family == AF_UNIX
			? ((const struct sockaddr_un *)&c->route->http[0].sa)->sun_path
			: "?");
	return false;
}

void upstream_connected(struct worker *w, struct conn *c, int res)
{
	if (res >= 0 && c->route == &c->lc->cfg->rest_route && !rest_peer_ok(c))
		res = -EPERM;
	if (res < 0) {
		pstats_add(w->stats, res == -ECANCELED ? PS_UPSTREAM_CONNECT_TIMEOUT
						       : PS_UPSTREAM_CONNECT_FAILED, 1);
		connect_next(w, c);
		return;
	}
	on_connected(w, c);
}
