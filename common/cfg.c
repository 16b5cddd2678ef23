/*
 * Config loading on top of inih. inih calls us once per key; we feed it the
 * file through our own line reader, which gives us what inih does not:
 * the line number of every key, section headers even when a section has no
 * keys (to refuse unknown or repeated sections), continuation lines told
 * apart from repeated keys, and a clear error for a line longer than inih's
 * buffer instead of a silent split.
 */
#include "common/cfg.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/edge.h"

#define INI_LINE_MAX 200	/* inih's INI_MAX_LINE as Debian builds it */
#define MAX_LIST 64		/* words in one list value */
#define MAX_SECTIONS 1024

enum sect_kind {
	SECT_NONE = 0,
	SECT_STORE,
	SECT_API,
	SECT_PROXY,
	SECT_LOG,
	SECT_CLIENT,
	SECT_ROUTE,
	SECT_STATELESS,
	SECT_CLUSTER,
};

struct seen_key {
	char name[32];
};

struct load_ctx {
	struct cfg *cfg;
	FILE *errs;
	const char *file;
	bool clients_only;		/* reading the clients file */
	unsigned ttl_line;		/* where default_ttl or max_ttl was set */
	unsigned clients_file_line;
	unsigned password_line;		/* [cluster] password or password_file */
	unsigned sentinel_password_line; /* their sentinel_ twins */
	unsigned rest_listen_line;	/* 0: not set, derived from [store] path */
	unsigned store_path_line;
	unsigned api_run_as[2];		/* lines of [api] user, group; 0: unset */
	unsigned proxy_run_as[2];	/* the same in [proxy] */
	FILE *fp;
	int read_errno;			/* why fp's reading stopped; 0: its end */
	unsigned line;			/* of the line inih is handling */
	bool line_continues;		/* it began with white space */
	int errors;
	/* the section being read */
	char sect_name[128];
	enum sect_kind kind;
	bool sect_ok;			/* header valid: keys may be stored */
	void *obj;			/* the client or route being filled */
	struct seen_key seen[32];
	unsigned nseen;
	char last_key[32];
	/* every section header met, for duplicates */
	char (*sections)[128];
	unsigned *section_lines;
	unsigned nsections;
};

static void cfg_error(struct load_ctx *c, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cfg_error(struct load_ctx *c, unsigned line, const char *fmt, ...)
{
	va_list ap;

	c->errors++;
	if (!c->errs)
		return;
	fprintf(c->errs, "%s:%u: ", c->file, line);
	va_start(ap, fmt);
	vfprintf(c->errs, fmt, ap);
	va_end(ap);
	fputc('\n', c->errs);
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
}

/* Splits a value at white space into at most MAX_LIST words. */
static size_t split_words(const char *v, struct slice *w, size_t cap)
{
	size_t n = 0;

	while (*v) {
		while (is_space(*v))
			v++;
		if (!*v)
			break;
		const char *s = v;
		while (*v && !is_space(*v))
			v++;
		if (n < cap) {
			w[n].ptr = s;
			w[n].len = (size_t)(v - s);
		}
		n++;
	}
	return n;
}

static void *grow(void *arr, size_t n, size_t add, size_t elem)
{
	void *p = realloc(arr, (n + add) * elem);

	BUG_ON(!p);
	memset((char *)p + n * elem, 0, add * elem);
	return p;
}

/* ---- value parsers: each returns 0 or reports and returns -1 ----------- */

static int parse_u32(struct load_ctx *c, const char *key, const char *v,
		     uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long n;

	errno = 0;
	if (*v < '0' || *v > '9')
		goto bad;
	n = strtoull(v, &end, 10);
	if (errno || *end || n < min || n > max)
		goto bad;
	*out = (uint32_t)n;
	return 0;
bad:
	cfg_error(c, c->line, "%s: expected a whole number %u..%u, got \"%s\"",
		  key, min, max, v);
	return -1;
}

/* "250ms", "10s", "5m", "1h", or bare seconds; into milliseconds. */
static int parse_duration(struct load_ctx *c, const char *key, const char *v,
			  uint32_t min_ms, uint32_t max_ms, uint32_t *out)
{
	char *end;
	unsigned long long n, mul = 1000;

	errno = 0;
	if (*v < '0' || *v > '9')
		goto bad;
	n = strtoull(v, &end, 10);
	if (errno)
		goto bad;
	if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else
		goto bad;
	if (n > max_ms / mul + 1 || n * mul < min_ms || n * mul > max_ms)
		goto bad;
	*out = (uint32_t)(n * mul);
	return 0;
bad:
	cfg_error(c, c->line,
		  "%s: expected a duration from %ums to %ums (e.g. 500ms, 10s, "
		  "5m), got \"%s\"",
		  key, min_ms, max_ms, v);
	return -1;
}

static int parse_choice(struct load_ctx *c, const char *key, const char *v,
			const char *const *names, const int *values, size_t n,
			int *out)
{
	char allowed[128] = "";

	for (size_t i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = values[i];
			return 0;
		}
		strncat(allowed, i ? " | " : "", sizeof(allowed) - strlen(allowed) - 1);
		strncat(allowed, names[i], sizeof(allowed) - strlen(allowed) - 1);
	}
	cfg_error(c, c->line, "%s: expected %s, got \"%s\"", key, allowed, v);
	return -1;
}

static int parse_bool(struct load_ctx *c, const char *key, const char *v,
		      bool *out)
{
	static const char *const names[] = {"yes", "no"};
	static const int values[] = {1, 0};
	int choice;

	if (parse_choice(c, key, v, names, values, 2, &choice))
		return -1;
	*out = choice;
	return 0;
}

/* A Unix socket address for path; -1 when it does not fit sun_path. */
static int unix_addr(const char *path, struct cfg_addr *out)
{
	struct sockaddr_un *su = (struct sockaddr_un *)&out->sa;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(su->sun_path))
		return -1;
	memset(out, 0, sizeof(*out));
	su->sun_family = AF_UNIX;
	memcpy(su->sun_path, path, n + 1);
	out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

/* A user or group name as useradd allows them: no path, no option, no space. */
static int parse_user(struct load_ctx *c, const char *key, const char *v,
		      char *out)
{
	size_t n = strlen(v);
	bool ok = n > 0 && n <= CFG_USER_MAX && v[0] != '-';

	for (size_t i = 0; ok && i < n; i++)
		ok = name_char(v[i]);
	if (!ok) {
		cfg_error(c, c->line, "%s: expected a user or group name of 1..%d "
			  "letters, digits, '-', '_', '.', got \"%s\"", key,
			  CFG_USER_MAX, v);
		return -1;
	}
	strcpy(out, v);
	return 0;
}

