/*
 * certgen: the TLS-ALPN-01 certificate builder and checker.
 *
 * Built certificates are taken apart here with plain OpenSSL calls and
 * hand-assembled DER, rule by validator rule, so that a bug shared by
 * certgen_build() and certgen_check() cannot hide itself. The negative
 * cases are certificates the test builds on its own, each breaking exactly
 * one rule of a baseline that certgen_check() accepts.
 *
 * Identifiers are filled in by hand (no ident.c), so this test links
 * certgen.c alone.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "solver-api/certgen.h"
#include "check.h"

#define VALID_S 86400u
#define PEM_CAP (16 * 1024)

static EVP_PKEY *key_a, *key_b;	/* P-256 keys shared by the hand-built certs */
static bool verbose;		/* CERTGEN_VERBOSE=1 prints every refusal */

static struct ident mk_ident(enum ident_type type, const char *text)
{
	struct ident id;

	memset(&id, 0, sizeof(id));
	id.type = type;
	id.name_len = strlen(text);
	BUG_ON(id.name_len > IDENT_NAME_MAX);
	memcpy(id.name, text, id.name_len);
	if (type == IDENT_IPV4)
		BUG_ON(inet_pton(AF_INET, text, id.addr) != 1);
	else if (type == IDENT_IPV6)
		BUG_ON(inet_pton(AF_INET6, text, id.addr) != 1);
	return id;
}

static void sha256(const char *s, uint8_t out[32])
{
	BUG_ON(!EVP_Digest(s, strlen(s), out, NULL, EVP_sha256(), NULL));
}

/* ---- a tiny DER writer, independent of OpenSSL's encoders ---- */

/* tag, minimal length, content; returns the bytes written. */
static size_t der_tlv(uint8_t *out, uint8_t tag, const void *content,
		      size_t len)
{
	size_t n = 0;

	out[n++] = tag;
	if (len < 0x80) {
		out[n++] = (uint8_t)len;
	} else if (len < 0x100) {
		out[n++] = 0x81;
		out[n++] = (uint8_t)len;
	} else {
		BUG_ON(len > 0xffff);
		out[n++] = 0x82;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	}
	memmove(out + n, content, len);
	return n + len;
}

/* One GeneralName: [2] IA5String dNSName or [7] OCTET STRING iPAddress. */
static size_t der_gn_dns(uint8_t *out, const char *name, size_t len)
{
	return der_tlv(out, 0x82, name, len);
}

static size_t der_gn_ip(uint8_t *out, const uint8_t *addr, size_t len)
{
	return der_tlv(out, 0x87, addr, len);
}

static size_t der_gn_ident(uint8_t *out, const struct ident *id)
{
	if (id->type == IDENT_DNS)
		return der_gn_dns(out, id->name, id->name_len);
	return der_gn_ip(out, id->addr, id->type == IDENT_IPV4 ? 4 : 16);
}

/* The exact SAN extnValue a validator expects for id. */
static size_t der_san_expected(uint8_t *out, const struct ident *id)
{
	uint8_t gn[300];
	size_t n = der_gn_ident(gn, id);

	return der_tlv(out, 0x30, gn, n);
}

/* ---- checks of a built certificate, one validator rule at a time ---- */

static X509 *der_to_x509(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	if (x && p != der + len) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static EVP_PKEY *der_to_pkcs8_key(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
	EVP_PKEY *k = NULL;

	if (p8 && p == der + len)
		k = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return k;
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(t, &tm))
		return (time_t)-1;
	return timegm(&tm);
}

static int count_ext_obj(X509 *x, const ASN1_OBJECT *obj)
{
	int n = 0;

	for (int i = 0; i < X509_get_ext_count(x); i++)
		if (OBJ_cmp(X509_EXTENSION_get_object(X509_get_ext(x, i)),
			    obj) == 0)
			n++;
	return n;
}

static X509_EXTENSION *find_ext_obj(X509 *x, const ASN1_OBJECT *obj)
{
	for (int i = 0; i < X509_get_ext_count(x); i++) {
		X509_EXTENSION *e = X509_get_ext(x, i);

		if (OBJ_cmp(X509_EXTENSION_get_object(e), obj) == 0)
			return e;
	}
	return NULL;
}

/* A signature by key verifies under pub: the pair really belongs together. */
static bool sign_verify(EVP_PKEY *key, EVP_PKEY *pub)
{
	static const unsigned char msg[] = "acme-tls/1";
	unsigned char sig[256];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = false;

	if (!ctx)
		return false;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, msg, sizeof(msg)) != 1)
		goto out;
	EVP_MD_CTX_reset(ctx);
	if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) != 1)
		goto out;
	ok = EVP_DigestVerify(ctx, sig, siglen, msg, sizeof(msg)) == 1;
out:
	EVP_MD_CTX_free(ctx);
	return ok;
}

