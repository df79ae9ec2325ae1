#!/usr/bin/env bash
# Build the test cluster's binaries once into a cache outside the repository (docs/kubernetes.md, "The test
# cluster"). Usage: build.sh [control|node|all]   (default all; prints the bin directory as its last line)
#
#   control: bin/kube (multi-call: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#            kube-proxy, kubectl), bin/helm, bin/kube-testserver; one `go build` of tests/kube/gomod.
#   node:    bin/containerd, bin/ctr, bin/containerd-shim-runc-v2, bin/runc, bin/pause, and the OCI
#            archives images/pause.tar and images/kube-testserver.tar (tier 2: pods).
#
# Each part is rebuilt only when its inputs change (a sha256 stamp per part), so a warm machine skips it.
# Environment: MCP_RUNTIME_KUBE_CACHE (default /var/cache/mcp-runtime), MCP_RUNTIME_GO (default
# /usr/local/go/bin/go; Debian's golang-go is too old for Kubernetes 1.37).
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
HELM_VERSION=v4.3.2
CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.3
PAUSE_VERSION=3.10.2 # build/pause/Makefile TAG in k8s.io/kubernetes v1.37.2
GO_MIN=1.26.6        # the newest `go` line among the modules built (containerd v2.4.2)

KUBE_SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBE_CACHE_ROOT="${MCP_RUNTIME_KUBE_CACHE:-/var/cache/mcp-runtime}"
KUBE_CACHE="$KUBE_CACHE_ROOT/kube-$KUBE_VERSION"
KUBE_BIN="$KUBE_CACHE/bin"
KUBE_IMAGES="$KUBE_CACHE/images"
PAUSE_IMAGE="mcp-runtime.local/pause:$PAUSE_VERSION"
TESTSERVER_IMAGE="mcp-runtime.local/kube-testserver:$KUBE_VERSION"

say() { printf '[kube] %s\n' "$*" >&2; }
die() {
  printf '[kube] error: %s\n' "$*" >&2
  # cluster.sh shows the cause of a failed tier-2 start in `status`.
  if [ -n "${KUBE_DIR:-}" ] && [ -d "$KUBE_DIR" ]; then printf '%s\n' "$*" >"$KUBE_DIR/last-error"; fi
  exit 1
}

# The Go toolchain: /usr/local/go (or MCP_RUNTIME_GO), never a silent download of another toolchain.
go_tool() {
  local go="${MCP_RUNTIME_GO:-/usr/local/go/bin/go}" have
  [ -x "$go" ] || die "no Go toolchain at $go: install Go >= $GO_MIN there or set MCP_RUNTIME_GO"
  have="$(GOTOOLCHAIN=local "$go" env GOVERSION)"
  have="${have#go}"
  if [ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -n1)" != "$GO_MIN" ]; then
    die "$go is go$have; building Kubernetes $KUBE_VERSION and containerd $CONTAINERD_VERSION needs Go >= $GO_MIN (Debian's golang-go is too old: use /usr/local/go/bin/go or set MCP_RUNTIME_GO)"
  fi
  printf '%s\n' "$go"
}

# What else decides a part's binaries besides the versions and tests/kube/gomod: change the text when a build
# step below changes, so warm machines rebuild (edits elsewhere in this script do not trigger a rebuild).
CONTROL_RECIPE="1: CGO_ENABLED=0 go build -trimpath -ldflags=k8s_ldflags; kube + kube-testserver + helm"
NODE_RECIPE="1: containerd CGO_ENABLED=0 -trimpath -s -w; runc cgo -tags seccomp; pause gcc -Os -static; OCI images"

