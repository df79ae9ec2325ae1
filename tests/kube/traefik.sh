#!/usr/bin/env bash
# Traefik for the test cluster's ingress test (docs/kubernetes.md, "Traefik"): built once from the Go module
# proxy into a cache outside the repository, next to the Kubernetes binaries, keyed by version and recipe.
#
#   traefik.sh build   build bin/traefik and the image archive images/traefik.tar unless they are fresh;
#                      the LAST line of stdout is the archive (progress goes to stderr)
#   traefik.sh tools   TRAEFIK_BIN=, TRAEFIK_IMAGE=, TRAEFIK_ARCHIVE= lines (fails unless built)
#
# The build module is tests/kube/traefik (its go.mod says why it is not a plain `go install`). One builder at
# a time: .ci/run starts `build` in the background early; the test's own `build` waits on the cache lock,
# then finds the cache fresh, or builds again (and fails with the build's output) when that build failed.
# Environment: MCP_RUNTIME_KUBE_CACHE (default /var/cache/mcp-runtime), MCP_RUNTIME_GO (default
# /usr/local/go/bin/go).
set -euo pipefail

TRAEFIK_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=build.sh
. "$TRAEFIK_SCRIPT_DIR/build.sh" # go_tool, KUBE_CACHE_ROOT
say() { printf '[traefik] %s\n' "$*" >&2; }
die() { printf '[traefik] error: %s\n' "$*" >&2; exit 1; }

TRAEFIK_VERSION=v3.7.13
TRAEFIK_PUBLISHED=2026-09-04T12:33:51Z # the module's publish time (proxy .info): a reproducible BuildDate
LEGO_VERSION=v5.4.1                    # github.com/go-acme/lego/v5 in Traefik's go.mod
GO_HTTP_AUTH_VERSION=v0.4.0            # github.com/abbot/go-http-auth, the fork's base
TRAEFIK_CACHE="$KUBE_CACHE_ROOT/traefik-$TRAEFIK_VERSION"
TRAEFIK_BIN="$TRAEFIK_CACHE/bin/traefik"
TRAEFIK_ARCHIVE="$TRAEFIK_CACHE/images/traefik.tar"
TRAEFIK_IMAGE="mcp-runtime.local/traefik:$TRAEFIK_VERSION"
# Change the text when a build step below changes, so warm machines rebuild.
TRAEFIK_RECIPE="1: module copies ext, go-http-auth+patch, lego+patch; CGO_ENABLED=0 -trimpath -s -w; oci-image.sh 65532"

traefik_stamp() {
  {
    printf '%s\n' "$TRAEFIK_VERSION" "$LEGO_VERSION" "$GO_HTTP_AUTH_VERSION" "$TRAEFIK_RECIPE" "$TRAEFIK_IMAGE"
    cat "$TRAEFIK_SCRIPT_DIR/oci-image.sh"
    (cd "$TRAEFIK_SCRIPT_DIR/traefik" && find . -type f | LC_ALL=C sort | xargs cat)
  } | sha256sum | cut -d' ' -f1
}

traefik_fresh() {
  [ "$(cat "$TRAEFIK_CACHE/.stamp" 2>/dev/null)" = "$(traefik_stamp)" ] && [ -x "$TRAEFIK_BIN" ] && [ -s "$TRAEFIK_ARCHIVE" ]
}

