#!/bin/sh
# dehydrated HOOK for http-01 and tls-alpn-01 through the acme-edge solver
# API. In dehydrated's config:
#
#   CHALLENGETYPE="tls-alpn-01"          # or "http-01"
#   HOOK=/usr/share/acme-edge/hooks/dehydrated.sh
#   HOOK_CHAIN="no"                      # "yes" works too
#
# dehydrated calls it as
#   deploy_challenge DOMAIN TOKEN ARG [DOMAIN TOKEN ARG ...]
#   clean_challenge  DOMAIN TOKEN ARG [...]
# where ARG is the key authorization for http-01 and, for tls-alpn-01, the
# SHA-256 of the key authorization as colon-separated hex (dehydrated does
# not pass the key authorization itself), which the API takes as
# {"digest": ARG} and builds the RFC 8737 certificate from. Every other
# event (deploy_cert, generate_csr, startup_hook, ...) is ignored: exit 0,
# no output.
#
# Settings (environment, else ACME_EDGE_HOOK_CONFIG, default
# /etc/acme-edge/hook.conf): ACME_EDGE_API, ACME_EDGE_TOKEN, ACME_EDGE_TTL,
# ACME_EDGE_CURL_OPTS. See README.md next to this file.

event=${1:-}
case $event in
deploy_challenge | clean_challenge) ;;
*) exit 0 ;;
esac
shift

. "$(dirname "$(readlink -f "$0")")/acme-edge-hook.lib.sh" || exit 1

# The kind: dehydrated exports CHALLENGETYPE when it signs; otherwise (an
# older dehydrated, or a call by hand) tell it from the third argument.
kind_of() {
	case ${CHALLENGETYPE:-} in
	http-01 | tls-alpn-01) printf '%s' "$CHALLENGETYPE"; return ;;
	dns-01) ae_die "CHALLENGETYPE=dns-01: acme-edge answers http-01 and tls-alpn-01 only" ;;
	esac
	case $1 in
	*.*) printf http-01 ;;
	*:*) printf tls-alpn-01 ;;
	*) ae_die "cannot tell the challenge kind from '$1'; set CHALLENGETYPE" ;;
	esac
}

if [ $# -lt 3 ] || [ $(($# % 3)) -ne 0 ]; then
	ae_die "$event: expected DOMAIN TOKEN ARG triples, got $# argument(s)"
fi
ae_load_config
while [ $# -ge 3 ]; do
	domain=$1 token=$2 arg=$3
	shift 3
	kind=$(kind_of "$arg") || exit 1
	case $event.$kind in
	deploy_challenge.http-01) ae_put_http01 "$domain" "$token" "$arg" ;;
	deploy_challenge.tls-alpn-01) ae_put_tlsalpn01_digest "$domain" "$arg" ;;
	clean_challenge.http-01) ae_delete_http01 "$token" ;;
	clean_challenge.tls-alpn-01) ae_delete_tlsalpn01 "$domain" ;;
	esac
done
exit 0
