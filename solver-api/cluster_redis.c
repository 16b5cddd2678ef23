/*
 * Cluster mode's transport: the two connections to the Redis master ("cmd"
 * for commands, "sub" for the subscription), the master found through the
 * sentinels when there are some, each connection authenticated, the master
 * checked to be one, the scripts loaded; any failure drops both and
 * reconnects after a back-off. The Lua scripts live here because their
 * digests, which every EVALSHA names, are checked here against what Redis
 * loaded.
 *
 * A context's data is the cluster while the context is in use and NULL
 * once it is dropped: every callback starts from ac->data, so a reply that
 * arrives for a dropped connection finds nothing to act on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "common/edge.h"
#include "common/log.h"
#include "solver-api/cluster_int.h"

#define NODE_FORGET_MS 3600000	/* the live set forgets long-dead nodes */
/* A constant spelled into a script's text (a plain literal: the script's
 * text, hence its SHA, stays what it was). */
#define LUA_NUM(x) LUA_NUM_(x)
#define LUA_NUM_(x) #x
#define CONNECT_TIMEOUT_MS 2000
#define BACKOFF_MAX_MS 5000

static void ask_sentinel(struct cluster *cl);
static void next_sentinel(struct cluster *cl);

/* ---- the scripts ------------------------------------------------------ */

/*
 * The write. KEYS: the entry's hash, the version counter. ARGV: mode ("w"
 * a new write: assign a version; "r" a republish: keep ARGV[2] unless the
 * hash already holds as new), version floor or version, expiry (ms), "1"
 * for a tombstone, the body, the event channel. Versions are at least
 * Redis's clock in microseconds-like units (ms * 1000) and above every
 * version the caller has seen, so they keep increasing across a FLUSHALL
 * or a restart without persistence. Returns {1, version} written,
 * {0, version held} when a republish is not newer, {-1, 0} when already
 * expired.
 */
