/*
 * TLS-ALPN-01 certificates (RFC 8737 §3, RFC 8738 §6 for IP identifiers).
 *
 * A validator (Boulder, Pebble) accepts the leaf only when it is
 * self-signed, carries exactly one subjectAltName extension whose DER is
 * exactly one name equal to the identifier, and a critical acmeIdentifier
 * extension whose value is the DER OCTET STRING of SHA-256(key
 * authorization). certgen_build() produces such a certificate and
 * certgen_check() refuses anything a validator would refuse, so that an API
 * client learns of a broken certificate when it PUTs it, not when the CA
 * fails the challenge minutes later.
 *
 * Ownership: every buffer handed out in struct certgen_der comes from
 * OpenSSL's allocator (i2d_X509, OSSL_ENCODER_to_data), so
 * certgen_der_free() releases both with OPENSSL_free and wipes the key.
 * Nothing here keeps state between calls; the functions are safe to call
 * from any thread.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "solver-api/certgen.h"
#include "common/log.h"
#include "common/ossl.h"

/* Subject and issuer of every certificate we build. */
#define CERTGEN_CN "acme-edge tls-alpn-01"

/*
 * Bounds a PEM upload: a P-256 or RSA-4096 self-signed leaf with its key is
 * a few KiB, and the API must not hand OpenSSL's parsers an unbounded blob.
 */
#define CERTGEN_PEM_MAX (16 * 1024)

/* The acmeIdentifier extnValue is exactly 04 20 || digest (34 bytes). */
#define ACME_EXT_LEN (2 + 32)

/*
 * Reports an OpenSSL failure with the most recent reason on the thread's
 * error queue (then emptied); returns -1 for the caller to return.
 */
static int ossl_fail(char *err, size_t errlen, const char *what)
{
	ossl_err_set(err, errlen, OSSL_PICK_LAST, "no reason given",
		     "%s failed", what);
	return -1;
}

/* A broken rule: the message is the whole story, the queue is noise. */
static int rule_fail(char *err, size_t errlen, const char *msg)
{
	ERR_clear_error();
	err_set(err, errlen, "%s", msg);
	return -1;
}

void certgen_der_free(struct certgen_der *d)
{
	if (!d)
		return;
	OPENSSL_free(d->cert);
	/* The key is secret material on a heap other code reuses. */
	OPENSSL_clear_free(d->key, d->key_len);
	memset(d, 0, sizeof(*d));
}

/* PKCS#8 PrivateKeyInfo DER, whatever the key type (EC, RSA, ...). */
static int key_to_pkcs8(EVP_PKEY *pkey, uint8_t **out, size_t *out_len,
			char *err, size_t errlen)
{
	OSSL_ENCODER_CTX *ctx;
	unsigned char *data = NULL;
	size_t len = 0;
	int ret = -1;

	ctx = OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_KEYPAIR, "DER",
					    "PrivateKeyInfo", NULL);
	if (!ctx)
		return ossl_fail(err, errlen, "private key encoder setup");
	/* A key type no provider can encode yields a context with none. */
	if (OSSL_ENCODER_CTX_get_num_encoders(ctx) == 0) {
		err_set(err, errlen, "private key type cannot be stored as PKCS#8");
		goto out;
	}
	if (!OSSL_ENCODER_to_data(ctx, &data, &len)) {
		ossl_fail(err, errlen, "private key PKCS#8 encoding");
		goto out;
	}
	*out = data;
	*out_len = len;
	ret = 0;
out:
	OSSL_ENCODER_CTX_free(ctx);
	return ret;
}

static int cert_to_der(X509 *x, uint8_t **out, size_t *out_len, char *err,
		       size_t errlen)
{
	unsigned char *data = NULL;
	int len = i2d_X509(x, &data);

	if (len <= 0)
		return ossl_fail(err, errlen, "certificate DER encoding");
	*out = data;
	*out_len = (size_t)len;
	return 0;
}

/*
 * Encodes a certificate and its key as they go into the store. On success
 * *out owns both buffers; on failure it is untouched and nothing leaks.
 */
