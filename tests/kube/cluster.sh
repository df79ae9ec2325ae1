#!/usr/bin/env bash
# A real single-node Kubernetes cluster for the tests (docs/kubernetes.md, "The test cluster").
#
#   cluster.sh up [--tier 1|2|auto]   build once (cached), start, wait until ready; the LAST line of stdout is
#                                     the admin kubeconfig path (progress goes to stderr). A second `up` while
#                                     the cluster runs only prints the kubeconfig.
#   cluster.sh down                   stop everything and remove the cluster's state
#   cluster.sh status                 which tier runs, each component's pid, readiness
#   cluster.sh tools                  KUBECONFIG=, KUBECTL=, HELM=, ... lines (shell- and pytest-friendly)
#   cluster.sh build [control|node]   only build the binaries
#
# Tier 1: etcd, kube-apiserver, kube-controller-manager, kube-scheduler on loopback (no pods run).
# Tier 2: plus containerd + runc + the CNI bridge, kubelet and kube-proxy (iptables): pods run.
# `auto` (the default) starts tier 2 when this machine can, else tier 1, and `status` says why.
#
# Environment (all optional):
#   MCP_RUNTIME_KUBE_DIR      state directory (default /tmp/mcp-runtime-kube)
#   MCP_RUNTIME_KUBE_CACHE    binary cache (default /var/cache/mcp-runtime)
#   MCP_RUNTIME_KUBE_TIER     1, 2 or auto (the --tier flag wins)
#   MCP_RUNTIME_KUBE_API_PORT kube-apiserver port (default 6443)
#   MCP_RUNTIME_KUBE_NODE_IP  tier 2: the node address, added to `lo` so pods can reach the API server
#                             (default 10.200.0.1; tier 1 serves on 127.0.0.1)
set -euo pipefail

KUBE_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=build.sh
. "$KUBE_SCRIPT_DIR/build.sh"
# shellcheck source=pki.sh
. "$KUBE_SCRIPT_DIR/pki.sh"
# shellcheck source=node.sh
. "$KUBE_SCRIPT_DIR/node.sh"

KUBE_DIR="${MCP_RUNTIME_KUBE_DIR:-/tmp/mcp-runtime-kube}"
KUBE_API_PORT="${MCP_RUNTIME_KUBE_API_PORT:-6443}"
KUBE_ETCD_PORT="${MCP_RUNTIME_KUBE_ETCD_PORT:-2379}"
KUBE_NODE_NAME="mcp-runtime-test-node"
KUBE_SERVICE_CIDR="10.96.0.0/16"
KUBE_API_SERVICE_IP="10.96.0.1"
KUBE_POD_CIDR="10.244.0.0/24"
KUBE_CLUSTER_CIDR="10.244.0.0/16"
READY_TIMEOUT="${MCP_RUNTIME_KUBE_READY_TIMEOUT:-180}"

# The tier of a running cluster is in its state; a new one picks it in cmd_up.
tier_file() { printf '%s/tier\n' "$KUBE_DIR"; }
set_addresses() { # set_addresses TIER: the address the API server serves on (recorded once it started)
  if [ -s "$KUBE_DIR/node-ip" ]; then KUBE_NODE_IP="$(cat "$KUBE_DIR/node-ip")"
  elif [ "$1" = 2 ]; then KUBE_NODE_IP="${MCP_RUNTIME_KUBE_NODE_IP:-10.200.0.1}"
  else KUBE_NODE_IP=127.0.0.1; fi
  KUBE_API_URL="https://$KUBE_NODE_IP:$KUBE_API_PORT"
}

# --- processes ------------------------------------------------------------------------------------
# Each component runs in its own session (setsid), logs to logs/NAME.log, and has run/NAME.pid. A pid counts
# only while /proc/PID/exe is our binary, so a reused pid is never taken for (or killed as) a component.

start_proc() { # start_proc NAME BINARY ARGS...
  local name="$1"; shift
  mkdir -p "$KUBE_DIR/logs" "$KUBE_DIR/run"
  # 8>&- 9>&-: the daemons must not inherit the build and cluster lock descriptors.
  setsid "$@" </dev/null >>"$KUBE_DIR/logs/$name.log" 2>&1 8>&- 9>&- &
  printf '%s\n' "$!" >"$KUBE_DIR/run/$name.pid"
}

