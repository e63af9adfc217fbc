#!/usr/bin/env bash
# Set-up for a fresh Debian machine: Node dependencies (from the lock file), the build, and the
# local services that `kiln run` and the tests use (dockerd, a registry on 127.0.0.1:5000, Redis
# on 127.0.0.1:6379, locally built base images: see scripts/services.sh).
# Idempotent: run it again after pulling.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  echo "setup: Node.js 20 or newer is needed (apt-get install nodejs npm, or the NodeSource packages)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
if [ "$(id -u)" = 0 ]; then
  bash scripts/services.sh
else
  echo "setup: not root, so the services were not started; run: sudo bash scripts/services.sh" >&2
fi
echo "setup: ready. Try: npx kiln run -f examples/hello-world/acb.yaml"
