# shellcheck shell=bash
# Tier 2 of the test cluster (sourced by cluster.sh): containerd + runc + the CNI bridge, kubelet and
# kube-proxy, so pods run. All state lives under $KUBE_DIR (containerd root/state, runc root, netns mounts,
# CNI IPAM, kubelet root) so `down` can remove exactly what it made.

KUBE_CNI_BIN="${MCP_RUNTIME_KUBE_CNI_BIN:-/usr/lib/cni}"
KUBE_BRIDGE=mcpkube0
KUBE_CNI_NETWORK=mcp-runtime-test
node_names=(containerd kubelet kube-proxy)

KUBE_CONTAINERD_SOCK="${MCP_RUNTIME_KUBE_DIR:-/tmp/mcp-runtime-kube}/containerd/containerd.sock"

ctr_k8s() { "$KUBE_BIN/ctr" --address "$KUBE_CONTAINERD_SOCK" --namespace k8s.io "$@"; }
kubectl_admin() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBE_DIR/admin.kubeconfig" "$@"; }

node_prepare_network() {
  # Pods reach the API server through the `kubernetes` Service (DNAT to the advertised address), and a DNAT
  # to 127.0.0.1 from another network namespace is dropped as martian: the node address is a /32 on `lo`
  # (this kernel has no dummy interfaces), reachable from the pod bridge and from nowhere else.
  ip -4 addr show dev lo | grep -q "inet $KUBE_NODE_IP/32 " || ip addr add "$KUBE_NODE_IP/32" dev lo
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 # kube-proxy's rules must see bridged pod-to-pod traffic
}

node_cleanup_network() { # [--keep-address]
  # Only our /32 (never lo's own 127.0.0.1/8).
  if [ "${1:-}" != --keep-address ] && [ "$KUBE_NODE_IP" != 127.0.0.1 ] && ip -4 addr show dev lo | grep -q "inet $KUBE_NODE_IP/32 "; then
    ip addr del "$KUBE_NODE_IP/32" dev lo
  fi
  ip link show "$KUBE_BRIDGE" >/dev/null 2>&1 && ip link del "$KUBE_BRIDGE" || true
  # The CNI bridge plugin's masquerade chains for this network (left behind when a sandbox was not torn
  # down through CNI), then kube-proxy's own chains.
  local chain n
  for chain in $(iptables -t nat -S POSTROUTING 2>/dev/null \
      | awk -v net="$KUBE_CNI_NETWORK" 'index($0, net) { for (i = 1; i <= NF; i++) if ($i == "-j") print $(i + 1) }'); do
    while n="$(iptables -t nat -L POSTROUTING -n --line-numbers | awk -v c="$chain" '$2 == c { print $1; exit }')" \
        && [ -n "$n" ]; do
      iptables -t nat -D POSTROUTING "$n"
    done
    iptables -t nat -F "$chain" 2>/dev/null || true
    iptables -t nat -X "$chain" 2>/dev/null || true
  done
  if [ -x "$KUBE_BIN/kube-proxy" ] && iptables -t nat -S KUBE-SERVICES >/dev/null 2>&1; then
    "$KUBE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  # The kubelet's own chains (KUBE-FIREWALL drops non-loopback traffic to 127.0.0.0/8; canaries, hint).
  local ipt table
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    while "$ipt" -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    while "$ipt" -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        "$ipt" -t "$table" -F "$chain" 2>/dev/null && "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  rmdir /run/containerd/s /run/containerd 2>/dev/null || true # containerd's shim socket dir, when empty
}

# restrict_oom: true when this process may not lower its oom_score_adj (no CAP_SYS_RESOURCE).
restrict_oom() {
  local cur; cur="$(cat /proc/self/oom_score_adj)"
  if (echo $((cur - 1)) >/proc/self/oom_score_adj) 2>/dev/null; then echo false; else echo true; fi
}

node_write_config() {
  local d="$KUBE_DIR" p="$KUBE_DIR/pki"
  mkdir -p "$d/containerd/certs.d" "$d/cni/net.d" "$d/kubelet"
  cat >"$d/containerd/config.toml" <<EOF
version = 3
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$KUBE_CONTAINERD_SOCK"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
  [plugins.'io.containerd.cri.v1.images'.registry]
    # hosts.toml per registry (e.g. a plain-HTTP registry the tests run): docs/kubernetes.md
    config_path = "$d/containerd/certs.d"

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # Without CAP_SYS_RESOURCE (this sandbox's root lacks it) no process may lower its oom_score_adj, and runc
  # fails the pause container's -998 ("nsexec: failed to update /proc/self/oom_score_adj: Permission
  # denied"): clamp pod OOM scores to containerd's own, as rootless setups do.
  restrict_oom_score_adj = $(restrict_oom)
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$KUBE_BIN/runc"
        Root = "$d/containerd/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$KUBE_CNI_BIN"]
    conf_dir = "$d/cni/net.d"
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
  cat >"$d/cni/net.d/10-$KUBE_CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$KUBE_CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$KUBE_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$KUBE_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$d/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$d/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $KUBE_NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $p/kubelet-server.crt
