/*
 * Field lookup in a request head (http_field.h). One forward pass over
 * the lines; every index is checked against len before it is read.
 */
#include "wire/http_field.h"

#include <stdbool.h>
#include <string.h>

#include "wire/http_chars.h"

/* Whether p[0..n) is name, ASCII letters compared without case. */
static bool name_is(const uint8_t *p, size_t n, const char *name)
{
	size_t k = strlen(name);

	if (n != k)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(p[i]) != ascii_lower((uint8_t)name[i]))
			return false;
	return true;
}

int http_field_find(const uint8_t *head, size_t len, const char *name,
		    struct slice *value)
{
	size_t pos = 0, count = 0;
	const uint8_t *nl;

	/* Empty lines before the request line are skipped, as the parser does. */
	while (pos < len && (head[pos] == '\n' ||
			     (head[pos] == '\r' && pos + 1 < len &&
			      head[pos + 1] == '\n')))
		pos += head[pos] == '\n' ? 1 : 2;
	nl = memchr(head + pos, '\n', len - pos);
	if (!nl)
		return 0;	/* the request line alone, or not even that */
	pos = (size_t)(nl - head) + 1;
	while (pos < len) {
		const uint8_t *line = head + pos;
		const uint8_t *end = memchr(line, '\n', len - pos);
		size_t n = end ? (size_t)(end - line) : len - pos;

		pos += n + (end ? 1 : 0);
		if (n && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break;		/* the empty line: the head ends */
		const uint8_t *colon = memchr(line, ':', n);
		if (!colon || !name_is(line, (size_t)(colon - line), name))
			continue;
		if (count++ == 0) {
			const uint8_t *v = colon + 1, *ve = line + n;
			while (v < ve && http_ows(*v))
				v++;
			while (ve > v && http_ows(ve[-1]))
				ve--;
			value->ptr = (const char *)v;
			value->len = (size_t)(ve - v);
		}
	}
	return count > INT32_MAX ? INT32_MAX : (int)count;
}

int http_bearer(struct slice value, struct slice *token)
{
	static const char scheme[] = "bearer ";
	size_t k = sizeof(scheme) - 1;

	if (value.len <= k ||
	    !name_is((const uint8_t *)value.ptr, k, scheme))
		return -1;
	token->ptr = value.ptr + k;
	token->len = value.len - k;
	return 0;
}
