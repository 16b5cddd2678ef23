/*
 * Header fields of an HTTP/1.x request head, looked up by name: the fields
 * the proxy acts on beyond the few http_head.h keeps (the REST responder's
 * Authorization). Pure: no allocation, no I/O; bytes in, slices of them
 * out.
 */
#ifndef EDGE_HTTP_FIELD_H
#define EDGE_HTTP_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "common/edge.h"

/*
 * Looks for the field called name (ASCII, compared without regard to
 * case) among the field lines of head[0..len): the lines after the first,
 * each ending in LF or CRLF, up to the empty line that ends the head or to
 * len. A line without a ':' is skipped. Meant for a head http_head_parse()
 * accepted (len its head_len), but safe on any bytes: nothing outside
 * head[0..len) is read.
 *
 * Returns how many lines carry the field (0: none); *value is then the
 * first one's value, without the white space (SP, HTAB) around it.
 */
int http_field_find(const uint8_t *head, size_t len, const char *name,
		    struct slice *value);

/*
 * The credentials of an Authorization value "Bearer <credentials>" (the
 * scheme in any case, one space, then at least one byte), as the solver
 * API reads them: the proxy and the API must agree on which bytes are the
 * token, or they would hash different ones. Returns 0 with *token a slice
 * of value, or -1.
 */
int http_bearer(struct slice value, struct slice *token);

#endif
