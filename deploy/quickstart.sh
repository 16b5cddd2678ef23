#!/usr/bin/env bash
# Installs the dependencies, builds acme-edge in Release and starts it in
# the foreground on the example config (deploy/acme-edge.conf).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
cmake --preset release -S "$top" >/dev/null
cmake --build "$top/build/release" -j"$(nproc)"
exec "$top/build/release/acme-edge" run -c "${1:-$top/deploy/acme-edge.conf}"