static int to_store_der(X509 *x, EVP_PKEY *pkey, struct certgen_der *out,
			char *err, size_t errlen)
{
	struct certgen_der der = { 0 };

	if (cert_to_der(x, &der.cert, &der.cert_len, err, errlen) < 0 ||
	    key_to_pkcs8(pkey, &der.key, &der.key_len, err, errlen) < 0) {
		certgen_der_free(&der);
		return -1;
	}
	*out = der;
	return 0;
}

/*
 * 16 random bytes: the top bit cleared keeps the INTEGER positive without a
 * pad byte, the next bit set keeps it 16 bytes long and never zero (RFC
 * 5280 §4.1.2.2: positive, at most 20 octets).
 */
static int set_random_serial(X509 *x, char *err, size_t errlen)
{
	unsigned char buf[16];
	BIGNUM *bn;
	int ret = -1;

	if (RAND_bytes(buf, sizeof(buf)) != 1)
		return ossl_fail(err, errlen, "serial number RAND_bytes");
	buf[0] = (buf[0] & 0x7f) | 0x40;
	bn = BN_bin2bn(buf, sizeof(buf), NULL);
	if (!bn)
		return ossl_fail(err, errlen, "serial number BN_bin2bn");
	if (!BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
		ossl_fail(err, errlen, "serial number BN_to_ASN1_INTEGER");
		goto out;
	}
	ret = 0;
out:
	BN_free(bn);
	return ret;
}

static int set_names(X509 *x, char *err, size_t errlen)
{
	X509_NAME *name = X509_NAME_new();
	int ret = -1;

	if (!name)
		return ossl_fail(err, errlen, "X509_NAME_new");
	/*
	 * A fixed CN, never the identifier: an ip6.arpa name is 72 octets
	 * and CN is capped at 64, and validators read only the SAN.
	 */
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)CERTGEN_CN, -1,
					-1, 0)) {
		ossl_fail(err, errlen, "subject name");
		goto out;
	}
	/* Both setters copy: subject == issuer makes it self-issued. */
	if (!X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name)) {
		ossl_fail(err, errlen, "subject/issuer name");
		goto out;
	}
	ret = 0;
out:
	X509_NAME_free(name);
	return ret;
}

/* One GeneralName: dNSName for a DNS identifier, iPAddress for an IP. */
static GENERAL_NAME *ident_general_name(const struct ident *id, char *err,
					size_t errlen)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_STRING *s = NULL;
	const void *data;
	int type, len;

	if (!gn) {
		ossl_fail(err, errlen, "GENERAL_NAME_new");
		return NULL;
	}
	switch (id->type) {
	case IDENT_DNS:
		type = GEN_DNS;
		s = ASN1_IA5STRING_new();
		data = id->name;
		len = (int)id->name_len;
		break;
	case IDENT_IPV4:
	case IDENT_IPV6:
		type = GEN_IPADD;
		s = ASN1_OCTET_STRING_new();
		data = id->addr;
		len = id->type == IDENT_IPV4 ? 4 : 16;
		break;
	default:
		err_set(err, errlen, "unknown identifier type %d", (int)id->type);
		goto fail;
	}
	if (!s || !ASN1_STRING_set(s, data, len)) {
		ossl_fail(err, errlen, "subjectAltName value");
		goto fail;
	}
	/* gn owns s from here on. */
	GENERAL_NAME_set0_value(gn, type, s);
	return gn;
fail:
	ASN1_STRING_free(s);
	GENERAL_NAME_free(gn);
	return NULL;
}

static int add_san(X509 *x, const struct ident *id, char *err, size_t errlen)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn;
	int ret = -1;

	if (!gens)
		return ossl_fail(err, errlen, "sk_GENERAL_NAME_new_null");
	gn = ident_general_name(id, err, errlen);
	if (!gn)
		goto out;
	if (!sk_GENERAL_NAME_push(gens, gn)) {
		GENERAL_NAME_free(gn);
		ossl_fail(err, errlen, "sk_GENERAL_NAME_push");
		goto out;
	}
	/* Non-critical: the subject is not empty, so RFC 5280 allows it. */
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
			      X509V3_ADD_DEFAULT) != 1) {
		ossl_fail(err, errlen, "subjectAltName extension");
		goto out;
	}
	ret = 0;
