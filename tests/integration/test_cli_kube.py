"""The cluster-facing CLI against the FAKE Kubernetes API server, kept only for what the real test cluster
cannot show here: `cluster doctor` and `sentinel status` with every platform Deployment ready (the bundled
registry's image is not available to the test cluster), `setup` refusing a cluster
without nodes (the test cluster has one), and `bootstrap --provider k3s` (a k3s node's registries file).
Runs that need no cluster at all (`setup --dry-run`, a missing kubeconfig) are here too.

`setup` (API and --helm, idempotent, modes), `cluster doctor`, `sentinel status|restart|logs` and
`server apply|export|patch|logs --use-kube` run against the REAL API server in tests/kube/test_setup.py and
tests/kube/test_cli_kube.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
from fixtures.cli import run_cli
from mcp_runtime.cli.app import app
from mcp_runtime.kube.platform import PlatformConfig, render_platform

NS = "mcp-team-acme"


def kube_cli(fake: FakeKubeApiServer, *args: str, **kw: Any):  # type: ignore[no-untyped-def]
    """`mcp-runtime ARGS` in a subprocess, KUBECONFIG pointing at the fake."""
    return run_cli(list(args), env={"KUBECONFIG": str(fake.kubeconfig)}, **kw)  # type: ignore[attr-defined]


def kube_cli_fast(fake: FakeKubeApiServer, *args: str) -> Result:
    """The same command through the app in-process (exit code, stdout and stderr kept apart)."""
    return CliRunner().invoke(app, list(args), env={"KUBECONFIG": str(fake.kubeconfig),  # type: ignore[attr-defined]
                                                    "COLUMNS": "200", "NO_COLOR": "1"})


def seed_cluster_basics(fake: FakeKubeApiServer) -> None:
    fake.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    fake.seed({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "traefik"},
               "spec": {"controller": "traefik.io/ingress-controller"}})
    fake.seed({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": "local-path",
                            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "rancher.io/local-path"})


def results(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("PASS", "WARN", "FAIL"):
            out[parts[1]] = parts[0]
    return out


def test_doctor_without_a_cluster_says_what_to_set(tmp_path: Path) -> None:
    done = run_cli(["cluster", "doctor"], env={"KUBECONFIG": str(tmp_path / "missing")})
    assert done.returncode == 1
    assert done.stderr.startswith("error: no kubeconfig found")
    assert "KUBECONFIG" in done.stderr and done.stderr.count("\n") == 1


def test_doctor_reports_pass_warn_fail_with_fixes(fake_kube: FakeKubeApiServer) -> None:  # noqa: F811
    seed_cluster_basics(fake_kube)
    config = PlatformConfig(test_mode=True)
    for obj in render_platform(config):
        if obj["kind"] in ("CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterRoleBinding",
                           "ServiceAccount") or obj["metadata"]["name"] == "mcp-runtime-operator":
            fake_kube.seed(obj)
    fake_kube.set_status("Deployment", "mcp-runtime-operator", "mcp-runtime", {"readyReplicas": 1})
    # A team namespace that lost its NetworkPolicy, and a grant for a server that does not exist.
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    for kind in ("ResourceQuota", "LimitRange", "RoleBinding"):
        fake_kube.seed({"apiVersion": "v1" if kind != "RoleBinding" else "rbac.authorization.k8s.io/v1",
                        "kind": kind, "metadata": {"name": "x", "namespace": NS}})
    fake_kube.seed({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAccessGrant",
                    "metadata": {"name": "orphan", "namespace": NS},
                    "spec": {"serverRef": {"name": "ghost"}, "subject": {"agentID": "cursor"}}})

    done = kube_cli(fake_kube, "cluster", "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    found = results(done.stdout)
    assert len(found) == 39  # 2 checks per CRD: mcpvirtualservers added 2
    assert found["api-reachable"] == "PASS"
    assert found["crd-mcpservers"] == "PASS" and found["crd-mcpservers-current"] == "PASS"
    assert found["operator-ready"] == "PASS"
    assert found["team-quota"] == "PASS"
    assert found["team-network-policy"] == "FAIL"
    assert found["jwks-configmap"] == "FAIL"
    assert found["grants-dangling"] == "WARN"
    assert found["ingest-ready"] == "WARN"
    assert "fix: mcp-runtime setup (re-applies it)" in done.stdout
    assert "39 checks:" in done.stdout

    as_json = json.loads(kube_cli_fast(fake_kube, "cluster", "doctor", "-o", "json").stdout)
    assert {r["id"]: r["result"] for r in as_json}["team-network-policy"] == "fail"


def test_setup_dry_run_prints_the_plan_without_a_cluster(tmp_path: Path) -> None:
    env_file = tmp_path / "mcpruntime.env"
    env_file.write_text("# deployment\nMCP_PLATFORM_DOMAIN=example.com\nMCP_SETUP_WITH_TLS=1\n"
                        "MCP_SETUP_TLS_CLUSTER_ISSUER=letsencrypt-prod\nMCP_SETUP_REGISTRY_MODE=bundled-https\n"
                        "export MCP_SETUP_INGRESS='traefik'\n")
    done = run_cli(["setup", "--env-file", str(env_file), "--dry-run"], env={"KUBECONFIG": str(tmp_path / "none")})
    assert done.returncode == 0, done.stderr
    assert "setup plan for example.com" in done.stdout
    assert "apply CustomResourceDefinition mcpservers.mcpruntime.org" in done.stdout
    assert "apply Ingress mcp-registry -n mcp-runtime" in done.stdout
    assert "install cert-manager" in done.stdout

    manifests = yaml.safe_load(CliRunner().invoke(app, ["setup", "--env-file", str(env_file), "--without-sentinel",
                                                        "--dry-run", "-o", "yaml"]).stdout)
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    assert ("Deployment", "mcp-sentinel-ingest") not in names
    ingress = next(m for m in manifests if m["kind"] == "Ingress" and m["metadata"]["name"] == "mcp-runtime-api")
    assert ingress["spec"]["rules"][0]["host"] == "platform.example.com"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"

    bad = tmp_path / "bad.env"
    bad.write_text("MCP_SETUP_REGISTRY_MOD=external\n")
    wrong = CliRunner().invoke(app, ["setup", "--env-file", str(bad), "--dry-run"])
    assert wrong.exit_code == 1 and "unknown setting MCP_SETUP_REGISTRY_MOD" in wrong.stderr
    no_issuer = CliRunner().invoke(app, ["setup", "--with-tls", "--dry-run"])
    assert no_issuer.exit_code == 1 and "--acme-email" in no_issuer.stderr


def test_setup_refuses_a_cluster_without_nodes(fake_kube: FakeKubeApiServer) -> None:  # noqa: F811
    done = kube_cli_fast(fake_kube, "setup", "--test-mode")
    assert done.exit_code == 1
    assert done.stderr.startswith("error: pre-flight check nodes-present failed")
    assert fake_kube.list("Namespace") == []


def test_bootstrap_k3s_checks_and_fixes_registry_trust(fake_kube: FakeKubeApiServer,  # noqa: F811
                                                       tmp_path: Path) -> None:
    seed_cluster_basics(fake_kube)
    registries = tmp_path / "registries.yaml"
    check = kube_cli_fast(fake_kube, "bootstrap", "--provider", "k3s", "--k3s-registries-file", str(registries))
    assert check.exit_code == 0, check.stdout + check.stderr
    assert "WARN  k3s-registry-trust" in check.stdout
    assert "WARN  cluster-dns" in check.stdout
    fixed = kube_cli_fast(fake_kube, "bootstrap", "--provider", "k3s", "--apply",
                          "--k3s-registries-file", str(registries))
    assert "PASS  k3s-registry-trust" in fixed.stdout
    mirrors = yaml.safe_load(registries.read_text())["mirrors"]
    assert mirrors["mcp-registry.mcp-runtime.svc:5000"]["endpoint"] == ["http://mcp-registry.mcp-runtime.svc:5000"]


def test_sentinel_status_reports_a_ready_component(fake_kube: FakeKubeApiServer) -> None:  # noqa: F811
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mcp-runtime"}})
    config = PlatformConfig(test_mode=True)
    for obj in render_platform(config):
        if obj["kind"] == "Deployment":
            fake_kube.seed(obj)
    fake_kube.set_status("Deployment", "mcp-sentinel-ingest", "mcp-runtime", {"readyReplicas": 1})
    status = json.loads(kube_cli_fast(fake_kube, "sentinel", "status", "-o", "json").stdout)
    by_component = {r["component"]: r for r in status}
    assert by_component["ingest"]["status"] == "Ready"
    assert by_component["api"]["status"] == "NotReady"
