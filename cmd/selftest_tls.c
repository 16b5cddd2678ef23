/*
 * The tls-alpn-01 check (RFC 8737 §3): a TLS handshake on port 443 with
 * SNI the name (RFC 8738: the reverse name of an address) offering only
 * acme-tls/1, which must be selected, and a certificate that is
 * self-signed, names exactly the identifier in one subjectAltName and
 * carries the critical acmeIdentifier extension holding the SHA-256 of the
 * key authorization.
 */
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cmd/selftest_int.h"
#include "common/log.h"

#define ACME_TLS_ALPN "acme-tls/1"
#define ACME_ID_OID "1.3.6.1.5.5.7.1.31"

/* The certificate's subject, for naming who answered. */
static void subject_of(X509 *c, char *buf, size_t cap)
{
	X509_NAME_oneline(X509_get_subject_name(c), buf, (int)cap);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

/* Whether the one subjectAltName entry is the identifier. */
static const char *check_san(X509 *c, const struct ident *id)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
	const char *bad = NULL;
	GENERAL_NAME *g;
	int n = sans ? sk_GENERAL_NAME_num(sans) : 0;

	if (n != 1) {
		bad = n ? "more than one subjectAltName" : "no subjectAltName";
		goto out;
	}
	g = sk_GENERAL_NAME_value(sans, 0);
	if (id->type == IDENT_DNS) {
		const ASN1_STRING *s = g->type == GEN_DNS ? g->d.dNSName : NULL;
		if (!s || (size_t)ASN1_STRING_length(s) != id->name_len ||
		    strncasecmp((const char *)ASN1_STRING_get0_data(s), id->name,
				id->name_len) != 0)
			bad = "its subjectAltName is not the name";
	} else {
		const ASN1_OCTET_STRING *s = g->type == GEN_IPADD ? g->d.iPAddress : NULL;
		int alen = id->type == IDENT_IPV4 ? 4 : 16;
		if (!s || ASN1_STRING_length(s) != alen ||
		    memcmp(ASN1_STRING_get0_data(s), id->addr, (size_t)alen) != 0)
			bad = "its subjectAltName is not the address";
	}
out:
	GENERAL_NAMES_free(sans);
	return bad;
}

/* The acmeIdentifier extension: critical, an OCTET STRING of the digest. */
static const char *check_acme_id(X509 *c, const uint8_t *digest)
{
	ASN1_OBJECT *oid = OBJ_txt2obj(ACME_ID_OID, 1);
	int at = oid ? X509_get_ext_by_OBJ(c, oid, -1) : -1;
	X509_EXTENSION *ext = at >= 0 ? X509_get_ext(c, at) : NULL;
	const ASN1_OCTET_STRING *raw;
	const unsigned char *p;
	ASN1_OCTET_STRING *v = NULL;
	const char *bad = NULL;

	ASN1_OBJECT_free(oid);
	if (!ext)
		return "no acmeIdentifier extension";
	if (X509_get_ext_by_OBJ(c, X509_EXTENSION_get_object(ext), at) >= 0)
		return "two acmeIdentifier extensions";
	if (!X509_EXTENSION_get_critical(ext))
		return "its acmeIdentifier extension is not critical";
	raw = X509_EXTENSION_get_data(ext);
	p = ASN1_STRING_get0_data(raw);
	v = d2i_ASN1_OCTET_STRING(NULL, &p, ASN1_STRING_length(raw));
	if (!v || p != ASN1_STRING_get0_data(raw) + ASN1_STRING_length(raw) ||
	    ASN1_STRING_length(v) != 32)
		bad = "its acmeIdentifier is not a 32-byte OCTET STRING";
	else if (digest && memcmp(ASN1_STRING_get0_data(v), digest, 32) != 0)
		bad = "its acmeIdentifier is not the SHA-256 of this key "
		      "authorization";
	ASN1_OCTET_STRING_free(v);
	return bad;
}

static const char *check_cert(X509 *c, const struct ident *id,
			      const uint8_t *digest)
{
	EVP_PKEY *pk = X509_get0_pubkey(c);
	const char *bad;

	if (X509_check_issued(c, c) != X509_V_OK || !pk || X509_verify(c, pk) != 1)
		return "it is not self-signed";
	if ((bad = check_san(c, id)) != NULL)
		return bad;
	return check_acme_id(c, digest);
}

void st_check_tlsalpn01(struct st *st, const struct ident *id,
			const struct sockaddr *sa, const uint8_t *digest,
			struct st_outcome *out)
{
	char sni[IDENT_NAME_MAX + 1], err[256], subj[256] = "";
	const unsigned char *proto = NULL;
	unsigned plen = 0;
	struct netio io;
	const char *bad;
	X509 *c;
	int ret;

	ERR_clear_error();
	if (ident_sni_name(id, sni, sizeof(sni)) < 0) {
		snprintf(out->reason, sizeof(out->reason), "no SNI name for %s",
			 id->name);
		return;
	}
	ret = net_connect(&io, sa, st->https_port, st->connect_ms);
	if (ret) {
		st_connect_failed(out, sa, st->https_port, ret);
		return;
	}
	out->reached = true;
	io.deadline_ms = clock_mono_ms() + st->exchange_ms;
	if (net_tls(&io, st->tls, sni, ACME_TLS_ALPN, err, sizeof(err))) {
		snprintf(out->reason, sizeof(out->reason), "the acme-tls/1 handshake "
			 "for %s failed: %s", sni, err);
		goto done;
	}
	c = SSL_get1_peer_certificate(io.ssl);
	if (c)
		subject_of(c, subj, sizeof(subj));
	SSL_get0_alpn_selected(io.ssl, &proto, &plen);
	if (plen != strlen(ACME_TLS_ALPN) || memcmp(proto, ACME_TLS_ALPN, plen)) {
		snprintf(out->reason, sizeof(out->reason), "no acme-tls/1 selected: "
			 "answered by something else, not acme-edge (certificate "
			 "%s)", subj[0] ? subj : "none");
	} else if (!c) {
		snprintf(out->reason, sizeof(out->reason), "wrong certificate: none");
	} else if ((bad = check_cert(c, id, digest)) != NULL) {
		snprintf(out->reason, sizeof(out->reason), "wrong certificate: %s "
			 "(certificate %s)", bad, subj);
	} else {
		out->ok = true;
		snprintf(out->reason, sizeof(out->reason), "ok%s", digest ? "" :
			 " (an entry another client placed; its digest is not "
			 "known here, the rest was checked)");
	}
	X509_free(c);
	/* The server closes after the handshake; its end is waited for. */
	while (net_read(&io, subj, sizeof(subj)) > 0)
		;
done:
	net_close(&io);
}
