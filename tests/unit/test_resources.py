"""Resource models: defaults, validation rules and clear errors, YAML in and out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    MCPServer,
    ResourceError,
    Scope,
    ServerMetadata,
    Trust,
    dump_resource,
    image_has_tag,
    load_resource,
    load_resources,
    load_servers_file,
    metadata_to_server,
    normalize_route,
    parse_duration,
    scope_image_prefix,
    scope_namespace,
    to_yaml,
)
from mcp_runtime.resources.access import GrantPhase, SessionPhase

SERVER_YAML = """
apiVersion: mcpruntime.org/v1alpha1
kind: MCPServer
metadata:
  name: payments
  namespace: mcp-servers
spec:
  description: Payments MCP server for invoice lookup and refund workflows.
  image: registry.example.com/payments
  imageTag: v1.0.0
  port: 8088
  publicPathPrefix: payments
  gateway:
    enabled: true
  tools:
  - name: list_invoices
    sideEffect: read
  - name: refund_invoice
    requiredTrust: high
    sideEffect: destructive
"""


def test_publish_guide_manifest_loads_with_defaults() -> None:
    server = load_resource(SERVER_YAML)
    assert isinstance(server, MCPServer)
    spec = server.spec
    assert (spec.replicas, spec.port, spec.service_port) == (1, 8088, 80)
    assert spec.ingress_path == "/payments/mcp"
    assert spec.ingress_class == "traefik"
    assert spec.policy.mode == "allow-list" and spec.policy.default_decision == "deny"
    assert spec.session.required is True and spec.session.max_lifetime == "24h"
    assert spec.gateway.port == 8091
    assert spec.tools[0].required_trust == Trust.low
    assert server.image_ref == "registry.example.com/payments:v1.0.0"


def test_round_trip_is_camel_case_and_stable() -> None:
    server = load_resource(SERVER_YAML)
    data = dump_resource(server)
    assert data["apiVersion"] == "mcpruntime.org/v1alpha1"
    assert "imageTag" in data["spec"] and "image_tag" not in data["spec"]
    assert data["spec"]["tools"][1]["requiredTrust"] == "high"
    again = load_resource(to_yaml(server))
    assert dump_resource(again) == data


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("repo/app", "latest"),
        ("repo/app:v2", None),
        ("localhost:5000/repo/app", "latest"),
        ("localhost:5000/repo/app:v3", None),
        ("repo/app@sha256:" + "a" * 64, None),
    ],
)
def test_image_tag_defaults_to_latest_unless_pinned(image: str, tag: str | None) -> None:
    server = MCPServer.model_validate({"metadata": {"name": "s"}, "spec": {"image": image}})
    assert server.spec.image_tag == tag
    assert server.image_ref == (image if tag is None else f"{image}:{tag}")
    assert image_has_tag(image) is (tag is None)


def _server(**spec: object) -> dict[str, object]:
    return {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer",
            "metadata": {"name": "s", "namespace": "ns"}, "spec": {"image": "i", **spec}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"tools": [{"name": "a", "sideEffect": "read"}, {"name": "a", "sideEffect": "write"}]}, "listed twice"),
        ({"tools": [{"name": "a"}]}, "spec.tools[0].sideEffect: missing required field"),
        ({"tools": [{"name": "a", "sideEffect": "explode"}]}, "'read', 'write' or 'destructive'"),
        ({"tools": [{"name": "a", "sideEffect": "read", "requiredTrust": "max"}]}, "'low', 'medium' or 'high'"),
        ({"port": 8091}, "gateway sidecar needs its own port"),
        ({"rollout": {"strategy": "Canary", "canaryReplicas": 3}, "replicas": 2}, "between 0 and replicas"),
        ({"rollout": {"strategy": "RollingUpdate", "canaryReplicas": 1}}, "only valid with rollout.strategy Canary"),
        ({"imagePullPolicy": "Always"}, "unknown field 'imagePullPolicy' at spec.imagePullPolicy"),
        ({"session": {"maxLifetime": "forever"}}, "not a duration"),
        ({"policy": {"mode": "block"}}, "'allow-list' or 'observe'"),
        ({"port": 70000}, "spec.port"),
    ],
)
def test_server_validation_errors_name_field_and_fix(spec: dict[str, object], expected: str) -> None:
    with pytest.raises(ResourceError) as err:
        load_resource(_server(**spec), source="server.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("server.yaml: ")


def test_bad_names_kind_version_and_yaml() -> None:
    with pytest.raises(ResourceError, match="not a valid name"):
        load_resource({**_server(), "metadata": {"name": "Payments_API"}})
    with pytest.raises(ResourceError, match="kind 'Deployment' is not supported"):
        load_resource({**_server(), "kind": "Deployment"})
    with pytest.raises(ResourceError, match=re.escape("apiVersion 'v1' is not supported; use mcpruntime.org/v1alpha1")):
        load_resource({**_server(), "apiVersion": "v1"})
    with pytest.raises(ResourceError, match=r"not valid YAML at line 2"):
        load_resource("kind: MCPServer\n  bad: [", source="x.yaml")
    with pytest.raises(ResourceError, match="expected a YAML mapping"):
        load_resource("- a\n- b\n")


GRANT = {
    "apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAccessGrant",
    "metadata": {"name": "payments-to-globex", "namespace": "mcp-team-acme"},
    "spec": {
        "serverRef": {"name": "payments", "namespace": "mcp-team-acme"},
        "subject": {"teamID": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "agentID": "cursor"},
        "maxTrust": "medium",
        "toolRules": [{"name": "echo", "decision": "allow", "requiredTrust": "low"}],
    },
}


def test_grant_and_session_load_and_phases() -> None:
    grant = load_resource(GRANT)
    assert isinstance(grant, MCPAccessGrant)
    assert grant.spec.subject.team_id == "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    now = datetime.now(UTC)
    assert grant.phase_at(now) == GrantPhase.active
    grant.spec.disabled = True
    assert grant.phase_at(now) == GrantPhase.disabled
    session = MCPAgentSession.model_validate({
        "metadata": {"name": "s1", "namespace": "mcp-team-acme"},
        "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"},
                 "consentedTrust": "low", "expiresAt": "2026-01-01T00:00:00"},
    })
    assert session.spec.expires_at is not None and session.spec.expires_at.tzinfo is not None
    assert session.phase_at(datetime(2025, 12, 31, tzinfo=UTC)) == SessionPhase.active
    assert session.phase_at(datetime(2026, 1, 1, tzinfo=UTC)) == SessionPhase.expired
    session.spec.revoked = True
    assert session.phase_at(datetime(2025, 1, 1, tzinfo=UTC)) == SessionPhase.revoked


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"subject": {}}, "subject needs at least one of humanID, agentID, teamID"),
        ({"subject": {"agentID": ""}}, "subject needs at least one"),
        ({"serverRef": {"name": "payments", "namespace": "mcp-team-globex"}}, "must live in its server's namespace"),
        ({"toolRules": [{"name": "a"}, {"name": "a", "decision": "deny"}]}, "one rule per tool"),
        ({"toolRules": [{"name": "a", "decision": "maybe"}]}, "'allow' or 'deny'"),
        ({"allowedSideEffects": ["read", "launch"]}, "'read', 'write' or 'destructive'"),
    ],
)
def test_grant_validation_errors(patch: dict[str, object], expected: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(expected)):
        load_resource({**GRANT, "spec": {**GRANT["spec"], **patch}})  # type: ignore[dict-item]


def test_multi_document_stream() -> None:
    resources = load_resources(SERVER_YAML + "\n---\n" + to_yaml(load_resource(GRANT)) + "---\n")
    assert [r.kind for r in resources] == ["MCPServer", "MCPAccessGrant"]


@pytest.mark.parametrize(
    ("text", "delta"),
    [("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("4h", timedelta(hours=4)),
     ("1h30m", timedelta(minutes=90)), ("7d", timedelta(days=7))],
)
def test_parse_duration(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "4", "h", "4x", "1h 30m", "0s", "-1h", "30m1h2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


METADATA = """
version: v1
servers:
- name: payments
  description: Payments MCP server for invoice lookup and refund workflows.
  scope: org
  image: registry.example.com/org/payments
  imageTag: v1.0.0
  route: /payments
  port: 8088
  replicas: 1
  gateway:
    enabled: true
  tools:
  - name: list_invoices
    description: List invoices for a customer account.
    requiredTrust: low
    sideEffect: read
  - name: refund_invoice
    description: Issue a refund for an invoice.
    requiredTrust: high
    sideEffect: destructive
