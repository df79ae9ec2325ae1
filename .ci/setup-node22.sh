#!/usr/bin/env bash
# Node 22 and the MCP Inspector CLI for the adapter tests, installed from npm into .ci/node22/
# (gitignored). Needs only some npm (Debian's is fine). Idempotent: with everything in place it
# does nothing. Prints the path of the node 22 binary on its last line; the tests also look for
# it at .ci/node22/node_modules/node/bin/node and for the Inspector launcher at
# .ci/node22/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js.
set -euo pipefail
cd "$(dirname "$0")"
dir="$PWD/node22"
node_bin="$dir/node_modules/node/bin/node"
inspector="$dir/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
INSPECTOR_VERSION="${MCP_INSPECTOR_VERSION:-2.12.0}"
npm_install() { npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$@" >&2; }

mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "mcp-runtime-ci-node22", "private": true}' > "$dir/package.json"
if [ ! -x "$node_bin" ] || ! "$node_bin" --version | grep -q '^v22\.'; then
  npm_install "node@22"
fi
if [ ! -f "$inspector" ]; then
  # the Inspector's install scripts need Node >= 22: run them with the one just installed
  PATH="$(dirname "$node_bin"):$PATH" npm_install "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
fi
"$node_bin" --version >&2
echo "$node_bin"