/* user and group of [api] or [proxy]: who the part runs as once listening. */
static int key_run_as(struct load_ctx *c, const char *k, const char *v,
		      char *user, char *group, unsigned lines[2])
{
	bool is_group = strcmp(k, "group") == 0;

	if (!is_group && strcmp(k, "user") != 0)
		return 1;
	lines[is_group] = c->line;
	return parse_user(c, k, v, is_group ? group : user);
}

static int parse_path(struct load_ctx *c, const char *key, const char *v,
		      char *out)
{
	if (v[0] != '/' || strlen(v) > CFG_PATH_MAX) {
		cfg_error(c, c->line, "%s: expected an absolute path of at most %d "
			  "characters, got \"%s\"", key, CFG_PATH_MAX, v);
		return -1;
	}
	strcpy(out, v);
	return 0;
}

/* Appends the words of v as addresses to *arr. */
static int parse_addrs(struct load_ctx *c, const char *key, const char *v,
		       struct cfg_addr **arr, size_t *n)
{
	struct slice w[MAX_LIST];
	size_t nw = split_words(v, w, MAX_LIST);
	int rc = 0;

	if (nw == 0 || nw > MAX_LIST || *n + nw > MAX_LIST) {
		cfg_error(c, c->line, "%s: expected 1 to %d addresses", key, MAX_LIST);
		return -1;
	}
	*arr = grow(*arr, *n, nw, sizeof(**arr));
	for (size_t i = 0; i < nw; i++) {
		struct cfg_addr *a = &(*arr)[*n];
		if (addr_parse(w[i].ptr, w[i].len, &a->sa, &a->len) != 0) {
			cfg_error(c, c->line,
				  "%s: \"%.*s\" is not an address with a port "
				  "(1.2.3.4:80 or [::1]:80)",
				  key, (int)w[i].len, w[i].ptr);
			rc = -1;
			continue;
		}
		(*n)++;
	}
	return rc;
}

static int parse_cidrs(struct load_ctx *c, const char *key, const char *v,
		       struct cidr **arr, size_t *n)
{
	struct slice w[MAX_LIST];
	size_t nw = split_words(v, w, MAX_LIST);
	int rc = 0;

	if (nw == 0 || nw > MAX_LIST || *n + nw > MAX_LIST) {
		cfg_error(c, c->line, "%s: expected 1 to %d CIDRs", key, MAX_LIST);
		return -1;
	}
	*arr = grow(*arr, *n, nw, sizeof(**arr));
	for (size_t i = 0; i < nw; i++) {
		if (cidr_parse(w[i].ptr, w[i].len, &(*arr)[*n]) != 0) {
			cfg_error(c, c->line,
				  "%s: \"%.*s\" is not a CIDR (10.0.0.0/8, "
				  "2001:db8::/32) with its host bits clear",
				  key, (int)w[i].len, w[i].ptr);
			rc = -1;
			continue;
		}
		(*n)++;
	}
	return rc;
}

static int parse_patterns(struct load_ctx *c, const char *key, const char *v,
			  struct ident_pattern **arr, size_t *n, bool *any)
{
	struct slice w[MAX_LIST];
	size_t nw = split_words(v, w, MAX_LIST);
	int rc = 0;

	if (nw == 0 || nw > MAX_LIST || *n + nw > MAX_LIST) {
		cfg_error(c, c->line, "%s: expected 1 to %d names", key, MAX_LIST);
		return -1;
	}
	*arr = grow(*arr, *n, nw, sizeof(**arr));
	for (size_t i = 0; i < nw; i++) {
		struct ident_pattern *p = &(*arr)[*n];
		if (pattern_parse(w[i].ptr, w[i].len, p) != 0) {
			cfg_error(c, c->line,
				  "%s: \"%.*s\" is not a name pattern (example.com, "
				  "*.example.com, an IP, a CIDR, or *)",
				  key, (int)w[i].len, w[i].ptr);
			rc = -1;
			continue;
		}
		if (p->kind == PATTERN_ANY) {
			if (!any) {
				cfg_error(c, c->line, "%s: \"*\" is not allowed here; "
					  "use [route default]", key);
				rc = -1;
				continue;
			}
			*any = true;
		}
		(*n)++;
	}
	return rc;
}

