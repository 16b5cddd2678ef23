# Shared by the acme-edge hook scripts (certbot-auth.sh, certbot-cleanup.sh,
# dehydrated.sh); sourced, never run. POSIX sh and curl only.
#
# Settings, each from the environment first, else from the hook config file:
#   ACME_EDGE_API    the solver API (default http://127.0.0.1:8555)
#   ACME_EDGE_TOKEN  the bearer token of this ACME client (required)
#   ACME_EDGE_TTL    optional TTL of each challenge, seconds (the API's
#                    default_ttl otherwise)
#   ACME_EDGE_CURL_OPTS  optional extra curl options, e.g. "--cacert /x.pem"
# The config file is ACME_EDGE_HOOK_CONFIG (default /etc/acme-edge/hook.conf):
# KEY=VALUE lines, '#' comments, values optionally in '' or "" quotes. It is
# parsed, never executed, and it must not be world-readable.
#
# Success is silent (certbot reports any stderr output as "ran with error
# output"); a failure prints one line with the API's JSON error on stderr and
# exits non-zero. The token is never printed and never put on a command line
# (curl reads it from its stdin), so it does not show in `ps` either.

ae_prog=${0##*/}

ae_die() {
	printf '%s: %s\n' "$ae_prog" "$*" >&2
	exit 1
}

# ae_conf_get KEY FILE: the value of KEY in FILE, or nothing.
ae_conf_get() {
	ae_v=$(sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$2" | tail -n 1)
	ae_v=$(printf '%s' "$ae_v" | sed -e 's/[[:space:]]*$//')
	case $ae_v in
	\"*\") ae_v=${ae_v#\"}; ae_v=${ae_v%\"} ;;
	\'*\') ae_v=${ae_v#\'}; ae_v=${ae_v%\'} ;;
	esac
	printf '%s' "$ae_v"
}

ae_load_config() {
	ae_conf=${ACME_EDGE_HOOK_CONFIG:-/etc/acme-edge/hook.conf}
	if [ -e "$ae_conf" ]; then
		[ -r "$ae_conf" ] || ae_die "cannot read $ae_conf"
		ae_perm=$(ls -ld -- "$ae_conf") || ae_die "cannot stat $ae_conf"
		case $ae_perm in
		???????r*) ae_die "$ae_conf is world-readable; it holds a bearer token: chmod 600 (or 640 with a group) it first" ;;
		esac
		[ -n "${ACME_EDGE_API:-}" ] || ACME_EDGE_API=$(ae_conf_get ACME_EDGE_API "$ae_conf")
		[ -n "${ACME_EDGE_TOKEN:-}" ] || ACME_EDGE_TOKEN=$(ae_conf_get ACME_EDGE_TOKEN "$ae_conf")
		[ -n "${ACME_EDGE_TTL:-}" ] || ACME_EDGE_TTL=$(ae_conf_get ACME_EDGE_TTL "$ae_conf")
		[ -n "${ACME_EDGE_CURL_OPTS:-}" ] || ACME_EDGE_CURL_OPTS=$(ae_conf_get ACME_EDGE_CURL_OPTS "$ae_conf")
	elif [ -n "${ACME_EDGE_HOOK_CONFIG:-}" ]; then
		ae_die "ACME_EDGE_HOOK_CONFIG=$ae_conf does not exist"
	fi
	ACME_EDGE_API=${ACME_EDGE_API:-http://127.0.0.1:8555}
	ACME_EDGE_API=${ACME_EDGE_API%/}
	[ -n "${ACME_EDGE_TOKEN:-}" ] ||
		ae_die "no token: set ACME_EDGE_TOKEN in the environment or in $ae_conf"
	# The token goes into a curl config line between double quotes.
	case $ACME_EDGE_TOKEN in
	*[!A-Za-z0-9._~+/=-]*) ae_die "ACME_EDGE_TOKEN has characters a bearer token cannot have (not shown)" ;;
	esac
	case ${ACME_EDGE_TTL:-} in
	'') ;;
	*[!0-9]*) ae_die "ACME_EDGE_TTL must be a number of seconds, not '$ACME_EDGE_TTL'" ;;
	esac
	command -v curl >/dev/null 2>&1 || ae_die "curl is not installed"
}

# ae_check_word WHAT VALUE: refuses what cannot go into a URL path unescaped.
# ACME tokens are base64url; identifiers DNS names or IP addresses.
ae_check_word() {
	case $2 in
	'' | *[!A-Za-z0-9._:-]*) ae_die "$1 '$2' is not a valid ACME $1" ;;
	esac
}

