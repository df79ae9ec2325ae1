#!/usr/bin/env bash
# Pack static binaries into a one-layer OCI image archive that `ctr images import` (or `skopeo copy
# oci-archive:...`) takes. No registry is reachable here, so the cluster's images are made locally.
# Usage: oci-image.sh OUT.tar NAME:TAG ENTRYPOINT SRC:DST [SRC:DST...]
# The image runs as user 65532 (nonroot) unless OCI_USER says otherwise. Deterministic: same inputs, same digest.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 OUT.tar NAME:TAG ENTRYPOINT SRC:DST [SRC:DST...]" >&2; exit 2; }
out="$1" name="$2" entrypoint="$3"; shift 3
user="${OCI_USER:-65532:65532}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root" "$work/oci/blobs/sha256"

for pair in "$@"; do
  src="${pair%%:*}" dst="${pair#*:}"
  [ -f "$src" ] || { echo "oci-image: no file $src" >&2; exit 1; }
  install -D -m 0755 "$src" "$work/root/${dst#/}"
done

blob() { # blob FILE -> moves it into blobs/, prints "digest size"
  local d s
  d="$(sha256sum "$1" | cut -d' ' -f1)"; s="$(stat -c %s "$1")"
  mv "$1" "$work/oci/blobs/sha256/$d"
  printf 'sha256:%s %s\n' "$d" "$s"
}

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$work/root" -cf "$work/layer.tar" .
diff_id="sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
gzip -n -9 "$work/layer.tar"
read -r layer_digest layer_size < <(blob "$work/layer.tar.gz")

printf '{"architecture":"amd64","os":"linux","config":{"User":"%s","Entrypoint":["%s"],"Env":["PATH=/"]},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created_by":"tests/kube/oci-image.sh"}]}' \
  "$user" "$entrypoint" "$diff_id" >"$work/config.json"
read -r config_digest config_size < <(blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
  "$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$work/manifest.json"
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "$manifest_size" "$name" "${name##*:}" >"$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"

mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$out.tmp" .
mv -f "$out.tmp" "$out"