static const char script_write[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local x = tonumber(ARGV[3])\n"
	"local v\n"
	"if ARGV[1] == 'w' then\n"
	"  v = redis.call('INCR', KEYS[2])\n"
	"  local lo = math.max(now * 1000, tonumber(ARGV[2]) + 1)\n"
	"  if v < lo then v = lo; redis.call('SET', KEYS[2], string.format('%.0f', v)) end\n"
	"  if ARGV[4] == '1' then\n"
	"    local old = tonumber(redis.call('HGET', KEYS[1], 'x') or '0') or 0\n"
	"    if old > x then x = old end\n"
	"  end\n"
	"else\n"
	"  v = tonumber(ARGV[2])\n"
	"  local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') or 0\n"
	"  if cur >= v then return {0, cur} end\n"
	"  local c = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
	"  if c < v then redis.call('SET', KEYS[2], string.format('%.0f', v)) end\n"
	"end\n"
	"if x <= now then return {-1, 0} end\n"
	"local vs = string.format('%.0f', v)\n"
	"local msg = vs .. ':' .. ARGV[5]\n"
	"redis.call('HSET', KEYS[1], 'v', vs, 'x', string.format('%.0f', x), 'm', msg)\n"
	"redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', x))\n"
	"redis.call('PUBLISH', ARGV[6], msg)\n"
	"return {1, v}\n";

/*
 * The heartbeat. KEYS: the live set, the epoch, the version counter, this
 * node name's instance key. ARGV: this node, the live window (ms), this
 * node's highest version, an epoch to set if none is (a new random one
 * each call, so that two data losses in a row are both seen), this
 * process's instance id. Returns {epoch, {live nodes}, the instance that
 * beat under this name last, if within the live window}.
 */
static const char script_beat[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - " LUA_NUM(NODE_FORGET_MS) ")\n"
	"local e = redis.call('GET', KEYS[2])\n"
	"if not e then redis.call('SET', KEYS[2], ARGV[4]); e = ARGV[4] end\n"
	"local c = tonumber(redis.call('GET', KEYS[3]) or '0') or 0\n"
	"if c < tonumber(ARGV[3]) then redis.call('SET', KEYS[3], ARGV[3]) end\n"
	"local o = redis.call('GET', KEYS[4]) or ''\n"
	"redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[2])\n"
	"return {e, redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf'), o}\n";

/* A hit record. KEYS: the entry's hit hash. ARGV: node, message, expiry, channel. */
static const char script_hit[] =
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
	"redis.call('PEXPIREAT', KEYS[1], ARGV[3])\n"
	"redis.call('PUBLISH', ARGV[4], ARGV[2])\n"
	"return 1\n";

static const char *const scripts[SC_COUNT] = {script_write, script_beat, script_hit};

static void sha1_hex(const char *s, char out[41])
{
	uint8_t d[SHA_DIGEST_LENGTH];

	SHA1((const unsigned char *)s, strlen(s), d);
	for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Known before SCRIPT LOAD answers, which on_setup checks them against. */
void cl_scripts_hash(char sha[SC_COUNT][41])
{
	for (int i = 0; i < SC_COUNT; i++)
		sha1_hex(scripts[i], sha[i]);
}

/* ---- Redis plumbing --------------------------------------------------- */

void cl_entry_key(const struct cluster *cl, char *buf, size_t cap,
		  char type, uint8_t kind, const char *key)
{
	snprintf(buf, cap, "%s%c:%u:%s", cl->prefix, type, kind, key);
}

/*
 * Every reply callback on "cmd" starts here: NULL when the context is being
 * torn down (cl_drop cleared its data first) or the reply is missing.
 */
struct cluster *cl_reply_begin(redisAsyncContext *ac, void *reply)
{
	struct cluster *cl = ac->data;

	if (!cl)
		return NULL;
	if (ac == cl->cmd && cl->inflight > 0)
		cl->inflight--;
	return reply ? cl : NULL;
}

/* For commands whose reply only counts down inflight. */
void cl_on_ignored(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)priv;
	cl_reply_begin(ac, reply);
}

/* Sends on "cmd"; -1 when not connected or too many replies are awaited. */
int cl_cmd_send(struct cluster *cl, redisCallbackFn *fn, void *priv,
		int argc, const char **argv, const size_t *lens)
{
	if (!cl->cmd || cl->inflight >= INFLIGHT_MAX)
		return -1;
	if (redisAsyncCommandArgv(cl->cmd, fn, priv, argc, argv, lens) != REDIS_OK)
		return -1;
	cl->inflight++;
	return 0;
}

bool cl_is_error(const redisReply *r, char *buf, size_t cap)
{
	if (r->type != REDIS_REPLY_ERROR)
		return false;
	/* Its words go to a log: escaped, as any peer's bytes. */
	log_escape(buf, cap, r->str, r->len > 200 ? 200 : r->len);
	return true;
}

/* A reply that is an integer, or a decimal string of one. */
bool cl_reply_u64(const redisReply *r, uint64_t *out)
{
	char buf[32];
	char *end;

	if (r->type == REDIS_REPLY_INTEGER) {
		if (r->integer < 0)
			return false;
		*out = (uint64_t)r->integer;
		return true;
	}
	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf))
		return false;
	memcpy(buf, r->str, r->len);
	buf[r->len] = '\0';
	errno = 0;
	*out = strtoull(buf, &end, 10);
	return !errno && *end == '\0' && buf[0] >= '0' && buf[0] <= '9';
}

/* ---- connecting ------------------------------------------------------- */

static void free_ctx(redisAsyncContext **slot)
{
	redisAsyncContext *ac = *slot;

	if (!ac)
		return;
	*slot = NULL;
	ac->data = NULL;	/* its callbacks, run by the free, see no cluster */
	redisAsyncFree(ac);
}

void cl_redis_free(struct cluster *cl)
{
	free_ctx(&cl->cmd);
	free_ctx(&cl->sub);
	free_ctx(&cl->sentinel);
	cl_dns_cancel(cl);
}

