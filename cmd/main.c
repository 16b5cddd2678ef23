/*
 * acme-edge: subcommand dispatch. Wiring only; every part lives in its own
 * folder.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "solver-api/api.h"
#include "common/cfg.h"
#include "common/edge.h"
#include "common/log.h"
#include "common/priv.h"
#include "common/shmfile.h"
#include "proxy/proxy.h"
#include "store/store.h"
#include "cmd/selftest.h"
#include "cmd/supervisor.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: acme-edge <command> [-c FILE]\n"
		"\n"
		"commands:\n"
		"  run -c FILE      run every part on this node, supervised\n"
		"  proxy -c FILE    run the proxy (ports 80 and 443) alone\n"
		"  api -c FILE      run the solver API (the token store's writer)\n"
		"  check -c FILE    validate a config; every error as FILE:LINE\n"
		"  selftest -c FILE NAME...\n"
		"                   check what a CA would see for each NAME\n"
		"                   (acme-edge selftest --help)\n"
		"  version          print versions of acme-edge and its libraries\n"
		"\n"
		"The config defaults to /etc/acme-edge/acme-edge.conf.\n");
}

static int cmd_version(void)
{
	printf("acme-edge %s\n", EDGE_VERSION);
	printf("store layout %d\n", STORE_LAYOUT_VERSION);
	printf("openssl %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
	printf("libevent %s\n", event_get_version());
	printf("jansson %s\n", JANSSON_VERSION);
	printf("hiredis %d.%d.%d (build)\n", HIREDIS_MAJOR, HIREDIS_MINOR,
	       HIREDIS_PATCH);
	printf("liburing %s (build)\n", EDGE_LIBURING_VERSION);
#ifdef EDGE_WITH_JEMALLOC
	printf("allocator jemalloc\n");
#else
	printf("allocator libc\n");
#endif
	return 0;
}

/*
 * The options after a config command ("-c FILE", "-h"), the config path
 * into *cfg_path. Returns -1 to go on, else the exit status: help asked
 * for, or a usage error.
 */
static int parse_options(int argc, char **argv, const char **cfg_path)
{
	const char *cmd = argv[1];
	int opt;

	optind = 2;
	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		switch (opt) {
		case 'c':
			*cfg_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "acme-edge: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "check") != 0 && strcmp(cmd, "api") != 0 &&
	    strcmp(cmd, "run") != 0 && strcmp(cmd, "proxy") != 0) {
		fprintf(stderr, "acme-edge: unknown command \"%s\"\n", cmd);
		usage(stderr);
		return 2;
	}
	return -1;
}

/* "check" on a config that loaded: users that do not exist yet are only a
 * warning, as they may be made after the config is written. */
static int cmd_check(struct cfg *cfg, const char *cfg_path, bool bad_users,
		     const char *err)
{
	if (bad_users)
		fprintf(stderr, "%s: warning: %s\n", cfg_path, err);
	printf("%s: ok (%zu client%s, %zu route%s)\n", cfg_path,
	       cfg->nclients, cfg->nclients == 1 ? "" : "s", cfg->nroutes,
	       cfg->nroutes == 1 ? "" : "s");
	cfg_free(cfg);
	return 0;
}

/* "api", "proxy" or "run" on a loaded config; the part owns cfg. */
static int cmd_start(const char *cmd, struct cfg *cfg, const char *cfg_path,
		     bool bad_users, const char *users_err)
{
	char err[512];

	log_init("acme-edge", cfg->log.level);
	if (bad_users) {
		log_err("%s: %s", cfg_path, users_err);
		cfg_free(cfg);
		return 1;
	}
	/*
	 * The store and the statistics file live in a private directory
	 * (systemd's RuntimeDirectory=); started by hand, the gateway makes
	 * it, and each part then judges it before use (common/shmfile.h). Its
	 * group is the API's: the API, once it is no longer root, still
	 * opens the proxy's statistics file in it; the proxy opens the store
	 * before it drops root.
	 */
	if (shm_dir_create(cfg->store.path, priv_gid(PRIV_API), err,
			   sizeof(err)) != 0) {
		log_err("%s", err);
		cfg_free(cfg);
		return 1;
	}
	if (strcmp(cmd, "run") == 0) {
		static const struct sv_part parts[] = {
			{"api", api_main},
			{"proxy", proxy_main},
		};
		return sv_run(parts, ARRAY_SIZE(parts), cfg, cfg_path);
	}
	if (strcmp(cmd, "proxy") == 0)
		return proxy_main(cfg, cfg_path);
	return api_main(cfg, cfg_path);
}

int main(int argc, char **argv)
{
	const char *cfg_path = "/etc/acme-edge/acme-edge.conf";
	const char *cmd;
	struct cfg *cfg;
	char err[512];
	int nerr, rc;
	bool bad_users;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
		return cmd_version();
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "selftest") == 0)
		return selftest_main(argc - 1, argv + 1);
	rc = parse_options(argc, argv, &cfg_path);
	if (rc >= 0)
		return rc;
	nerr = cfg_load(cfg_path, &cfg, stderr);
	if (nerr) {
		fprintf(stderr, "%s: %d error%s\n", cfg_path, nerr,
			nerr == 1 ? "" : "s");
		return 1;
	}
	bad_users = priv_resolve(cfg, err, sizeof(err)) != 0;
	if (strcmp(cmd, "check") == 0)
		return cmd_check(cfg, cfg_path, bad_users, err);
	return cmd_start(cmd, cfg, cfg_path, bad_users, err);
}
