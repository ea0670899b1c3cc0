#!/bin/sh
# Installs axe-core (accessibility rules engine) for tests/browser into a cache folder.
# Usage: scripts/install-axe.sh [DIR]   (default: .cache/axe, or $CONSENTMW_AXE_DIR)
set -eu
dir="${1:-${CONSENTMW_AXE_DIR:-$(dirname "$0")/../.cache/axe}}"
mkdir -p "$dir"
if [ ! -f "$dir/node_modules/axe-core/axe.min.js" ]; then
  npm install --no-audit --no-fund --silent --prefix "$dir" axe-core@4 >&2
fi
echo "$dir/node_modules/axe-core/axe.min.js"