proc_pid() { # prints the pid when NAME runs, fails otherwise
  local pid exe
  pid="$(cat "$KUBE_DIR/run/$1.pid" 2>/dev/null)" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  case "$exe" in "$KUBE_BIN"/*) printf '%s\n' "$pid" ;; *) return 1 ;; esac
}

stop_proc() { # stop_proc NAME: SIGTERM, up to 15 s, then SIGKILL
  local pid i
  pid="$(proc_pid "$1")" || { rm -f "$KUBE_DIR/run/$1.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  rm -f "$KUBE_DIR/run/$1.pid"
}

# wait_until DESCRIPTION SECONDS NAME CMD...: poll CMD; fail early with the log's tail when NAME died.
wait_until() {
  local desc="$1" timeout="$2" name="$3"; shift 3
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$name" ] && ! proc_pid "$name" >/dev/null; then
      tail -n 25 "$KUBE_DIR/logs/$name.log" >&2 || true
      die "$name exited while waiting for $desc (log: $KUBE_DIR/logs/$name.log)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      [ -z "$name" ] || tail -n 25 "$KUBE_DIR/logs/$name.log" >&2 || true
      die "timed out after ${timeout}s waiting for $desc${name:+ (log: $KUBE_DIR/logs/$name.log)}"
    fi
    sleep 0.5
  done
}

api_get() { # api_get PATH: GET on the API server as the admin
  curl -sf --max-time 5 --cacert "$KUBE_DIR/pki/ca.crt" --cert "$KUBE_DIR/pki/admin.crt" \
    --key "$KUBE_DIR/pki/admin.key" "$KUBE_API_URL$1"
}
healthz() { curl -skf --max-time 5 "https://127.0.0.1:$1/healthz"; } # component self-signed serving certs

# --- control plane --------------------------------------------------------------------------------

start_etcd() {
  local p="$KUBE_DIR/pki"
  mkdir -p "$KUBE_DIR/etcd" && chmod 700 "$KUBE_DIR/etcd"
  start_proc etcd "$KUBE_BIN/etcd" --name=mcp-runtime-test --data-dir="$KUBE_DIR/etcd" \
    --listen-client-urls="https://127.0.0.1:$KUBE_ETCD_PORT" --advertise-client-urls="https://127.0.0.1:$KUBE_ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$((KUBE_ETCD_PORT + 1))" \
    --initial-advertise-peer-urls="http://127.0.0.1:$((KUBE_ETCD_PORT + 1))" \
    --initial-cluster="mcp-runtime-test=http://127.0.0.1:$((KUBE_ETCD_PORT + 1))" \
    --listen-metrics-urls="http://127.0.0.1:$((KUBE_ETCD_PORT + 2))" \
    --client-cert-auth --trusted-ca-file="$p/etcd-ca.crt" --cert-file="$p/etcd-server.crt" --key-file="$p/etcd-server.key" \
    --unsafe-no-fsync --snapshot-count=10000 --log-level=warn
  # --unsafe-no-fsync: a throwaway test cluster on a shared disk; durability is not what is tested.
  wait_until "etcd health" 60 etcd curl -sf --max-time 2 "http://127.0.0.1:$((KUBE_ETCD_PORT + 2))/health"
}

start_apiserver() {
  local p="$KUBE_DIR/pki" reconciler=lease
  # The `kubernetes` Service's endpoint may not be a loopback address; tier 1 runs no pods that would use it.
  [ "$KUBE_NODE_IP" != 127.0.0.1 ] || reconciler=none
  start_proc kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --bind-address="$KUBE_NODE_IP" --advertise-address="$KUBE_NODE_IP" --secure-port="$KUBE_API_PORT" \
    --etcd-servers="https://127.0.0.1:$KUBE_ETCD_PORT" --etcd-cafile="$p/etcd-ca.crt" \
    --etcd-certfile="$p/apiserver-etcd-client.crt" --etcd-keyfile="$p/apiserver-etcd-client.key" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range="$KUBE_SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
    --requestheader-client-ca-file="$p/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$p/front-proxy-client.crt" --proxy-client-key-file="$p/front-proxy-client.key" \
    --anonymous-auth=false --profiling=false --endpoint-reconciler-type="$reconciler"
  wait_until "kube-apiserver /readyz" "$READY_TIMEOUT" kube-apiserver api_get /readyz
}

start_controllers() {
  local p="$KUBE_DIR/pki"
  start_proc kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$KUBE_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$KUBE_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$KUBE_DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --root-ca-file="$p/ca.crt" --service-account-private-key-file="$p/sa.key" --use-service-account-credentials=true \
    --service-cluster-ip-range="$KUBE_SERVICE_CIDR" --cluster-cidr="$KUBE_CLUSTER_CIDR" --profiling=false
  start_proc kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig="$KUBE_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$KUBE_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$KUBE_DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false
  wait_until "kube-controller-manager /healthz" 90 kube-controller-manager healthz 10257
  wait_until "kube-scheduler /healthz" 90 kube-scheduler healthz 10259
  # Pods need the namespace's default ServiceAccount: its presence shows the controllers work.
  wait_until "the default ServiceAccount (service-account controller)" 90 kube-controller-manager \
    api_get /api/v1/namespaces/default/serviceaccounts/default
}

# --- commands -------------------------------------------------------------------------------------

control_names=(etcd kube-apiserver kube-controller-manager kube-scheduler)

running_tier() { # prints the tier when every component of it runs and the API answers
  local tier name
  tier="$(cat "$(tier_file)" 2>/dev/null)" || return 1
  set_addresses "$tier"
  for name in "${control_names[@]}"; do proc_pid "$name" >/dev/null || return 1; done
  if [ "$tier" = 2 ]; then for name in "${node_names[@]}"; do proc_pid "$name" >/dev/null || return 1; done; fi
  api_get /readyz >/dev/null || return 1
  printf '%s\n' "$tier"
}

# can_tier2: why this machine cannot run pods (empty output: it can).
tier2_blocker() {
  [ "$(id -u)" = 0 ] || { echo "tier 2 needs root (kubelet, containerd, CNI and iptables)"; return; }
  local t; for t in iptables ip gcc pkg-config; do
    command -v "$t" >/dev/null || { echo "tier 2 needs '$t' (see .ci/apt-packages)"; return; }
  done
  [ -x "$KUBE_CNI_BIN/bridge" ] && [ -x "$KUBE_CNI_BIN/host-local" ] && [ -x "$KUBE_CNI_BIN/loopback" ] \
    || { echo "tier 2 needs the CNI plugins in $KUBE_CNI_BIN: apt-get install containernetworking-plugins"; return; }
  pkg-config --exists libseccomp || { echo "tier 2 builds runc with seccomp: apt-get install libseccomp-dev"; return; }
  grep -qw overlay /proc/filesystems || { echo "tier 2 needs overlayfs (no 'overlay' in /proc/filesystems)"; return; }
}

cmd_up() {
  local want="${MCP_RUNTIME_KUBE_TIER:-auto}" tier="" start blocker=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --tier) want="${2:-}"; shift 2 ;;
      --tier=*) want="${1#--tier=}"; shift ;;
      *) die "unknown option '$1' for up (usage: cluster.sh up [--tier 1|2|auto])" ;;
    esac
  done
  case "$want" in 1|2|auto) ;; *) die "--tier must be 1, 2 or auto, not '$want'" ;; esac
  mkdir -p "$(dirname "$KUBE_DIR")"
  exec 9>"$KUBE_DIR.lock"
  flock 9
  if tier="$(running_tier)" && { [ "$want" = auto ] || [ "$want" = "$tier" ] || [ "$tier" = 2 ]; }; then
    say "the cluster runs already (tier $tier)"
    printf '%s\n' "$KUBE_DIR/admin.kubeconfig"
    return 0
  fi
  if [ -e "$KUBE_DIR" ]; then
    if [ -n "${tier:-}" ]; then say "tier $tier runs but tier $want was asked for: restarting"
    else say "a stopped or broken cluster in $KUBE_DIR: cleaning it up first"; fi
    do_down
  fi

  tier="$want"
  if [ "$want" != 1 ]; then
    blocker="$(tier2_blocker)"
    if [ -n "$blocker" ]; then
      [ "$want" = 2 ] && die "$blocker"
      say "tier 2 not possible here: $blocker; starting tier 1"
      tier=1
    else
      tier=2
    fi
  fi
  if [ "$tier" = 2 ]; then kube_build node; else kube_build control; fi

  start=$(date +%s.%N)
  mkdir -p "$KUBE_DIR" && chmod 700 "$KUBE_DIR"
  printf '%s\n' "$tier" >"$(tier_file)"
  [ -z "${blocker:-}" ] || printf '%s\n' "$blocker" >"$KUBE_DIR/tier2-blocker"
  set_addresses "$tier"
  printf '%s\n' "$KUBE_NODE_IP" >"$KUBE_DIR/node-ip"
  [ "$tier" = 1 ] || node_prepare_network
  pki_make
  start_etcd
  start_apiserver
  say "kube-apiserver ready after $(elapsed "$start")s"
  start_controllers
  if [ "$tier" = 2 ]; then
    # In the background so that `set -e` holds inside (it is off in a subshell whose status is tested).
    local node_rc=0
    ( node_start ) &
    wait $! || node_rc=$?
    if [ "$node_rc" != 0 ] && [ "$want" = auto ]; then
      # Keep the control plane: tier 1 still proves CRDs, RBAC and garbage collection.
      say "tier 2 failed to start (above); falling back to tier 1 with the control plane already running"
      node_stop --keep-controllers
      node_cleanup_network --keep-address # the API server serves on the node address
      printf 'the node did not start: %s\n' "$(cat "$KUBE_DIR/last-error" 2>/dev/null || echo "see $KUBE_DIR/logs")" \
        >"$KUBE_DIR/tier2-blocker"
      printf '1\n' >"$(tier_file)"
    elif [ "$node_rc" != 0 ]; then
      die "tier 2 failed to start (above); logs in $KUBE_DIR/logs"
    fi
  fi
  say "cluster ready (tier $(cat "$(tier_file)")) in $(elapsed "$start")s; logs in $KUBE_DIR/logs"
  write_env
  printf '%s\n' "$KUBE_DIR/admin.kubeconfig"
}

elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

write_env() { cmd_tools_lines >"$KUBE_DIR/env"; }

cmd_tools_lines() {
  local tier; tier="$(cat "$(tier_file)" 2>/dev/null || echo none)"
  printf 'KUBECONFIG=%s\n' "$KUBE_DIR/admin.kubeconfig"
  printf 'KUBECTL=%s\n' "$KUBE_BIN/kubectl"
  printf 'HELM=%s\n' "$KUBE_BIN/helm"
  printf 'KUBE_BIN=%s\n' "$KUBE_BIN"
  printf 'KUBE_TIER=%s\n' "$tier"
  printf 'KUBE_API_URL=%s\n' "$KUBE_API_URL"
  if [ "$tier" = 2 ]; then
    printf 'CTR=%s\n' "$KUBE_BIN/ctr"
    printf 'CONTAINERD_ADDRESS=%s\n' "$KUBE_CONTAINERD_SOCK"
    printf 'KUBE_NODE_NAME=%s\n' "$KUBE_NODE_NAME"
    printf 'KUBE_TESTSERVER_IMAGE=%s\n' "$TESTSERVER_IMAGE"
    printf 'KUBE_TESTSERVER_ARCHIVE=%s\n' "$KUBE_IMAGES/kube-testserver.tar"
    printf 'KUBE_REGISTRY_CONFIG_DIR=%s\n' "$KUBE_DIR/containerd/certs.d"
  fi
}

cmd_tools() {
  local tier
  tier="$(running_tier)" || die "no cluster runs in $KUBE_DIR: run '$0 up' first"
  set_addresses "$tier"
  cmd_tools_lines
}

cmd_status() {
  local tier name pid rc=0
  tier="$(cat "$(tier_file)" 2>/dev/null)" || { echo "no cluster in $KUBE_DIR"; return 3; }
  set_addresses "$tier"
  printf 'tier: %s\n' "$tier"
  [ ! -s "$KUBE_DIR/tier2-blocker" ] || printf 'tier 2: not running: %s\n' "$(cat "$KUBE_DIR/tier2-blocker")"
  printf 'kubeconfig: %s\napi: %s\n' "$KUBE_DIR/admin.kubeconfig" "$KUBE_API_URL"
  local names=("${control_names[@]}")
  [ "$tier" != 2 ] || names+=("${node_names[@]}")
  printf '%-24s %-8s %s\n' COMPONENT PID STATE
  for name in "${names[@]}"; do
    if pid="$(proc_pid "$name")"; then printf '%-24s %-8s running\n' "$name" "$pid"
    else printf '%-24s %-8s stopped (log: %s)\n' "$name" - "$KUBE_DIR/logs/$name.log"; rc=1; fi
  done
  if api_get /readyz >/dev/null; then echo "readyz: ok"; else echo "readyz: failing"; rc=1; fi
  return "$rc"
}

do_down() {
  local tier name
  tier="$(cat "$(tier_file)" 2>/dev/null || echo 2)"
  set_addresses "$tier"
  node_stop
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_proc "$name"; done
  node_cleanup_network
  rm -rf "$KUBE_DIR"
}

cmd_down() {
  mkdir -p "$(dirname "$KUBE_DIR")"
  exec 9>"$KUBE_DIR.lock"
  flock 9
  if [ ! -e "$KUBE_DIR" ]; then
    # Nothing recorded (e.g. /tmp was wiped): still remove what a tier-2 node leaves in the host's network.
    set_addresses 2
    node_cleanup_network
    say "no cluster in $KUBE_DIR"
    return 0
  fi
  do_down
  say "cluster stopped and $KUBE_DIR removed"
}

main() {
  local cmd="${1:-}"; [ $# -eq 0 ] || shift
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    tools) cmd_tools ;;
    build) kube_build "${1:-all}"; printf '%s\n' "$KUBE_BIN" ;;
    -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) echo "usage: $0 up [--tier 1|2|auto] | down | status | tools | build [control|node]  (--help for more)" >&2
       exit 2 ;;
  esac
}

main "$@"
