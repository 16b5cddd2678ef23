/*
 * A minimal assertion kit for the unit tests: CHECK records a failure and
 * goes on, so one run shows every broken case of a table; check_done()
 * prints the tally and gives the exit code ctest reads.
 */
#ifndef EDGE_CHECK_H
#define EDGE_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int check_failed;
static int check_passed;

#define CHECK(cond)                                                       \
	do {                                                              \
		if (cond) {                                               \
			check_passed++;                                   \
		} else {                                                  \
			check_failed++;                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",      \
				__FILE__, __LINE__, #cond);               \
		}                                                         \
	} while (0)

/* Like CHECK, with a printf-style note naming the case that broke. */
#define CHECKF(cond, ...)                                                 \
	do {                                                              \
		if (cond) {                                               \
			check_passed++;                                   \
		} else {                                                  \
			check_failed++;                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s: ",      \
				__FILE__, __LINE__, #cond);               \
			fprintf(stderr, __VA_ARGS__);                     \
			fputc('\n', stderr);                              \
		}                                                         \
	} while (0)

static inline int check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

/*
 * Copies len bytes so that they end exactly where a PROT_NONE page begins:
 * a parser that reads one byte past its input faults at once instead of
 * reading stale memory (the picohttpparser test trick). Returns a pointer
 * valid until the next call.
 */
static inline const void *check_guarded(const void *data, size_t len)
{
	static unsigned char *region;
	static size_t region_len;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t need = ((len + page - 1) / page + 1) * page;

	if (region && region_len < need) {
		munmap(region, region_len);
		region = NULL;
	}
	if (!region) {
		region = mmap(NULL, need, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (region == MAP_FAILED) {
			perror("mmap");
			abort();
		}
		region_len = need;
		if (mprotect(region + need - page, page, PROT_NONE) != 0) {
			perror("mprotect");
			abort();
		}
	}
	unsigned char *dst = region + region_len - page - len;
	memcpy(dst, data, len);
	return dst;
}

#endif
