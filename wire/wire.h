/*
 * Result codes shared by the parsers of peer bytes in proxy/wire.
 *
 * Every parser follows the picohttpparser contract: it is handed the whole
 * of what has arrived so far (buf, len) and returns
 *   > 0            the number of bytes the parsed object covers (complete),
 *   WIRE_PARTIAL   nothing is wrong yet, call again once more bytes arrived,
 *   WIRE_INVALID   these bytes can never become valid, whatever follows,
 * or one of the extra codes below. The caller calls again with the same
 * buffer grown by the new bytes; the result never depends on how the bytes
 * were split across reads: a decided result (anything but WIRE_PARTIAL) for
 * a prefix is the result for every longer input too.
 */
#ifndef EDGE_WIRE_H
#define EDGE_WIRE_H

#define WIRE_INVALID -1		/* malformed: close (or answer 400) */
#define WIRE_PARTIAL -2		/* need more bytes */
#define WIRE_TOOBIG -3		/* well-formed so far, but over a hard limit */
#define WIRE_NOTPROXY -4	/* proxy_hdr only: not a PROXY header at all */

#endif
