#!/usr/bin/env bash
# Runs the browser tests of the web UI: installs what is missing (system Chromium,
# playwright-core), builds the server binary, and runs the tests with node's runner.
# Screenshots and server logs land in target/browser-artifacts/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "installing chromium (Debian package)" >&2
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y chromium
fi

if ! command -v node >/dev/null; then
  echo "node (>= 20) is required" >&2
  exit 1
fi

cd "$here"
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # The browser comes from the system: never let playwright download one.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

if [ -z "${CHATBOX_BIN:-}" ]; then
  (cd "$root" && cargo build -p chat-server)
fi

mkdir -p "$root/target/browser-artifacts"
rm -f "$root"/target/browser-artifacts/server-*.log # logs of this run only
exec node --test --test-concurrency=1 --test-reporter=spec "$here"/*.test.mjs
