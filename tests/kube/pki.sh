# shellcheck shell=bash
# The test cluster's certificates and kubeconfigs, made with openssl (sourced by cluster.sh).
# Two CAs, as kubeadm does: one for the cluster (clients, apiserver, kubelet) and one for etcd, so a
# cluster client certificate cannot talk to etcd directly; plus the front-proxy CA of the aggregation layer.
# ECDSA P-256 keys (fast to make); keys are 0600.

PKI_DAYS=365

_pki_key() { # _pki_key FILE
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

_pki_ca() { # _pki_ca NAME CN
  local dir="$KUBE_DIR/pki"
  _pki_key "$dir/$1.key"
  openssl req -x509 -new -key "$dir/$1.key" -subj "/CN=$2" -days "$PKI_DAYS" -out "$dir/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    2>/dev/null
}

# _pki_cert CA NAME SUBJECT USAGE [SANS]: USAGE is serverAuth, clientAuth or both comma-separated;
# SANS like "DNS:localhost,IP:127.0.0.1".
_pki_cert() {
  local ca="$1" name="$2" subject="$3" usage="$4" sans="${5:-}" dir="$KUBE_DIR/pki" ext
  _pki_key "$dir/$name.key"
  ext="$(mktemp)"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -key "$dir/$name.key" -subj "$subject" 2>/dev/null \
    | openssl x509 -req -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" -CAcreateserial -days "$PKI_DAYS" \
      -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$ext"
  [ -s "$dir/$name.crt" ] || die "openssl could not sign $name.crt"
}

b64() { base64 -w0 <"$1"; }

# kubeconfig NAME USER_CERT: a kubeconfig with the CA and the client certificate embedded (0600).
kubeconfig() {
  local name="$1" cert="$2" dir="$KUBE_DIR/pki"
  (umask 077 && cat >"$KUBE_DIR/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mcp-runtime-test
  cluster:
    server: $KUBE_API_URL
    certificate-authority-data: $(b64 "$dir/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(b64 "$dir/$cert.crt")
    client-key-data: $(b64 "$dir/$cert.key")
contexts:
- name: $name@mcp-runtime-test
  context:
    cluster: mcp-runtime-test
    user: $name
    namespace: default
current-context: $name@mcp-runtime-test
EOF
  )
}

pki_make() {
  local dir="$KUBE_DIR/pki" api_sans
  mkdir -p "$dir" && chmod 700 "$dir"
  _pki_ca ca mcp-runtime-test-ca
  _pki_ca etcd-ca mcp-runtime-test-etcd-ca
  _pki_ca front-proxy-ca mcp-runtime-test-front-proxy-ca

  _pki_cert etcd-ca etcd-server "/CN=etcd" serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1"
  _pki_cert etcd-ca apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth

  api_sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  api_sans="$api_sans,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$KUBE_NODE_IP,IP:$KUBE_API_SERVICE_IP"
  _pki_cert ca apiserver "/CN=kube-apiserver" serverAuth "$api_sans"
  _pki_cert ca apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  _pki_cert front-proxy-ca front-proxy-client "/CN=front-proxy-client" clientAuth

  # The admin is cluster-admin through the system:masters group, as kubeadm's admin.conf used to be.
  _pki_cert ca admin "/O=system:masters/CN=mcp-runtime-test-admin" clientAuth
  _pki_cert ca controller-manager "/CN=system:kube-controller-manager" clientAuth
  _pki_cert ca scheduler "/CN=system:kube-scheduler" clientAuth
  _pki_cert ca kubelet-client "/O=system:nodes/CN=system:node:$KUBE_NODE_NAME" clientAuth
  _pki_cert ca kubelet-server "/CN=$KUBE_NODE_NAME" serverAuth "DNS:$KUBE_NODE_NAME,IP:$KUBE_NODE_IP"
  _pki_cert ca kube-proxy "/CN=system:kube-proxy" clientAuth

  # Service-account token signing key pair (ES256).
  _pki_key "$dir/sa.key"
  openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null

  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kubelet kubelet-client
  kubeconfig kube-proxy kube-proxy
}