static void check_built(const struct ident *id, const uint8_t digest[32],
			const struct certgen_der *der, time_t t0, time_t t1)
{
	const char *nm = id->name;
	ASN1_OBJECT *acme_oid = OBJ_txt2obj(ACME_IDENTIFIER_OID, 1);
	ASN1_OBJECT *san_oid = OBJ_nid2obj(NID_subject_alt_name);
	X509 *x = der_to_x509(der->cert, der->cert_len);
	EVP_PKEY *key = der_to_pkcs8_key(der->key, der->key_len);
	EVP_PKEY *pub;
	X509_EXTENSION *e;
	GENERAL_NAMES *gens;
	BIGNUM *serial;
	uint8_t want[400];
	size_t want_len;
	char group[64];
	int crit, idx;

	CHECKF(x != NULL, "%s: cert DER parses with no trailing bytes", nm);
	CHECKF(key != NULL, "%s: key is PKCS#8 DER", nm);
	if (!x || !key || !acme_oid)
		goto out;

	CHECKF(X509_get_version(x) == X509_VERSION_3, "%s: v3", nm);
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	CHECKF(serial && !BN_is_negative(serial) && !BN_is_zero(serial) &&
		       BN_num_bytes(serial) == 16,
	       "%s: serial is 16 bytes, positive", nm);
	BN_free(serial);

	/* Self-signed: subject == issuer, signature verifies with own key. */
	CHECKF(X509_NAME_cmp(X509_get_subject_name(x),
			     X509_get_issuer_name(x)) == 0,
	       "%s: subject == issuer", nm);
	pub = X509_get0_pubkey(x);
	CHECKF(pub && X509_verify(x, pub) == 1, "%s: self-signature", nm);
	CHECKF(X509_get_signature_nid(x) == NID_ecdsa_with_SHA256,
	       "%s: ECDSA-SHA256", nm);

	/* P-256 */
	CHECKF(pub && EVP_PKEY_is_a(pub, "EC"), "%s: EC key", nm);
	CHECKF(pub && EVP_PKEY_get_utf8_string_param(
			      pub, OSSL_PKEY_PARAM_GROUP_NAME, group,
			      sizeof(group), NULL) == 1 &&
		       strcmp(group, "prime256v1") == 0,
	       "%s: curve P-256", nm);

	/* Only the two extensions a validator reads. */
	CHECKF(X509_get_ext_count(x) == 2, "%s: %d extensions", nm,
	       X509_get_ext_count(x));

	/* Exactly one SAN, non-critical, DER == one name equal to id. */
	CHECKF(count_ext_obj(x, san_oid) == 1, "%s: one SAN extension", nm);
	e = find_ext_obj(x, san_oid);
	want_len = der_san_expected(want, id);
	CHECKF(e && !X509_EXTENSION_get_critical(e), "%s: SAN non-critical",
	       nm);
	CHECKF(e && (size_t)ASN1_STRING_length(X509_EXTENSION_get_data(e)) ==
				want_len &&
		       memcmp(ASN1_STRING_get0_data(X509_EXTENSION_get_data(e)),
			      want, want_len) == 0,
	       "%s: SAN DER is exactly one name equal to the identifier", nm);
	idx = -1;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, &idx);
	CHECKF(gens && sk_GENERAL_NAME_num(gens) == 1, "%s: one name", nm);
	if (gens && sk_GENERAL_NAME_num(gens) == 1) {
		int type;
		ASN1_STRING *s = GENERAL_NAME_get0_value(
			sk_GENERAL_NAME_value(gens, 0), &type);

		if (id->type == IDENT_DNS)
			CHECKF(type == GEN_DNS &&
				       (size_t)ASN1_STRING_length(s) ==
					       id->name_len &&
				       memcmp(ASN1_STRING_get0_data(s),
					      id->name, id->name_len) == 0,
			       "%s: dNSName", nm);
		else
			CHECKF(type == GEN_IPADD &&
				       ASN1_STRING_length(s) ==
					       (id->type == IDENT_IPV4 ? 4 : 16) &&
				       memcmp(ASN1_STRING_get0_data(s),
					      id->addr,
					      ASN1_STRING_length(s)) == 0,
			       "%s: iPAddress", nm);
	}
	GENERAL_NAMES_free(gens);

	/* Exactly one acmeIdentifier, critical, 04 20 || digest. */
	CHECKF(count_ext_obj(x, acme_oid) == 1, "%s: one acmeIdentifier", nm);
	e = find_ext_obj(x, acme_oid);
	want[0] = 0x04;
	want[1] = 0x20;
	memcpy(want + 2, digest, 32);
	CHECKF(e && X509_EXTENSION_get_critical(e) == 1,
	       "%s: acmeIdentifier critical", nm);
	CHECKF(e && ASN1_STRING_length(X509_EXTENSION_get_data(e)) == 34 &&
		       memcmp(ASN1_STRING_get0_data(X509_EXTENSION_get_data(e)),
			      want, 34) == 0,
	       "%s: acmeIdentifier == 04 20 || digest", nm);

	/* The key belongs to the certificate. */
	CHECKF(X509_check_private_key(x, key) == 1, "%s: key matches", nm);
	CHECKF(pub && EVP_PKEY_eq(pub, key) == 1, "%s: EVP_PKEY_eq", nm);
	CHECKF(pub && sign_verify(key, pub), "%s: sign/verify", nm);

	/* notBefore = now - 1h, notAfter = now + valid_s, now in [t0, t1]. */
	{
		time_t nb = asn1_to_time(X509_get0_notBefore(x));
		time_t na = asn1_to_time(X509_get0_notAfter(x));

		CHECKF(nb >= t0 - 3600 && nb <= t1 - 3600,
		       "%s: notBefore %ld, now %ld", nm, (long)nb, (long)t0);
		CHECKF(na >= t0 + (time_t)VALID_S && na <= t1 + (time_t)VALID_S,
		       "%s: notAfter %ld, now %ld", nm, (long)na, (long)t0);
		CHECKF(X509_cmp_current_time(X509_get0_notBefore(x)) < 0 &&
			       X509_cmp_current_time(X509_get0_notAfter(x)) > 0,
		       "%s: currently valid", nm);
	}
