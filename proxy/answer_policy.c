#include "proxy/answer_policy.h"

#include <string.h>

static bool method_is(const struct http_head *h, const char *m)
{
	return h->method.len == strlen(m) && memcmp(h->method.ptr, m, h->method.len) == 0;
}

/*
 * The token of a challenge path: its one segment after the prefix. Deeper
 * paths are the upstream's.
 */
static bool challenge_token(const struct http_head *h, struct slice *token)
{
	size_t plen = strlen(ACME_CHALLENGE_PREFIX);

	if (h->path.len <= plen ||
	    memcmp(h->path.ptr, ACME_CHALLENGE_PREFIX, plen) != 0)
		return false;
	token->ptr = h->path.ptr + plen;
	token->len = h->path.len - plen;
	return memchr(token->ptr, '/', token->len) == NULL;
}

void policy_http01_ask(const struct http_head *h, struct http01_ask *ask)
{
	memset(ask, 0, sizeof(*ask));
	ask->head = method_is(h, "HEAD");
	ask->asks = (ask->head || method_is(h, "GET")) &&
		    challenge_token(h, &ask->token);
}

void policy_rest_ask(const struct http_head *h, struct rest_ask *ask)
{
	memset(ask, 0, sizeof(*ask));
	ask->put = method_is(h, "PUT");
	ask->asks = (ask->put || method_is(h, "DELETE")) &&
		    challenge_token(h, &ask->token);
}

enum rest_verdict policy_rest(const struct rest_ask *ask,
			      const struct http_head *h, bool bearer,
			      const struct cfg_client *cl,
			      const struct sockaddr *peer)
{
	bool in_cidrs = false;

	if (!bearer)
		return REST_NO_BEARER;
	if (!cl)
		return REST_UNKNOWN_TOKEN;
	for (size_t i = 0; i < cl->ncidrs && !in_cidrs; i++)
		in_cidrs = cidr_match(&cl->cidrs[i], peer);
	if (cl->ncidrs && !in_cidrs)
		return REST_SOURCE_REFUSED;
	if (!cl->rest_responder)
		return REST_NOT_ENABLED;
	if (h->chunked || h->content_length > REST_BODY_MAX ||
	    (ask->put && h->content_length < 1))
		return REST_BAD_BODY;
	return REST_HAND_OFF;
}

const struct cfg_stateless *policy_stateless_rule(const struct http01_ask *ask,
						  const struct http_head *h,
						  const struct cfg *cfg)
{
	/* The token is echoed back: only the base64url a CA issues. */
	if (!ask->asks || !h->has_host || h->host_len == 0 ||
	    !token_valid(ask->token.ptr, ask->token.len))
		return NULL;
	for (size_t i = 0; i < cfg->nstateless; i++) {
		const struct cfg_stateless *st = &cfg->stateless[i];
		for (size_t j = 0; j < st->npatterns; j++)
			if (pattern_match_name(&st->patterns[j], h->host,
					       h->host_len))
				return st;
	}
	return NULL;
}

int policy_h2_preface(const uint8_t *in, size_t len)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	size_t n = sizeof(preface) - 1;

	if (memcmp(in, preface, len < n ? len : n) != 0)
		return -1;
	return len >= n ? 1 : 0;
}

enum policy_action policy_http01(const struct http01_ask *ask,
				 const struct http_head *h,
				 const struct store_entry *e,
				 const struct cfg_stateless *rule,
				 enum cfg_miss miss)
{
	if (!ask->asks)
		return POLICY_RELAY;
	if (e && (e->ident_len == 0 ||
		  (e->ident_len == h->host_len &&
		   memcmp(e->ident, h->host, h->host_len) == 0)))
		return POLICY_ANSWER;
	if (!e && rule)
		return POLICY_STATELESS;
	return miss == MISS_404 ? POLICY_MISS_REFUSE : POLICY_MISS_RELAY;
}

size_t policy_stateless_body(const struct http01_ask *ask,
			     const struct cfg_stateless *rule,
			     char buf[STATELESS_BODY_MAX])
{
	/* policy_stateless_rule() checked the token: at most TOKEN_MAX. */
	BUG_ON(ask->token.len > TOKEN_MAX);
	memcpy(buf, ask->token.ptr, ask->token.len);
	buf[ask->token.len] = '.';
	memcpy(buf + ask->token.len + 1, rule->thumbprint, THUMBPRINT_LEN);
	return ask->token.len + 1 + THUMBPRINT_LEN;
}

void policy_tls_ask(const struct tls_hello *h, struct tls_ask *ask)
{
	size_t n = 0;

	if (h->has_sni) {
		n = h->sni.len;
		if (n && h->sni.ptr[n - 1] == '.')
			n--;
		for (size_t i = 0; i < n; i++)
			ask->name[i] = (char)ascii_lower((uint8_t)h->sni.ptr[i]);
	}
	ask->name[n] = '\0';
	ask->name_len = n;
	ask->asks = tls_hello_alpn_offers(h, ACME_TLS_ALPN, strlen(ACME_TLS_ALPN));
}

enum policy_action policy_tls(const struct tls_ask *ask,
			      const struct store_entry *e, enum cfg_miss miss)
{
	if (!ask->asks)
		return POLICY_RELAY;
	if (e && ask->name_len)
		return POLICY_ANSWER;
	return miss == MISS_REJECT ? POLICY_MISS_REFUSE : POLICY_MISS_RELAY;
}
