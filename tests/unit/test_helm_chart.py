"""The Helm chart, rendered WITHOUT Helm (not packaged in Debian bookworm) by tests/fakes/mini_helm.py, a
renderer for the small Go-template subset the chart is written in: for a matrix of settings it yields
exactly the objects `mcp-runtime setup` applies, they validate against the Kubernetes schemas, and the
chart's CRDs are the generated ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fakes.mini_helm import TemplateError, merge_values, render_chart, render_template
from mcp_runtime.kube.platform import PlatformConfig, render_platform

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mcp-runtime"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

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


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@pytest.mark.parametrize(("values", "config"), MATRIX)
def test_chart_renders_what_setup_applies(values: dict[str, Any], config: PlatformConfig) -> None:
    chart = render_chart(CHART, merge_values(VALUES, values), namespace=config.namespace)
    expected = [o for o in render_platform(config)
                if o["kind"] != "CustomResourceDefinition"  # the chart's crds/ directory
                and key(o) != ("Namespace", config.namespace)]  # helm --create-namespace
    assert sorted(map(key, chart)) == sorted(map(key, expected))
    by_key = {key(o): o for o in chart}
    for obj in expected:
        assert by_key[key(obj)] == obj, f"chart and setup disagree on {key(obj)}"
    for obj in chart:
        if obj["kind"] != "ClusterIssuer":
            kubernetes_validate.validate(obj, "1.30", strict=True)


def test_chart_crds_are_the_generated_ones() -> None:
    for crd in (ROOT / "deploy" / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text(), (
            f"copy deploy/crds/{crd.name} to {CHART.relative_to(ROOT)}/crds/")
    assert {p.name for p in (CHART / "crds").glob("*.yaml")} == {p.name for p in (ROOT / "deploy/crds").glob("*.yaml")}


def test_mini_renderer_refuses_what_it_does_not_support() -> None:
    with pytest.raises(TemplateError):
        render_template("{{ include \"x\" . }}", {"Values": {}})
    with pytest.raises(TemplateError):
        render_template("{{ .Values.a | upper }}", {"Values": {"a": "x"}})
    template = "a{{- if eq .Values.m \"x\" }} yes{{- else }} no{{- end }}"
    assert render_template(template, {"Values": {"m": "x"}}) == "a yes"
    assert render_template(template, {"Values": {"m": "y"}}) == "a no"
