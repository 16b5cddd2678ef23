/*
 * `acme-edge selftest -c FILE NAME...`: for each name and each of its
 * addresses, what a CA's validator would see, checked before the CA tries.
 * It places short-lived probe challenges through the local solver API
 * (its own random tokens; a tls-alpn-01 entry a client already placed is
 * checked, never replaced), makes the validator's requests (selftest_http.c,
 * selftest_tls.c), reads from the API's hit records which node answered,
 * and removes its probes. The API's bearer token comes from a file or the
 * environment, never the command line, where ps would show it.
 */
#include "cmd/selftest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "cmd/selftest_int.h"
#include "common/cfg.h"
#include "common/log.h"

#define PROBE_TTL_S 300
/*
 * Asking for a check's hit record: 20 x 100 ms, time for the proxy to
 * record it and, in a cluster, for another node's to come through Redis.
 */
#define HIT_TRIES 20
#define HIT_WAIT_MS 100

struct run {
	struct st st;
	struct cfg *cfg;
	char bearer[512];
	struct sockaddr_storage api;
	char api_text[ADDR_STRLEN];
	char thumb[THUMBPRINT_LEN + 1];
	unsigned ttl_s;
	json_t *results;
	unsigned total, failed;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: acme-edge selftest [-c FILE] [options] NAME...\n"
		"\n"
		"Checks, for each NAME and each of its addresses, what an ACME CA\n"
		"would see on ports 80 (http-01) and 443 (tls-alpn-01), through probe\n"
		"challenges placed in the local API and removed afterwards.\n"
		"\n"
		"  -c FILE               the config (default /etc/acme-edge/acme-edge.conf)\n"
		"  --token-file FILE     the API client's bearer token (else $ACME_EDGE_TOKEN)\n"
		"  --resolve NAME:ADDR   use ADDR for NAME instead of DNS (repeatable;\n"
		"                        curl's NAME:PORT:ADDR[,ADDR] is taken too)\n"
		"  --kind KIND           http-01 or tls-alpn-01 only (default both)\n"
		"  --http-port N         the port checked for http-01 (default 80)\n"
		"  --https-port N        the port checked for tls-alpn-01 (default 443)\n"
		"  --timeout SECONDS     connect and DNS timeout (default 10); twice\n"
		"                        that bounds each exchange\n"
		"  --json                one JSON document for scripts\n"
		"\n"
		"Exit status: 0 when every check passed, 1 when one failed, 2 on a\n"
		"usage or set-up error.\n");
}

/* ---- options ------------------------------------------------------------- */

static int parse_addr(const char *s, size_t len, struct sockaddr_storage *out)
{
	char buf[INET6_ADDRSTRLEN + 2];

	if (len && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
	}
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, &((struct sockaddr_in *)out)->sin_addr) == 1) {
		out->ss_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)out)->sin6_addr) == 1) {
		out->ss_family = AF_INET6;
		return 0;
	}
	return -1;
}

/* "ADDR[,ADDR...]" for name; 0, or -1 with nothing added. */
static int add_overrides(struct st *st, const char *name, size_t nlen,
			 const char *list)
{
	size_t first = st->nresolve;

	while (*list) {
		size_t n = strcspn(list, ",");
		struct st_override *o = &st->resolve[st->nresolve];

		if (st->nresolve == ST_RESOLVE_MAX || nlen > IDENT_NAME_MAX ||
		    parse_addr(list, n, &o->sa) != 0) {
			st->nresolve = first;
			return -1;
		}
		memcpy(o->name, name, nlen);
		o->name[nlen] = '\0';
		for (size_t i = 0; i < nlen; i++)
			o->name[i] = (char)ascii_lower((uint8_t)o->name[i]);
		st->nresolve++;
		list += n + (list[n] == ',');
	}
	return st->nresolve > first ? 0 : -1;
}

/* NAME:ADDR, or curl's NAME:PORT:ADDR (the port is the one under test). */
static int parse_resolve(struct st *st, const char *spec)
{
	const char *colon = strchr(spec, ':');
	size_t digits;

	if (!colon || colon == spec)
		return -1;
	if (add_overrides(st, spec, (size_t)(colon - spec), colon + 1) == 0)
		return 0;
	digits = strspn(colon + 1, "0123456789");
	if ((digits && colon[1 + digits] == ':') || !strncmp(colon + 1, "*:", 2))
		return add_overrides(st, spec, (size_t)(colon - spec),
				     colon + 2 + (digits ? digits : 1));
	return -1;
}