static int parse_sha256(struct load_ctx *c, const char *key, const char *v,
			uint8_t out[32])
{
	if (strlen(v) != 64)
		goto bad;
	for (int i = 0; i < 32; i++) {
		int hi = hex_digit((uint8_t)v[2 * i]), lo = hex_digit((uint8_t)v[2 * i + 1]);
		if (hi < 0 || lo < 0)
			goto bad;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
bad:
	cfg_error(c, c->line, "%s: expected 64 hex digits (sha256sum of the "
		  "bearer token), not the token itself", key);
	return -1;
}

static int parse_thumbprints(struct load_ctx *c, const char *key,
			     const char *v, struct cfg_client *cl)
{
	struct slice w[MAX_LIST];
	size_t nw = split_words(v, w, MAX_LIST);
	int rc = 0;

	if (nw == 0 || nw > MAX_LIST || cl->nthumbprints + nw > MAX_LIST) {
		cfg_error(c, c->line, "%s: expected 1 to %d thumbprints", key, MAX_LIST);
		return -1;
	}
	cl->thumbprints = grow(cl->thumbprints, cl->nthumbprints, nw,
			       sizeof(*cl->thumbprints));
	for (size_t i = 0; i < nw; i++) {
		if (!thumbprint_valid(w[i].ptr, w[i].len)) {
			cfg_error(c, c->line,
				  "%s: \"%.*s\" is not an ACME account thumbprint "
				  "(%d base64url characters)",
				  key, (int)w[i].len, w[i].ptr, THUMBPRINT_LEN);
			rc = -1;
			continue;
		}
		memcpy(cl->thumbprints[cl->nthumbprints], w[i].ptr, w[i].len);
		cl->thumbprints[cl->nthumbprints][w[i].len] = '\0';
		cl->nthumbprints++;
	}
	return rc;
}

/* ---- sections --------------------------------------------------------- */

static bool list_key(enum sect_kind kind, const char *key)
{
	static const char *const lists[] = {
		"listen", "identifiers", "cidrs", "thumbprints", "http",
		"https", "names", "trusted_proxies", "sentinel",
	};

	(void)kind;
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		if (strcmp(key, lists[i]) == 0)
			return true;
	return false;
}

static int key_store(struct load_ctx *c, const char *k, const char *v)
{
	struct cfg *cfg = c->cfg;

	if (strcmp(k, "path") == 0) {
		c->store_path_line = c->line;
		return parse_path(c, k, v, cfg->store.path);
	}
	if (strcmp(k, "capacity") == 0)
		return parse_u32(c, k, v, 1, 65536, &cfg->store.capacity);
	return 1;
}

static int key_api(struct load_ctx *c, const char *k, const char *v)
{
	struct cfg *cfg = c->cfg;

	if (strcmp(k, "listen") == 0)
		return parse_addrs(c, k, v, &cfg->api.listen, &cfg->api.nlisten);
	if (strcmp(k, "clients_file") == 0) {
		c->clients_file_line = c->line;
		return parse_path(c, k, v, cfg->api.clients_file);
	}
	if (strcmp(k, "default_ttl") == 0 || strcmp(k, "max_ttl") == 0) {
		uint32_t ms;
		if (parse_duration(c, k, v, 1000, 7 * 86400 * 1000u, &ms))
			return -1;
		c->ttl_line = c->line;
		if (k[0] == 'd')
			cfg->api.default_ttl_s = ms / 1000;
		else
			cfg->api.max_ttl_s = ms / 1000;
		return 0;
	}
	if (strcmp(k, "max_body") == 0)
		return parse_u32(c, k, v, 1024, 1 << 20, &cfg->api.max_body);
	if (strcmp(k, "max_headers") == 0)
		return parse_u32(c, k, v, 1024, 1 << 16, &cfg->api.max_headers);
	if (strcmp(k, "timeout") == 0)
		return parse_duration(c, k, v, 100, 600000, &cfg->api.timeout_ms);
	if (strcmp(k, "request_timeout") == 0)
		return parse_duration(c, k, v, 100, 600000,
				      &cfg->api.request_timeout_ms);
	if (strcmp(k, "max_connections") == 0)
		return parse_u32(c, k, v, 1, 100000, &cfg->api.max_connections);
	if (strcmp(k, "max_connections_per_source") == 0)
		return parse_u32(c, k, v, 1, 100000,
				 &cfg->api.max_connections_per_source);
	if (strcmp(k, "sweep_interval") == 0)
		return parse_duration(c, k, v, 100, 3600000,
				      &cfg->api.sweep_interval_ms);
	if (strcmp(k, "rest_listen") == 0) {
		c->rest_listen_line = c->line;
		if (v[0] == '/' && unix_addr(v, &cfg->api.rest_listen) == 0)
			return 0;
		cfg_error(c, c->line, "rest_listen: expected the absolute path of "
			  "a Unix socket, at most %zu characters, got \"%s\"",
			  sizeof(((struct sockaddr_un *)0)->sun_path) - 1, v);
		return -1;
	}
	return key_run_as(c, k, v, cfg->api.user, cfg->api.group, c->api_run_as);
}

static int key_proxy(struct load_ctx *c, const char *k, const char *v)
{
	static const char *const backends[] = {"auto", "io_uring", "epoll"};
	static const int backend_vals[] = {IO_BACKEND_AUTO, IO_BACKEND_URING,
					   IO_BACKEND_EPOLL};
	static const char *const http_miss[] = {"forward", "404"};
	static const int http_miss_vals[] = {MISS_FORWARD, MISS_404};
	static const char *const tls_miss[] = {"forward", "reject"};
	static const int tls_miss_vals[] = {MISS_FORWARD, MISS_REJECT};
	struct cfg *cfg = c->cfg;
	int choice;

	if (strcmp(k, "http") == 0)
		return parse_addrs(c, k, v, &cfg->proxy.http, &cfg->proxy.nhttp);
	if (strcmp(k, "https") == 0)
		return parse_addrs(c, k, v, &cfg->proxy.https, &cfg->proxy.nhttps);
	if (strcmp(k, "workers") == 0) {
		if (strcmp(v, "auto") == 0) {
			cfg->proxy.workers = 0;
			return 0;
		}
		return parse_u32(c, k, v, 1, 256, &cfg->proxy.workers);
	}
	if (strcmp(k, "io_backend") == 0) {
		if (parse_choice(c, k, v, backends, backend_vals, 3, &choice))
			return -1;
		cfg->proxy.io_backend = (enum cfg_io_backend)choice;
		return 0;
	}
	if (strcmp(k, "http_miss") == 0) {
		if (parse_choice(c, k, v, http_miss, http_miss_vals, 2, &choice))
			return -1;
		cfg->proxy.http_miss = (enum cfg_miss)choice;
		return 0;
	}
	if (strcmp(k, "tls_miss") == 0) {
		if (parse_choice(c, k, v, tls_miss, tls_miss_vals, 2, &choice))
			return -1;
		cfg->proxy.tls_miss = (enum cfg_miss)choice;
		return 0;
	}
	if (strcmp(k, "peek_timeout") == 0)
		return parse_duration(c, k, v, 100, 600000, &cfg->proxy.peek_timeout_ms);
	if (strcmp(k, "defer_accept") == 0)
		return parse_duration(c, k, v, 0, 600000, &cfg->proxy.defer_accept_ms);
	if (strcmp(k, "connect_timeout") == 0)
		return parse_duration(c, k, v, 100, 600000,
				      &cfg->proxy.connect_timeout_ms);
	if (strcmp(k, "idle_timeout") == 0)
		return parse_duration(c, k, v, 100, 86400000u,
				      &cfg->proxy.idle_timeout_ms);
	if (strcmp(k, "grace") == 0)
		return parse_duration(c, k, v, 0, 3600000, &cfg->proxy.grace_ms);
	if (strcmp(k, "max_connections") == 0)
		return parse_u32(c, k, v, 16, 1000000, &cfg->proxy.max_connections);
	if (strcmp(k, "splice_pipes") == 0)
		return parse_u32(c, k, v, 0, 4096, &cfg->proxy.splice_pipes);
	if (strcmp(k, "sched_slice_us") == 0) {
		/* The kernel's bounds for a requested slice: 100 us to 100 ms. */
		if (parse_u32(c, k, v, 0, 100000, &cfg->proxy.sched_slice_us))
			return -1;
		if (cfg->proxy.sched_slice_us && cfg->proxy.sched_slice_us < 100) {
			cfg_error(c, c->line,
				  "%s: expected 0 (the kernel's own) or "
				  "100..100000, got \"%s\"", k, v);
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "trusted_proxies") == 0)
		return parse_cidrs(c, k, v, &cfg->proxy.trusted_proxies,
				   &cfg->proxy.ntrusted_proxies);
	return key_run_as(c, k, v, cfg->proxy.user, cfg->proxy.group,
			  c->proxy_run_as);
}

static int key_log(struct load_ctx *c, const char *k, const char *v)
{
	if (strcmp(k, "level") == 0) {
		int lvl = log_level_parse(v);
		if (lvl < 0) {
			cfg_error(c, c->line, "level: expected err | warn | info | "
				  "debug, got \"%s\"", v);
			return -1;
		}
		c->cfg->log.level = (enum log_level)lvl;
		return 0;
	}
	return 1;
}

static int key_client(struct load_ctx *c, const char *k, const char *v)
{
	struct cfg_client *cl = c->obj;

	if (strcmp(k, "token_sha256") == 0) {
		if (parse_sha256(c, k, v, cl->token_sha256))
			return -1;
		cl->has_token = true;
		return 0;
	}
	if (strcmp(k, "identifiers") == 0)
		return parse_patterns(c, k, v, &cl->patterns, &cl->npatterns,
				      &cl->any);
	if (strcmp(k, "cidrs") == 0)
		return parse_cidrs(c, k, v, &cl->cidrs, &cl->ncidrs);
	if (strcmp(k, "thumbprints") == 0)
		return parse_thumbprints(c, k, v, cl);
	if (strcmp(k, "max_entries") == 0)
		return parse_u32(c, k, v, 1, 65536, &cl->max_entries);
	if (strcmp(k, "rest_responder") == 0)
		return parse_bool(c, k, v, &cl->rest_responder);
	return 1;
}

static int key_stateless(struct load_ctx *c, const char *k, const char *v)
{
	struct cfg_stateless *st = c->obj;

	if (strcmp(k, "thumbprint") == 0) {
		st->thumbprint_given = true;
		if (!thumbprint_valid(v, strlen(v))) {
			cfg_error(c, c->line, "thumbprint: \"%s\" is not an ACME "
				  "account thumbprint (%d base64url characters, as "
				  "acme.sh --register-account prints it)", v,
				  THUMBPRINT_LEN);
			return -1;
		}
		strcpy(st->thumbprint, v);
		return 0;
	}
	if (strcmp(k, "identifiers") == 0)
		return parse_patterns(c, k, v, &st->patterns, &st->npatterns,
				      &st->any);
	return 1;
}

static int key_route(struct load_ctx *c, const char *k, const char *v)
{
	static const char *const pp[] = {"off", "v1", "v2"};
	static const int pp_vals[] = {PP_OFF, PP_V1, PP_V2};
	struct cfg_route *r = c->obj;
	int choice;

	if (strcmp(k, "names") == 0) {
		if (r->is_default) {
			cfg_error(c, c->line, "names: [route default] takes every "
				  "name no other route takes; it has no names");
			return -1;
		}
		return parse_patterns(c, k, v, &r->names, &r->nnames, NULL);
	}
	if (strcmp(k, "http") == 0)
		return parse_addrs(c, k, v, &r->http, &r->nhttp);
	if (strcmp(k, "https") == 0)
		return parse_addrs(c, k, v, &r->https, &r->nhttps);
	if (strcmp(k, "proxy_protocol") == 0) {
		if (parse_choice(c, k, v, pp, pp_vals, 3, &choice))
			return -1;
		r->proxy_protocol = (enum cfg_pp)choice;
		return 0;
	}
	return 1;
}

bool cfg_host_chars(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!name_char(p[i]) && p[i] != ':')
			return false;
	return true;
}

