#!/usr/bin/env bash
# Node 22 and the MCP Inspector CLI for the adapter tests, installed from npm into .ci/node22/
# (gitignored). Idempotent: a second run with everything present does nothing. Prints the path
# of the node 22 binary on its last line; tests look for it at .ci/node22/node_modules/node/bin/node
# and for the Inspector launcher at .ci/node22/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js.
set -euo pipefail
cd "$(dirname "$0")"
dir="$PWD/node22"
node_bin="$dir/node_modules/node/bin/node"
inspector="$dir/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
INSPECTOR_VERSION="${MCP_INSPECTOR_VERSION:-2.12.0}"
if [ ! -x "$node_bin" ] || ! "$node_bin" --version | grep -q '^v22\.' || [ ! -f "$inspector" ]; then
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name": "mcp-runtime-ci-node22", "private": true}' > "$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
    "node@22" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2
fi
"$node_bin" --version >&2
echo "$node_bin"
