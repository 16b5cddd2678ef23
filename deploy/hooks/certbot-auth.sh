#!/bin/sh
# certbot --manual-auth-hook for http-01: pushes the key authorization for
# CERTBOT_TOKEN to the acme-edge solver API, bound to CERTBOT_DOMAIN, so the
# gateway answers the CA's request for that name (and only that name).
#
#   certbot certonly --manual --preferred-challenges http \
#     --manual-auth-hook /usr/share/acme-edge/hooks/certbot-auth.sh \
#     --manual-cleanup-hook /usr/share/acme-edge/hooks/certbot-cleanup.sh \
#     -d www.example.com
#
# Settings (environment, else ACME_EDGE_HOOK_CONFIG, default
# /etc/acme-edge/hook.conf): ACME_EDGE_API, ACME_EDGE_TOKEN, ACME_EDGE_TTL,
# ACME_EDGE_CURL_OPTS. See README.md next to this file.
. "$(dirname "$(readlink -f "$0")")/acme-edge-hook.lib.sh" || exit 1

[ -n "${CERTBOT_DOMAIN:-}" ] || ae_die "CERTBOT_DOMAIN is not set: run me as certbot's --manual-auth-hook"
[ -n "${CERTBOT_TOKEN:-}" ] ||
	ae_die "CERTBOT_TOKEN is empty: this hook serves http-01 only (use --preferred-challenges http)"
[ -n "${CERTBOT_VALIDATION:-}" ] || ae_die "CERTBOT_VALIDATION is not set"
ae_load_config
ae_put_http01 "$CERTBOT_DOMAIN" "$CERTBOT_TOKEN" "$CERTBOT_VALIDATION"
exit 0
