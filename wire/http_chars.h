/*
 * The byte classes HTTP/1.x heads are judged by, shared by the request
 * parser, the field lookup and the response parser so that the proxy and
 * its own client side never disagree on what a name or a value may hold.
 * ASCII only: peer bytes are never read through the C locale.
 */
#ifndef EDGE_HTTP_CHARS_H
#define EDGE_HTTP_CHARS_H

#include <stdbool.h>
#include <stdint.h>

/* tchar (RFC 9110 §5.6.2): what a method or a field name is made of. */
static inline bool http_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'':
	case '*': case '+': case '-': case '.': case '^': case '_':
	case '`': case '|': case '~':
		return true;
	default:
		return false;
	}
}

/* Optional white space around a field value and between list items. */
static inline bool http_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/*
 * A byte no field value holds: a control byte other than HTAB, or DEL.
 * CR and LF are among them, so a scan for the value's end stops at the
 * line end too. obs-text (0x80 and up) is allowed: it passes through.
 */
static inline bool http_value_stops(uint8_t c)
{
	return (c < ' ' && c != '\t') || c == 0x7f;
}

static inline bool http_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

#endif