out:
	ASN1_OBJECT_free(acme_oid);
	EVP_PKEY_free(key);
	X509_free(x);
}

static bool err_has(const char *err, const char *what)
{
	return err[0] && strstr(err, what) != NULL;
}

static void test_build(const struct ident *id, const struct ident *other)
{
	struct certgen_der der, der2;
	uint8_t digest[32], wrong[32];
	char err[256] = "";
	time_t t0, t1;
	X509 *x;
	EVP_PKEY *key;
	int rc;

	sha256("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI",
	       digest);
	memcpy(wrong, digest, 32);
	wrong[31] ^= 1;

	t0 = time(NULL);
	rc = certgen_build(id, digest, VALID_S, &der, err, sizeof(err));
	t1 = time(NULL);
	CHECKF(rc == 0, "%s: build: %s", id->name, err);
	if (rc)
		return;
	check_built(id, digest, &der, t0, t1);

	x = der_to_x509(der.cert, der.cert_len);
	key = der_to_pkcs8_key(der.key, der.key_len);
	CHECK(x && key);
	if (!x || !key)
		goto out;

	err[0] = '\0';
	CHECKF(certgen_check(x, key, id, digest, err, sizeof(err)) == 0,
	       "%s: check: %s", id->name, err);
	CHECKF(certgen_check(x, NULL, id, NULL, err, sizeof(err)) == 0,
	       "%s: check without key or digest: %s", id->name, err);
	CHECKF(certgen_check(x, key, id, wrong, err, sizeof(err)) == -1 &&
		       err_has(err, "SHA-256"),
	       "%s: wrong digest refused (%s)", id->name, err);
	err[0] = '\0';
	CHECKF(certgen_check(x, key, other, digest, err, sizeof(err)) == -1 &&
		       err_has(err, "subjectAltName"),
	       "%s: wrong identifier %s refused (%s)", id->name, other->name,
	       err);
	err[0] = '\0';
	CHECKF(certgen_check(x, key_a, id, digest, err, sizeof(err)) == -1 &&
		       err_has(err, "private key"),
	       "%s: foreign key refused (%s)", id->name, err);

	/* A fresh key and serial every time. */
	rc = certgen_build(id, digest, VALID_S, &der2, err, sizeof(err));
	CHECK(rc == 0);
	if (rc == 0) {
		X509 *x2 = der_to_x509(der2.cert, der2.cert_len);

		CHECKF(x2 && ASN1_INTEGER_cmp(X509_get0_serialNumber(x),
					      X509_get0_serialNumber(x2)) != 0,
		       "%s: serials differ", id->name);
		CHECKF(x2 && EVP_PKEY_eq(X509_get0_pubkey(x),
					 X509_get0_pubkey(x2)) != 1,
		       "%s: keys differ", id->name);
		X509_free(x2);
		certgen_der_free(&der2);
	}
out:
	EVP_PKEY_free(key);
	X509_free(x);
	certgen_der_free(&der);
}

/* ---- hand-built certificates, each breaking one rule ---- */

struct tc_opts {
	int san_exts;		/* SAN extensions */
	int san_names;		/* names in each */
	int san_kind;		/* 0: from id, 'd': dNSName id->name, 'i': 192.0.2.1 */
	bool san_trailing;	/* a byte after the SEQUENCE */
	bool san_long_len;	/* non-minimal (long-form) SEQUENCE length */
	int acme_exts;
	bool acme_noncrit;
	int acme_len;		/* digest bytes in the OCTET STRING */
	bool acme_trailing;
	bool acme_bare;		/* extnValue is the digest, not an OCTET STRING */
	const char *issuer_cn;	/* NULL: same as subject */
	EVP_PKEY *signer;	/* NULL: self */
	long nb_off, na_off;
	long version;
};

static struct tc_opts tc_default(void)
{
	return (struct tc_opts){
		.san_exts = 1,
		.san_names = 1,
		.acme_exts = 1,
		.acme_len = 32,
		.nb_off = -600,
		.na_off = 3600,
		.version = X509_VERSION_3,
	};
}

