"""The Helm chart (deploy/helm/mcp-runtime) with the REAL helm v4 (built by tests/kube/build.sh): it lints,
and for a matrix of settings `helm template` renders exactly the objects `mcp-runtime setup` applies, which
the real API server accepts (server-side dry run, strict field validation). The chart's CRDs are the
generated ones. Installing it on the cluster is in tests/kube/test_setup.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.kube_cluster import KubeCluster
from mcp_runtime.kube.platform import PlatformConfig, render_platform

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mcp-runtime"

MATRIX: list[tuple[dict[str, Any], PlatformConfig]] = [
    ({}, PlatformConfig()),
    ({"testMode": True, "domain": "dev.local"}, PlatformConfig(test_mode=True, domain="dev.local")),
    ({"tls": {"enabled": True, "acmeEmail": "ops@example.com"}, "registry": {"mode": "bundled-https"},
      "clickhouse": {"url": "http://ch:8123"}, "nats": {"url": "nats://nats:4222"}},
     PlatformConfig(with_tls=True, acme_email="ops@example.com", registry_mode="bundled-https",
                    clickhouse_url="http://ch:8123", nats_url="nats://nats:4222")),
    ({"tls": {"enabled": True, "clusterIssuer": "letsencrypt-prod"}, "ingress": {"enabled": False},
      "sentinel": {"enabled": False}},
     PlatformConfig(with_tls=True, tls_cluster_issuer="letsencrypt-prod", ingress="none", with_sentinel=False)),
    ({"registry": {"mode": "external", "external": "registry.example.com"}, "platform": {"enabled": False},
      "image": {"repository": "registry.example.com/mcp-runtime", "tag": "1.2.3"}},
     PlatformConfig(registry_mode="external", external_registry="registry.example.com", platform_mode="none",
                    image="registry.example.com/mcp-runtime:1.2.3")),
]
IDS = ["defaults", "test-mode", "tls-acme-bundled-https", "tls-issuer-no-ingress-no-sentinel", "external-operator-only"]


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def helm_template(cluster: KubeCluster, values: dict[str, Any], namespace: str, tmp_path: Path) -> list[dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = cluster.helm("template", "mcp-runtime", str(CHART), "--namespace", namespace, "-f", str(values_file)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_helm_lints_the_chart(kube_cluster: KubeCluster) -> None:
    done = kube_cluster.helm("lint", str(CHART), "--strict", "--set", "testMode=true")
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize(("values", "config"), MATRIX, ids=IDS)
def test_helm_template_renders_what_setup_applies_and_the_api_server_accepts_it(
        kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path,
        values: dict[str, Any], config: PlatformConfig) -> None:
    chart = helm_template(kube_cluster, values, config.namespace, tmp_path)
    expected = [o for o in render_platform(config)
                if o["kind"] != "CustomResourceDefinition"  # the chart's crds/ directory
                and key(o) != ("Namespace", config.namespace)]  # helm --create-namespace
    assert sorted(map(key, chart)) == sorted(map(key, expected))
    by_key = {key(o): o for o in chart}
    for obj in expected:
        assert by_key[key(obj)] == obj, f"chart and setup disagree on {key(obj)}"

    # The real API server validates every object (strict: an unknown field is an error). Namespaced objects
    # go to the test's namespace (a dry run cannot create theirs); a ClusterIssuer needs cert-manager's CRDs,
    # which this cluster does not have.
    checked = []
    for obj in chart:
        if obj["kind"] == "ClusterIssuer":
            continue
        if obj["metadata"].get("namespace"):
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": kube_namespace}}
        checked.append(obj)
    items = json.dumps({"apiVersion": "v1", "kind": "List", "items": checked})
    done = kube_cluster.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", "-o", "name",
                                input=items, check=False)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == len(checked)


def test_the_charts_crds_are_the_generated_ones() -> None:
    for crd in (ROOT / "deploy" / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text(), (
            f"copy deploy/crds/{crd.name} to {CHART.relative_to(ROOT)}/crds/")
    assert {p.name for p in (CHART / "crds").glob("*.yaml")} == {p.name for p in (ROOT / "deploy/crds").glob("*.yaml")}