out:
	GENERAL_NAMES_free(gens);
	return ret;
}

/*
 * The extnValue is built by hand rather than through an ASN1 template: it
 * is a fixed 34-byte DER OCTET STRING (tag 04, length 32, the digest), and
 * certgen_check() demands exactly these bytes back.
 */
static int add_acme_identifier(X509 *x, const uint8_t digest[32], char *err,
			       size_t errlen)
{
	unsigned char der[ACME_EXT_LEN] = { V_ASN1_OCTET_STRING, 32 };
	ASN1_OBJECT *obj = NULL;
	ASN1_OCTET_STRING *val = NULL;
	X509_EXTENSION *ext = NULL;
	int ret = -1;

	memcpy(der + 2, digest, 32);
	obj = OBJ_txt2obj(ACME_IDENTIFIER_OID, 1);
	val = ASN1_OCTET_STRING_new();
	if (!obj || !val || !ASN1_OCTET_STRING_set(val, der, sizeof(der))) {
		ossl_fail(err, errlen, "acmeIdentifier value");
		goto out;
	}
	/* Critical: RFC 8737 §3 requires it, and validators check it. */
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, val);
	if (!ext || !X509_add_ext(x, ext, -1)) {
		ossl_fail(err, errlen, "acmeIdentifier extension");
		goto out;
	}
	ret = 0;
out:
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(val);
	ASN1_OBJECT_free(obj);
	return ret;
}

int certgen_build(const struct ident *id, const uint8_t digest[32],
		  unsigned valid_s, struct certgen_der *out, char *err,
		  size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (!id || !digest) {
		err_set(err, errlen, "no identifier or digest");
		return -1;
	}
	pkey = EVP_EC_gen("P-256");
	if (!pkey)
		return ossl_fail(err, errlen, "P-256 key generation");
	x = X509_new();
	if (!x) {
		ossl_fail(err, errlen, "X509_new");
		goto out;
	}
	if (!X509_set_version(x, X509_VERSION_3)) {
		ossl_fail(err, errlen, "X509_set_version");
		goto out;
	}
	if (set_random_serial(x, err, errlen) < 0)
		goto out;
	/* An hour back absorbs a validator whose clock runs behind ours. */
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)valid_s)) {
		ossl_fail(err, errlen, "validity period");
		goto out;
	}
	if (set_names(x, err, errlen) < 0)
		goto out;
	if (!X509_set_pubkey(x, pkey)) {
		ossl_fail(err, errlen, "X509_set_pubkey");
		goto out;
	}
	if (add_san(x, id, err, errlen) < 0 ||
	    add_acme_identifier(x, digest, err, errlen) < 0)
		goto out;
	if (X509_sign(x, pkey, EVP_sha256()) <= 0) {
		ossl_fail(err, errlen, "certificate signing");
		goto out;
	}
	if (to_store_der(x, pkey, out, err, errlen) < 0)
		goto out;
	ret = 0;
out:
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ret;
}

/*
 * Validators do not look at the dates, but a certificate outside its window
 * is almost always a client bug (wrong clock, stale file), and the proxy
 * would keep serving it; refusing it up front gives a clear error.
 */
static int check_validity(X509 *cert, char *err, size_t errlen)
{
	/* X509_cmp_current_time: -1 at or before now, 1 after, 0 unparsable */
	int nb = X509_cmp_current_time(X509_get0_notBefore(cert));
	int na = X509_cmp_current_time(X509_get0_notAfter(cert));

	if (nb == 0 || na == 0)
		return rule_fail(err, errlen,
				 "certificate validity dates are malformed");
	if (nb > 0)
		return rule_fail(err, errlen,
				 "certificate is not valid yet (notBefore is in the future)");
	if (na < 0)
		return rule_fail(err, errlen,
				 "certificate has expired (notAfter is in the past)");
	return 0;
}

