#!/usr/bin/env bash
# Installs what acme-edge needs from Debian 12's archive: the build
# dependencies, and with --test also what the test suite drives (clang for
# the fuzzers, python3 and the openssl and curl clients, Chromium, its
# WebDriver and Selenium for the status page in a real browser, lintian for
# the Debian package, Redis and its
# Sentinel for the cluster tests: started by the tests themselves, on free
# ports; the packages' own services are not needed; socat, which acme.sh
# wants for its standalone and alpn modes in the clients' end-to-end test;
# strace, which counts the proxy workers' yields).
# Runs apt-get only when something is missing, so a second run is instant.
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config
      libssl-dev libevent-dev liburing-dev libjemalloc-dev libinih-dev
      libjansson-dev libhiredis-dev openssl ca-certificates)
if [ "${1:-}" = "--test" ]; then
	pkgs+=(clang libclang-rt-14-dev python3 python3-pyflakes curl procps
	       pebble certbot dehydrated lego python3-acme python3-josepy
	       python3-cryptography util-linux libseccomp-dev
	       chromium chromium-driver python3-selenium lintian
	       redis-server redis-tools redis-sentinel socat strace)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
