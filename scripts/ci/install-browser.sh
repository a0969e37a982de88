#!/usr/bin/env bash
# Installs what the browser tests (`cargo test -- --ignored browser`) need:
#   - Chromium: Debian's `chromium` package, when /usr/bin/chromium (or
#     $CHROMIUM) is missing (apt-get; needs root, as in CI);
#   - playwright-core (npm), pinned, under $KV_PEERS_DIR (default:
#     target/peers), which drives that Chromium. Playwright's own browser
#     download is not used.
# Fails loudly when either cannot be installed: the tests never skip.
set -euo pipefail

cd "$(dirname "$0")/../.."
PEERS="${KV_PEERS_DIR:-target/peers}"
PLAYWRIGHT_VERSION="${KV_PLAYWRIGHT_VERSION:-1.65.1}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
  if ! command -v apt-get >/dev/null; then
    echo "Chromium is missing at $CHROMIUM and apt-get is not available to install it" >&2
    exit 1
  fi
  echo "installing Debian's chromium package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
"$CHROMIUM" --version >&2

mkdir -p "$PEERS"
if ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" \
     "$PEERS/node_modules/playwright-core/package.json" 2>/dev/null; then
  echo "installing playwright-core@$PLAYWRIGHT_VERSION into $PEERS" >&2
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing, but
  # say so in case a future version tries.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
    --prefix "$PEERS" "playwright-core@$PLAYWRIGHT_VERSION" >&2
fi
echo "browser test peers ready: $CHROMIUM, $PEERS/node_modules/playwright-core" >&2
