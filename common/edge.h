/*
 * Base definitions every module includes: the slice type used by all
 * zero-copy parsers, always-on assertions and small helpers.
 */
#ifndef EDGE_H
#define EDGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A view into a buffer someone else owns; never NUL-terminated. */
struct slice {
	const char *ptr;
	size_t len;
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * BUG_ON is for our own invariants only, never for peer input: it is always
 * compiled in and stops the process with file:line, because continuing after
 * a broken invariant at an edge risks answering for the wrong name.
 */
#define BUG_ON(cond)                                                      \
	do {                                                              \
		if (__builtin_expect(!!(cond), 0)) {                      \
			fprintf(stderr, "BUG at %s:%d: %s\n", __FILE__,   \
				__LINE__, #cond);                          \
			abort();                                          \
		}                                                         \
	} while (0)

/* Frees and clears in one statement so no dangling copy survives. */
#define FREE_NULL(p)                                                      \
	do {                                                              \
		free(p);                                                  \
		(p) = NULL;                                               \
	} while (0)

/* ASCII only: peer bytes are never interpreted through the C locale. */
static inline uint8_t ascii_lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* The value of one hexadecimal digit, either case; -1 for anything else. */
static inline int hex_digit(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = ascii_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#define EDGE_VERSION "0.1.0"

#endif
