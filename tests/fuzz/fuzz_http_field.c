/*
 * libFuzzer harness for wire/http_field.c. The input is a request head as
 * a peer sent it (any bytes). Checks with __builtin_trap():
 *  - a value found is a slice of the input, without white space at its
 *    ends, and the count is never negative;
 *  - the lookup never reads past the length given (the input is copied to
 *    a heap block of exactly that size, so ASan sees an over-read), and a
 *    prefix never holds more occurrences than the whole;
 *  - on a head http_head_parse() accepts, the lookup over head_len agrees
 *    with the same lookup over the whole input (nothing after the empty
 *    line is ever taken for a field);
 *  - Bearer credentials are a non-empty slice of the value, after the
 *    scheme and its space.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/http_field.h"
#include "wire/http_head.h"
#include "wire_fuzz.h"

static const char *const names[] = {"authorization", "host", "content-length",
				    "x"};

static void check_value(struct slice v, const uint8_t *base, size_t len)
{
	REQUIRE(slice_in(v, base, len));
	if (v.len) {
		REQUIRE(v.ptr[0] != ' ' && v.ptr[0] != '\t');
		REQUIRE(v.ptr[v.len - 1] != ' ' && v.ptr[v.len - 1] != '\t');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = fuzz_copy(data, size);
	struct http_head h;
	int parsed = http_head_parse(copy, size, &h);

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct slice v = {0}, tok;
		int n = http_field_find(copy, size, names[i], &v);

		REQUIRE(n >= 0);
		if (n == 0)
			continue;
		check_value(v, copy, size);
		if (http_bearer(v, &tok) == 0) {
			REQUIRE(tok.len >= 1 && tok.ptr == v.ptr + 7 &&
				tok.ptr + tok.len == v.ptr + v.len);
		}
		/* A prefix, in a block of its own size. */
		size_t k = fnv1a(data, size) % (size + 1);
		uint8_t *p = fuzz_copy(data, k);
		struct slice w = {0};
		int m = http_field_find(p, k, names[i], &w);
		REQUIRE(m >= 0 && m <= n);
		if (m)
			check_value(w, p, k);
		free(p);
		if (parsed > 0) {
			struct slice u = {0};
			int j = http_field_find(copy, (size_t)parsed, names[i], &u);
			REQUIRE(j == n && u.ptr == v.ptr && u.len == v.len);
		}
	}
	free(copy);
	return 0;
}