static int check_self_signed(X509 *cert, char *err, size_t errlen)
{
	EVP_PKEY *pub;

	if (X509_NAME_cmp(X509_get_subject_name(cert),
			  X509_get_issuer_name(cert)) != 0)
		return rule_fail(err, errlen,
				 "certificate is not self-signed: issuer differs from subject");
	pub = X509_get0_pubkey(cert);
	if (!pub)
		return rule_fail(err, errlen,
				 "certificate public key cannot be read");
	if (X509_verify(cert, pub) != 1)
		return rule_fail(err, errlen,
				 "certificate is not self-signed: its signature does not verify with its own key");
	return 0;
}

/* ASCII-only case folding: DNS names are LDH, and locale must not matter. */
static bool ascii_case_equal(const unsigned char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char x = a[i], y = (unsigned char)b[i];

		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return false;
	}
	return true;
}

static int check_general_name(const GENERAL_NAME *gn, const struct ident *id,
			      char *err, size_t errlen)
{
	const ASN1_STRING *s;
	int type;

	s = GENERAL_NAME_get0_value(gn, &type);
	if (id->type == IDENT_DNS) {
		if (type != GEN_DNS)
			return rule_fail(err, errlen,
					 "subjectAltName must be a dNSName for a DNS identifier");
		if ((size_t)ASN1_STRING_length(s) != id->name_len ||
		    !ascii_case_equal(ASN1_STRING_get0_data(s), id->name,
				      id->name_len))
			return rule_fail(err, errlen,
					 "subjectAltName dNSName does not match the identifier");
		return 0;
	}
	if (id->type == IDENT_IPV4 || id->type == IDENT_IPV6) {
		int want = id->type == IDENT_IPV4 ? 4 : 16;

		if (type != GEN_IPADD)
			return rule_fail(err, errlen,
					 "subjectAltName must be an iPAddress for an IP identifier");
		if (ASN1_STRING_length(s) != want ||
		    memcmp(ASN1_STRING_get0_data(s), id->addr, (size_t)want) != 0)
			return rule_fail(err, errlen,
					 "subjectAltName iPAddress does not match the identifier");
		return 0;
	}
	return rule_fail(err, errlen, "unknown identifier type");
}

/*
 * Boulder compares the SAN extnValue with the DER it expects byte for byte,
 * so besides the decoded name we insist on canonical DER: no trailing
 * bytes, and a re-encoding that reproduces the input exactly.
 */
static int check_san(X509 *cert, const struct ident *id, char *err,
		     size_t errlen)
{
	const ASN1_OCTET_STRING *val;
	const unsigned char *p, *end;
	GENERAL_NAMES *gens = NULL;
	unsigned char *re = NULL;
	int idx, relen, ret = -1;

	idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
	if (idx < 0)
		return rule_fail(err, errlen,
				 "certificate has no subjectAltName extension");
	if (X509_get_ext_by_NID(cert, NID_subject_alt_name, idx) >= 0)
		return rule_fail(err, errlen,
				 "certificate has more than one subjectAltName extension");
	val = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
	p = ASN1_STRING_get0_data(val);
	end = p + ASN1_STRING_length(val);
	gens = d2i_GENERAL_NAMES(NULL, &p, ASN1_STRING_length(val));
	if (!gens || p != end) {
		rule_fail(err, errlen,
			  "subjectAltName extension is not valid DER");
		goto out;
	}
	if (sk_GENERAL_NAME_num(gens) != 1) {
		rule_fail(err, errlen,
			  "subjectAltName must hold exactly one name");
		goto out;
	}
	if (check_general_name(sk_GENERAL_NAME_value(gens, 0), id, err,
			       errlen) < 0)
		goto out;
	relen = i2d_GENERAL_NAMES(gens, &re);
	if (relen != ASN1_STRING_length(val) ||
	    memcmp(re, ASN1_STRING_get0_data(val), (size_t)relen) != 0) {
		rule_fail(err, errlen,
			  "subjectAltName extension is not canonical DER");
		goto out;
	}
	ret = 0;
out:
	OPENSSL_free(re);
	GENERAL_NAMES_free(gens);
	return ret;
}

