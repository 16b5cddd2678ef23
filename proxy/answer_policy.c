#include "proxy/answer_policy.h"

#include <string.h>

void policy_http01_ask(const struct http_head *h, struct http01_ask *ask)
{
	size_t plen = strlen(ACME_CHALLENGE_PREFIX);
	bool get = h->method.len == 3 && memcmp(h->method.ptr, "GET", 3) == 0;

	memset(ask, 0, sizeof(*ask));
	ask->head = h->method.len == 4 && memcmp(h->method.ptr, "HEAD", 4) == 0;
	if (!(get || ask->head) || h->path.len <= plen ||
	    memcmp(h->path.ptr, ACME_CHALLENGE_PREFIX, plen) != 0)
		return;
	ask->token.ptr = h->path.ptr + plen;
	ask->token.len = h->path.len - plen;
	/* The token is the last segment: deeper paths are the upstream's. */
	ask->asks = memchr(ask->token.ptr, '/', ask->token.len) == NULL;
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
	ask->asks = n && tls_hello_alpn_offers(h, ACME_TLS_ALPN,
					       strlen(ACME_TLS_ALPN));
}

enum policy_action policy_tls(const struct tls_ask *ask,
			      const struct store_entry *e, enum cfg_miss miss)
{
	if (!ask->asks)
		return POLICY_RELAY;
	if (e)
		return POLICY_ANSWER;
	return miss == MISS_REJECT ? POLICY_MISS_REFUSE : POLICY_MISS_RELAY;
}
