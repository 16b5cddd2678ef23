/*
 * The configuration: one INI file read by every subcommand (and, for API
 * clients, optionally a second file it names, readable only by its owner).
 * Keys and sections are promises users' scripts rely on (README,
 * "Configuration"): names are extended, never renamed; unknown ones are errors,
 * because a misspelt key silently ignored at an edge is a security bug.
 */
#ifndef EDGE_CFG_H
#define EDGE_CFG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "common/ident.h"
#include "common/log.h"

#define CFG_NAME_MAX 63
#define CFG_PATH_MAX 255
#define CFG_USER_MAX 32		/* a user or group name (useradd's limit) */

enum cfg_miss {
	MISS_FORWARD = 0,	/* relay to the upstream (a backend may solve it) */
	MISS_404 = 1,		/* http: answer 404 */
	MISS_REJECT = 2,	/* https: handshake_failure alert */
};

enum cfg_pp {
	PP_OFF = 0,
	PP_V1 = 1,
	PP_V2 = 2,
};

enum cfg_io_backend {
	IO_BACKEND_AUTO = 0,
	IO_BACKEND_URING = 1,
	IO_BACKEND_EPOLL = 2,
};

struct cfg_addr {
	struct sockaddr_storage sa;
	socklen_t len;
};

enum cfg_ack {
	ACK_ALL = 0,		/* every live node applied the write */
	ACK_QUORUM = 1,		/* a majority of the live nodes did */
};

#define CFG_HOST_MAX 253
#define CFG_PREFIX_MAX 64
#define CFG_SECRET_MAX 255
#define CFG_SENTINELS_MAX 8

/* A Redis or Sentinel address as written: a name or an IP, and a port. */
struct cfg_hostport {
	char host[CFG_HOST_MAX + 1];
	uint16_t port;
};

struct cfg_client {
	char name[CFG_NAME_MAX + 1];
	uint8_t token_sha256[32];
	bool has_token;
	bool any;			/* identifiers include "*" */
	struct ident_pattern *patterns;
	size_t npatterns;
	struct cidr *cidrs;		/* empty: any source address */
	size_t ncidrs;
	char (*thumbprints)[THUMBPRINT_LEN + 1];	/* empty: any account */
	size_t nthumbprints;
	uint32_t max_entries;		/* live challenges it may hold at once */
	/*
	 * rest_responder = yes: the client may also PUT and DELETE its
	 * http-01 challenges on the challenge path itself, through port 80
	 * (the proxy hands them to the API's REST listener). Needs cidrs.
	 */
	bool rest_responder;
	unsigned line;			/* where the section starts, for messages */
};

/*
 * [stateless NAME]: http-01 answered from the account thumbprint alone
 * (acme.sh --stateless): a GET of any valid token under a Host its
 * identifiers cover is answered "<token>.<thumbprint>" when the store
 * holds no entry for the token.
 */
struct cfg_stateless {
	char name[CFG_NAME_MAX + 1];
	char thumbprint[THUMBPRINT_LEN + 1];	/* empty until set */
	bool thumbprint_given;		/* set, valid or not: no second error */
	struct ident_pattern *patterns;
	size_t npatterns;
	bool any;			/* identifiers include "*" */
	unsigned line;
};

struct cfg_route {
	char name[CFG_NAME_MAX + 1];
	bool is_default;
	struct ident_pattern *names;
	size_t nnames;
	struct cfg_addr *http;
	size_t nhttp;
	struct cfg_addr *https;
	size_t nhttps;
	enum cfg_pp proxy_protocol;
	unsigned line;
};