static int parse_port(const char *s, uint16_t *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* The bearer token: the file's first line, or $ACME_EDGE_TOKEN. */
static int read_bearer(struct run *r, const char *file)
{
	const char *env = getenv("ACME_EDGE_TOKEN");
	size_t n;

	if (file) {
		FILE *f = fopen(file, "r");
		if (!f) {
			fprintf(stderr, "acme-edge selftest: %s: %s\n", file,
				strerror(errno));
			return -1;
		}
		n = fread(r->bearer, 1, sizeof(r->bearer) - 1, f);
		fclose(f);
		r->bearer[n] = '\0';
	} else if (env) {
		snprintf(r->bearer, sizeof(r->bearer), "%s", env);
	} else {
		fprintf(stderr, "acme-edge selftest: the API's bearer token is "
			"needed: --token-file FILE or ACME_EDGE_TOKEN\n");
		return -1;
	}
	r->bearer[strcspn(r->bearer, "\r\n")] = '\0';
	n = strlen(r->bearer);
	while (n && (r->bearer[n - 1] == ' ' || r->bearer[n - 1] == '\t'))
		r->bearer[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)r->bearer[i] <= 0x20 ||
		    (unsigned char)r->bearer[i] >= 0x7f) {
			fprintf(stderr, "acme-edge selftest: the bearer token holds "
				"a character a header cannot carry\n");
			return -1;
		}
	}
	if (!n) {
		fprintf(stderr, "acme-edge selftest: the bearer token is empty\n");
		return -1;
	}
	return 0;
}

enum { OPT_TOKEN_FILE = 256, OPT_RESOLVE, OPT_KIND, OPT_HTTP_PORT,
       OPT_HTTPS_PORT, OPT_TIMEOUT, OPT_JSON };

static int parse_options(struct run *r, int argc, char **argv,
			 const char **cfg_path, const char **token_file)
{
	static const struct option longopts[] = {
		{"token-file", required_argument, NULL, OPT_TOKEN_FILE},
		{"resolve", required_argument, NULL, OPT_RESOLVE},
		{"kind", required_argument, NULL, OPT_KIND},
		{"http-port", required_argument, NULL, OPT_HTTP_PORT},
		{"https-port", required_argument, NULL, OPT_HTTPS_PORT},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"json", no_argument, NULL, OPT_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool kinds = false;
	uint16_t secs;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			*cfg_path = optarg;
			break;
		case OPT_TOKEN_FILE:
			*token_file = optarg;
			break;
		case OPT_RESOLVE:
			if (parse_resolve(&r->st, optarg) == 0)
				break;
			fprintf(stderr, "acme-edge selftest: --resolve %s: expected "
				"NAME:ADDR or NAME:PORT:ADDR[,ADDR]\n", optarg);
			return 2;
		case OPT_KIND:
			if (!kinds)
				r->st.kind_http = r->st.kind_tls = false;
			kinds = true;
			if (strcmp(optarg, "http-01") == 0)
				r->st.kind_http = true;
			else if (strcmp(optarg, "tls-alpn-01") == 0)
				r->st.kind_tls = true;
			else {
				fprintf(stderr, "acme-edge selftest: --kind is "
					"http-01 or tls-alpn-01\n");
				return 2;
			}
			break;
		case OPT_HTTP_PORT:
		case OPT_HTTPS_PORT:
			if (parse_port(optarg, opt == OPT_HTTP_PORT ? &r->st.http_port
				       : &r->st.https_port) == 0)
				break;
			fprintf(stderr, "acme-edge selftest: a port is 1..65535\n");
			return 2;
		case OPT_TIMEOUT:
			if (parse_port(optarg, &secs) == 0 && secs <= 300) {
				r->st.connect_ms = secs * 1000u;
				r->st.exchange_ms = 2 * r->st.connect_ms;
				break;
			}
			fprintf(stderr, "acme-edge selftest: --timeout is 1..300 "
				"seconds\n");
			return 2;
		case OPT_JSON:
			r->st.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind == argc) {
		fprintf(stderr, "acme-edge selftest: name at least one NAME\n");
		usage(stderr);
		return 2;
	}
	return -1;
}

