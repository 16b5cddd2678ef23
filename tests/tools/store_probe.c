/*
 * store_probe: a read-only reader of the token store in its own process,
 * exactly as a proxy worker maps it, for the integration tests.
 *
 *   store_probe PATH [WRITER_UID]
 *
 * (WRITER_UID: the user the store must belong to; this process's own by
 * default)
 * then one command per line on stdin, one answer line per command on stdout
 * (flushed at once, so a test can drive it interactively):
 *
 *   lookup http-01 TOKEN       -> hit VERSION IDENT|- PAYLOAD_LEN CERT_LEN TEXT
 *   lookup tls-alpn-01 SNI     -> hit VERSION IDENT|- PAYLOAD_LEN CERT_LEN HEX
 *                                 (HEX: the whole payload, cert then key)
 *                              or miss
 *   count                      -> the number of live entries (store_iterate)
 *   quit                       -> exits 0 (so does end of input)
 *
 * Anything else answers "error ..." and the probe goes on. Exits 2 when the
 * store cannot be opened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "store/store.h"

static int count_one(const struct store_entry *e, void *arg)
{
	(void)e;
	(*(unsigned long *)arg)++;
	return 0;
}

static void print_hit(const struct store_entry *e)
{
	printf("hit %llu %s %u %u ", (unsigned long long)e->version,
	       e->ident_len ? e->ident : "-", e->payload_len, e->cert_len);
	if (e->kind == STORE_HTTP01) {
		fwrite(e->payload, 1, e->payload_len, stdout);
	} else {
		for (uint32_t i = 0; i < e->payload_len; i++)
			printf("%02x", e->payload[i]);
	}
	putchar('\n');
}

int main(int argc, char **argv)
{
	static struct store_entry entry, scratch;
	struct store *st;
	char err[512] = "";
	char line[1024];

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: store_probe PATH [WRITER_UID]\n");
		return 2;
	}
	uid_t writer = argc == 3 ? (uid_t)strtoul(argv[2], NULL, 10) : geteuid();
	int rc = store_open_reader(argv[1], writer, &st, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "store_probe: cannot open %s: %s\n", argv[1],
			err[0] ? err : strerror(-rc));
		return 2;
	}
	while (fgets(line, sizeof(line), stdin)) {
		char cmd[16], kind[16], key[STORE_KEY_MAX + 2];
		int n;

		line[strcspn(line, "\r\n")] = '\0';
		n = sscanf(line, "%15s %15s %256s", cmd, kind, key);
		if (n <= 0)
			continue;
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "count") == 0 && n == 1) {
			unsigned long count = 0;
			store_iterate(st, clock_wall_ms(), count_one, &count, &scratch);
			printf("%lu\n", count);
		} else if (strcmp(cmd, "lookup") == 0 && n == 3) {
			enum store_kind k;
			if (strcmp(kind, "http-01") == 0) {
				k = STORE_HTTP01;
			} else if (strcmp(kind, "tls-alpn-01") == 0) {
				k = STORE_TLSALPN01;
			} else {
				printf("error unknown kind %s\n", kind);
				fflush(stdout);
				continue;
			}
			if (store_lookup(st, k, key, strlen(key), clock_wall_ms(),
					 &entry) == 0)
				print_hit(&entry);
			else
				printf("miss\n");
		} else {
			printf("error expected: lookup http-01|tls-alpn-01 KEY, "
			       "count, quit\n");
		}
		fflush(stdout);
	}
	store_close(st);
	return 0;
}