struct cfg {
	char file[CFG_PATH_MAX + 1];
	struct {
		char path[CFG_PATH_MAX + 1];
		uint32_t capacity;
	} store;
	struct {
		struct cfg_addr *listen;
		size_t nlisten;
		char clients_file[CFG_PATH_MAX + 1];
		uint32_t default_ttl_s;
		uint32_t max_ttl_s;
		uint32_t max_body;
		uint32_t max_headers;
		uint32_t timeout_ms;		/* inactivity */
		uint32_t request_timeout_ms;	/* a whole request, from its start */
		uint32_t max_connections;
		uint32_t max_connections_per_source;
		uint32_t sweep_interval_ms;
		/*
		 * The REST responder's listener: a Unix socket, rest_listen or
		 * "<store path>.rest"; AF_UNSPEC when that is too long and no
		 * client needs it.
		 */
		struct cfg_addr rest_listen;
		/* Started as root: who to run as once listening ("": root). */
		char user[CFG_USER_MAX + 1];
		char group[CFG_USER_MAX + 1];	/* "": the user's own */
	} api;
	struct cfg_client *clients;
	size_t nclients;
	struct {
		struct cfg_addr *http;
		size_t nhttp;
		struct cfg_addr *https;
		size_t nhttps;
		uint32_t workers;		/* 0: one per CPU */
		enum cfg_io_backend io_backend;
		enum cfg_miss http_miss;
		enum cfg_miss tls_miss;
		uint32_t peek_timeout_ms;
		uint32_t defer_accept_ms;	/* 0: accept at the handshake */
		uint32_t connect_timeout_ms;
		uint32_t idle_timeout_ms;
		uint32_t grace_ms;
		uint32_t max_connections;	/* per worker */
		uint32_t splice_pipes;		/* per worker; 0: never splice */
		uint32_t sched_slice_us;	/* 0: the kernel's own slice */
		struct cidr *trusted_proxies;
		size_t ntrusted_proxies;
		char user[CFG_USER_MAX + 1];	/* as [api] user, for the proxy */
		char group[CFG_USER_MAX + 1];
	} proxy;
	struct cfg_route *routes;
	size_t nroutes;
	struct cfg_stateless *stateless;	/* in file order */
	size_t nstateless;
	/*
	 * Where the proxy hands REST responder requests: [api] rest_listen, a
	 * PROXY v2 header first. Not a [route]: no name leads to it.
	 */
	struct cfg_route rest_route;
	struct {
		enum log_level level;
	} log;
	/* [cluster]: absent, enabled is false and nothing else is read. */
	struct {
		bool enabled;
		char node[CFG_NAME_MAX + 1];
		struct cfg_hostport redis;		/* port 0: use sentinels */
		struct cfg_hostport sentinels[CFG_SENTINELS_MAX];
		size_t nsentinels;
		char master[CFG_NAME_MAX + 1];
		enum cfg_ack ack;
		uint32_t ack_timeout_ms;
		char prefix[CFG_PREFIX_MAX + 1];
		char user[CFG_NAME_MAX + 1];
		/* From password or password_file; never logged. */
		char password[CFG_SECRET_MAX + 1];
		char password_file[CFG_PATH_MAX + 1];
		/* The sentinels' own credentials (their requirepass or ACL
		 * user), the same way: asked before each query. */
		char sentinel_user[CFG_NAME_MAX + 1];
		char sentinel_password[CFG_SECRET_MAX + 1];
		char sentinel_password_file[CFG_PATH_MAX + 1];
		unsigned line;
	} cluster;
};

/*
 * Whether p[0..n) may be the host of a host:port: a name's letters, digits,
 * '-', '_' and '.', and ':' for an IPv6 address (bracketed in a config).
 * Also judges an address Redis Sentinel hands back, before it is used.
 */
bool cfg_host_chars(const char *p, size_t n);

/*
 * Reads and validates a config file (and the clients file it names). Every
 * problem is printed to errs as "FILE:LINE: message", all of them, not just
 * the first. Returns the number of errors; on 0, *out holds the config
 * (free it with cfg_free), otherwise *out is NULL.
 */
int cfg_load(const char *path, struct cfg **out, FILE *errs);

void cfg_free(struct cfg *cfg);

/*
 * SIGHUP's first half, the same in every process: reads path again and, on
 * success, applies its log level and returns it. On any error it logs them
 * all in one line under who ("api", "proxy") and returns NULL: the caller
 * keeps running on the config it has.
 */
struct cfg *cfg_reload(const char *path, const char *who);

/*
 * From now on this process loads configs without their clients file: the
 * proxy, once it runs as its own user, may not read the API's clients and
 * never needs them. Its config's clients are then only those of the main
 * file.
 */
void cfg_skip_clients_file(void);

/* The client whose token hashes to token_sha256, in constant time; or NULL. */
const struct cfg_client *cfg_client_by_token(const struct cfg *cfg,
					     const uint8_t token_sha256[32]);

/* The route for a name (exact and *.suffix names, else the default). */
const struct cfg_route *cfg_route_for(const struct cfg *cfg, const char *name,
				      size_t len);

#endif
