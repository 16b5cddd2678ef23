#!/usr/bin/env bash
# Installs the dependencies, builds acme-edge in Release and starts it in
# the foreground on the example config (deploy/acme-edge.conf). Run as
# root: the API and the proxy drop root once their ports are bound, each to
# a system user of its own ([api] user, [proxy] user), made here when absent.
# Those users read the config again on SIGHUP, so it is run from
# /etc/acme-edge/acme-edge.conf (the example, copied there when absent),
# not from a checkout they may not be allowed to read.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
for user in acme-edge-api acme-edge-proxy; do
	id -u "$user" >/dev/null 2>&1 ||
		useradd --system --user-group --no-create-home \
			--shell /usr/sbin/nologin "$user"
done
cmake --preset release -S "$top" >/dev/null
cmake --build "$top/build/release" -j"$(nproc)"
conf=${1:-/etc/acme-edge/acme-edge.conf}
if [ "$#" -eq 0 ] && [ ! -e "$conf" ]; then
	install -d -m 0755 /etc/acme-edge
	install -m 0644 "$top/deploy/acme-edge.conf" "$conf"
	echo "quickstart: copied the example config to $conf"
fi
exec "$top/build/release/acme-edge" run -c "$conf"