/* ---- the API ------------------------------------------------------------- */

/* base64url without padding of n random bytes into out. */
static void random_b64url(char *out, size_t nbytes)
{
	uint8_t raw[48];
	char b64[72];
	size_t j = 0;

	BUG_ON(nbytes > sizeof(raw) || RAND_bytes(raw, (int)nbytes) != 1);
	EVP_EncodeBlock((unsigned char *)b64, raw, (int)nbytes);
	for (size_t i = 0; b64[i] && b64[i] != '='; i++)
		out[j++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	out[j] = '\0';
}

/*
 * One request to the API on its own connection. Returns the status and,
 * when out is not NULL, the JSON answer (NULL if none); or -1 with why in
 * err. The request, which holds the bearer token, is wiped after use.
 */
static int api_call_h(struct run *r, const char *method, const char *path,
		      const char *headers, json_t *body, json_t **out,
		      char *err, size_t errlen)
{
	char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char req[2048];

	json_decref(body);
	struct netio io;
	uint16_t port = ntohs(r->api.ss_family == AF_INET6 ?
			      ((struct sockaddr_in6 *)&r->api)->sin6_port :
			      ((struct sockaddr_in *)&r->api)->sin_port);
	int n, ret;

	if (out)
		*out = NULL;
	n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\n"
		     "Authorization: Bearer %s\r\nUser-Agent: acme-edge-selftest\r\n"
		     "Connection: close\r\nContent-Type: application/json\r\n"
		     "%sContent-Length: %zu\r\n\r\n%s", method, path, r->api_text,
		     r->bearer, headers ? headers : "", b ? strlen(b) : 0, b ? b : "");
	free(b);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		err_set(err, errlen, "request too long");
		ret = -1;
		goto out;
	}
	ret = net_connect(&io, (struct sockaddr *)&r->api, port, r->st.connect_ms);
	if (ret) {
		err_set(err, errlen, "cannot reach the API at %s: %s (is acme-edge "
			"running with this config?)", r->api_text, strerror(-ret));
		ret = -1;
		goto out;
	}
	io.deadline_ms = clock_mono_ms() + r->st.exchange_ms;
	ret = http_exchange(&io, req, (size_t)n, r->st.f, err, errlen);
	net_close(&io);
	if (ret) {
		ret = -1;
		goto out;
	}
	ret = r->st.f->head.status;
	if (out && r->st.f->body_len)
		*out = json_loadb((const char *)r->st.f->body, r->st.f->body_len, 0,
				  NULL);
out:
	explicit_bzero(req, sizeof(req));
	return ret;
}

static int api_call(struct run *r, const char *method, const char *path,
		    json_t *body, json_t **out, char *err, size_t errlen)
{
	return api_call_h(r, method, path, NULL, body, out, err, errlen);
}

/*
 * Removes a probe, only while it is at the version the probe's PUT made:
 * a client that replaced it meanwhile keeps its entry.
 */
static void remove_probe(struct run *r, const char *path, json_int_t version)
{
	char hdr[64], err[256];
	int st;

	snprintf(hdr, sizeof(hdr), "If-Match: \"%lld\"\r\n", (long long)version);
	st = api_call_h(r, "DELETE", path, hdr, NULL, NULL, err, sizeof(err));
	if (st == 412)
		fprintf(stderr, "acme-edge selftest: %s was replaced by a client "
			"meanwhile: left as it is\n", path);
	else if (st != 204)
		fprintf(stderr, "acme-edge selftest: removing the probe %s: %s\n",
			path, st < 0 ? err : "refused");
}

/* The "version" of an API answer, 0 if none. */
static json_int_t answer_version(json_t *ans)
{
	return json_integer_value(json_object_get(ans, "version"));
}

/* "403 identifier_not_allowed: client x may not answer for y". */
static void api_refusal(int status, json_t *ans, const char *err, char *buf,
			size_t cap)
{
	const char *what = json_string_value(json_object_get(ans, "error"));
	const char *detail = json_string_value(json_object_get(ans, "detail"));

	if (status < 0)
		snprintf(buf, cap, "the probe could not be placed: %s", err);
	else
		snprintf(buf, cap, "the API refused the probe: %d %s%s%s", status,
			 what ? what : "", detail ? ": " : "", detail ? detail : "");
}