/*
 * Its callback runs from the loop later on, with EVUTIL_EAI_CANCEL, and
 * then touches nothing of cl: cl may be gone by then.
 */
void cl_dns_cancel(struct cluster *cl)
{
	if (cl->dns_req)
		evdns_getaddrinfo_cancel(cl->dns_req);
	cl->dns_req = NULL;
}

/* Once no lookup is in flight (cluster_stop cancelled it). */
void cl_dns_free(struct cluster *cl)
{
	if (cl->dns)
		evdns_base_free(cl->dns, 0);
	cl->dns = NULL;
}

/*
 * Host names are resolved here, on the event loop, before hiredis sees an
 * address: given a name, hiredis would call getaddrinfo() itself and hold
 * the loop, and with it every API request, for as long as DNS takes to
 * answer or time out, on every reconnect. libevent's resolver reads
 * /etc/resolv.conf and /etc/hosts once, when it is first needed; a name is
 * looked up again on every connect, so a Redis that moves to another
 * address by DNS is followed. The connect timeout covers the lookup.
 */
static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct cluster *cl = arg;
	char addr[INET6_ADDRSTRLEN], why[128];
	const struct evutil_addrinfo *ai = res;
	const void *in = NULL;
	unsigned n = 0;

	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	cl->dns_req = NULL;
	for (const struct evutil_addrinfo *p = res; result == 0 && p; p = p->ai_next)
		n++;
	/* The dns_pick-th address, counting round: see connect_master(). */
	for (unsigned i = 0; n && i < cl->dns_pick % n; i++)
		ai = ai->ai_next;
	if (result == 0 && ai && ai->ai_family == AF_INET)
		in = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
	else if (result == 0 && ai && ai->ai_family == AF_INET6)
		in = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
	if (in && evutil_inet_ntop(ai->ai_family, in, addr, sizeof(addr))) {
		evutil_freeaddrinfo(res);
		cl->dns_then(cl, addr, NULL);
		return;
	}
	snprintf(why, sizeof(why), "cannot resolve: %s",
		 result ? evutil_gai_strerror(result) : "no address");
	if (res)
		evutil_freeaddrinfo(res);
	cl->dns_then(cl, NULL, why);
}

/*
 * then(cl, address, NULL) once host has an address, the pick-th of the
 * answer's counting round; then(cl, NULL, why) if none.
 */