/* "host:port", "[v6]:port": a name or an address, resolved at connect. */
static int parse_hostport(struct load_ctx *c, const char *key, const char *w,
			  size_t len, struct cfg_hostport *out)
{
	const char *colon = NULL, *host = w;
	size_t hlen;
	char *end;
	char port[8];
	unsigned long n;

	if (len > 0 && w[0] == '[') {
		const char *close = memchr(w, ']', len);
		if (close && (size_t)(close - w) + 1 < len && close[1] == ':')
			colon = close + 1;
		host = w + 1;
		hlen = close ? (size_t)(close - host) : 0;
	} else {
		for (size_t i = 0; i < len; i++)
			if (w[i] == ':')
				colon = w + i;
		hlen = colon ? (size_t)(colon - w) : 0;
	}
	if (!colon || hlen == 0 || hlen > CFG_HOST_MAX ||
	    (size_t)(w + len - colon - 1) >= sizeof(port) || colon + 1 == w + len)
		goto bad;
	/* A colon only inside brackets: "[fd00::5]:6379". */
	if (!cfg_host_chars(host, hlen) || (host == w && memchr(host, ':', hlen)))
		goto bad;
	memcpy(port, colon + 1, (size_t)(w + len - colon - 1));
	port[w + len - colon - 1] = '\0';
	errno = 0;
	n = port[0] >= '0' && port[0] <= '9' ? strtoul(port, &end, 10) : 0;
	if (errno || n == 0 || n > 65535 || *end)
		goto bad;
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	out->port = (uint16_t)n;
	return 0;
bad:
	cfg_error(c, c->line, "%s: \"%.*s\" is not host:port (redis.internal:6379, "
		  "10.0.0.5:6379 or [fd00::5]:6379)", key, (int)len, w);
	return -1;
}

/* A word without white space, quotes or control characters, 1..max long. */
static int parse_word(struct load_ctx *c, const char *key, const char *v,
		      size_t max, char *out)
{
	size_t n = strlen(v);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= ' ' || v[i] == '"' || v[i] == 0x7f)
			n = 0;
	if (n == 0 || n > max) {
		cfg_error(c, c->line, "%s: expected 1..%zu characters without "
			  "spaces or quotes", key, max);
		return -1;
	}
	memcpy(out, v, n + 1);
	return 0;
}

/* A password given inline: 1..CFG_SECRET_MAX bytes, never echoed. */
static int parse_secret(struct load_ctx *c, const char *key, const char *v,
			char out[CFG_SECRET_MAX + 1])
{
	if (strlen(v) == 0 || strlen(v) > CFG_SECRET_MAX) {
		cfg_error(c, c->line, "%s: expected 1..%d characters", key,
			  CFG_SECRET_MAX);
		return -1;
	}
	strcpy(out, v);
	return 0;
}

