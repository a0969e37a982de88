#!/usr/bin/env bash
# Installs the third-party MCP peers used by the interop tests (`cargo test -- --ignored interop`):
#   - @modelcontextprotocol/server-everything (npm; TypeScript SDK reference server)
#   - the official MCP Python SDK `mcp` (PyPI), in its own virtualenv
# Everything goes under $KV_PEERS_DIR (default: target/peers), outside the tracked files.
# The tests find them there, or through KV_SERVER_EVERYTHING / KV_PYTHON.
set -euo pipefail

cd "$(dirname "$0")/../.."
PEERS="${KV_PEERS_DIR:-target/peers}"
SERVER_EVERYTHING_VERSION="${KV_SERVER_EVERYTHING_VERSION:-2026.8.31}"
MCP_PY_VERSION="${KV_MCP_PY_VERSION:-2.3.0}"

mkdir -p "$PEERS"

if [ ! -f "$PEERS/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ] \
   || ! grep -q "\"version\": \"$SERVER_EVERYTHING_VERSION\"" \
        "$PEERS/node_modules/@modelcontextprotocol/server-everything/package.json" 2>/dev/null; then
  echo "installing @modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION into $PEERS" >&2
  npm install --silent --no-audit --no-fund --prefix "$PEERS" \
    "@modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION" >&2
fi

PY="${PYTHON:-python3}"
if [ ! -x "$PEERS/venv/bin/python" ]; then
  echo "creating the Python virtualenv $PEERS/venv" >&2
  "$PY" -m venv "$PEERS/venv"
fi
if ! "$PEERS/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_PY_VERSION')" 2>/dev/null; then
  echo "installing mcp==$MCP_PY_VERSION (Python SDK) into $PEERS/venv" >&2
  "$PEERS/venv/bin/python" -m pip install --quiet --disable-pip-version-check "mcp==$MCP_PY_VERSION" >&2
fi

echo "MCP peers ready in $PEERS" >&2