static void tc_add_raw_ext(X509 *x, ASN1_OBJECT *obj, int crit,
			   const uint8_t *der, size_t len)
{
	ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e;

	BUG_ON(!val || !ASN1_OCTET_STRING_set(val, der, (int)len));
	e = X509_EXTENSION_create_by_OBJ(NULL, obj, crit, val);
	BUG_ON(!e || !X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
	ASN1_OCTET_STRING_free(val);
}

static size_t tc_san(uint8_t *out, const struct ident *id,
		     const struct tc_opts *o)
{
	static const uint8_t doc_v4[4] = { 192, 0, 2, 1 };
	uint8_t names[1024];
	size_t n = 0, len;

	for (int i = 0; i < o->san_names; i++) {
		if (o->san_kind == 'd')
			n += der_gn_dns(names + n, id->name, id->name_len);
		else if (o->san_kind == 'i')
			n += der_gn_ip(names + n, doc_v4, 4);
		else if (i == 0)
			n += der_gn_ident(names + n, id);
		else
			n += der_gn_dns(names + n, "other.example", 13);
	}
	if (o->san_long_len) {
		BUG_ON(n >= 0x80);
		out[0] = 0x30;
		out[1] = 0x81;
		out[2] = (uint8_t)n;
		memcpy(out + 3, names, n);
		len = 3 + n;
	} else {
		len = der_tlv(out, 0x30, names, n);
	}
	if (o->san_trailing)
		out[len++] = 0x00;
	return len;
}

static X509 *tc_build(const struct ident *id, const uint8_t digest[32],
		      EVP_PKEY *key, const struct tc_opts *o)
{
	ASN1_OBJECT *acme = OBJ_txt2obj(ACME_IDENTIFIER_OID, 1);
	X509_NAME *subj = X509_NAME_new(), *iss = X509_NAME_new();
	X509 *x = X509_new();
	uint8_t buf[1100];
	size_t len;

	BUG_ON(!acme || !subj || !iss || !x);
	BUG_ON(!X509_set_version(x, o->version));
	BUG_ON(!ASN1_INTEGER_set(X509_get_serialNumber(x), 4242));
	BUG_ON(!X509_gmtime_adj(X509_getm_notBefore(x), o->nb_off));
	BUG_ON(!X509_gmtime_adj(X509_getm_notAfter(x), o->na_off));
	BUG_ON(!X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
					   (const unsigned char *)"test leaf",
					   -1, -1, 0));
	BUG_ON(!X509_NAME_add_entry_by_txt(
		iss, "CN", MBSTRING_ASC,
		(const unsigned char *)(o->issuer_cn ? o->issuer_cn
						     : "test leaf"),
		-1, -1, 0));
	BUG_ON(!X509_set_subject_name(x, subj) || !X509_set_issuer_name(x, iss));
	BUG_ON(!X509_set_pubkey(x, key));

	for (int i = 0; i < o->san_exts; i++) {
		len = tc_san(buf, id, o);
		tc_add_raw_ext(x, OBJ_nid2obj(NID_subject_alt_name), 0, buf,
			       len);
	}
	for (int i = 0; i < o->acme_exts; i++) {
		if (o->acme_bare) {
			memcpy(buf, digest, 32);
			len = 32;
		} else {
			len = der_tlv(buf, 0x04, digest, (size_t)o->acme_len);
		}
		if (o->acme_trailing)
			buf[len++] = 0x00;
		tc_add_raw_ext(x, acme, !o->acme_noncrit, buf, len);
	}
	BUG_ON(X509_sign(x, o->signer ? o->signer : key, EVP_sha256()) <= 0);

	X509_NAME_free(iss);
	X509_NAME_free(subj);
	ASN1_OBJECT_free(acme);
	return x;
}

struct neg_case {
	const char *what;
	const struct ident *id;
	struct tc_opts o;
	EVP_PKEY **check_key;	/* key passed to certgen_check */
	const char *expect;	/* a word the error must contain */
};

static void test_check_negative(void)
{
	struct ident dns = mk_ident(IDENT_DNS, "www.example.org");
	struct ident v4 = mk_ident(IDENT_IPV4, "192.0.2.7");
	struct ident v6 = mk_ident(IDENT_IPV6, "2001:db8::7");
	uint8_t digest[32];
	char err[256];
	struct neg_case cases[32];
	size_t n = 0;

	sha256("token.thumbprint", digest);

	/* The baseline must pass, or every refusal below proves nothing. */
	{
		const struct ident *ids[] = { &dns, &v4, &v6 };

		for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
			struct tc_opts o = tc_default();
			X509 *x = tc_build(ids[i], digest, key_a, &o);

			err[0] = '\0';
			CHECKF(certgen_check(x, key_a, ids[i], digest, err,
					     sizeof(err)) == 0,
			       "baseline %s: %s", ids[i]->name, err);
			X509_free(x);
		}
	}

#define NEG(w, i, k, e, ...)                                              \
	do {                                                              \
		cases[n] = (struct neg_case){ .what = (w), .id = (i),     \
					      .check_key = (k),           \
					      .expect = (e) };            \
		cases[n].o = tc_default();                                \
		__VA_ARGS__;                                              \
		n++;                                                      \
	} while (0)