# sha256 over everything that decides a part's output.
stamp_of() {
  local part="$1"
  {
    printf '%s\n' "$part" "$KUBE_VERSION" "$ETCD_VERSION" "$HELM_VERSION" "$CONTAINERD_VERSION" "$RUNC_VERSION" \
      "$PAUSE_VERSION" "$(k8s_ldflags)"
    if [ "$part" = control ]; then printf '%s\n' "$CONTROL_RECIPE"
    else printf '%s\n' "$NODE_RECIPE" "$PAUSE_IMAGE" "$TESTSERVER_IMAGE"; cat "$KUBE_SRC_DIR/oci-image.sh"; fi
    (cd "$KUBE_SRC_DIR/gomod" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) | LC_ALL=C sort | xargs cat)
  } | sha256sum | cut -d' ' -f1
}

fresh() { # fresh PART FILE...: the stamp matches and every file is there
  local part="$1"; shift
  [ "$(cat "$KUBE_BIN/.stamp-$part" 2>/dev/null)" = "$(stamp_of "$part")" ] || return 1
  local f; for f in "$@"; do [ -e "$f" ] || return 1; done
}

k8s_ldflags() {
  local date="2026-10-27T12:01:04Z" # the module's publish time (proxy .info), for a reproducible binary
  local v pkg out="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    v="-X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=37 -X $pkg.gitTreeState=clean"
    out="$out $v -X $pkg.buildDate=$date"
  done
  printf '%s -X helm.sh/helm/v4/internal/version.version=%s -X helm.sh/helm/v4/internal/version.gitTreeState=clean' \
    "$out" "$HELM_VERSION"
}

go_build_control() { # go_build_control GO OUTDIR
  (cd "$KUBE_SRC_DIR/gomod" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0 \
    "$1" build -trimpath -ldflags "$(k8s_ldflags)" -o "$2/" . ./kube-testserver helm.sh/helm/v4/cmd/helm)
}

build_control() {
  local names=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  if fresh control "$KUBE_BIN/kube" "$KUBE_BIN/helm" "$KUBE_BIN/kube-testserver"; then return 0; fi
  local go tmp start stamp
  go="$(go_tool)"
  stamp="$(stamp_of control)" # of the sources as built, not as they may be after an edit during the build
  tmp="$(mktemp -d "$KUBE_CACHE/.build.XXXXXX")"
  start=$(date +%s)
  say "building Kubernetes $KUBE_VERSION (one multi-call binary), etcd $ETCD_VERSION, helm $HELM_VERSION: about 25 min of CPU on a cold machine"
  # One invocation for all three main packages: they share compiled packages, and the Kubernetes commands share
  # one link. CGO off as in upstream's release builds (static binaries).
  if ! go_build_control "$go" "$tmp" 2>"$tmp/build.err"; then
    cat "$tmp/build.err" >&2
    # "could not import io (open : no such file or directory)": the build cache holds an entry whose output
    # file is gone (a concurrent `go clean -cache`, a failed write on a full disk; golang/go#69179). The
    # packages compiled so far stay cached, so one more attempt, without the module index cache, is cheap.
    grep -q 'could not import .*(open : no such file or directory)' "$tmp/build.err" \
      || { rm -rf "$tmp"; die "go build in $KUBE_SRC_DIR/gomod failed (output above)"; }
    say "the Go build cache lost an entry (above): building once more with GODEBUG=goindex=0"
    GODEBUG=goindex=0 go_build_control "$go" "$tmp" \
      || { rm -rf "$tmp"; die "go build in $KUBE_SRC_DIR/gomod failed twice (output above); if it names a missing cache file, run 'go clean -cache' and retry"; }
  fi
  mkdir -p "$KUBE_BIN"
  mv -f "$tmp/kube" "$tmp/helm" "$tmp/kube-testserver" "$KUBE_BIN/"
  rm -rf "$tmp"
  local n; for n in "${names[@]}"; do ln -sfn kube "$KUBE_BIN/$n"; done
  printf '%s\n' "$stamp" >"$KUBE_BIN/.stamp-control"
  say "control-plane binaries built in $(( $(date +%s) - start ))s"
}