# ae_call WHAT METHOD PATH [BODY [CONTENT-TYPE]]: one API call. Sets
# ae_status to the HTTP status and ae_body to the answer. Dies when curl
# cannot reach the API at all. ae_base, when set, is the URL PATH goes
# under instead of ACME_EDGE_API, and ae_resolve a curl --resolve entry
# (rest-responder.sh: the gateway's port 80, with the name as Host).
ae_call() {
	ae_what=$1 ae_method=$2 ae_url=${ae_base:-$ACME_EDGE_API}$3
	# A private directory: no predictable names in a shared /tmp.
	ae_tmpd=$(mktemp -d) || ae_die "mktemp -d failed"
	ae_tmp=$ae_tmpd/body
	# Transient failures (connection refused while the gateway restarts a
	# child, 5xx, timeouts) are retried; PUT and DELETE are idempotent.
	# shellcheck disable=SC2086
	if [ $# -ge 4 ]; then
		# From a file: a body starting with '@' must not name a file to curl.
		printf '%s' "$4" >"$ae_tmpd/request" || ae_die "cannot write $ae_tmpd/request"
		ae_status=$(printf 'header = "Authorization: Bearer %s"\n' "$ACME_EDGE_TOKEN" |
			curl -K - -sS -o "$ae_tmp" -w '%{http_code}' \
				--connect-timeout 5 --max-time 30 \
				--retry 3 --retry-delay 1 --retry-connrefused --retry-max-time 30 \
				${ACME_EDGE_CURL_OPTS:-} ${ae_resolve:+--resolve "$ae_resolve"} \
				-X "$ae_method" -H "Content-Type: ${5:-text/plain}" \
				--data-binary "@$ae_tmpd/request" "$ae_url" 2>"$ae_tmp.err")
	else
		ae_status=$(printf 'header = "Authorization: Bearer %s"\n' "$ACME_EDGE_TOKEN" |
			curl -K - -sS -o "$ae_tmp" -w '%{http_code}' \
				--connect-timeout 5 --max-time 30 \
				--retry 3 --retry-delay 1 --retry-connrefused --retry-max-time 30 \
				${ACME_EDGE_CURL_OPTS:-} ${ae_resolve:+--resolve "$ae_resolve"} \
				-X "$ae_method" "$ae_url" 2>"$ae_tmp.err")
	fi
	ae_rc=$?
	ae_body=$(cat "$ae_tmp" 2>/dev/null)
	ae_cerr=$(cat "$ae_tmp.err" 2>/dev/null)
	rm -rf "$ae_tmpd"
	if [ "$ae_rc" -ne 0 ]; then
		ae_die "$ae_what: $ae_method $ae_url: curl failed (exit $ae_rc): $ae_cerr"
	fi
}

# ae_fail: the API answered with an error; print it and exit 1.
ae_fail() {
	ae_die "$ae_what: $ae_method $ae_url: HTTP $ae_status: ${ae_body:-(no body)}"
}

ae_ttl_query() {
	[ -n "${ACME_EDGE_TTL:-}" ] && printf '%sttl=%s' "$1" "$ACME_EDGE_TTL"
}

# ae_put_http01 IDENTIFIER TOKEN KEYAUTH
ae_put_http01() {
	ae_check_word identifier "$1"
	ae_check_word token "$2"
	ae_call "http-01 for $1" PUT "/v1/http-01/$2?identifier=$1$(ae_ttl_query '&')" "$3"
	case $ae_status in 200 | 201) ;; *) ae_fail ;; esac
}

# ae_delete_http01 TOKEN: absent already (expired, swept) counts as done.
ae_delete_http01() {
	ae_check_word token "$1"
	ae_call "http-01 cleanup" DELETE "/v1/http-01/$1"
	case $ae_status in 204 | 404) ;; *) ae_fail ;; esac
}

# ae_put_tlsalpn01_digest IDENTIFIER DIGEST: DIGEST is SHA-256 of the key
# authorization in hex, colons allowed (what dehydrated passes).
ae_put_tlsalpn01_digest() {
	ae_check_word identifier "$1"
	case $2 in
	*[!0-9A-Fa-f:]*) ae_die "tls-alpn-01 for $1: '$2' is not a hex SHA-256 digest" ;;
	esac
	if [ -n "${ACME_EDGE_TTL:-}" ]; then
		ae_json=$(printf '{"digest":"%s","ttl":%s}' "$2" "$ACME_EDGE_TTL")
	else
		ae_json=$(printf '{"digest":"%s"}' "$2")
	fi
	ae_call "tls-alpn-01 for $1" PUT "/v1/tls-alpn-01/$1" "$ae_json" application/json
	case $ae_status in 200 | 201) ;; *) ae_fail ;; esac
}

ae_delete_tlsalpn01() {
	ae_check_word identifier "$1"
	ae_call "tls-alpn-01 cleanup for $1" DELETE "/v1/tls-alpn-01/$1"
	case $ae_status in 204 | 404) ;; *) ae_fail ;; esac
}

# Where the sourcing script lives, for finding this file: scripts do
#   . "$(dirname "$(readlink -f "$0")")/acme-edge-hook.lib.sh"
