#!/usr/bin/env bash
# Podman for the podman-runtime tests on a fresh Debian 12 machine (root, no systemd, possibly inside a
# container): runc as the OCI runtime (crun fails here), ulimits the runtime may set, and the Debian +
# Python base image built with mmdebstrap (no image registry is reachable) - cached in podman's storage,
# built only when missing. The packages come from .ci/apt-packages.
set -euo pipefail

conf=/etc/containers/containers.conf
if ! grep -q 'mcp-runtime CI' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  # Limits above the machine's hard limits make runc fail ("error setting rlimits"): use the hard limits.
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=32768
  [ "$nofile" -gt 20000 ] && nofile=20000
  [ "$nproc" -gt 32768 ] && nproc=32768
  cat > "$conf" <<CONF
# mcp-runtime CI (.ci/setup-podman.sh)
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
CONF
fi

podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >/dev/null
# The Debian + Python base image (mmdebstrap) and the platform image are built by the podman tests when
# missing (they need this checkout's package), then stay cached in podman's storage.