static int check_acme_identifier(X509 *cert, const uint8_t digest[32],
				 char *err, size_t errlen)
{
	const ASN1_OCTET_STRING *val;
	const unsigned char *v;
	X509_EXTENSION *ext;
	ASN1_OBJECT *obj;
	int idx, dup;

	obj = OBJ_txt2obj(ACME_IDENTIFIER_OID, 1);
	if (!obj)
		return ossl_fail(err, errlen, "acmeIdentifier OID");
	idx = X509_get_ext_by_OBJ(cert, obj, -1);
	dup = idx >= 0 ? X509_get_ext_by_OBJ(cert, obj, idx) : -1;
	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return rule_fail(err, errlen,
				 "certificate has no acmeIdentifier extension");
	if (dup >= 0)
		return rule_fail(err, errlen,
				 "certificate has more than one acmeIdentifier extension");
	ext = X509_get_ext(cert, idx);
	if (X509_EXTENSION_get_critical(ext) != 1)
		return rule_fail(err, errlen,
				 "acmeIdentifier extension must be critical");
	/*
	 * DER of a 32-byte OCTET STRING has exactly one form, 04 20 || 32
	 * bytes; anything else (other length, long-form length, trailing
	 * bytes) is refused.
	 */
	val = X509_EXTENSION_get_data(ext);
	v = ASN1_STRING_get0_data(val);
	if (ASN1_STRING_length(val) != ACME_EXT_LEN ||
	    v[0] != V_ASN1_OCTET_STRING || v[1] != 32)
		return rule_fail(err, errlen,
				 "acmeIdentifier value must be a DER OCTET STRING of 32 bytes");
	if (digest && CRYPTO_memcmp(v + 2, digest, 32) != 0)
		return rule_fail(err, errlen,
				 "acmeIdentifier does not match SHA-256 of the key authorization");
	return 0;
}

int certgen_check(X509 *cert, EVP_PKEY *key, const struct ident *id,
		  const uint8_t digest[32], char *err, size_t errlen)
{
	if (!cert || !id)
		return rule_fail(err, errlen, "no certificate or identifier");
	/* Extensions exist only in v3 (RFC 5280 §4.1.2.1); Go agrees. */
	if (X509_get_version(cert) != X509_VERSION_3)
		return rule_fail(err, errlen,
				 "certificate must be X.509 version 3");
	if (check_validity(cert, err, errlen) < 0 ||
	    check_self_signed(cert, err, errlen) < 0 ||
	    check_san(cert, id, err, errlen) < 0 ||
	    check_acme_identifier(cert, digest, err, errlen) < 0)
		return -1;
	if (key && X509_check_private_key(cert, key) != 1)
		return rule_fail(err, errlen,
				 "private key does not match the certificate");
	return 0;
}

/*
 * The callback keeps OpenSSL from prompting on a terminal for an encrypted
 * key (its default): it records that a passphrase was wanted and refuses.
 */
static int no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(bool *)u = true;
	return -1;
}

/*
 * Exactly one PEM block, and it must be a CERTIFICATE whose DER has no
 * trailing bytes: a chain or a bundle is a client mistake here, since the
 * validator looks only at a self-signed leaf.
 */
static X509 *import_cert(const char *pem, size_t len, char *err,
			 size_t errlen)
{
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	long dlen = 0;
	X509 *x = NULL;
	BIO *bio;

	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		ossl_fail(err, errlen, "BIO_new_mem_buf");
		return NULL;
	}
	if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
		ossl_fail(err, errlen, "certificate PEM parsing");
		goto out;
	}
	if (strcmp(name, PEM_STRING_X509) != 0) {
		err_set(err, errlen,
			"certificate PEM holds a \"%.40s\" block, not a CERTIFICATE",
			name);
		goto out;
	}
	p = data;
	x = d2i_X509(NULL, &p, dlen);
	if (!x) {
		ossl_fail(err, errlen, "certificate DER parsing");
		goto out;
	}
	if (p != data + dlen) {
		err_set(err, errlen, "certificate DER has trailing bytes");
		goto fail;
	}
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	name = header = NULL;
	data = NULL;
	/* A second block of any kind: a bundle, not one leaf. */
	if (PEM_read_bio(bio, &name, &header, &data, &dlen)) {
		err_set(err, errlen,
			"certificate PEM must hold exactly one certificate");
		goto fail;
	}
	/* What is left is text outside any block, which PEM allows. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		ossl_fail(err, errlen, "certificate PEM parsing");
		goto fail;
	}
	ERR_clear_error();
	goto out;
fail:
	X509_free(x);
	x = NULL;
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	return x;
}

/*
 * Any key PEM_read_bio_PrivateKey understands: PKCS#8, SEC1 "EC PRIVATE
 * KEY" (with or without the "EC PARAMETERS" block `openssl ecparam -genkey`
 * puts first), PKCS#1 "RSA PRIVATE KEY". Encrypted keys are refused.
 */