#define O cases[n].o

	NEG("two SAN extensions", &dns, NULL, "more than one subjectAltName",
	    O.san_exts = 2);
	NEG("no SAN extension", &dns, NULL, "no subjectAltName",
	    O.san_exts = 0);
	NEG("one SAN with two names", &dns, NULL, "exactly one name",
	    O.san_names = 2);
	NEG("one SAN with two names, IPv6", &v6, NULL, "exactly one name",
	    O.san_names = 2);
	NEG("SAN dNSName for an IPv4 id", &v4, NULL, "iPAddress",
	    O.san_kind = 'd');
	NEG("SAN dNSName for an IPv6 id", &v6, NULL, "iPAddress",
	    O.san_kind = 'd');
	NEG("SAN iPAddress for a DNS id", &dns, NULL, "dNSName",
	    O.san_kind = 'i');
	NEG("SAN 4-byte iPAddress for an IPv6 id", &v6, NULL, "iPAddress",
	    O.san_kind = 'i');
	NEG("SAN with a trailing byte", &dns, NULL, "subjectAltName",
	    O.san_trailing = true);
	NEG("SAN with a long-form length", &dns, NULL, "subjectAltName",
	    O.san_long_len = true);
	NEG("acmeIdentifier non-critical", &dns, NULL, "critical",
	    O.acme_noncrit = true);
	NEG("acmeIdentifier missing", &dns, NULL, "no acmeIdentifier",
	    O.acme_exts = 0);
	NEG("two acmeIdentifier extensions", &dns, NULL,
	    "more than one acmeIdentifier", O.acme_exts = 2);
	NEG("acmeIdentifier 31 bytes", &dns, NULL, "32 bytes",
	    O.acme_len = 31);
	NEG("acmeIdentifier with a trailing byte", &dns, NULL, "32 bytes",
	    O.acme_trailing = true);
	NEG("acmeIdentifier not an OCTET STRING", &dns, NULL, "32 bytes",
	    O.acme_bare = true);
	NEG("signed by another key", &dns, NULL, "signature",
	    O.signer = key_b);
	NEG("issuer differs from subject", &dns, NULL, "issuer",
	    O.issuer_cn = "some CA");
	NEG("expired", &dns, NULL, "expired", O.nb_off = -7200,
	    O.na_off = -60);
	NEG("not yet valid", &dns, NULL, "not valid yet", O.nb_off = 3600,
	    O.na_off = 7200);
	NEG("X.509 v1", &dns, NULL, "version 3", O.version = X509_VERSION_1);
	NEG("mismatched key", &dns, &key_b, "private key", (void)0);
#undef O
#undef NEG
	BUG_ON(n > ARRAY_SIZE(cases));

	for (size_t i = 0; i < n; i++) {
		const struct neg_case *c = &cases[i];
		X509 *x = tc_build(c->id, digest, key_a, &c->o);
		EVP_PKEY *k = c->check_key ? *c->check_key : NULL;
		int rc;

		err[0] = '\0';
		rc = certgen_check(x, k, c->id, digest, err, sizeof(err));
		CHECKF(rc == -1 && err_has(err, c->expect),
		       "%s: rc %d, err \"%s\", want \"%s\"", c->what, rc, err,
		       c->expect);
		if (verbose)
			printf("check %-40s -> %s\n", c->what, err);
		/* The same certificate must also fail through a DER round trip. */
		{
			unsigned char *der = NULL;
			int len = i2d_X509(x, &der);
			X509 *y = len > 0 ? der_to_x509(der, (size_t)len) : NULL;

			CHECKF(y && certgen_check(y, k, c->id, digest, err,
						  sizeof(err)) == -1,
			       "%s: after DER round trip", c->what);
			X509_free(y);
			OPENSSL_free(der);
		}
		X509_free(x);
	}
	/* check never leaves stale entries on the thread's error queue */
	CHECK(ERR_peek_error() == 0);
}

/* ---- certgen_import_pem ---- */

struct buf {
	char *p;
	size_t len;
};

static struct buf bio_take(BIO *bio)
{
	struct buf b = { 0 };
	char *data;
	long len = BIO_get_mem_data(bio, &data);

	BUG_ON(len <= 0);
	b.p = malloc((size_t)len);
	BUG_ON(!b.p);
	memcpy(b.p, data, (size_t)len);
	b.len = (size_t)len;
	BIO_free(bio);
	return b;
}

static struct buf pem_cert(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());

	BUG_ON(!bio || !PEM_write_bio_X509(bio, x));
	return bio_take(bio);
}

/* structure: "PrivateKeyInfo" (PKCS#8) or "type-specific" (SEC1, PKCS#1) */
static struct buf pem_key(EVP_PKEY *k, const char *structure)
{
	BIO *bio = BIO_new(BIO_s_mem());
	OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(
		k, EVP_PKEY_KEYPAIR, "PEM", structure, NULL);

	BUG_ON(!bio || !ctx || !OSSL_ENCODER_to_bio(ctx, bio));
	OSSL_ENCODER_CTX_free(ctx);
	return bio_take(bio);
}

static struct buf buf_cat(struct buf a, struct buf b)
{
	struct buf c = { malloc(a.len + b.len), a.len + b.len };

	BUG_ON(!c.p);
	memcpy(c.p, a.p, a.len);
	memcpy(c.p + a.len, b.p, b.len);
	return c;
}

static struct buf buf_str(const char *s)
{
	struct buf b = { strdup(s), strlen(s) };

	BUG_ON(!b.p);
	return b;
}

