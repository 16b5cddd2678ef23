/*
 * What the store tests (test_store.c, test_store_torture.c) share: the
 * wall clock entries are timed by, a replayable random stream, and the
 * characters of the http-01 tokens their keys are made of.
 */
#ifndef EDGE_STORE_TEST_H
#define EDGE_STORE_TEST_H

#include <stdint.h>
#include <time.h>

#include "common/edge.h"

/* The store's clock: expiry is wall time in milliseconds. */
static inline int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * xorshift64*: deterministic, so a failing seed can be replayed. Each test
 * seeds rng_state before its first rnd(), never with 0 (a fixed point).
 */
static uint64_t rng_state;

static inline uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static inline uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

#define TOKEN_LEN 43	/* every ACME token has this length */

/* The base64url character of v's low six bits: what tokens are made of. */
static inline char token_char(uint64_t v)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	return b64[v & 63];
}

/*
 * Fills buf[from..TOKEN_LEN) with characters that are a pure function of
 * x, and ends the token there: buf holds TOKEN_LEN + 1 bytes.
 */
static inline void token_fill(char *buf, int from, uint64_t x)
{
	for (int k = from; k < TOKEN_LEN; k++) {
		x ^= x >> 29;
		x *= 0xbf58476d1ce4e5b9ULL;
		buf[k] = token_char(x >> 40);
	}
	buf[TOKEN_LEN] = '\0';
}

#endif