/* The listing's entry of kind with key (token or SNI name), or NULL. */
static json_t *find_entry(json_t *list, const char *kind, const char *key)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(list, "challenges"), i, e) {
		const char *k = json_string_value(json_object_get(e, "kind"));
		const char *v = json_string_value(json_object_get(e,
			strcmp(kind, "http-01") == 0 ? "token" : "name"));
		if (k && v && !strcmp(k, kind) && !strcmp(v, key))
			return e;
	}
	return NULL;
}

/* Seconds since the epoch of an RFC 3339 time the API wrote; -1 if not one. */
static int64_t api_time(const char *s)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;

	return end && !*end ? (int64_t)timegm(&tm) : -1;
}

/* Whether two hit records are one: the peer's port tells connections apart. */
static bool same_hit(json_t *a, json_t *b)
{
	const char *ta = json_string_value(json_object_get(a, "time"));
	const char *tb = json_string_value(json_object_get(b, "time"));
	const char *pa = json_string_value(json_object_get(a, "peer"));
	const char *pb = json_string_value(json_object_get(b, "peer"));

	return ta && tb && pa && pb && !strcmp(ta, tb) && !strcmp(pa, pb);
}

/* A hit of this check: not older than it, and none of those before it. */
static bool new_hit(json_t *h, int64_t since_s, json_t *before)
{
	size_t i;
	json_t *b;

	if (!json_is_object(h) ||
	    api_time(json_string_value(json_object_get(h, "time"))) < since_s)
		return false;
	json_array_foreach(before, i, b)
		if (same_hit(h, b))
			return false;
	return true;
}

/* "<lead><who> answered it (request from <peer>)"; its length. */
static size_t hit_text(char *buf, size_t cap, const char *lead,
		       const char *who, json_t *h)
{
	int n = snprintf(buf, cap, "%s%s %s it (request from %s)", lead, who,
			 json_string_value(json_object_get(h, "outcome")) ?: "saw",
			 json_string_value(json_object_get(h, "peer")) ?: "?");

	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap;
}

/*
 * The hit records of the entry of kind and key (its last_hit and, in a
 * cluster, every node's), as an array; empty when there is none.
 */
static json_t *hits_now(struct run *r, const char *kind, const char *key)
{
	json_t *list = NULL, *out = json_array(), *e, *h;
	char err[256];
	size_t i;

	if (api_call(r, "GET", "/v1/challenges", NULL, &list, err, sizeof(err))
	    == 200 && (e = find_entry(list, kind, key)) != NULL) {
		if (json_is_object(json_object_get(e, "last_hit")))
			json_array_append(out, json_object_get(e, "last_hit"));
		json_array_foreach(json_object_get(e, "hits"), i, h)
			json_array_append(out, h);
	}
	json_decref(list);
	return out;
}

/*
 * Which node saw the check, for a check that reached a server: this
 * node's last hit on the entry, and, where the API reports them (a
 * cluster), each node's; only hits newer than before, the records before
 * the check. Adds them to res, and a sentence to line.
 */
static void node_report(struct run *r, const char *kind, const char *key,
			int64_t since_s, json_t *before, json_t *res, char *line,
			size_t cap)
{
	json_t *list = NULL, *e = NULL, *h = NULL, *hits;
	char err[256];
	const char *node;
	size_t n = 0, i;
	bool seen = false;

	line[0] = '\0';
	/*
	 * The proxy records a hit once it has answered, which may be just
	 * after the check saw the answer: the API is asked again for a short
	 * while.
	 */
	for (int tries = HIT_TRIES; tries > 0; tries--) {
		json_decref(list);
		if (api_call(r, "GET", "/v1/challenges", NULL, &list, err,
			     sizeof(err)) != 200 || !(e = find_entry(list, kind, key)))
			goto out;
		h = json_object_get(e, "last_hit");
		hits = json_object_get(e, "hits");
		seen = new_hit(h, since_s, before);
		json_array_foreach(hits, i, h)
			seen = seen || new_hit(h, since_s, before);
		if (seen)
			break;
		usleep(HIT_WAIT_MS * 1000);
	}
	h = json_object_get(e, "last_hit");
	if (new_hit(h, since_s, before))
		json_object_set(res, "last_hit", h);
	hits = json_object_get(e, "hits");
	if (json_array_size(hits)) {
		/* A cluster: every node's hits, this one's among them. */
		json_object_set(res, "hits", hits);
		json_array_foreach(hits, i, h) {
			node = json_string_value(json_object_get(h, "node"));
			if (node && new_hit(h, since_s, before) && n < cap)
				n += hit_text(line + n, cap - n, n ? "; node " : "node ",
					      node, h);
		}
		if (!n)
			snprintf(line, cap, "no node recorded a request for it: "
				 "another server answered");
	} else if (new_hit(h = json_object_get(e, "last_hit"), since_s, before)) {
		hit_text(line, cap, "", "this node", h);
	} else {
		snprintf(line, cap, "this node saw no request for it: another "
			 "server answered");
	}
out:
	json_decref(list);
}