/* Leading text lines up to total bytes: PEM ignores text before a block. */
static struct buf buf_pad(struct buf a, size_t total)
{
	struct buf c = { malloc(total), total };
	size_t pad = total - a.len, i = 0;

	BUG_ON(!c.p || total < a.len + 1);
	while (i < pad) {
		size_t line = pad - i > 65 ? 64 : pad - i - 1;

		memset(c.p + i, 'x', line);
		c.p[i + line] = '\n';
		i += line + 1;
	}
	memcpy(c.p + pad, a.p, a.len);
	return c;
}

/*
 * Runs the import on copies with nothing after the last byte: the cert
 * ends at a PROT_NONE page and the key in an exact-size heap block, so a
 * read past either length faults (or trips ASan) instead of passing.
 */
static int do_import(struct buf cert, struct buf key, const struct ident *id,
		     struct certgen_der *out, char *err, size_t errlen)
{
	char *k = malloc(key.len ? key.len : 1);	/* malloc(0) may be NULL */
	int rc;

	BUG_ON(!k);
	memcpy(k, key.p, key.len);
	err[0] = '\0';
	rc = certgen_import_pem(check_guarded(cert.p, cert.len), cert.len, k,
				key.len, id, out, err, errlen);
	free(k);
	return rc;
}

static void expect_refused(const char *what, struct buf cert, struct buf key,
			   const struct ident *id, const char *expect)
{
	struct certgen_der out;
	char err[256];
	int rc = do_import(cert, key, id, &out, err, sizeof(err));

	CHECKF(rc == -1 && err_has(err, expect) && !out.cert && !out.key,
	       "import %s: rc %d, err \"%s\", want \"%s\"", what, rc, err,
	       expect);
	if (verbose)
		printf("import %-39s -> %s\n", what, err);
	if (rc == 0)
		certgen_der_free(&out);
	CHECKF(ERR_peek_error() == 0, "import %s: error queue left set",
	       what);
}

static void expect_accepted(const char *what, struct buf cert, struct buf key,
			    const struct ident *id, const struct certgen_der *want)
{
	struct certgen_der out;
	char err[256];
	int rc = do_import(cert, key, id, &out, err, sizeof(err));
	X509 *x;
	EVP_PKEY *k;

	CHECKF(rc == 0, "import %s: %s", what, err);
	if (rc)
		return;
	x = der_to_x509(out.cert, out.cert_len);
	k = der_to_pkcs8_key(out.key, out.key_len);
	CHECKF(x && k && X509_check_private_key(x, k) == 1,
	       "import %s: output cert/PKCS#8 key parse and match", what);
	if (want) {
		CHECKF(out.cert_len == want->cert_len &&
			       memcmp(out.cert, want->cert, want->cert_len) == 0,
		       "import %s: cert DER round-trips", what);
		CHECKF(out.key_len == want->key_len &&
			       memcmp(out.key, want->key, want->key_len) == 0,
		       "import %s: key DER round-trips", what);
	}
	EVP_PKEY_free(k);
	X509_free(x);
	certgen_der_free(&out);
}