module_dir() { # module_dir GO MODULE@VERSION: download it (checked against go.sum's database) and print its dir
  (cd "$TRAEFIK_CACHE" && GOTOOLCHAIN=local GOFLAGS= "$1" mod download -json "$2") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# A copy of a module from the module cache, writable, at DEST (a local replace target of the build module).
copy_module() { # copy_module GO MODULE@VERSION DEST
  local dir; dir="$(module_dir "$1" "$2")"
  [ -n "$dir" ] && [ -d "$dir" ] || die "go mod download $2 failed (output above)"
  cp -r "$dir" "$3" && chmod -R u+w "$3"
}

build_traefik() {
  local go start stamp ver="github.com/traefik/traefik/v3/pkg/version"
  go="$(go_tool)"
  stamp="$(traefik_stamp)"
  mkdir -p "$TRAEFIK_CACHE"
  rm -rf "$TRAEFIK_CACHE"/.build.?????? # an interrupted build's (we hold the lock: none is in use)
  tmp="$(mktemp -d "$TRAEFIK_CACHE/.build.XXXXXX")"
  start=$(date +%s)
  say "building Traefik $TRAEFIK_VERSION from the Go module proxy: several minutes of CPU on a cold machine"
  cp -r "$TRAEFIK_SCRIPT_DIR/traefik/go.mod" "$TRAEFIK_SCRIPT_DIR/traefik/go.sum" "$TRAEFIK_SCRIPT_DIR/traefik/ext" "$tmp/"
  copy_module "$go" "github.com/abbot/go-http-auth@$GO_HTTP_AUTH_VERSION" "$tmp/go-http-auth"
  printf 'module github.com/abbot/go-http-auth\n\ngo 1.21\n' >"$tmp/go-http-auth/go.mod" # v0.4.0 predates modules
  cp "$TRAEFIK_SCRIPT_DIR/traefik/patch/go_http_auth_fork.go" "$tmp/go-http-auth/"
  copy_module "$go" "github.com/go-acme/lego/v5@$LEGO_VERSION" "$tmp/lego"
  cp "$TRAEFIK_SCRIPT_DIR/traefik/patch/lego_dns_providers.go" "$tmp/lego/providers/dns/zz_gen_dns_providers.go"
  # As Traefik's Makefile builds its release binary (static, stripped, version stamped).
  (cd "$tmp" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0 "$go" build -trimpath \
    -ldflags "-s -w -X $ver.Version=$TRAEFIK_VERSION -X $ver.Codename=cheddar -X $ver.BuildDate=$TRAEFIK_PUBLISHED" \
    -o "$tmp/traefik" github.com/traefik/traefik/v3/cmd/traefik) \
    || { rm -rf "$tmp"; die "building Traefik $TRAEFIK_VERSION failed (output above)"; }
  say "Traefik $TRAEFIK_VERSION built in $(( $(date +%s) - start ))s ($(stat -c %s "$tmp/traefik") bytes)"
  mkdir -p "$TRAEFIK_CACHE/bin" "$TRAEFIK_CACHE/images"
  mv -f "$tmp/traefik" "$TRAEFIK_BIN"
  rm -rf "$tmp"
  start=$(date +%s)
  # Static binary, one layer, user 65532: what render_traefik's Deployment runs (non-root, read-only root).
  "$TRAEFIK_SCRIPT_DIR/oci-image.sh" "$TRAEFIK_ARCHIVE" "$TRAEFIK_IMAGE" /traefik "$TRAEFIK_BIN:/traefik"
  say "image archive $TRAEFIK_ARCHIVE ($TRAEFIK_IMAGE) made in $(( $(date +%s) - start ))s"
  printf '%s\n' "$stamp" >"$TRAEFIK_CACHE/.stamp"
}

traefik_build() {
  mkdir -p "$TRAEFIK_CACHE"
  exec {lock}>"$TRAEFIK_CACHE/.build.lock"
  flock "$lock"
  traefik_fresh || build_traefik
  flock -u "$lock"
  exec {lock}>&-
}

traefik_tools() {
  traefik_fresh || die "Traefik $TRAEFIK_VERSION is not built in $TRAEFIK_CACHE: run '$0 build'"
  printf 'TRAEFIK_BIN=%s\nTRAEFIK_IMAGE=%s\nTRAEFIK_ARCHIVE=%s\n' "$TRAEFIK_BIN" "$TRAEFIK_IMAGE" "$TRAEFIK_ARCHIVE"
}

case "${1:-}" in
  build) traefik_build; printf '%s\n' "$TRAEFIK_ARCHIVE" ;;
  tools) traefik_tools ;;
  *) echo "usage: $0 build | tools" >&2; exit 2 ;;
esac
