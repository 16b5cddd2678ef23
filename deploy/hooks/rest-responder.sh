#!/bin/sh
# Speaks the gateway's REST responder (README, "The proxy") the way
# simple-acme's REST validation does, for any ACME client with a
# per-challenge hook that can reach the gateway's port 80 but not its
# solver API, and for testing a REST responder set-up by hand:
#
#   rest-responder.sh put    IDENTIFIER TOKEN KEY_AUTHORIZATION
#   rest-responder.sh delete IDENTIFIER TOKEN
#
# sends PUT (or DELETE) http://IDENTIFIER/.well-known/acme-challenge/TOKEN
# with Authorization: Bearer ACME_EDGE_TOKEN (a client with
# rest_responder = yes). The connection goes to IDENTIFIER's address, or,
# when ACME_EDGE_GATEWAY_ADDR is set (an IPv4 address, or an IPv6 one in
# brackets), to that address with IDENTIFIER as Host: the hosts-file trick
# without the hosts file. ACME_EDGE_GATEWAY_PORT (default 80) is for a
# gateway tried on another port. Over port 80 the token crosses the network
# in clear: keep that network private.
#
# Settings (environment, else ACME_EDGE_HOOK_CONFIG, default
# /etc/acme-edge/hook.conf): ACME_EDGE_TOKEN, ACME_EDGE_GATEWAY_ADDR,
# ACME_EDGE_GATEWAY_PORT, ACME_EDGE_CURL_OPTS. Silent on success; a refusal prints the gateway's
# JSON error and exits 1. A DELETE of what is gone already succeeds.
. "$(dirname "$(readlink -f "$0")")/acme-edge-hook.lib.sh" || exit 1

[ $# -ge 3 ] || ae_die "usage: $ae_prog put|delete IDENTIFIER TOKEN [KEY_AUTHORIZATION]"
ae_load_config
for ae_key in ACME_EDGE_GATEWAY_ADDR ACME_EDGE_GATEWAY_PORT; do
	eval "ae_val=\${$ae_key:-}"
	if [ -z "$ae_val" ] && [ -e "$ae_conf" ]; then
		eval "$ae_key=\$(ae_conf_get $ae_key \"\$ae_conf\")"
	fi
done
ae_port=${ACME_EDGE_GATEWAY_PORT:-80}
case $ae_port in
'' | *[!0-9]*) ae_die "ACME_EDGE_GATEWAY_PORT '$ae_port' is not a port" ;;
esac
ae_check_word identifier "$2"
ae_check_word token "$3"
ae_base=http://$2:$ae_port
case ${ACME_EDGE_GATEWAY_ADDR:-} in
'') ;;
*[!0-9A-Fa-f.:[\]]*) ae_die "ACME_EDGE_GATEWAY_ADDR '$ACME_EDGE_GATEWAY_ADDR' is not an IP address" ;;
*) ae_resolve=$2:$ae_port:$ACME_EDGE_GATEWAY_ADDR ;;
esac
case $1 in
put)
	[ $# -eq 4 ] || ae_die "put needs the key authorization"
	ae_call "REST PUT for $2" PUT "/.well-known/acme-challenge/$3" "$4" \
		"text/plain; charset=utf-8"
	case $ae_status in 201) ;; *) ae_fail ;; esac
	;;
delete)
	ae_call "REST DELETE for $2" DELETE "/.well-known/acme-challenge/$3"
	case $ae_status in 204 | 404) ;; *) ae_fail ;; esac
	;;
*) ae_die "usage: $ae_prog put|delete IDENTIFIER TOKEN [KEY_AUTHORIZATION]" ;;
esac
exit 0