static void test_import(void)
{
	static const char ec_params[] = "-----BEGIN EC PARAMETERS-----\n"
					"BggqhkjOPQMBBw==\n"
					"-----END EC PARAMETERS-----\n";
	struct ident id = mk_ident(IDENT_DNS, "alpn.example.net");
	struct ident v6 = mk_ident(IDENT_IPV6, "2001:db8::1");
	struct ident other = mk_ident(IDENT_DNS, "other.example.net");
	struct certgen_der der, der2, der6;
	uint8_t digest[32];
	char err[256];
	X509 *x, *x2, *x6;
	EVP_PKEY *k, *k2, *k6, *rsa;

	sha256("import.test", digest);
	BUG_ON(certgen_build(&id, digest, VALID_S, &der, err, sizeof(err)));
	BUG_ON(certgen_build(&id, digest, VALID_S, &der2, err, sizeof(err)));
	BUG_ON(certgen_build(&v6, digest, VALID_S, &der6, err, sizeof(err)));
	x = der_to_x509(der.cert, der.cert_len);
	x2 = der_to_x509(der2.cert, der2.cert_len);
	x6 = der_to_x509(der6.cert, der6.cert_len);
	k = der_to_pkcs8_key(der.key, der.key_len);
	k2 = der_to_pkcs8_key(der2.key, der2.key_len);
	k6 = der_to_pkcs8_key(der6.key, der6.key_len);
	BUG_ON(!x || !x2 || !x6 || !k || !k2 || !k6);

	struct buf cert = pem_cert(x), cert2 = pem_cert(x2);
	struct buf cert6 = pem_cert(x6);
	struct buf key = pem_key(k, "PrivateKeyInfo");
	struct buf key_sec1 = pem_key(k, "type-specific");
	struct buf key2 = pem_key(k2, "PrivateKeyInfo");
	struct buf key6 = pem_key(k6, "PrivateKeyInfo");
	struct buf params = buf_str(ec_params);
	struct buf key_params = buf_cat(params, key_sec1);
	struct buf both = buf_cat(cert, cert2);
	struct buf cert_key = buf_cat(cert, key);
	struct buf garbage = buf_str("this is not PEM at all\n");
	struct buf bad_b64 = buf_str("-----BEGIN CERTIFICATE-----\n"
				     "!!!!notbase64!!!!\n"
				     "-----END CERTIFICATE-----\n");
	static char nothing[1];
	struct buf empty = { nothing, 0 };
	struct buf cert_max = buf_pad(cert, PEM_CAP);
	struct buf cert_big = buf_pad(cert, PEM_CAP + 1);
	struct buf key_big = buf_pad(key, PEM_CAP + 1);
	struct buf key_enc, key_enc_legacy;

	CHECK(memcmp(key_sec1.p, "-----BEGIN EC PRIVATE KEY-----", 30) == 0);
	{
		BIO *bio = BIO_new(BIO_s_mem());

		BUG_ON(!bio || !PEM_write_bio_PKCS8PrivateKey(
				       bio, k, EVP_aes_256_cbc(), NULL, 0,
				       NULL, (void *)"secret"));
		key_enc = bio_take(bio);
		bio = BIO_new(BIO_s_mem());
		BUG_ON(!bio || !PEM_write_bio_PrivateKey_traditional(
				       bio, k, EVP_aes_256_cbc(), NULL, 0,
				       NULL, (void *)"secret"));
		key_enc_legacy = bio_take(bio);
	}
	CHECK(strstr(key_enc.p, "ENCRYPTED PRIVATE KEY") != NULL);
	CHECK(memmem(key_enc_legacy.p, key_enc_legacy.len, "Proc-Type: 4,ENCRYPTED", 22) != NULL);

	expect_accepted("PKCS#8 key", cert, key, &id, &der);
	expect_accepted("SEC1 key", cert, key_sec1, &id, &der);
	expect_accepted("EC PARAMETERS + SEC1 key", cert, key_params, &id,
			&der);
	expect_accepted("IPv6", cert6, key6, &v6, &der6);
	expect_accepted("16 KiB exactly", cert_max, key, &id, &der);

	/* A client-built RSA leaf with a PKCS#1 key (dehydrated's default). */
	rsa = EVP_RSA_gen(2048);
	BUG_ON(!rsa);
	{
		struct tc_opts o = tc_default();
		X509 *xr = tc_build(&id, digest, rsa, &o);
		struct buf cr = pem_cert(xr);
		struct buf kr = pem_key(rsa, "type-specific");

		CHECK(memcmp(kr.p, "-----BEGIN RSA PRIVATE KEY-----", 31) == 0);
		expect_accepted("RSA PKCS#1 key", cr, kr, &id, NULL);
		expect_refused("RSA cert, EC key", cr, key, &id,
			       "does not match");
		free(kr.p);
		free(cr.p);
		X509_free(xr);
	}

	expect_refused("garbage cert", garbage, key, &id, "PEM");
	expect_refused("garbage key", cert, garbage, &id, "private key");
	expect_refused("bad base64", bad_b64, key, &id, "certificate");
	expect_refused("key in cert field", key, key, &id, "not a CERTIFICATE");
	expect_refused("mismatched key", cert, key2, &id, "does not match");
	expect_refused("two certificates", both, key, &id, "exactly one");
	expect_refused("cert + key in cert field", cert_key, key, &id,
		       "exactly one");
	expect_refused("encrypted PKCS#8 key", cert, key_enc, &id, "encrypted");
	expect_refused("encrypted legacy key", cert, key_enc_legacy, &id,
		       "encrypted");
	expect_refused("oversized cert", cert_big, key, &id, "larger");
	expect_refused("oversized key", cert, key_big, &id, "larger");
	expect_refused("empty cert", empty, key, &id, "required");
	expect_refused("empty key", cert, empty, &id, "required");
	expect_refused("wrong identifier", cert, key, &other, "subjectAltName");
	expect_refused("DNS cert for an IPv6 id", cert, key, &v6, "iPAddress");

	struct buf *all[] = { &cert, &cert2, &cert6, &key, &key_sec1, &key2,
			      &key6, &params, &key_params, &both, &cert_key,
			      &garbage, &bad_b64, &cert_max, &cert_big,
			      &key_big, &key_enc, &key_enc_legacy };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		FREE_NULL(all[i]->p);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(k6);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
	X509_free(x6);
	X509_free(x2);
	X509_free(x);
	certgen_der_free(&der6);
	certgen_der_free(&der2);
	certgen_der_free(&der);
}

/*
 * Imported keys: only the types a validator takes and a handshake can sign
 * at a bounded cost (ECDSA P-256/P-384, Ed25519, RSA 2048..4096).
 */
static EVP_PKEY *keygen(const char *type, const char *curve, unsigned bits)
{
	EVP_PKEY *k = NULL;

	if (curve)
		k = EVP_PKEY_Q_keygen(NULL, NULL, type, curve);
	else if (bits)
		k = EVP_PKEY_Q_keygen(NULL, NULL, type, (size_t)bits);
	else
		k = EVP_PKEY_Q_keygen(NULL, NULL, type);
	BUG_ON(!k);
	return k;
}