/* ---- results ------------------------------------------------------------- */

static void report(struct run *r, const char *name, const char *addr,
		   const char *kind, const struct st_outcome *o, json_t *extra,
		   const char *nodes)
{
	json_t *res = extra ? extra : json_object();

	r->total++;
	r->failed += !o->ok;
	json_t *base = json_pack("{s:s, s:s, s:s, s:b, s:s}", "name", name,
				 "address", addr, "kind", kind, "ok", o->ok,
				 "reason", o->reason);

	json_object_update(res, base);
	json_decref(base);
	json_object_set_new(res, "status", o->status ? json_integer(o->status)
			    : json_null());
	json_object_set_new(res, "server", o->server[0] ? json_string(o->server)
			    : json_null());
	if (nodes && nodes[0])
		json_object_set_new(res, "nodes", json_string(nodes));
	json_array_append_new(r->results, res);
	if (!r->st.json) {
		printf("%s %s %s: %s%s%s%s\n", name, addr, kind, o->ok ? "" : "FAIL: ",
		       o->reason, nodes && nodes[0] ? "; " : "", nodes ? nodes : "");
		fflush(stdout);
	}
}

/* ---- one name -------------------------------------------------------------- */

/* The tls-alpn-01 entry the checks of a name use. */
struct tls_probe {
	bool usable;
	bool placed;			/* ours: delete it afterwards */
	uint8_t digest[32];
	bool digest_known;
	json_int_t version;		/* of the probe placed */
	char refusal[ST_REASON_MAX];
	char sni[IDENT_NAME_MAX + 1];
};

static void tls_prepare(struct run *r, const struct ident *id,
			struct tls_probe *p)
{
	char token[64], ka[KEYAUTH_MAX + 1], path[IDENT_NAME_MAX + 32], err[256];
	json_t *list = NULL, *ans = NULL, *e;
	int st;

	ident_sni_name(id, p->sni, sizeof(p->sni));
	st = api_call(r, "GET", "/v1/challenges", NULL, &list, err, sizeof(err));
	if (st != 200) {
		api_refusal(st, list, err, p->refusal, sizeof(p->refusal));
		goto out;
	}
	e = find_entry(list, "tls-alpn-01", p->sni);
	if (e) {
		/* A client's entry: checked as it is, never replaced. */
		p->usable = true;
		goto out;
	}
	random_b64url(token, 24);
	snprintf(ka, sizeof(ka), "%s.%s", token, r->thumb);
	SHA256((const unsigned char *)ka, strlen(ka), p->digest);
	snprintf(path, sizeof(path), "/v1/tls-alpn-01/%s", id->name);
	/* Only where none is: a client's entry stored meanwhile stays. */
	st = api_call_h(r, "PUT", path, "If-None-Match: *\r\n",
			json_pack("{s:s, s:i}", "key_authorization", ka, "ttl",
				  (int)r->ttl_s), &ans, err, sizeof(err));
	if (st == 201 || st == 200) {
		p->usable = p->placed = p->digest_known = true;
		p->version = answer_version(ans);
	} else if (st == 412 || (st == 403 &&
		   json_is_string(json_object_get(ans, "error")) &&
		   !strcmp(json_string_value(json_object_get(ans, "error")),
			   "not_owner"))) {
		/* A client's entry: stored meanwhile, or outside this client's view. */
		p->usable = true;
	} else {
		api_refusal(st, ans, err, p->refusal, sizeof(p->refusal));
	}
	explicit_bzero(ka, sizeof(ka));
out:
	json_decref(list);
	json_decref(ans);
}

