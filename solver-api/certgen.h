/*
 * TLS-ALPN-01 certificates (RFC 8737 §3): building them for the store, and
 * checking the ones some ACME clients build themselves against exactly what
 * a validator checks.
 */
#ifndef EDGE_CERTGEN_H
#define EDGE_CERTGEN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/ident.h"

/* id-pe-acmeIdentifier */
#define ACME_IDENTIFIER_OID "1.3.6.1.5.5.7.1.31"

/*
 * DER encodings as they go into the store. Both buffers come from OpenSSL's
 * allocator; release them only with certgen_der_free(), which also wipes
 * the key.
 */
struct certgen_der {
	uint8_t *cert;		/* X.509 certificate, DER */
	size_t cert_len;
	uint8_t *key;		/* private key, PKCS#8 DER */
	size_t key_len;
};

void certgen_der_free(struct certgen_der *d);

/*
 * Builds a self-signed certificate for one identifier: a fresh P-256 key,
 * exactly one subjectAltName holding one dNSName (or one iPAddress for an IP
 * identifier), a critical acmeIdentifier extension whose value is the DER
 * OCTET STRING of digest (SHA-256 of the key authorization), valid from an
 * hour ago (clock skew) for valid_s seconds. Returns 0, or -1 with a reason
 * in err.
 */
int certgen_build(const struct ident *id, const uint8_t digest[32],
		  unsigned valid_s, struct certgen_der *out, char *err,
		  size_t errlen);

/*
 * Applies every rule a validator applies to the leaf: self-signed (subject
 * equals issuer and the signature verifies with its own key), exactly one
 * subjectAltName extension whose value is exactly one name equal to the
 * identifier, a critical acmeIdentifier extension holding a 32-byte OCTET
 * STRING, equal to digest when digest is not NULL. When key is not NULL it
 * must match the certificate. Stricter than a validator in two ways that
 * catch client bugs early: the certificate must be X.509 v3 and within its
 * validity period now. Returns 0, or -1 with the first broken rule in err as
 * a short sentence fit for an API error detail.
 */
int certgen_check(X509 *cert, EVP_PKEY *key, const struct ident *id,
		  const uint8_t digest[32], char *err, size_t errlen);

/*
 * Accepts a ready certificate and private key in PEM (dehydrated's
 * alpn-certs), checks them with certgen_check (any digest), and re-encodes
 * them as DER for the store. Lengths are explicit (no NUL needed), each at
 * most 16 KiB. The certificate input must hold exactly one PEM block, a
 * CERTIFICATE; the key may be PKCS#8, SEC1 or PKCS#1, and an encrypted key
 * is refused (never prompted for). The key must be ECDSA on P-256 or P-384,
 * Ed25519, or RSA of 2048 to 4096 bits (the proxy signs every acme-tls/1
 * handshake with it). Returns 0, or -1 with the reason in err.
 */
int certgen_import_pem(const char *cert_pem, size_t cert_len,
		       const char *key_pem, size_t key_len,
		       const struct ident *id, struct certgen_der *out,
		       char *err, size_t errlen);

#endif