/* A leaf of tc_build's, self-signed with key whatever its type. */
static X509 *tc_build_any(const struct ident *id, const uint8_t digest[32],
			  EVP_PKEY *key)
{
	struct tc_opts o = tc_default();
	X509 *x;

	o.signer = key_a;	/* tc_build signs with SHA-256 ... */
	x = tc_build(id, digest, key, &o);
	/* ... which Ed25519 and Ed448 do not take: their own digest. */
	bool ed = EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448");
	BUG_ON(X509_sign(x, key, ed ? NULL : EVP_sha256()) <= 0);
	return x;
}

static void test_import_key_types(void)
{
	static const struct {
		const char *what, *type, *curve;
		unsigned bits;
		bool ok;
		const char *expect;
	} cases[] = {
		{ "ECDSA P-256", "EC", "P-256", 0, true, NULL },
		{ "ECDSA P-384", "EC", "P-384", 0, true, NULL },
		{ "Ed25519", "ED25519", NULL, 0, true, NULL },
		{ "RSA 2048", "RSA", NULL, 2048, true, NULL },
		{ "RSA 4096", "RSA", NULL, 4096, true, NULL },
		{ "ECDSA P-521", "EC", "P-521", 0, false, "secp521r1" },
		{ "ECDSA secp256k1", "EC", "secp256k1", 0, false, "secp256k1" },
		{ "Ed448", "ED448", NULL, 0, false, "ED448" },
		{ "RSA 1024", "RSA", NULL, 1024, false, "1024 bits" },
		{ "RSA 4160", "RSA", NULL, 4160, false, "4160 bits" },
	};
	struct ident id = mk_ident(IDENT_DNS, "keys.example.net");
	uint8_t digest[32];

	sha256("key types", digest);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		EVP_PKEY *k = keygen(cases[i].type, cases[i].curve, cases[i].bits);
		X509 *x = tc_build_any(&id, digest, k);
		struct buf cert = pem_cert(x), key = pem_key(k, "PrivateKeyInfo");

		if (cases[i].ok)
			expect_accepted(cases[i].what, cert, key, &id, NULL);
		else
			expect_refused(cases[i].what, cert, key, &id,
				       cases[i].expect);
		free(cert.p);
		free(key.p);
		X509_free(x);
		EVP_PKEY_free(k);
	}
}

static void test_misc(void)
{
	struct ident bad = mk_ident(IDENT_DNS, "example.com");
	struct certgen_der der = { 0 };
	uint8_t digest[32] = { 0 };
	char err[256] = "";

	certgen_der_free(NULL);
	certgen_der_free(&der);
	bad.type = (enum ident_type)9;
	CHECK(certgen_build(&bad, digest, VALID_S, &der, err, sizeof(err)) ==
		      -1 &&
	      err[0] && !der.cert && !der.key);
	/* err may be absent: callers that only want the verdict. */
	CHECK(certgen_build(&bad, digest, VALID_S, &der, NULL, 0) == -1);
	CHECK(certgen_check(NULL, NULL, &bad, NULL, err, sizeof(err)) == -1);
}

static void bench_build(void)
{
	struct ident id = mk_ident(IDENT_DNS, "bench.example.com");
	struct timespec a, b;
	struct certgen_der der;
	uint8_t digest[32];
	char err[256];
	const int rounds = 200;
	int fails = 0;

	sha256("bench", digest);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < rounds; i++) {
		if (certgen_build(&id, digest, VALID_S, &der, err,
				  sizeof(err)) == 0)
			certgen_der_free(&der);
		else
			fails++;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(fails == 0);
	printf("certgen_build: mean %.3f ms over %d builds\n",
	       ((double)(b.tv_sec - a.tv_sec) * 1e3 +
		(double)(b.tv_nsec - a.tv_nsec) / 1e6) /
		       rounds,
	       rounds);
}

int main(void)
{
	char longname[254];
	struct ident ids[4], other[4];

	/* Three labels of 63 and one of 61: 253 octets, the longest name. */
	for (int i = 0; i < 3; i++) {
		memset(longname + i * 64, 'a' + i, 63);
		longname[i * 64 + 63] = '.';
	}
	memset(longname + 192, 'd', 61);
	longname[253] = '\0';
	ids[0] = mk_ident(IDENT_DNS, "example.com");
	ids[1] = mk_ident(IDENT_IPV4, "192.0.2.1");
	ids[2] = mk_ident(IDENT_IPV6, "2001:db8:85a3::8a2e:370:7334");
	ids[3] = mk_ident(IDENT_DNS, longname);
	other[0] = mk_ident(IDENT_DNS, "example.net");
	other[1] = mk_ident(IDENT_IPV4, "192.0.2.2");
	other[2] = mk_ident(IDENT_DNS, "example.com");
	other[3] = mk_ident(IDENT_DNS, "example.com");

	verbose = getenv("CERTGEN_VERBOSE") != NULL;
	key_a = EVP_EC_gen("P-256");
	key_b = EVP_EC_gen("P-256");
	BUG_ON(!key_a || !key_b);

	for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
		test_build(&ids[i], &other[i]);
	test_check_negative();
	test_import();
	test_import_key_types();
	test_misc();
	bench_build();

	EVP_PKEY_free(key_b);
	EVP_PKEY_free(key_a);
	return check_done();
}