build_node() {
  if fresh node "$KUBE_BIN/containerd" "$KUBE_BIN/ctr" "$KUBE_BIN/containerd-shim-runc-v2" "$KUBE_BIN/runc" \
    "$KUBE_BIN/pause" "$KUBE_IMAGES/pause.tar" "$KUBE_IMAGES/kube-testserver.tar"; then return 0; fi
  [ -x "$KUBE_BIN/kube-testserver" ] || die "build the control part first (bin/kube-testserver is missing)"
  command -v gcc >/dev/null || die "gcc is needed for runc (cgo) and the pause binary: apt-get install gcc libc6-dev"
  pkg-config --exists libseccomp 2>/dev/null || die "runc is built with seccomp: apt-get install libseccomp-dev pkg-config"
  local go tmp start pause_src stamp
  go="$(go_tool)"
  stamp="$(stamp_of node)"
  tmp="$(mktemp -d "$KUBE_CACHE/.build.XXXXXX")"
  start=$(date +%s)
  say "building containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, pause $PAUSE_VERSION"
  # `go install pkg@version` builds with the module's own go.mod and go.sum (checked against sum.golang.org).
  local cd="github.com/containerd/containerd/v2"
  GOTOOLCHAIN=local GOBIN="$tmp" CGO_ENABLED=0 "$go" install -trimpath \
    -ldflags "-s -w -X $cd/version.Version=$CONTAINERD_VERSION -X $cd/version.Revision=module" \
    "$cd/cmd/containerd@$CONTAINERD_VERSION" "$cd/cmd/ctr@$CONTAINERD_VERSION" \
    "$cd/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    || { rm -rf "$tmp"; die "building containerd $CONTAINERD_VERSION failed (output above)"; }
  # runc needs cgo (its nsenter is C); seccomp as in its Makefile's default BUILDTAGS.
  GOTOOLCHAIN=local GOBIN="$tmp" CGO_ENABLED=1 "$go" install -trimpath -tags seccomp \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION" \
    || { rm -rf "$tmp"; die "building runc $RUNC_VERSION failed (output above)"; }
  # The sandbox image's binary: upstream's pause.c from the k8s.io/kubernetes module, built as its Makefile does.
  pause_src="$(cd "$KUBE_SRC_DIR/gomod" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly "$go" list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-mcp-runtime" -o "$tmp/pause" "$pause_src" \
    || { rm -rf "$tmp"; die "compiling $pause_src failed"; }
  strip "$tmp/pause"
  mkdir -p "$KUBE_BIN" "$KUBE_IMAGES"
  mv -f "$tmp"/containerd "$tmp"/ctr "$tmp"/containerd-shim-runc-v2 "$tmp"/runc "$tmp"/pause "$KUBE_BIN/"
  rm -rf "$tmp"
  OCI_USER=65535:65535 "$KUBE_SRC_DIR/oci-image.sh" "$KUBE_IMAGES/pause.tar" "$PAUSE_IMAGE" /pause "$KUBE_BIN/pause:/pause"
  "$KUBE_SRC_DIR/oci-image.sh" "$KUBE_IMAGES/kube-testserver.tar" "$TESTSERVER_IMAGE" /kube-testserver \
    "$KUBE_BIN/kube-testserver:/kube-testserver"
  printf '%s\n' "$stamp" >"$KUBE_BIN/.stamp-node"
  say "node binaries and images built in $(( $(date +%s) - start ))s"
}

kube_build() { # kube_build control|node|all
  local what="${1:-all}"
  mkdir -p "$KUBE_CACHE"
  # One builder at a time (parallel pytest workers or two terminals); the others wait, then find it fresh.
  exec {lock}>"$KUBE_CACHE/.build.lock"
  flock "$lock"
  rm -rf "$KUBE_CACHE"/.build.?????? # temp dirs of an interrupted build (we hold the lock: none is in use)
  case "$what" in
    control) build_control ;;
    node) build_control; build_node ;;
    all) build_control; build_node ;;
    *) die "unknown part '$what' (control, node or all)" ;;
  esac
  flock -u "$lock"
  exec {lock}>&-
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  kube_build "${1:-all}"
  printf '%s\n' "$KUBE_BIN"
fi