static EVP_PKEY *import_key(const char *pem, size_t len, char *err,
			    size_t errlen)
{
	bool wanted_pass = false;
	EVP_PKEY *pkey;
	BIO *bio;

	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		ossl_fail(err, errlen, "BIO_new_mem_buf");
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase_cb,
				       &wanted_pass);
	BIO_free(bio);
	if (pkey)
		return pkey;
	if (wanted_pass) {
		ERR_clear_error();
		err_set(err, errlen,
			"private key is encrypted; send it without a passphrase");
	} else {
		ossl_fail(err, errlen, "private key PEM parsing");
	}
	return NULL;
}

/*
 * The key types an imported certificate may have: ECDSA on P-256 or P-384,
 * Ed25519, RSA of 2048 to 4096 bits. Validators' TLS stacks take these,
 * and the proxy signs every acme-tls/1 handshake with the key: an RSA key
 * of 8192 bits would cost each one tens of milliseconds, and a rare curve
 * may not be accepted by the validator at all.
 */
static int key_type_check(EVP_PKEY *pkey, char *err, size_t errlen)
{
	static const char want[] = "a validator needs ECDSA on P-256 or P-384, "
				   "Ed25519, or RSA of 2048 to 4096 bits";
	char group[80] = "";
	int bits = EVP_PKEY_get_bits(pkey), nid;

	if (EVP_PKEY_is_a(pkey, "ED25519"))
		return 0;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (bits >= 2048 && bits <= 4096)
			return 0;
		err_set(err, errlen, "the key is RSA of %d bits; %s", bits, want);
		return -1;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
						    group, sizeof(group), NULL))
			snprintf(group, sizeof(group), "explicit parameters");
		ERR_clear_error();
		nid = OBJ_txt2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1)
			return 0;
		err_set(err, errlen, "the key is ECDSA on %s; %s", group, want);
		return -1;
	}
	err_set(err, errlen, "the key is %s; %s", EVP_PKEY_get0_type_name(pkey)
		? EVP_PKEY_get0_type_name(pkey) : "of an unknown type", want);
	return -1;
}

int certgen_import_pem(const char *cert_pem, size_t cert_len,
		       const char *key_pem, size_t key_len,
		       const struct ident *id, struct certgen_der *out,
		       char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (!cert_pem || !cert_len || !key_pem || !key_len || !id) {
		err_set(err, errlen, "certificate and private key are required");
		return -1;
	}
	/* The cap also keeps the int length BIO_new_mem_buf takes in range. */
	if (cert_len > CERTGEN_PEM_MAX || key_len > CERTGEN_PEM_MAX) {
		err_set(err, errlen,
			"certificate or private key PEM is larger than %d bytes",
			CERTGEN_PEM_MAX);
		return -1;
	}
	x = import_cert(cert_pem, cert_len, err, errlen);
	if (!x)
		goto out;
	pkey = import_key(key_pem, key_len, err, errlen);
	if (!pkey || key_type_check(pkey, err, errlen) < 0)
		goto out;
	/* The client computed the digest; we never saw the key authorization. */
	if (certgen_check(x, pkey, id, NULL, err, errlen) < 0)
		goto out;
	if (to_store_der(x, pkey, out, err, errlen) < 0)
		goto out;
	ret = 0;
out:
	EVP_PKEY_free(pkey);
	X509_free(x);
	return ret;
}