static void check_http(struct run *r, const struct ident *id,
		       const struct sockaddr_storage *sa, const char *addr)
{
	char token[64], ka[KEYAUTH_MAX + 1], path[128], err[256], nodes[512] = "";
	struct st_outcome o = {0};
	json_t *ans = NULL, *res = json_object();
	json_int_t version;
	int64_t since;
	int st;

	random_b64url(token, 24);
	snprintf(ka, sizeof(ka), "%s.%s", token, r->thumb);
	snprintf(path, sizeof(path), "/v1/http-01/%s", token);
	st = api_call(r, "PUT", path, json_pack("{s:s, s:s, s:i}", "key_authorization",
			ka, "identifier", id->name, "ttl", (int)r->ttl_s), &ans,
		      err, sizeof(err));
	if (st != 201 && st != 200) {
		api_refusal(st, ans, err, o.reason, sizeof(o.reason));
		json_decref(ans);
		report(r, id->name, addr, "http-01", &o, res, NULL);
		return;
	}
	version = answer_version(ans);
	json_decref(ans);
	since = clock_wall_ms() / 1000;
	st_check_http01(&r->st, id, (const struct sockaddr *)sa, token, ka, &o);
	/* A new token: no hit came before the check. */
	if (o.reached)
		node_report(r, "http-01", token, since, NULL, res, nodes,
			    sizeof(nodes));
	remove_probe(r, path, version);
	report(r, id->name, addr, "http-01", &o, res, nodes);
}

static void check_tls(struct run *r, const struct ident *id,
		      const struct sockaddr_storage *sa, const char *addr,
		      const struct tls_probe *p)
{
	struct st_outcome o = {0};
	char nodes[512] = "";
	json_t *res = json_object(), *before;
	int64_t since = clock_wall_ms() / 1000;

	if (!p->usable) {
		snprintf(o.reason, sizeof(o.reason), "%s", p->refusal);
		report(r, id->name, addr, "tls-alpn-01", &o, res, NULL);
		return;
	}
	/* One entry serves every address: the hits of earlier checks are not this one's. */
	before = hits_now(r, "tls-alpn-01", p->sni);
	st_check_tlsalpn01(&r->st, id, (const struct sockaddr *)sa,
			   p->digest_known ? p->digest : NULL, &o);
	if (o.reached)
		node_report(r, "tls-alpn-01", p->sni, since, before, res, nodes,
			    sizeof(nodes));
	json_decref(before);
	json_object_set_new(res, "probe", json_string(p->placed ? "placed" :
						      "existing entry"));
	report(r, id->name, addr, "tls-alpn-01", &o, res, nodes);
}

static void check_name(struct run *r, const char *name)
{
	struct sockaddr_storage addrs[ST_ADDRS_MAX];
	struct tls_probe tp = {0};
	struct st_outcome o = {0};
	struct ident id;
	char addr[INET6_ADDRSTRLEN], err[256];
	size_t n;

	if (ident_parse(name, strlen(name), &id) != 0) {
		snprintf(o.reason, sizeof(o.reason), "\"%.260s\" is not a DNS name "
			 "or an IP address", name);
		report(r, name, "-", "-", &o, NULL, NULL);
		return;
	}
	n = st_resolve(&r->st, id.name, addrs, ST_ADDRS_MAX, err, sizeof(err));
	if (!n) {
		snprintf(o.reason, sizeof(o.reason), "%s", err);
		if (r->st.kind_http)
			report(r, id.name, "-", "http-01", &o, NULL, NULL);
		if (r->st.kind_tls)
			report(r, id.name, "-", "tls-alpn-01", &o, NULL, NULL);
		return;
	}
	if (r->st.kind_tls)
		tls_prepare(r, &id, &tp);
	for (size_t i = 0; i < n; i++) {
		st_addr_text((struct sockaddr *)&addrs[i], addr, sizeof(addr));
		if (r->st.kind_http)
			check_http(r, &id, &addrs[i], addr);
		if (r->st.kind_tls)
			check_tls(r, &id, &addrs[i], addr, &tp);
	}
	if (tp.placed) {
		char path[IDENT_NAME_MAX + 32];
		snprintf(path, sizeof(path), "/v1/tls-alpn-01/%s", id.name);
		remove_probe(r, path, tp.version);
	}
}