static int key_cluster(struct load_ctx *c, const char *k, const char *v)
{
	static const char *const acks[] = {"all", "quorum"};
	static const int ack_vals[] = {ACK_ALL, ACK_QUORUM};
	struct cfg *cfg = c->cfg;
	int choice;

	if (strcmp(k, "redis") == 0)
		return parse_hostport(c, k, v, strlen(v), &cfg->cluster.redis);
	if (strcmp(k, "sentinel") == 0) {
		struct slice w[MAX_LIST];
		size_t nw = split_words(v, w, MAX_LIST);
		int rc = 0;

		if (nw == 0 || cfg->cluster.nsentinels + nw > CFG_SENTINELS_MAX) {
			cfg_error(c, c->line, "%s: expected 1 to %d host:port "
				  "addresses", k, CFG_SENTINELS_MAX);
			return -1;
		}
		for (size_t i = 0; i < nw; i++) {
			struct cfg_hostport *hp =
				&cfg->cluster.sentinels[cfg->cluster.nsentinels];
			if (parse_hostport(c, k, w[i].ptr, w[i].len, hp) == 0)
				cfg->cluster.nsentinels++;
			else
				rc = -1;
		}
		return rc;
	}
	if (strcmp(k, "master") == 0)
		return parse_word(c, k, v, CFG_NAME_MAX, cfg->cluster.master);
	if (strcmp(k, "node") == 0) {
		size_t n = strlen(v);
		bool ok = n > 0 && n <= CFG_NAME_MAX;
		for (size_t i = 0; ok && i < n; i++)
			ok = name_char(v[i]);
		if (!ok) {
			cfg_error(c, c->line, "node: expected a name of 1..%d letters, "
				  "digits, '-', '_', '.'", CFG_NAME_MAX);
			return -1;
		}
		strcpy(cfg->cluster.node, v);
		return 0;
	}
	if (strcmp(k, "ack") == 0) {
		if (parse_choice(c, k, v, acks, ack_vals, 2, &choice))
			return -1;
		cfg->cluster.ack = (enum cfg_ack)choice;
		return 0;
	}
	if (strcmp(k, "ack_timeout_ms") == 0)
		return parse_u32(c, k, v, 10, 60000, &cfg->cluster.ack_timeout_ms);
	if (strcmp(k, "prefix") == 0)
		return parse_word(c, k, v, CFG_PREFIX_MAX, cfg->cluster.prefix);
	if (strcmp(k, "user") == 0)
		return parse_word(c, k, v, CFG_NAME_MAX, cfg->cluster.user);
	if (strcmp(k, "password") == 0) {
		c->password_line = c->line;
		return parse_secret(c, k, v, cfg->cluster.password);
	}
	if (strcmp(k, "password_file") == 0) {
		c->password_line = c->line;
		return parse_path(c, k, v, cfg->cluster.password_file);
	}
	if (strcmp(k, "sentinel_user") == 0)
		return parse_word(c, k, v, CFG_NAME_MAX, cfg->cluster.sentinel_user);
	if (strcmp(k, "sentinel_password") == 0) {
		c->sentinel_password_line = c->line;
		return parse_secret(c, k, v, cfg->cluster.sentinel_password);
	}
	if (strcmp(k, "sentinel_password_file") == 0) {
		c->sentinel_password_line = c->line;
		return parse_path(c, k, v, cfg->cluster.sentinel_password_file);
	}
	return 1;
}

/*
 * Called from the line reader for every section header, before inih sees
 * it: recognises the section, refuses unknown and repeated ones, and makes
 * the client or route object keys will fill.
 */
static void section_begin(struct load_ctx *c, const char *name)
{
	const char *arg = NULL;
	size_t base_len;

	c->kind = SECT_NONE;
	c->sect_ok = false;
	c->obj = NULL;
	c->nseen = 0;
	c->last_key[0] = '\0';
	snprintf(c->sect_name, sizeof(c->sect_name), "%s", name);

	for (unsigned i = 0; i < c->nsections; i++) {
		if (strcmp(c->sections[i], name) == 0) {
			cfg_error(c, c->line, "section [%s] appears twice (first at "
				  "line %u)", name, c->section_lines[i]);
			return;
		}
	}
	if (c->nsections < MAX_SECTIONS) {
		c->sections = grow(c->sections, c->nsections, 1, sizeof(*c->sections));
		c->section_lines = grow(c->section_lines, c->nsections, 1,
					sizeof(*c->section_lines));
		snprintf(c->sections[c->nsections], sizeof(c->sections[0]), "%s",
			 name);
		c->section_lines[c->nsections++] = c->line;
	}

	const char *sp = strchr(name, ' ');
	base_len = sp ? (size_t)(sp - name) : strlen(name);
	if (sp) {
		arg = sp + 1;
		while (*arg == ' ')
			arg++;
	}
#define IS(s) (base_len == strlen(s) && strncmp(name, s, base_len) == 0)
	if (IS("client") || IS("route") || IS("stateless")) {
		size_t alen = arg ? strlen(arg) : 0;
		bool ok = alen > 0 && alen <= CFG_NAME_MAX;
		for (size_t i = 0; ok && i < alen; i++)
			ok = name_char(arg[i]);
		if (!ok) {
			cfg_error(c, c->line, "[%s]: expected [%.*s NAME] with a "
				  "NAME of 1..%d letters, digits, '-', '_', '.'",
				  name, (int)base_len, name, CFG_NAME_MAX);
			return;
		}
		if (IS("client")) {
			struct cfg *cfg = c->cfg;
			cfg->clients = grow(cfg->clients, cfg->nclients, 1,
					    sizeof(*cfg->clients));
			struct cfg_client *cl = &cfg->clients[cfg->nclients++];
			strcpy(cl->name, arg);
			cl->line = c->line;
			c->kind = SECT_CLIENT;
			c->obj = cl;
		} else if (IS("stateless")) {
			if (c->clients_only)
				goto not_here;
			struct cfg *cfg = c->cfg;
			cfg->stateless = grow(cfg->stateless, cfg->nstateless, 1,
					      sizeof(*cfg->stateless));
			struct cfg_stateless *st = &cfg->stateless[cfg->nstateless++];
			strcpy(st->name, arg);
			st->line = c->line;
			c->kind = SECT_STATELESS;
			c->obj = st;
		} else {
			if (c->clients_only)
				goto not_here;
			struct cfg *cfg = c->cfg;
			cfg->routes = grow(cfg->routes, cfg->nroutes, 1,
					   sizeof(*cfg->routes));
			struct cfg_route *r = &cfg->routes[cfg->nroutes++];
			strcpy(r->name, arg);
			r->is_default = strcmp(arg, "default") == 0;
			r->line = c->line;
			c->kind = SECT_ROUTE;
			c->obj = r;
		}
		c->sect_ok = true;
		return;
	}
	if (arg) {
		cfg_error(c, c->line, "unknown section [%s]", name);
		return;
	}
	if (c->clients_only)
		goto not_here;
	if (IS("store"))
		c->kind = SECT_STORE;
	else if (IS("api"))
		c->kind = SECT_API;
	else if (IS("proxy"))
		c->kind = SECT_PROXY;
	else if (IS("log"))
		c->kind = SECT_LOG;
	else if (IS("cluster")) {
		c->kind = SECT_CLUSTER;
		c->cfg->cluster.enabled = true;
		c->cfg->cluster.line = c->line;
	} else {
		cfg_error(c, c->line, "unknown section [%s] (known: store, api, "
			  "client NAME, proxy, route NAME, stateless NAME, log, "
			  "cluster)", name);
		return;
	}
#undef IS
	c->sect_ok = true;
	return;
not_here:
	cfg_error(c, c->line, "[%s]: a clients file holds only [client NAME] "
		  "sections", name);
}

