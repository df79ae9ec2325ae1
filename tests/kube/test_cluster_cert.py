"""`mcp-runtime cluster cert status|apply|wait` on the REAL test cluster with cert-manager's own CRDs (v1.16.2,
tests/kube/cert-manager/): the API server validates every Certificate the CLI writes against cert-manager's
schema. No cert-manager controller runs here (its images are not built for this cluster), so nothing issues
the certificates: `wait` must time out saying so, and must succeed once the test sets the Ready condition
through the status subresource, as cert-manager's controller would.

The platform's Ingresses are the ones `setup` renders (`render_platform`), applied to the test's namespace.
The CRDs and the ClusterIssuer are cluster-scoped: the test removes what it added (the setup test's doctor
run expects no cert-manager).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.cli import cli_env, run_cli
from fixtures.kube_cluster import KubeCluster
from mcp_runtime.kube.certs import CERT_MANAGER_VERSION
from mcp_runtime.kube.platform import PlatformConfig, render_platform

CERT_MANAGER = Path(__file__).parent / "cert-manager"
CRDS = {"certificates.cert-manager.io": "crd-certificates.yaml",
        "clusterissuers.cert-manager.io": "crd-clusterissuers.yaml"}
NOT_AFTER = "2027-03-06T00:00:00Z"


def cert_manager_crd(file: str) -> dict[str, Any]:
    """The upstream CRD with its Helm-templated labels replaced by plain ones (the schema is untouched)."""
    crd: dict[str, Any] = yaml.safe_load((CERT_MANAGER / file).read_text())
    crd["metadata"] = {"name": crd["metadata"]["name"],
                       "labels": {"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/instance": "tests"}}
    return crd


@pytest.fixture
def no_cert_manager(kube_cluster: KubeCluster) -> Iterator[KubeCluster]:
    """The cluster without cert-manager's CRDs at the start; the ones the test installs are deleted after."""
    present = [name for name in CRDS if kube_cluster.get("crd", name) is not None]
    if present:
        pytest.fail(f"cert-manager's CRDs {present} are already on the test cluster (left by another run?); this "
                    f"test installs and removes them itself: kubectl delete crd {' '.join(present)}", pytrace=False)
    yield kube_cluster
    kube_cluster.kubectl("delete", "crd", *CRDS, "--ignore-not-found", "--timeout=120s", timeout=150)


def cli(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), env={"KUBECONFIG": str(cluster.kubeconfig)}, timeout=120)


def set_ready(cluster: KubeCluster, name: str, namespace: str) -> None:
    """What cert-manager's controller writes once a certificate is issued, through the status subresource."""
    status = {"status": {"notAfter": NOT_AFTER, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Ready", "lastTransitionTime": "2026-12-06T00:00:00Z",
         "message": "Certificate is up to date and has not expired"}]}}
    cluster.kubectl("-n", namespace, "patch", "certificate", name, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))


