/*
 * ClientHello peeking: reassembles the first handshake message of a TLS
 * connection from the raw TCP byte stream and extracts what routing and the
 * acme-tls/1 decision need (SNI, ALPN, TLS 1.3 support), without
 * terminating TLS. Pure: no allocation, no OpenSSL, no I/O.
 */
#ifndef EDGE_TLS_HELLO_H
#define EDGE_TLS_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/edge.h"
#include "wire/wire.h"

#define TLS_RECORD_HDR_LEN 5
#define TLS_RECORD_MAX_FRAGMENT 16384	/* 2^14, RFC 8446 §5.1 */
#define TLS_HS_HDR_LEN 4
#define TLS_SNI_MAX 255			/* longer host_names are refused */

/*
 * What the hello offers. sni is the first host_name of server_name, 1..255
 * bytes without NUL but otherwise unchecked (the caller validates it as a
 * name). alpn is the ProtocolNameList contents: u8-length-prefixed names of
 * 1..255 bytes, without the list's own u16 length; walk it with the helpers
 * below. Both point into the caller's scratch buffer.
 */
struct tls_hello {
	struct slice sni;
	struct slice alpn;
	uint16_t legacy_version;	/* ClientHello.legacy_version, 0x03xx */
	uint16_t record_version;	/* highest record version seen */
	bool has_sni;
	bool has_alpn;
	bool offers_tls13;		/* supported_versions lists 0x0304 */
	size_t hello_len;		/* message length incl. 4-byte header */
};

/*
 * Parses the start of a client's TLS stream: one or more handshake records
 * (content type 22) carrying one ClientHello, possibly fragmented over
 * several records, each record possibly split over several reads.
 *
 * The handshake message is always reassembled into scratch (scratch_cap
 * bytes, e.g. 16 KiB, must not overlap buf); the slices in *out point into
 * scratch and live as long as it does. buf is never written. The caller
 * bounds len (its peek buffer); it must stay below INT_MAX.
 *
 * Returns
 *   > 0           bytes of buf holding the records up to and including the
 *                 one that completed the hello: exactly what must be replayed
 *                 to an upstream or fed to OpenSSL; *out is filled;
 *   WIRE_PARTIAL  need more bytes (buf may be rescanned from its start);
 *   WIRE_TOOBIG   the handshake message (length + 4) exceeds scratch_cap;
 *   WIRE_INVALID  not a TLS 1.x ClientHello, or a malformed one: another
 *                 record type first, a handshake type other than 1, an
 *                 empty or oversized record, an SSLv2-style hello, a body
 *                 field out of bounds, a duplicate extension, a bad SNI or
 *                 ALPN list, data after the hello in its last record.
 * *out is written only on success.
 */
int tls_hello_parse(const uint8_t *buf, size_t len, struct tls_hello *out,
		    uint8_t *scratch, size_t scratch_cap);

/* True when the validated ALPN list in h contains proto (len bytes). */
bool tls_hello_alpn_offers(const struct tls_hello *h, const char *proto,
			   size_t len);

/*
 * True when the validated ALPN list in h holds exactly one protocol and it
 * is proto (len bytes): what a tls-alpn-01 validator sends.
 */
bool tls_hello_alpn_only(const struct tls_hello *h, const char *proto,
			 size_t len);

#endif