static int cfg_on_key(void *user, const char *section, const char *name,
		       const char *value)
{
	struct load_ctx *c = user;
	int rc;

	(void)section;	/* tracked by section_begin, with its line number */
	if (c->kind == SECT_NONE) {
		if (c->sect_ok || c->sect_name[0] == '\0')
			cfg_error(c, c->line, "key \"%s\" outside any section", name);
		return 1;
	}
	if (!c->sect_ok)
		return 1;	/* the section header was already reported */

	if (c->line_continues && strcmp(name, c->last_key) == 0) {
		/* A continuation line: only lists may span lines. */
		if (!list_key(c->kind, name)) {
			cfg_error(c, c->line, "%s: only lists may continue on the "
				  "next line", name);
			return 1;
		}
	} else {
		for (unsigned i = 0; i < c->nseen; i++) {
			if (strcmp(c->seen[i].name, name) == 0) {
				cfg_error(c, c->line, "[%s] %s: set twice in one "
					  "section", c->sect_name, name);
				return 1;
			}
		}
		if (c->nseen < ARRAY_SIZE(c->seen))
			snprintf(c->seen[c->nseen++].name, sizeof(c->seen[0].name),
				 "%s", name);
		snprintf(c->last_key, sizeof(c->last_key), "%s", name);
	}

	switch (c->kind) {
	case SECT_STORE:
		rc = key_store(c, name, value);
		break;
	case SECT_API:
		rc = key_api(c, name, value);
		break;
	case SECT_PROXY:
		rc = key_proxy(c, name, value);
		break;
	case SECT_LOG:
		rc = key_log(c, name, value);
		break;
	case SECT_CLIENT:
		rc = key_client(c, name, value);
		break;
	case SECT_ROUTE:
		rc = key_route(c, name, value);
		break;
	case SECT_STATELESS:
		rc = key_stateless(c, name, value);
		break;
	case SECT_CLUSTER:
		rc = key_cluster(c, name, value);
		break;
	default:
		rc = 1;
	}
	if (rc == 1)
		cfg_error(c, c->line, "unknown key \"%s\" in [%s]", name,
			  c->sect_name);
	return 1;	/* keep going: report every error, not just the first */
}

/*
 * inih's line source. Each call hands inih one whole line, so the count of
 * calls is the line number of whatever inih reports next.
 */
static char *cfg_read_line(char *str, int num, void *stream)
{
	struct load_ctx *c = stream;
	size_t len;

	if (!fgets(str, num, c->fp)) {
		if (ferror(c->fp))
			c->read_errno = errno ? errno : EIO;
		return NULL;
	}
	c->line++;
	len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(c->fp)) {
		int ch;
		cfg_error(c, c->line, "line longer than %d characters; split a "
			  "list over several lines, each indented", num - 2);
		while ((ch = fgetc(c->fp)) != EOF && ch != '\n')
			;
		strcpy(str, ";\n");
		return str;
	}
	c->line_continues = str[0] == ' ' || str[0] == '\t';
	const char *p = str;
	while (is_space(*p))
		p++;
	if (*p == '[' && !c->line_continues) {
		char name[128];
		const char *end = strchr(p, ']');
		size_t n = end ? (size_t)(end - p - 1) : 0;
		if (!end || n == 0 || n >= sizeof(name)) {
			cfg_error(c, c->line, "malformed section header");
			c->kind = SECT_NONE;
			c->sect_ok = false;
			snprintf(c->sect_name, sizeof(c->sect_name), "?");
			strcpy(str, ";\n");
			return str;
		}
		memcpy(name, p + 1, n);
		name[n] = '\0';
		section_begin(c, name);
	}
	return str;
}

static void cfg_defaults(struct cfg *cfg)
{
	strcpy(cfg->store.path, "/run/acme-edge/store");
	cfg->store.capacity = 4096;
	cfg->api.default_ttl_s = 3600;
	cfg->api.max_ttl_s = 86400;
	cfg->api.max_body = 32768;
	cfg->api.max_headers = 8192;
	cfg->api.timeout_ms = 10000;
	cfg->api.request_timeout_ms = 10000;
	cfg->api.max_connections = 256;
	/*
	 * Room for one host pushing a whole order at once (an ACME order
	 * holds at most 100 names, and some clients push them all in
	 * parallel), while half the default max_connections stays for others.
	 */
	cfg->api.max_connections_per_source = 128;
	cfg->api.sweep_interval_ms = 5000;
	cfg->proxy.workers = 0;
	cfg->proxy.peek_timeout_ms = 10000;
	/*
	 * Clients speak first on both ports, so a connection that has sent
	 * nothing waits in the kernel's queue (no descriptor, no slot) until
	 * its first byte; 15 s is a point of the SYN-ACK retransmission
	 * schedule the kernel rounds to (1, 3, 7, 15, 31 s ...).
	 */
	cfg->proxy.defer_accept_ms = 15000;
	cfg->proxy.connect_timeout_ms = 5000;
	cfg->proxy.idle_timeout_ms = 300000;
	cfg->proxy.grace_ms = 30000;
	cfg->proxy.max_connections = 8192;
	cfg->proxy.splice_pipes = 64;
	cfg->proxy.sched_slice_us = 100;
	cfg->log.level = LOG_LVL_INFO;
	cfg->cluster.ack = ACK_ALL;
	cfg->cluster.ack_timeout_ms = 2000;
	strcpy(cfg->cluster.prefix, "acme-edge:");
}

/*
 * A file that cannot be read. One another file names (named_at > 0: its
 * line in the file that names it, which c->file still is) is reported at
 * that line, so that every error but the top file's own is FILE:LINE.
 */
static void unreadable(struct load_ctx *c, const char *path, unsigned named_at,
		       int err)
{
	if (named_at) {
		cfg_error(c, named_at, "%s: %s", path, strerror(err));
		return;
	}
	c->errors++;
	if (c->errs)
		fprintf(c->errs, "%s: %s\n", path, strerror(err));
}

static int parse_file(struct load_ctx *c, const char *path, unsigned named_at)
{
	FILE *fp = fopen(path, "r");
	struct stat sb;
	int rc;

	if (!fp) {
		unreadable(c, path, named_at, errno);
		return -1;
	}
	/* fopen takes a directory, whose reads then fail like an end of file:
	 * a config or clients file named by mistake would read as empty. */
	if (fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		fclose(fp);
		unreadable(c, path, named_at, EISDIR);
		return -1;
	}
	c->fp = fp;
	c->file = path;
	c->line = 0;
	c->kind = SECT_NONE;
	c->sect_ok = false;
	c->sect_name[0] = '\0';
	c->read_errno = 0;
	rc = ini_parse_stream(cfg_read_line, c, cfg_on_key, c);
	/* What was read stays checked; the rest is missing, and said so. */
	if (c->read_errno)
		cfg_error(c, c->line + 1, "could not be read from this line on: %s",
			  strerror(c->read_errno));
	fclose(c->fp);
	c->fp = NULL;
	/* inih's own syntax errors: a line with neither '=' nor a section. */
	if (rc > 0)
		cfg_error(c, (unsigned)rc, "expected \"key = value\" or "
			  "\"[section]\"");
	return 0;
}

