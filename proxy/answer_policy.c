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
				 enum cfg_miss miss)
{
	if (!ask->asks)
		return POLICY_RELAY;
	if (e && (e->ident_len == 0 ||
		  (e->ident_len == h->host_len &&
		   memcmp(e->ident, h->host, h->host_len) == 0)))
		return POLICY_ANSWER;
	return miss == MISS_404 ? POLICY_MISS_REFUSE : POLICY_MISS_RELAY;
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