static void resolve(struct cluster *cl, const char *host, unsigned pick,
		    void (*then)(struct cluster *, const char *, const char *))
{
	struct evutil_addrinfo hints = {0};
	struct evdns_getaddrinfo_request *req;
	unsigned char buf[sizeof(struct in6_addr)];

	/*
	 * No lookup may outlive cluster_stop(), as cluster_close() frees the
	 * base; a stopping node connects nowhere anyway.
	 */
	if (cl->stopping)
		return;
	if (evutil_inet_pton(AF_INET, host, buf) == 1 ||
	    evutil_inet_pton(AF_INET6, host, buf) == 1) {
		then(cl, host, NULL);
		return;
	}
	if (!cl->dns)
		cl->dns = evdns_base_new(cl->base,
					 EVDNS_BASE_INITIALIZE_NAMESERVERS |
					 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!cl->dns) {
		then(cl, NULL, "cannot resolve: no resolver configured");
		return;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	cl->dns_then = then;
	cl->dns_pick = pick;
	/*
	 * NULL when answered at once (/etc/hosts): the callback has run, and
	 * may have started the next lookup, whose handle stays.
	 */
	req = evdns_getaddrinfo(cl->dns, host, NULL, &hints, on_resolved, cl);
	if (req)
		cl->dns_req = req;
}

void cl_drop(struct cluster *cl, const char *fmt, ...)
{
	va_list ap;
	bool was_ready = cl->state == CLUSTER_READY;

	va_start(ap, fmt);
	vsnprintf(cl->cause, sizeof(cl->cause), fmt, ap);
	va_end(ap);
	if (!cl->subscribed && !cl->asking_sentinel)
		cl->master_fails++;
	cl_redis_free(cl);
	event_del(cl->connect_to_ev);
	cl->asking_sentinel = false;
	cl->redis_up = false;
	cl->subscribed = false;
	cl->inflight = 0;
	cl->hb_outstanding = 0;
	cl->beats_up = 0;
	cl->repub_inflight = 0;
	cl->sync_outstanding = 0;
	cl->live_known = false;
	cl_hits_disconnected(cl);
	cl_writes_disconnected(cl);
	if (was_ready || !cl->drop_logged)
		log_err("cluster: %s: %s; serving what this node holds, refusing "
			"writes, reconnecting", cl->ever_ready ? "degraded"
			: "not ready", cl->cause);
	cl->drop_logged = true;
	/* A node that never loaded the set is still syncing, not degraded. */
	cl->state = cl->ever_ready ? CLUSTER_DEGRADED : CLUSTER_SYNCING;
	cl_arm(cl->reconnect_ev, cl->backoff_ms);
	cl->backoff_ms = cl->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							    : cl->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct cluster *cl = ac->data;
	bool named;

	if (!cl || status == REDIS_OK)
		return;
	/* hiredis frees a context whose connect failed: forget it first. */
	((redisAsyncContext *)ac)->data = NULL;
	if (ac == cl->cmd) {
		cl->cmd = NULL;
	} else if (ac == cl->sub) {
		cl->sub = NULL;
	} else if (ac == cl->sentinel) {
		cl->sentinel = NULL;
		log_warn("cluster: sentinel %s:%u: %s", cl->target.host,
			 cl->target.port, ac->errstr);
		next_sentinel(cl);
		return;
	}
	/* A name's address is said too: the next attempt takes another. */
	named = ac->c.tcp.host && strcmp(ac->c.tcp.host, cl->target.host) != 0;
	cl_drop(cl, "cannot connect to Redis %s:%u%s%s: %s", cl->target.host,
		cl->target.port, named ? " at " : "", named ? ac->c.tcp.host : "",
		ac->errstr[0] ? ac->errstr : "error");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct cluster *cl = ac->data;

	(void)status;
	if (!cl)
		return;
	((redisAsyncContext *)ac)->data = NULL;
	if (ac == cl->cmd)
		cl->cmd = NULL;
	else if (ac == cl->sub)
		cl->sub = NULL;
	else if (ac == cl->sentinel)
		cl->sentinel = NULL;
	cl_drop(cl, "lost the connection to Redis %s:%u%s%s", cl->target.host,
		cl->target.port, ac->errstr[0] ? ": " : "", ac->errstr);
}

static redisAsyncContext *open_ctx(struct cluster *cl, const char *host,
				   uint16_t port)
{
	redisAsyncContext *ac = redisAsyncConnect(host, port);

	if (!ac)
		return NULL;
	if (ac->err) {
		snprintf(cl->cause, sizeof(cl->cause), "%s", ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = cl;
	redisLibeventAttach(ac, cl->base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return ac;
}

/* Any error on the way up (AUTH, ROLE, SCRIPT LOAD) drops the connection. */
static void on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = cl_reply_begin(ac, reply);
	redisReply *r = reply;
	const char *what = priv;
	char err[256];

	if (!cl)
		return;
	if (cl_is_error(r, err, sizeof(err))) {
		cl_drop(cl, "Redis %s:%u refused %s: %s", cl->target.host,
			cl->target.port, what, err);
		return;
	}
	if (strcmp(what, "ROLE") == 0) {
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    strcmp(r->element[0]->str, "master") != 0)
			cl_drop(cl, "Redis %s:%u is not a master", cl->target.host,
				cl->target.port);
		return;
	}
	if (strncmp(what, "SCRIPT", 6) == 0) {
		int i = what[6] - '0';
		if (r->type != REDIS_REPLY_STRING || r->len != 40 ||
		    memcmp(r->str, cl->sha[i], 40) != 0)
			cl_drop(cl, "SCRIPT LOAD returned another digest");
		return;
	}
	if (strcmp(what, "AUTH") == 0 && ac == cl->cmd)
		log_debug("cluster: authenticated to Redis");
}

/* "AUTH [user] password" into argv and lens; returns the count. */
static int auth_args(const char *user, const char *password,
		     const char *argv[3], size_t lens[3])
{
	int argc = 0;

	argv[argc] = "AUTH";
	lens[argc++] = 4;
	if (user[0]) {
		argv[argc] = user;
		lens[argc++] = strlen(user);
	}
	argv[argc] = password;
	lens[argc++] = strlen(password);
	return argc;
}

static void send_auth(struct cluster *cl, redisAsyncContext *ac)
{
	const char *argv[3];
	size_t lens[3];
	int argc;

	if (!cl->password[0])
		return;
	argc = auth_args(cl->user, cl->password, argv, lens);
	if (ac == cl->cmd)
		cl_cmd_send(cl, on_setup, (void *)"AUTH", argc, argv, lens);
	else
		redisAsyncCommandArgv(ac, on_setup, (void *)"AUTH", argc, argv, lens);
}

static void master_resolved(struct cluster *cl, const char *addr,
			    const char *err)
{
	static const char *const load_names[SC_COUNT] = {"SCRIPT0", "SCRIPT1",
							  "SCRIPT2"};
	const char *argv[3];
	size_t lens[3];

	if (err) {
		cl_drop(cl, "Redis %s:%u: %s", cl->target.host, cl->target.port,
			err);
		return;
	}
	cl->cmd = open_ctx(cl, addr, cl->target.port);
	cl->sub = cl->cmd ? open_ctx(cl, addr, cl->target.port) : NULL;
	if (!cl->cmd || !cl->sub) {
		char why[256];
		snprintf(why, sizeof(why), "%s", cl->cause);
		cl_drop(cl, "cannot connect to Redis %s:%u: %s", cl->target.host,
			cl->target.port, why);
		return;
	}
	/* hiredis queues these until the connection is up, in this order. */
	send_auth(cl, cl->cmd);
	send_auth(cl, cl->sub);
	argv[0] = "ROLE";
	lens[0] = 4;
	cl_cmd_send(cl, on_setup, (void *)"ROLE", 1, argv, lens);
	for (int i = 0; i < SC_COUNT; i++) {
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = scripts[i];
		for (int j = 0; j < 3; j++)
			lens[j] = strlen(argv[j]);
		cl_cmd_send(cl, on_setup, (void *)load_names[i], 3, argv, lens);
	}
	const char *sub[4] = {"SUBSCRIBE", cl->ch_events, cl->ch_acks, cl->ch_members};
	size_t sublens[4];
	for (int j = 0; j < 4; j++)
		sublens[j] = strlen(sub[j]);
	redisAsyncCommandArgv(cl->sub, cl_on_sub, NULL, 4, sub, sublens);
}

/*
 * The master's lookup, connect and set-up get CONNECT_TIMEOUT_MS. A name
 * with several addresses (IPv6 and IPv4, say, with Redis listening on one)
 * is tried at the next address after each attempt that failed, the first
 * again once one got through.
 */
static void connect_master(struct cluster *cl)
{
	cl_arm(cl->connect_to_ev, CONNECT_TIMEOUT_MS);
	resolve(cl, cl->target.host, cl->master_fails, master_resolved);
}

/* Sentinel: ask each in turn where the master is, then connect to it. */

static void on_sentinel(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = ac->data;
	redisReply *r = reply;
	uint64_t port;

	(void)priv;
	if (!cl || !r)
		return;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[0]->len > 0 && r->element[0]->len <= CFG_HOST_MAX &&
	    /* It is connected to and logged: only what a config could name. */
	    cfg_host_chars(r->element[0]->str, r->element[0]->len) &&
	    cl_reply_u64(r->element[1], &port) && port > 0 && port < 65536) {
		memcpy(cl->target.host, r->element[0]->str, r->element[0]->len);
		cl->target.host[r->element[0]->len] = '\0';
		cl->target.port = (uint16_t)port;
		/* Freed from inside its own callback: hiredis defers it. */
		free_ctx(&cl->sentinel);
		cl->asking_sentinel = false;
		connect_master(cl);
		return;
	}
	next_sentinel(cl);
}

/*
 * A sentinel that refused our credentials: said here, since the query that
 * follows fails with NOAUTH and only moves on to the next sentinel. Redis's
 * error names no secret.
 */
static void on_sentinel_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	struct cluster *cl = ac->data;
	char err[256];

	(void)priv;
	if (cl && reply && cl_is_error(reply, err, sizeof(err)))
		log_warn("cluster: sentinel %s:%u refused AUTH: %s",
			 cl->target.host, cl->target.port, err);
}

