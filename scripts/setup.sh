#!/usr/bin/env bash
# Set-up for a fresh Debian machine: Node dependencies (from the lock file) and the build.
# Idempotent: run it again after pulling.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  echo "setup: Node.js 20 or newer is needed (apt-get install nodejs npm, or the NodeSource packages)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
echo "setup: ready. Try: npx kiln validate -f examples/hello-world/acb.yaml"