/* ---- set-up ---------------------------------------------------------------- */

/* The API's first listen address; a wildcard one is reached on loopback. */
static void api_address(struct run *r)
{
	struct sockaddr_storage *ss = &r->api;

	*ss = r->cfg->api.listen[0].sa;
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			s6->sin6_addr = in6addr_loopback;
	}
	addr_format((struct sockaddr *)ss, r->api_text, sizeof(r->api_text));
}

/*
 * The thumbprint of the probes' key authorizations: the first one the
 * client is pinned to (a pinned client may store no other), else random.
 */
static void probe_thumbprint(struct run *r)
{
	uint8_t h[32];
	const struct cfg_client *cl;

	SHA256((const unsigned char *)r->bearer, strlen(r->bearer), h);
	cl = cfg_client_by_token(r->cfg, h);
	if (cl && cl->nthumbprints)
		snprintf(r->thumb, sizeof(r->thumb), "%s", cl->thumbprints[0]);
	else
		random_b64url(r->thumb, 32);
}

int selftest_main(int argc, char **argv)
{
	const char *cfg_path = "/etc/acme-edge/acme-edge.conf", *token_file = NULL;
	struct run *r = calloc(1, sizeof(*r));
	json_t *list = NULL;
	char err[256], why[ST_REASON_MAX];
	int rc = 2, nerr, st;

	BUG_ON(!r);
	r->st.kind_http = r->st.kind_tls = true;
	r->st.http_port = 80;
	r->st.https_port = 443;
	r->st.connect_ms = 10000;
	r->st.exchange_ms = 20000;
	rc = parse_options(r, argc, argv, &cfg_path, &token_file);
	if (rc >= 0)
		goto out;
	rc = 2;
	if (read_bearer(r, token_file))
		goto out;
	nerr = cfg_load(cfg_path, &r->cfg, stderr);
	if (nerr) {
		fprintf(stderr, "%s: %d error%s\n", cfg_path, nerr, nerr == 1 ? "" : "s");
		goto out;
	}
	api_address(r);
	probe_thumbprint(r);
	r->ttl_s = r->cfg->api.max_ttl_s < PROBE_TTL_S ? r->cfg->api.max_ttl_s
						       : PROBE_TTL_S;
	r->st.f = malloc(sizeof(*r->st.f));
	r->st.tls = SSL_CTX_new(TLS_client_method());
	r->results = json_array();
	BUG_ON(!r->st.f || !r->st.tls || !r->results);
	SSL_CTX_set_min_proto_version(r->st.tls, TLS1_2_VERSION);
	SSL_CTX_set_verify(r->st.tls, SSL_VERIFY_NONE, NULL);

	/* The token, before any probe: a wrong one is a set-up error. */
	st = api_call(r, "GET", "/v1/challenges", NULL, &list, err, sizeof(err));
	if (st != 200) {
		api_refusal(st, list, err, why, sizeof(why));
		fprintf(stderr, "acme-edge selftest: %s\n", st < 0 ? err :
			st == 401 ? "the API does not know this bearer token" : why);
		goto out;
	}
	for (int i = optind; i < argc; i++)
		check_name(r, argv[i]);
	rc = r->failed ? 1 : 0;
	if (r->st.json) {
		json_t *doc = json_pack("{s:b, s:I, s:I, s:O}", "ok", !r->failed,
					"checks", (json_int_t)r->total, "failed",
					(json_int_t)r->failed, "results", r->results);
		json_dumpf(doc, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(doc);
	} else {
		printf("selftest: %u of %u checks passed\n", r->total - r->failed,
		       r->total);
	}
out:
	json_decref(list);
	json_decref(r->results);
	if (r->st.tls)
		SSL_CTX_free(r->st.tls);
	free(r->st.f);
	cfg_free(r->cfg);
	explicit_bzero(r->bearer, sizeof(r->bearer));
	free(r);
	return rc;
}