static void sentinel_resolved(struct cluster *cl, const char *addr,
			      const char *err);

/*
 * Each sentinel gets CONNECT_TIMEOUT_MS of its own (lookup, connect,
 * answer): one that hangs is passed over for the next, rather than
 * holding back, reconnect after reconnect, the ones behind it.
 */
static void ask_sentinel(struct cluster *cl)
{
	if (cl->sentinel_next >= cl->nsentinels) {
		cl->sentinel_next = 0;
		cl_drop(cl, "no sentinel knows master %s", cl->master);
		return;
	}
	cl->asking_sentinel = true;
	cl->target = cl->sentinels[cl->sentinel_next];	/* what failures name */
	cl_arm(cl->connect_to_ev, CONNECT_TIMEOUT_MS);
	resolve(cl, cl->target.host, 0, sentinel_resolved);
}

/* Passes the sentinel being asked over, whatever stage it was at. */
static void next_sentinel(struct cluster *cl)
{
	free_ctx(&cl->sentinel);
	cl_dns_cancel(cl);
	cl->sentinel_next++;
	ask_sentinel(cl);
}

static void sentinel_resolved(struct cluster *cl, const char *addr,
			      const char *err)
{
	const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", cl->master};
	const char *auth[3];
	size_t lens[3], auth_lens[3];

	if (err)
		log_warn("cluster: sentinel %s:%u: %s", cl->target.host,
			 cl->target.port, err);
	else
		cl->sentinel = open_ctx(cl, addr, cl->target.port);
	if (!cl->sentinel) {
		next_sentinel(cl);
		return;
	}
	/* Pipelined: the reply to AUTH comes first, whatever it says. */
	if (cl->sentinel_password[0]) {
		int nauth = auth_args(cl->sentinel_user, cl->sentinel_password,
				      auth, auth_lens);

		redisAsyncCommandArgv(cl->sentinel, on_sentinel_auth, NULL, nauth,
				      auth, auth_lens);
	}
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	redisAsyncCommandArgv(cl->sentinel, on_sentinel, NULL, 3, argv, lens);
}

void cl_connect(struct cluster *cl)
{
	cl->scan_done = false;
	cl->scan_cursor[0] = '\0';
	cl->synced = 0;
	cl->sync_started_ms = clock_mono_ms();
	if (cl->nsentinels) {
		cl->sentinel_next = 0;
		ask_sentinel(cl);
	} else {
		cl->target = cl->redis;
		connect_master(cl);
	}
}

void cl_on_reconnect(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;

	(void)fd;
	(void)what;
	if (cl->stopping)
		return;
	cl->m_reconnects++;
	cl_connect(cl);
}

void cl_on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;

	(void)fd;
	(void)what;
	if (cl->subscribed || cl->stopping)
		return;
	if (cl->asking_sentinel) {
		log_warn("cluster: sentinel %s:%u did not answer within %d ms",
			 cl->target.host, cl->target.port, CONNECT_TIMEOUT_MS);
		next_sentinel(cl);
		return;
	}
	cl_drop(cl, "Redis %s:%u did not answer within %d ms",
		cl->target.host, cl->target.port, CONNECT_TIMEOUT_MS);
}