def test_cert_status_apply_and_wait_with_cert_managers_crds(no_cert_manager: KubeCluster,
                                                             kube_namespace: str) -> None:
    cluster, ns = no_cert_manager, kube_namespace
    missing = cli(cluster, "cluster", "cert", "status", "--namespace", ns)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: cert-manager is not installed on this cluster"), missing.stderr
    assert "setup --with-tls" in missing.stderr and missing.stderr.count("\n") == 1

    cluster.apply(*(cert_manager_crd(f) for f in CRDS.values()))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRDS), timeout=90)
    no_ingress = cli(cluster, "cluster", "cert", "apply", "--namespace", ns)
    assert no_ingress.returncode == 1 and f"no platform Ingress with a host in namespace {ns}" in no_ingress.stderr

    # The platform's Ingresses as setup renders them (without --with-tls: no TLS section, no issuer yet).
    domain = f"{ns}.example.test"
    config = PlatformConfig(namespace=ns, domain=domain, registry_mode="bundled-https")
    cluster.apply(*(o for o in render_platform(config) if o["kind"] == "Ingress"))
    no_issuer = cli(cluster, "cluster", "cert", "apply", "--namespace", ns)
    assert no_issuer.returncode == 1 and "names no ClusterIssuer" in no_issuer.stderr and "--issuer" in no_issuer.stderr
    unknown = cli(cluster, "cluster", "cert", "apply", "--namespace", ns, "--issuer", f"{ns}-nope")
    assert unknown.returncode == 1 and f"ClusterIssuer {ns}-nope does not exist" in unknown.stderr

    issuer = f"{ns}-selfsigned"
    cluster.apply({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": issuer},
                   "spec": {"selfSigned": {}}})
    try:
        planned = cli(cluster, "cluster", "cert", "apply", "--namespace", ns, "--issuer", issuer, "--dry-run",
                      "-o", "yaml")
        assert planned.returncode == 0, planned.stderr
        assert [c["spec"]["dnsNames"] for c in yaml.safe_load(planned.stdout)] == [[f"registry.{domain}"],
                                                                                  [f"platform.{domain}"]]
        assert cluster.get("certificate", "mcp-registry-tls", ns) is None  # a dry run writes nothing

        # The registry's Certificate was made by cert-manager's ingress-shim (owned by its Ingress): kept.
        registry_uid = (cluster.get("ingress", "mcp-registry", ns) or {})["metadata"]["uid"]
        cluster.apply({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {
            "name": "mcp-registry-tls", "ownerReferences": [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                                             "name": "mcp-registry", "uid": registry_uid,
                                                             "controller": True}]},
            "spec": {"secretName": "mcp-registry-tls", "dnsNames": [f"registry.{domain}"],
                     "issuerRef": {"kind": "ClusterIssuer", "name": issuer}}}, namespace=ns)
        applied = cli(cluster, "cluster", "cert", "apply", "--namespace", ns, "--issuer", issuer)
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.splitlines()[:3] == [f"certificate/mcp-registry-tls -n {ns} managed by ingress-shim",
                                                   f"certificate/mcp-runtime-api-tls -n {ns} created",
                                                   f"ingress/mcp-runtime-api -n {ns} tls added"]
        api_cert = cluster.get("certificate", "mcp-runtime-api-tls", ns) or {}
        assert api_cert["spec"]["dnsNames"] == [f"platform.{domain}"]
        assert api_cert["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer}
        api_ingress = cluster.get("ingress", "mcp-runtime-api", ns) or {}
        assert api_ingress["spec"]["tls"] == [{"hosts": [f"platform.{domain}"], "secretName": "mcp-runtime-api-tls"}]
        again = cli(cluster, "cluster", "cert", "apply", "--namespace", ns, "--issuer", issuer)
        assert again.returncode == 0 and "tls added" not in again.stdout
        assert f"certificate/mcp-runtime-api-tls -n {ns} unchanged" in again.stdout.splitlines(), again.stdout

        status = json.loads(cli(cluster, "cluster", "cert", "status", "--namespace", ns, "-o", "json").stdout)
        assert status["clusterIssuers"] == {issuer: "NotReady"}  # no controller reports on it
        rows = {r["certificate"]: r for r in status["certificates"]}
        assert rows["mcp-registry-tls"]["hosts"] == [f"registry.{domain}"]
        assert {r["ready"] for r in rows.values()} == {"Unknown"}
        assert rows["mcp-runtime-api-tls"]["managedBy"] == "mcp-runtime"
        assert rows["mcp-registry-tls"]["managedBy"] == "ingress-shim"

        timed_out = cli(cluster, "cluster", "cert", "wait", "--namespace", ns, "--timeout", "3s")
        assert timed_out.returncode == 1
        assert "timed out after 3s" in timed_out.stderr and "mcp-runtime-api-tls" in timed_out.stderr
        assert "cert-manager's controller" in timed_out.stderr

        waiter = subprocess.Popen([sys.executable, "-m", "mcp_runtime", "cluster", "cert", "wait", "--namespace", ns,
                                   "--timeout", "2m"], env=cli_env({"KUBECONFIG": str(cluster.kubeconfig)}),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            set_ready(cluster, "mcp-runtime-api-tls", ns)
            set_ready(cluster, "mcp-registry-tls", ns)
            out, err = waiter.communicate(timeout=90)
        finally:
            waiter.kill()
        assert waiter.returncode == 0, err
        assert f"certificate/mcp-runtime-api-tls Ready (expires {NOT_AFTER})" in out
        assert out.rstrip().endswith("all certificates are Ready")

        table = cli(cluster, "cluster", "cert", "status", "--namespace", ns)
        assert table.returncode == 0 and f"ClusterIssuer {issuer}: NotReady" in table.stdout
        row = next(line for line in table.stdout.splitlines() if line.startswith("mcp-registry-tls"))
        assert f"registry.{domain}" in row and "True" in row and NOT_AFTER in row
    finally:
        cluster.kubectl("delete", "clusterissuer", issuer, "--ignore-not-found")


def test_the_vendored_crds_are_of_the_cert_manager_setup_installs() -> None:
    readme = (CERT_MANAGER / "README.md").read_text()
    assert f"at **{CERT_MANAGER_VERSION}**" in readme, "re-vendor the CRDs when setup's cert-manager version moves"
    for file in CRDS.values():
        assert cert_manager_crd(file)["spec"]["group"] == "cert-manager.io"
