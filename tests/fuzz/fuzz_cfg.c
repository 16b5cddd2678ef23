/*
 * libFuzzer harness for common/cfg.c, the configuration reader. A config
 * is written by an operator, not a peer, but it is also what `acme-edge
 * check` is pointed at and what a reload reads while the gateway serves:
 * no file may crash the reader, leak, or yield a config the rest of the
 * code cannot use. The input is the whole file, read from a memfd. A
 * clients_file it names is looked up on the real filesystem, where the
 * names the dictionary offers do not exist: that path mostly reports that
 * it cannot be opened, at the line that named it.
 *
 * Invariants that trap, so a violation is a crash libFuzzer keeps:
 *  - cfg_load returns 0 with a config, or a count of errors without one,
 *    and the text it printed has exactly that many lines, each
 *    "FILE:LINE: message" with the file's name (or, for an error inside
 *    a clients file that exists, that file's absolute path and a line);
 *  - an accepted config keeps the promises its readers rely on: a client
 *    has a token and at least one pattern, a route that is not the
 *    default has names, every route has upstreams, a [stateless] rule has
 *    a valid thumbprint and at least one pattern, a client with
 *    rest_responder has cidrs and the REST route a Unix socket to go to,
 *    the API has a listen address, and TTLs are ordered;
 *  - loading the same bytes twice gives the same verdict.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* memfd_create */
#endif
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/cfg.h"

#define ASSERT(c)                                                         \
	do {                                                              \
		if (!(c))                                                 \
			__builtin_trap();                                 \
	} while (0)

static int memfd = -1;
static char path[64];
static char text[1 << 16];	/* the error report; what does not fit is cut */

static int load(const uint8_t *data, size_t size, struct cfg **out,
		size_t *printed)
{
	FILE *errs = fmemopen(text, sizeof(text), "w");
	int n;

	ASSERT(errs);
	ASSERT(ftruncate(memfd, 0) == 0);
	ASSERT(pwrite(memfd, data, size, 0) == (ssize_t)size);
	n = cfg_load(path, out, errs);
	fflush(errs);
	*printed = (size_t)ftell(errs);
	fclose(errs);
	return n;
}

/* Whether s (up to end) starts ":LINE: ". */
static bool file_line(const char *s, const char *end)
{
	const char *d = s + 1;

	if (s >= end || *s != ':')
		return false;
	while (d < end && *d >= '0' && *d <= '9')
		d++;
	return d > s + 1 && d + 1 < end && d[0] == ':' && d[1] == ' ';
}

/* Whether the line [p, end) holds ":LINE: " after some path. */
static bool other_file_line(const char *p, const char *end)
{
	for (const char *s = p + 1; s < end; s++)
		if (*s == ':' && file_line(s, end))
			return true;
	return false;
}

static void check_errors(int n, size_t printed)
{
	size_t lines = 0, plen = strlen(path);
	const char *p = text;

	if (printed >= sizeof(text) - 1)
		return;		/* cut: the count cannot be checked */
	while (*p) {
		const char *nl = strchr(p, '\n');

		ASSERT(nl);
		if (strncmp(p, path, plen) == 0 && p[plen] == ':')
			ASSERT(file_line(p + plen, nl));
		else
			ASSERT(p[0] == '/' && other_file_line(p, nl));
		lines++;
		p = nl + 1;
	}
	ASSERT(lines == (size_t)n);
}

static void check_config(const struct cfg *cfg)
{
	uint8_t zero[32] = {0};

	ASSERT(cfg->api.nlisten >= 1);
	ASSERT(cfg->api.default_ttl_s <= cfg->api.max_ttl_s);
	for (size_t i = 0; i < cfg->nclients; i++) {
		ASSERT(cfg->clients[i].has_token);
		ASSERT(cfg->clients[i].npatterns >= 1);
		ASSERT(strlen(cfg->clients[i].name) <= CFG_NAME_MAX);
		if (cfg->clients[i].rest_responder) {
			ASSERT(cfg->clients[i].ncidrs >= 1);
			ASSERT(cfg->rest_route.nhttp == 1 &&
			       cfg->rest_route.http[0].sa.ss_family == AF_UNIX &&
			       cfg->rest_route.proxy_protocol == PP_V2);
		}
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct cfg_route *r = &cfg->routes[i];

		ASSERT(r->is_default || r->nnames >= 1);
		ASSERT(r->nhttp + r->nhttps >= 1);
	}
	for (size_t i = 0; i < cfg->nstateless; i++) {
		const struct cfg_stateless *st = &cfg->stateless[i];

		ASSERT(thumbprint_valid(st->thumbprint, strlen(st->thumbprint)));
		ASSERT(st->npatterns >= 1);
	}
	(void)cfg_client_by_token(cfg, zero);
	(void)cfg_route_for(cfg, "www.example.com", 15);
	(void)cfg_route_for(cfg, "", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg *cfg = NULL;
	size_t printed;
	int n;

	if (memfd < 0) {
		memfd = memfd_create("fuzz-cfg", MFD_CLOEXEC);
		ASSERT(memfd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
		log_set_level(LOG_LVL_ERR);	/* cfg_load may warn; keep quiet */
	}
	n = load(data, size, &cfg, &printed);
	ASSERT(n >= 0);
	ASSERT((n == 0) == (cfg != NULL));
	if (n)
		check_errors(n, printed);
	else
		check_config(cfg);
	cfg_free(cfg);
	return 0;
}
