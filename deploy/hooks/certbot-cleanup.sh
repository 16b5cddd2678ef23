#!/bin/sh
# certbot --manual-cleanup-hook for http-01: removes the challenge that
# certbot-auth.sh pushed for CERTBOT_TOKEN. One already gone (expired) is not
# an error. Settings as certbot-auth.sh; see README.md next to this file.
. "$(dirname "$(readlink -f "$0")")/acme-edge-hook.lib.sh" || exit 1

[ -n "${CERTBOT_TOKEN:-}" ] ||
	ae_die "CERTBOT_TOKEN is empty: this hook serves http-01 only (use --preferred-challenges http)"
ae_load_config
ae_delete_http01 "$CERTBOT_TOKEN"
exit 0
