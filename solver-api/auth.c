/*
 * Who is asking, and what they may touch: the bearer token names a client
 * (compared as its SHA-256, in constant time, by cfg_client_by_token), the
 * client's cidrs limit where it may connect from, its identifier patterns
 * what it may answer for, and its thumbprints which ACME accounts it may
 * store key authorizations of.
 */
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "solver-api/internal.h"

enum auth_result auth_client(const struct cfg *cfg, const char *authorization,
			     const struct sockaddr *peer,
			     const struct cfg_client **out)
{
	uint8_t digest[SHA256_DIGEST_LENGTH];
	const struct cfg_client *cl;
	const char *tok;

	*out = NULL;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0 ||
	    authorization[7] == '\0')
		return AUTH_NO_BEARER;
	tok = authorization + 7;
	SHA256((const unsigned char *)tok, strlen(tok), digest);
	cl = cfg_client_by_token(cfg, digest);
	if (!cl)
		return AUTH_UNKNOWN_TOKEN;
	*out = cl;
	if (cl->ncidrs == 0)
		return AUTH_OK;
	for (size_t i = 0; peer && i < cl->ncidrs; i++)
		if (cidr_match(&cl->cidrs[i], peer))
			return AUTH_OK;
	return AUTH_SOURCE_REFUSED;
}

bool auth_allows(const struct cfg_client *cl, const struct ident *id)
{
	for (size_t i = 0; i < cl->npatterns; i++)
		if (pattern_match(&cl->patterns[i], id))
			return true;
	return false;
}

/*
 * Whether a client may replace or delete an entry: its own, or one bound to
 * a name inside its scope. Unbound http-01 entries of other clients are off
 * limits except to clients that may answer for any name.
 */
bool auth_may_touch(const struct cfg_client *cl, const struct store_entry *e)
{
	struct ident id;

	if (cl->any || strcmp(e->client, cl->name) == 0)
		return true;
	if (e->ident_len == 0 || ident_parse(e->ident, e->ident_len, &id) != 0)
		return false;
	return auth_allows(cl, &id);
}

bool auth_thumbprint_ok(const struct cfg_client *cl, struct slice thumb)
{
	if (cl->nthumbprints == 0)
		return true;
	for (size_t i = 0; i < cl->nthumbprints; i++)
		if (thumb.len == THUMBPRINT_LEN &&
		    memcmp(cl->thumbprints[i], thumb.ptr, THUMBPRINT_LEN) == 0)
			return true;
	return false;
}
