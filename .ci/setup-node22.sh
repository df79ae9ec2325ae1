#!/usr/bin/env bash
# Node 22 plus the two official MCP test clients, installed from npm into .ci/node22/ (gitignored):
#   - the MCP Inspector CLI (adapter tests), launcher at
#     .ci/node22/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js
#   - the MCP conformance suite (tests/conformance), at
#     .ci/node22/node_modules/@modelcontextprotocol/conformance/dist/index.js
# Node 22 itself is .ci/node22/node_modules/node/bin/node (the system Node may be older; both need 22).
# Idempotent: a second run with everything present at the pinned versions does nothing.
# Prints the path of the node 22 binary on its last line (.ci/run exports it as MCP_RUNTIME_NODE22).
set -euo pipefail
cd "$(dirname "$0")"
dir="$PWD/node22"
node_bin="$dir/node_modules/node/bin/node"
INSPECTOR_VERSION="${MCP_INSPECTOR_VERSION:-2.12.0}"
CONFORMANCE_VERSION="${MCP_CONFORMANCE_VERSION:-0.1.16}"

installed_version() {  # the version of an installed npm package, or nothing
  local manifest="$dir/node_modules/$1/package.json"
  [ -f "$manifest" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$manifest" | head -n1
}
npm_install() { npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$@" >&2; }

if ! command -v npm >/dev/null 2>&1; then  # a machine without Node at all: Debian's npm brings it
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >&2
fi

mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "mcp-runtime-ci-node22", "private": true}' > "$dir/package.json"
if [ ! -x "$node_bin" ] || ! "$node_bin" --version | grep -q '^v22\.'; then
  npm_install "node@22"
fi
if [ "$(installed_version @modelcontextprotocol/inspector)" != "$INSPECTOR_VERSION" ] \
    || [ "$(installed_version @modelcontextprotocol/conformance)" != "$CONFORMANCE_VERSION" ]; then
  # their install scripts need Node >= 22 (Debian's is 18): run them with the one just installed
  PATH="$(dirname "$node_bin"):$PATH" npm_install \
    "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
fi
"$node_bin" --version >&2
echo "$node_bin"
