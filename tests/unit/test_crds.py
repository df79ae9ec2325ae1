"""The checked-in CRDs are current, and they (and samples of each resource) validate for Kubernetes."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mcp_runtime.resources import MCPServer, dump_resource, load_resource
from mcp_runtime.resources.crd import crd_yaml, render_crds

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"
K8S_VERSION = "1.30"


def test_checked_in_crds_are_current() -> None:
    rendered = render_crds()
    on_disk = {p.name for p in CRD_DIR.glob("*.yaml")}
    assert on_disk == set(rendered), "run `mcp-runtime crds generate --output deploy/crds`"
    for filename, crd in rendered.items():
        assert (CRD_DIR / filename).read_text() == crd_yaml(crd), (
            f"{filename} is stale: run `mcp-runtime crds generate --output deploy/crds` and commit"
        )


@pytest.mark.parametrize("filename", sorted(render_crds()))
def test_crd_validates_against_kubernetes_schema(filename: str) -> None:
    crd = yaml.safe_load((CRD_DIR / filename).read_text())
    kubernetes_validate.validate(crd, K8S_VERSION, strict=True)


def _walk(schema: object) -> list[dict[str, object]]:
    nodes: list[dict[str, object]] = []
    if isinstance(schema, dict):
        nodes.append(schema)
        for value in schema.values():
            nodes.extend(_walk(value))
    elif isinstance(schema, list):
        for value in schema:
            nodes.extend(_walk(value))
    return nodes


@pytest.mark.parametrize("filename", sorted(render_crds()))
def test_crd_schema_is_structural(filename: str) -> None:
    """No $ref, no null types, no const, no additionalProperties beside properties."""
    crd = render_crds()[filename]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for node in _walk(schema):
        assert "$ref" not in node and "const" not in node and "$defs" not in node
        assert node.get("type") != "null"
        assert not ("properties" in node and "additionalProperties" in node)
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True


SAMPLES = {
    "MCPServer": """
apiVersion: mcpruntime.org/v1alpha1
kind: MCPServer
metadata: {name: payments, namespace: mcp-team-acme}
spec:
  teamID: 1b4e28ba-2fa1-11d2-883f-0016d3cca427
  image: registry.example.com/acme/payments
  imageTag: v1
  envVars: [{name: LOG_LEVEL, value: debug}]
  secretEnvVars: [{name: API_KEY, secretKeyRef: {name: payments-secrets, key: api-key}}]
  resources: {limits: {cpu: 500m, memory: 256Mi}}
  tools:
  - {name: list_invoices, sideEffect: read, riskLevel: low, labels: {area: billing}}
  - {name: refund_invoice, sideEffect: destructive, requiredTrust: high}
  policy: {mode: allow-list, defaultDecision: deny}
  session: {required: true, maxLifetime: 24h, idleTimeout: 1h}
  gateway: {enabled: true, port: 8091}
  analytics: {ingestURL: "http://ingest/api/v1/ingest/events",
              apiKeySecretRef: {name: ingest-key, key: api-key}}
  rollout: {strategy: Canary, canaryReplicas: 1, maxSurge: "25%", maxUnavailable: 0}
  replicas: 2
""",
    "MCPAccessGrant": """
apiVersion: mcpruntime.org/v1alpha1
kind: MCPAccessGrant
metadata: {name: payments-to-globex, namespace: mcp-team-acme}
spec:
  serverRef: {name: payments}
  subject: {teamID: globex-uuid, agentID: cursor}
  maxTrust: medium
  allowedSideEffects: [read]
  toolRules: [{name: echo, decision: allow, requiredTrust: low}, {name: create_task, decision: deny}]
  expiresAt: "2027-01-01T00:00:00Z"
""",
    "MCPAgentSession": """
apiVersion: mcpruntime.org/v1alpha1
kind: MCPAgentSession
metadata: {name: globex-session, namespace: mcp-team-acme}
spec:
  serverRef: {name: payments}
  subject: {teamID: globex-uuid, agentID: cursor}
  consentedTrust: low
  expiresAt: "2027-01-01T00:00:00Z"
  upstreamTokenSecretRef: {name: upstream, key: token}
""",
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_samples_validate_against_generated_crd(kind: str) -> None:
    resource = load_resource(SAMPLES[kind])
    data = dump_resource(resource)
    crd = next(c for c in render_crds().values() if c["spec"]["names"]["kind"] == kind)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(data, _to_jsonschema(schema))


def test_crd_schema_rejects_what_the_model_rejects() -> None:
    crd = next(c for c in render_crds().values() if c["spec"]["names"]["kind"] == "MCPServer")
    schema = _to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    bad = dump_resource(load_resource(SAMPLES["MCPServer"]))
    bad["spec"]["tools"][0]["sideEffect"] = "explode"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad["spec"]["tools"][0] = {"name": "x"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def _to_jsonschema(node: object) -> object:
    """OpenAPI's `nullable` and `x-kubernetes-*` as plain JSON Schema, to validate samples offline."""
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def test_server_sample_also_round_trips_as_model() -> None:
    server = load_resource(SAMPLES["MCPServer"])
    assert isinstance(server, MCPServer)
    assert server.spec.rollout is not None and server.spec.rollout.max_surge == "25%"