/*
 * The clients file (bearer-token hashes) and the Redis password file are
 * secrets: refuse either when anyone but its owner (root, the user we run
 * as, or [api] user, which the API becomes and then reads them as on
 * reload) may read or write it, as ssh does for private keys.
 */
static void check_secret_file(struct load_ctx *c, const char *path,
			      unsigned line, const char *what)
{
	const struct passwd *api = c->cfg->api.user[0] ? getpwnam(c->cfg->api.user)
						       : NULL;
	struct stat sb;

	if (stat(path, &sb) != 0)
		return;		/* whoever reads it reports it */
	if (sb.st_mode & 077)
		cfg_error(c, line, "%s: %s is accessible by group or others "
			  "(mode %04o); chmod 600 it", path, what,
			  (unsigned)(sb.st_mode & 07777));
	if (sb.st_uid != 0 && sb.st_uid != geteuid() &&
	    !(api && sb.st_uid == api->pw_uid))
		cfg_error(c, line, "%s: %s must belong to root, to the "
			  "user acme-edge runs as or to [api] user", path, what);
}

/* A password file: its first line, the line end dropped, into out. */
static void read_password_file(struct load_ctx *c, const char *path,
			       unsigned line, char out[CFG_SECRET_MAX + 1])
{
	char buf[CFG_SECRET_MAX + 3];
	FILE *f;
	size_t n;

	check_secret_file(c, path, line, "password file");
	f = fopen(path, "r");
	if (!f) {
		unreadable(c, path, line, errno);
		return;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	if (n == 0 || n > CFG_SECRET_MAX)
		cfg_error(c, line, "%s: expected the password (1..%d "
			  "characters) on its first line", path, CFG_SECRET_MAX);
	else
		memcpy(out, buf, n + 1);
	explicit_bzero(buf, sizeof(buf));
}

/*
 * One set of credentials ("" or "sentinel_" before each key): password and
 * password_file exclusive, the file read, a user only with a password.
 */
static void check_credentials(struct load_ctx *c, const char *pre,
			      const char *user, char *password,
			      const char *file, unsigned line)
{
	if (password[0] && file[0])
		cfg_error(c, line, "[cluster]: %spassword and %spassword_file "
			  "are exclusive", pre, pre);
	else if (file[0])
		read_password_file(c, file, line, password);
	if (user[0] && !password[0] && !file[0])
		cfg_error(c, c->cfg->cluster.line, "[cluster]: %suser needs "
			  "%spassword or %spassword_file", pre, pre, pre);
}

/*
 * The REST responder: a client using it must name its cidrs (its bearer
 * token crosses port 80, which anyone may reach), and the API's listener
 * for it is rest_listen or a socket beside the store.
 */
static void validate_rest(struct load_ctx *c)
{
	struct cfg *cfg = c->cfg;
	const struct cfg_client *user = NULL;
	char path[CFG_PATH_MAX + 8];

	for (size_t i = 0; i < cfg->nclients; i++) {
		const struct cfg_client *cl = &cfg->clients[i];
		if (!cl->rest_responder)
			continue;
		user = user ? user : cl;
		if (cl->ncidrs == 0)
			cfg_error(c, cl->line, "[client %s]: rest_responder needs "
				  "cidrs: the addresses it may push from",
				  cl->name);
	}
	if (!c->rest_listen_line) {
		snprintf(path, sizeof(path), "%s.rest", cfg->store.path);
		if (unix_addr(path, &cfg->api.rest_listen) != 0 && user)
			cfg_error(c, c->store_path_line ? c->store_path_line
				  : user->line, "[client %s] has rest_responder, "
				  "but \"%s\" is too long for a Unix socket: set "
				  "[api] rest_listen", user->name, path);
	}
	if (cfg->api.rest_listen.sa.ss_family != AF_UNIX)
		return;
	cfg->rest_route.http = grow(NULL, 0, 1, sizeof(*cfg->rest_route.http));
	cfg->rest_route.http[0] = cfg->api.rest_listen;
	cfg->rest_route.nhttp = 1;
	cfg->rest_route.proxy_protocol = PP_V2;
	snprintf(cfg->rest_route.name, sizeof(cfg->rest_route.name),
		 "rest_responder");
}

static void validate(struct load_ctx *c)
{
	struct cfg *cfg = c->cfg;

	c->file = cfg->file;
	if (cfg->api.default_ttl_s > cfg->api.max_ttl_s)
		cfg_error(c, c->ttl_line, "[api] default_ttl (%us) exceeds max_ttl (%us)",
			  cfg->api.default_ttl_s, cfg->api.max_ttl_s);
	validate_rest(c);
	for (size_t i = 0; i < cfg->nclients; i++) {
		struct cfg_client *cl = &cfg->clients[i];
		if (!cl->has_token)
			cfg_error(c, cl->line, "[client %s]: token_sha256 is required",
				  cl->name);
		if (cl->npatterns == 0)
			cfg_error(c, cl->line, "[client %s]: identifiers is required "
				  "(\"*\" for any name)", cl->name);
		/*
		 * A quarter of the store, so that one client cannot fill it for
		 * the others, but room for one whole ACME order (100 names)
		 * where the store has it.
		 */
		if (cl->max_entries == 0) {
			uint32_t cap = cfg->store.capacity;
			cl->max_entries = cap / 4 > 100 ? cap / 4 : cap < 100 ? cap : 100;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->clients[j].name, cl->name) == 0)
				cfg_error(c, cl->line, "[client %s] is defined twice",
					  cl->name);
			else if (cl->has_token && cfg->clients[j].has_token &&
				 memcmp(cfg->clients[j].token_sha256,
					cl->token_sha256, 32) == 0)
				cfg_error(c, cl->line, "[client %s] has the same token "
					  "as [client %s]", cl->name,
					  cfg->clients[j].name);
		}
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct cfg_route *r = &cfg->routes[i];
		if (!r->is_default && r->nnames == 0)
			cfg_error(c, r->line, "[route %s]: names is required", r->name);
		if (r->nhttp == 0 && r->nhttps == 0)
			cfg_error(c, r->line, "[route %s]: needs http or https "
				  "upstreams", r->name);
	}
	for (size_t i = 0; i < cfg->nstateless; i++) {
		struct cfg_stateless *st = &cfg->stateless[i];
		if (!st->thumbprint_given)
			cfg_error(c, st->line, "[stateless %s]: thumbprint is "
				  "required", st->name);
		if (st->npatterns == 0)
			cfg_error(c, st->line, "[stateless %s]: identifiers is "
				  "required (\"*\" for any name)", st->name);
	}
	if (cfg->cluster.enabled) {
		unsigned l = cfg->cluster.line;
		bool redis = cfg->cluster.redis.port != 0;
		bool sentinel = cfg->cluster.nsentinels != 0;

		if (!cfg->cluster.node[0])
			cfg_error(c, l, "[cluster]: node is required (this node's "
				  "name, unique in the cluster)");
		if (redis == sentinel)
			cfg_error(c, l, "[cluster]: set either redis = host:port or "
				  "sentinel = host:port ... with master = NAME");
		if (sentinel && !cfg->cluster.master[0])
			cfg_error(c, l, "[cluster]: sentinel needs master = NAME");
		if (!sentinel && cfg->cluster.master[0])
			cfg_error(c, l, "[cluster]: master goes with sentinel");
		check_credentials(c, "", cfg->cluster.user, cfg->cluster.password,
				  cfg->cluster.password_file, c->password_line);
		check_credentials(c, "sentinel_", cfg->cluster.sentinel_user,
				  cfg->cluster.sentinel_password,
				  cfg->cluster.sentinel_password_file,
				  c->sentinel_password_line);
		if (!sentinel && (cfg->cluster.sentinel_user[0] ||
				  cfg->cluster.sentinel_password[0] ||
				  cfg->cluster.sentinel_password_file[0]))
			cfg_error(c, l, "[cluster]: sentinel_user and "
				  "sentinel_password go with sentinel");
		if (cfg->cluster.ack_timeout_ms >= cfg->api.timeout_ms)
			cfg_error(c, l, "[cluster] ack_timeout_ms (%u) must be below "
				  "[api] timeout (%ums), or the connection times out "
				  "first", cfg->cluster.ack_timeout_ms,
				  cfg->api.timeout_ms);
	}
	/* A group alone would leave the part root, in another group. */
	if (c->api_run_as[1] && !c->api_run_as[0])
		cfg_error(c, c->api_run_as[1], "[api] group needs [api] user");
	if (c->proxy_run_as[1] && !c->proxy_run_as[0])
		cfg_error(c, c->proxy_run_as[1], "[proxy] group needs [proxy] user");
	if (cfg->api.nlisten == 0) {
		/* Not NULL when every listen word was refused: reuse it. */
		cfg->api.listen = grow(cfg->api.listen, 0, 1, sizeof(*cfg->api.listen));
		BUG_ON(addr_parse("127.0.0.1:8555", 14, &cfg->api.listen[0].sa,
				  &cfg->api.listen[0].len) != 0);
		cfg->api.nlisten = 1;
	}
}

