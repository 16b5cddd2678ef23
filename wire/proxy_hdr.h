/*
 * PROXY protocol v1 (text) and v2 (binary) headers, as specified in
 * HAProxy's proxy-protocol.txt: the parser for what a trusted L4 load
 * balancer puts in front of a client's stream, and the encoders for what we
 * put in front of the stream we open to an upstream. Pure: no allocation,
 * no I/O.
 */
#ifndef EDGE_PROXY_HDR_H
#define EDGE_PROXY_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/edge.h"
#include "wire/wire.h"

#define PROXY_HDR_V1_MAX_LEN 107	/* whole line, "PROXY " to CRLF */
#define PROXY_HDR_V2_HDR_LEN 16		/* signature, ver_cmd, fam, len */
#define PROXY_HDR_V2_MAX_LEN 536	/* largest v2 length field we accept */
#define PROXY_HDR_MAX_LEN (PROXY_HDR_V2_HDR_LEN + PROXY_HDR_V2_MAX_LEN)

/*
 * A parsed header. local means it carries no address we may use (v1
 * UNKNOWN; v2 LOCAL, UNSPEC, UNIX or datagram): keep the real endpoints;
 * src and dst are then AF_UNSPEC. Otherwise both are AF_INET or both
 * AF_INET6, ports in network order. tlvs is the validated TLV area after
 * the v2 addresses (into buf), empty for v1 and for local headers.
 */
struct proxy_hdr {
	int version;			/* 1 or 2 */
	bool local;
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
	struct slice tlvs;
	size_t len;			/* header bytes, the value returned */
};

/*
 * Parses a PROXY protocol header at the start of buf. The header is decided
 * to be absent as soon as a byte differs from both "PROXY " and the 12-byte
 * v2 signature, so plain HTTP or TLS is recognised on its first byte.
 * buf is never written.
 *
 * v1: "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n" with strict
 * addresses (dotted quads without leading zeros, RFC 4291 IPv6 text) and
 * ports (0..65535, no leading zeros), or "PROXY UNKNOWN[ anything]\r\n";
 * at most 107 bytes. v2: version 2, LOCAL or PROXY, a known family and
 * transport; addresses must fit the length, and every TLV after them
 * (including the sub-TLVs of PP2_TYPE_SSL) must fit exactly. A LOCAL or
 * UNSPEC block is skipped unread, as the specification asks.
 *
 * Returns
 *   > 0            header length; *out is filled;
 *   WIRE_PARTIAL   a prefix of a header so far;
 *   WIRE_NOTPROXY  not a PROXY header: treat the stream as HTTP/TLS;
 *   WIRE_TOOBIG    v2 length field above PROXY_HDR_V2_MAX_LEN;
 *   WIRE_INVALID   started like a PROXY header, malformed.
 * *out is written only on success.
 */
int proxy_hdr_parse(const uint8_t *buf, size_t len, struct proxy_hdr *out);

/*
 * Writes a v1 header for src -> dst into buf (not NUL-terminated). Both
 * IPv4: TCP4; one IPv6: TCP6 with the IPv4 one written IPv4-mapped; a NULL
 * address or another family: "PROXY UNKNOWN\r\n". Returns the bytes
 * written, or -1 when cap is too small (nothing useful is written then).
 */
int proxy_hdr_write_v1(char *buf, size_t cap, const struct sockaddr *src,
		       const struct sockaddr *dst);

/*
 * Writes a v2 header for src -> dst into buf: PROXY over TCP/IPv4, or
 * TCP/IPv6 when either side is IPv6 (the other mapped), no TLVs; a NULL
 * address or another family gives LOCAL/UNSPEC (16 bytes). Returns the
 * bytes written, or -1 when cap is too small.
 */
int proxy_hdr_write_v2(uint8_t *buf, size_t cap, const struct sockaddr *src,
		       const struct sockaddr *dst);

#endif