tlsPrivateKeyFile: $p/kubelet-server.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $p/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$KUBE_CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podCIDR: $KUBE_POD_CIDR
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
# A shared CI disk and small pods: evict only when the machine is really out of room.
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
  cat >"$d/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $d/kube-proxy.kubeconfig}
hostnameOverride: $KUBE_NODE_NAME
mode: iptables
clusterCIDR: $KUBE_CLUSTER_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Pod-to-Service-to-pod on one bridge: masquerade so the reply comes back through the node's conntrack.
iptables: {masqueradeAll: true}
# Leave the host's conntrack table size alone (a shared machine).
conntrack: {maxPerCore: 0}
EOF
}

node_ready() {
  [ "$(kubectl_admin get node "$KUBE_NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
proxy_ready() {
  curl -sf --max-time 2 http://127.0.0.1:10256/healthz >/dev/null \
    && iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -q "$KUBE_API_SERVICE_IP/32"
}

node_start() {
  node_write_config
  # containerd finds containerd-shim-runc-v2 on PATH.
  PATH="$KUBE_BIN:$PATH" start_proc containerd "$KUBE_BIN/containerd" --config "$KUBE_DIR/containerd/config.toml" --log-level warn
  wait_until "containerd" 60 containerd ctr_k8s version
  local image
  for image in pause kube-testserver; do
    ctr_k8s images import --local "$KUBE_IMAGES/$image.tar" >/dev/null || die "ctr images import $image.tar failed"
  done
  start_proc kubelet "$KUBE_BIN/kubelet" --config="$KUBE_DIR/kubelet/config.yaml" \
    --kubeconfig="$KUBE_DIR/kubelet.kubeconfig" --root-dir="$KUBE_DIR/kubelet/root" \
    --hostname-override="$KUBE_NODE_NAME" --node-ip="$KUBE_NODE_IP"
  wait_until "node $KUBE_NODE_NAME Ready" "$READY_TIMEOUT" kubelet node_ready
  start_proc kube-proxy "$KUBE_BIN/kube-proxy" --config="$KUBE_DIR/kube-proxy.yaml"
  wait_until "kube-proxy rules for the kubernetes Service" 90 kube-proxy proxy_ready
}

# node_stop [--keep-controllers]: pods first through the kubelet (so CNI tears their network down), then the daemons, then
# whatever a crash left: runc containers, shims, mounts and cgroups under our own paths only.
node_stop() {
  local i id
  if [ "${1:-}" != --keep-controllers ] && proc_pid kubelet >/dev/null && proc_pid kube-apiserver >/dev/null; then
    stop_proc kube-controller-manager # no new pods from controllers while the old ones go
    stop_proc kube-scheduler
    kubectl_admin delete pods --all --all-namespaces --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
    for i in $(seq 1 60); do
      [ -z "$(ctr_k8s tasks ls -q 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_proc kube-proxy
  stop_proc kubelet
  stop_proc containerd
  if [ -x "$KUBE_BIN/runc" ] && [ -d "$KUBE_DIR/containerd/runc/k8s.io" ]; then
    for id in $("$KUBE_BIN/runc" --root "$KUBE_DIR/containerd/runc/k8s.io" list -q 2>/dev/null); do
      "$KUBE_BIN/runc" --root "$KUBE_DIR/containerd/runc/k8s.io" kill --all "$id" KILL 2>/dev/null || true
      "$KUBE_BIN/runc" --root "$KUBE_DIR/containerd/runc/k8s.io" delete --force "$id" 2>/dev/null || true
    done
  fi
  local pid
  for pid in /proc/[0-9]*; do
    pid="${pid#/proc/}"
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$KUBE_BIN/containerd-shim-runc-v2" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # Mounts under our state (overlay rootfs, netns, projected volumes), deepest first.
  local m
  for m in $(awk -v d="$KUBE_DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  # The kubelet's cgroups (cgroupfs driver): kubepods in each hierarchy, leaves first.
  local root
  for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$root" ] || continue
    find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  return 0
}