"""


def test_publish_guide_metadata_converts_to_server() -> None:
    servers = load_servers_file(METADATA, source=".mcp/servers.yaml")
    meta = servers.servers[0]
    server = metadata_to_server(meta)
    assert server.metadata.namespace == "mcp-servers-org"
    assert server.spec.image == "registry.example.com/org/payments"
    assert server.spec.image_tag == "v1.0.0"
    assert server.spec.public_path_prefix == "payments"
    assert server.spec.ingress_path == "/payments/mcp"
    assert [t.name for t in server.spec.tools] == ["list_invoices", "refund_invoice"]
    assert server.spec.gateway.enabled is True


def test_metadata_defaults() -> None:
    meta = ServerMetadata.model_validate({"name": "payments"})
    assert meta.scope == Scope.tenant
    assert (meta.image_tag, meta.route, meta.port, meta.replicas) == ("latest", "/payments", 8088, 1)
    assert meta.resolved_namespace() == "mcp-servers"
    assert meta.resolved_namespace("acme") == "mcp-team-acme"
    assert meta.resolved_image(team_slug="acme", registry="registry.example.com/") == (
        "registry.example.com/acme/payments")
    org = ServerMetadata.model_validate({"name": "payments", "scope": "org"})
    assert org.resolved_image() == "org/payments" and org.resolved_namespace() == "mcp-servers-org"
    public = ServerMetadata.model_validate({"name": "payments", "scope": "public"})
    assert public.resolved_image() == "public/payments" and public.resolved_namespace() == "mcp-servers-public"
    server = metadata_to_server(meta, namespace="mcp-team-acme", team_id="t-1", team_slug="acme")
    assert server.spec.team_id == "t-1" and server.spec.image == "acme/payments"


@pytest.mark.parametrize(
    ("route", "normalized"),
    [("payments", "/payments"), ("/payments/", "/payments"), ("/payments/mcp", "/payments"), ("a/b", "/a/b")],
)
def test_route_normalization(route: str, normalized: str) -> None:
    assert normalize_route(route) == normalized


def test_scope_helpers() -> None:
    assert scope_namespace(Scope.org) == "mcp-servers-org"
    assert scope_namespace(Scope.public) == "mcp-servers-public"
    assert scope_namespace(Scope.tenant, "acme") == "mcp-team-acme"
    assert scope_image_prefix(Scope.tenant, "acme") == "acme/"
    assert scope_image_prefix(Scope.org) == "org/"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: v2\nservers: []\n", "'v1'"),
        ("version: v1\nservers:\n- name: a\n- name: a\n", "server 'a' is listed twice"),
        ("version: v1\nservers:\n- name: a\n  tools: [{name: t}]\n", "servers[0].tools[0].sideEffect: missing"),
        ("version: v1\nservers:\n- name: a\n  scope: galaxy\n", "'tenant', 'org' or 'public'"),
        ("version: v1\nservers:\n- name: a\n  colour: blue\n", "unknown field 'colour'"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_metadata_errors(text: str, expected: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(expected)):
        load_servers_file(text, source=".mcp/servers.yaml")


def test_empty_metadata_file_is_empty_list() -> None:
    assert load_servers_file("").servers == []
