/*
 * The one check both bench clients make of an acme-tls/1 answer: the
 * certificate carries the acmeIdentifier extension (1.3.6.1.5.5.7.1.31),
 * critical, whose value is the DER of an OCTET STRING holding the SHA-256
 * of the key authorization (RFC 8737).
 */
#ifndef BENCH_ACME_IDENT_H
#define BENCH_ACME_IDENT_H

#include <stdbool.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define ACME_ID_OID "1.3.6.1.5.5.7.1.31"

static inline bool acme_ident_ok(X509 *cert, const ASN1_OBJECT *oid,
				 const unsigned char expect[32])
{
	X509_EXTENSION *ext;
	const unsigned char *p;
	int idx;

	if (!cert)
		return false;
	idx = X509_get_ext_by_OBJ(cert, oid, -1);
	if (idx < 0)
		return false;
	ext = X509_get_ext(cert, idx);
	p = ASN1_STRING_get0_data(X509_EXTENSION_get_data(ext));
	return X509_EXTENSION_get_critical(ext) &&
	       ASN1_STRING_length(X509_EXTENSION_get_data(ext)) == 34 &&
	       p[0] == 0x04 && p[1] == 32 && memcmp(p + 2, expect, 32) == 0;
}

#endif