static bool skip_clients_file;

void cfg_skip_clients_file(void)
{
	skip_clients_file = true;
}

int cfg_load(const char *path, struct cfg **out, FILE *errs)
{
	struct load_ctx c = {0};
	struct cfg *cfg = calloc(1, sizeof(*cfg));

	BUG_ON(!cfg);
	*out = NULL;
	cfg_defaults(cfg);
	snprintf(cfg->file, sizeof(cfg->file), "%s", path);
	c.cfg = cfg;
	c.errs = errs;
	parse_file(&c, path, 0);
	if (cfg->api.clients_file[0] && !skip_clients_file) {
		c.clients_only = true;
		c.nsections = 0;
		check_secret_file(&c, cfg->api.clients_file, c.clients_file_line,
				  "clients file");
		parse_file(&c, cfg->api.clients_file, c.clients_file_line);
	}
	validate(&c);
	free(c.sections);
	free(c.section_lines);
	if (c.errors) {
		cfg_free(cfg);
		return c.errors;
	}
	*out = cfg;
	return 0;
}

struct cfg *cfg_reload(const char *path, const char *who)
{
	struct cfg *next;
	char buf[4096] = "";
	FILE *errs = fmemopen(buf, sizeof(buf), "w");
	int n = cfg_load(path, &next, errs);

	if (errs)
		fclose(errs);
	if (n) {
		log_err("%s: reload of %s failed, keeping the running config "
			"(%d error%s): %s", who, path, n, n == 1 ? "" : "s", buf);
		return NULL;
	}
	log_set_level(next->log.level);
	return next;
}

void cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nclients; i++) {
		free(cfg->clients[i].patterns);
		free(cfg->clients[i].cidrs);
		free(cfg->clients[i].thumbprints);
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		free(cfg->routes[i].names);
		free(cfg->routes[i].http);
		free(cfg->routes[i].https);
	}
	for (size_t i = 0; i < cfg->nstateless; i++)
		free(cfg->stateless[i].patterns);
	free(cfg->clients);
	free(cfg->routes);
	free(cfg->stateless);
	free(cfg->rest_route.http);
	free(cfg->api.listen);
	free(cfg->proxy.http);
	free(cfg->proxy.https);
	free(cfg->proxy.trusted_proxies);
	explicit_bzero(cfg->cluster.password, sizeof(cfg->cluster.password));
	explicit_bzero(cfg->cluster.sentinel_password,
		       sizeof(cfg->cluster.sentinel_password));
	free(cfg);
}

const struct cfg_client *cfg_client_by_token(const struct cfg *cfg,
					     const uint8_t token_sha256[32])
{
	const struct cfg_client *found = NULL;

	/*
	 * Compare against every client, all 32 bytes each, so the time taken
	 * says nothing about which client or how many bytes matched.
	 */
	for (size_t i = 0; i < cfg->nclients; i++) {
		volatile uint8_t diff = 0;
		for (size_t j = 0; j < 32; j++)
			diff |= cfg->clients[i].token_sha256[j] ^ token_sha256[j];
		if (diff == 0 && cfg->clients[i].has_token)
			found = &cfg->clients[i];
	}
	return found;
}

const struct cfg_route *cfg_route_for(const struct cfg *cfg, const char *name,
				      size_t len)
{
	const struct cfg_route *def = NULL, *best = NULL;
	size_t best_len = 0;

	/*
	 * The most specific name wins whatever the order of the sections: an
	 * exact name, then the longest matching *.suffix.
	 */
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct cfg_route *r = &cfg->routes[i];
		if (r->is_default) {
			def = r;
			continue;
		}
		for (size_t j = 0; name && j < r->nnames; j++) {
			const struct ident_pattern *p = &r->names[j];
			if (!pattern_match_name(p, name, len))
				continue;
			if (p->kind != PATTERN_SUFFIX && p->kind != PATTERN_CIDR)
				return r;
			size_t spec = p->kind == PATTERN_SUFFIX ? p->id.name_len
								: p->cidr.prefix;
			if (!best || spec > best_len) {
				best = r;
				best_len = spec;
			}
		}
	}
	return best ? best : def;
}
