"""The operator's reconcile plan: what it applies, deletes and reports for create, update, readiness,
canary, grant changes, session revocation, bad specs, and grant/session phases."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes_validate
import pytest

from mcp_runtime.kube.client import ANNOTATION_APPLIED_HASH, manifest_hash
from mcp_runtime.manifests import RenderOptions
from mcp_runtime.operator.plan import ObjectRef, Observed, plan_access_status, plan_server, status_changed
from mcp_runtime.operator.settings import OperatorSettings
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer, MCPServerStatus

NS = "mcp-team-acme"
NOW = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
UID = "0b5e7c1e-1111-4222-8333-944455556666"
JWKS = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1"}]}


def server(generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> MCPServer:
    body: dict[str, Any] = {"teamID": "acme-uuid", "image": "registry.example.com/acme/payments", "imageTag": "v1",
                            "tools": [{"name": "echo", "sideEffect": "read"},
                                      {"name": "create_task", "sideEffect": "write", "requiredTrust": "medium"}]}
    body.update(spec)
    doc: dict[str, Any] = {"metadata": {"name": "payments", "namespace": NS, "uid": UID, "generation": generation},
                           "spec": body}
    if status is not None:
        doc["status"] = status
    return MCPServer.model_validate(doc)


def grant(name: str = "cursor-read", server_name: str = "payments", **spec: Any) -> MCPAccessGrant:
    body = {"serverRef": {"name": server_name}, "subject": {"agentID": "cursor"}, "maxTrust": "medium"}
    body.update(spec)
    return MCPAccessGrant.model_validate({"metadata": {"name": name, "namespace": NS, "generation": 1}, "spec": body})


def session(name: str = "sess-1", **spec: Any) -> MCPAgentSession:
    body = {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"}, "consentedTrust": "medium",
            "expiresAt": "2030-01-01T00:00:00Z"}
    body.update(spec)
    return MCPAgentSession.model_validate({"metadata": {"name": name, "namespace": NS, "generation": 3},
                                           "spec": body})


OPTIONS = RenderOptions(watch_policy_via_api=True, gateway_image="ghcr.io/acme/mcp-runtime:1")


def by_kind(plan_apply: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in plan_apply:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def ready_deployment(obj: dict[str, Any], ready: int | None = None, generation: int = 1) -> dict[str, Any]:
    live = copy.deepcopy(obj)
    live["metadata"].setdefault("annotations", {})[ANNOTATION_APPLIED_HASH] = manifest_hash(obj)
    replicas = obj["spec"]["replicas"]
    live["metadata"]["generation"] = generation
    live["status"] = {"observedGeneration": generation, "replicas": replicas,
                      "updatedReplicas": replicas, "readyReplicas": replicas if ready is None else ready}
    return live


def test_create_renders_every_object_owned_by_the_server_and_reports_pending() -> None:
    plan = plan_server(server(), [grant()], [session()], Observed(jwks=JWKS), OPTIONS, NOW)
    kinds = by_kind(plan.apply)
    assert set(kinds) == {"ConfigMap", "Deployment", "Service", "Ingress", "ServiceAccount", "Role", "RoleBinding"}
    names = {o["metadata"]["name"] for o in kinds["ConfigMap"]}
    assert names == {"payments-policy", "mcp-runtime-jwks"}
    for obj in plan.apply:
        if obj["metadata"]["name"] == "mcp-runtime-jwks":
            # shared by every gateway of the namespace: not owned by one server
            assert "ownerReferences" not in obj["metadata"]
            assert json.loads(obj["data"]["jwks.json"]) == JWKS
            continue
        owners = obj["metadata"]["ownerReferences"]
        assert owners == [{"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer", "name": "payments",
                           "uid": UID, "controller": True, "blockOwnerDeletion": True}]
    ingress = kinds["Ingress"][0]
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/payments/mcp"
    assert plan.delete == []
    assert plan.status["phase"] == "Pending"
    assert plan.status["observedGeneration"] == 1
    assert conditions(plan.status) == {"Ready": "False", "DeploymentReady": "False", "GatewayReady": "False",
                                       "PolicyReady": "True"}
    MCPServerStatus.model_validate(plan.status)  # the status fits the CRD's status schema


@pytest.mark.parametrize("spec", [
    {},
    {"replicas": 3, "rollout": {"strategy": "Canary", "canaryReplicas": 1}},
    {"rollout": {"strategy": "Recreate"}, "ingressHost": "mcp.example.com"},
    {"gateway": {"enabled": False}},
    {"resources": {"limits": {"cpu": "1", "memory": "256Mi"}, "requests": {"cpu": "100m"}},
     "envVars": [{"name": "LOG_LEVEL", "value": "debug"}],
     "secretEnvVars": [{"name": "TOKEN", "secretKeyRef": {"name": "payments-secrets", "key": "token"}}]},
    {"replicas": 0},
])
def test_planned_objects_validate_against_kubernetes_schemas(spec: dict[str, Any]) -> None:
    plan = plan_server(server(**spec), [grant()], [session()], Observed(jwks=JWKS), OPTIONS, NOW)
    for obj in plan.apply:
        kubernetes_validate.validate(obj, "1.30", strict=True)


def test_ready_when_every_deployment_is_ready_and_transition_times_stay_put() -> None:
    first = plan_server(server(), [], [], Observed(), OPTIONS, NOW)
    deployment = by_kind(first.apply)["Deployment"][0]
    observed = Observed(owned={"Deployment": [ready_deployment(deployment)]})
    later = NOW + timedelta(minutes=5)
    ready = plan_server(server(status=first.status), [], [], observed, OPTIONS, later)
    assert ready.status["phase"] == "Ready"
    assert set(conditions(ready.status).values()) == {"True"}
    stamps = {c["type"]: c["lastTransitionTime"] for c in ready.status["conditions"]}
    assert stamps["PolicyReady"] == "2026-11-21T04:00:00Z"  # unchanged since the first plan
    assert stamps["Ready"] == "2026-11-21T04:05:00Z"  # moved False -> True now
    again = plan_server(server(status=ready.status), [], [], observed, OPTIONS, later + timedelta(minutes=1))
    assert not status_changed(ready.status, again.status), "a quiet re-plan must not rewrite status"


def test_a_deployment_with_an_older_spec_is_not_ready() -> None:
    old = plan_server(server(), [], [], Observed(), OPTIONS, NOW)
    live = ready_deployment(by_kind(old.apply)["Deployment"][0])
    new = plan_server(server(imageTag="v2", generation=2), [], [], Observed(owned={"Deployment": [live]}), OPTIONS, NOW)
    assert conditions(new.status)["DeploymentReady"] == "False"
    assert "being updated" in new.status["message"]


def test_partially_ready_and_unobserved_generation() -> None:
    plan = plan_server(server(replicas=3), [], [], Observed(), OPTIONS, NOW)
    deployment = by_kind(plan.apply)["Deployment"][0]
    partial = plan_server(server(replicas=3), [], [],
                          Observed(owned={"Deployment": [ready_deployment(deployment, ready=1)]}), OPTIONS, NOW)
    assert partial.status["phase"] == "PartiallyReady"
    assert "1/3 replicas ready" in partial.status["message"]
    stale = ready_deployment(deployment)
    stale["metadata"]["generation"] = 2  # the spec changed; the controller has not caught up
    pending = plan_server(server(replicas=3, generation=2), [], [],
                          Observed(owned={"Deployment": [stale]}), OPTIONS, NOW)
    assert conditions(pending.status)["DeploymentReady"] == "False"
    assert pending.status["observedGeneration"] == 2


def test_canary_keeps_the_live_stable_image_and_promotion_deletes_the_canary() -> None:
    v1 = plan_server(server(replicas=4), [], [], Observed(), OPTIONS, NOW)
    stable_live = ready_deployment(by_kind(v1.apply)["Deployment"][0])
    canary_spec = {"replicas": 4, "imageTag": "v2", "rollout": {"strategy": "Canary", "canaryReplicas": 1}}
    canary = plan_server(server(**canary_spec), [], [], Observed(owned={"Deployment": [stable_live]}), OPTIONS, NOW)
    deployments = {d["metadata"]["name"]: d for d in by_kind(canary.apply)["Deployment"]}
    image = {n: d["spec"]["template"]["spec"]["containers"][0]["image"] for n, d in deployments.items()}
    replicas = {n: d["spec"]["replicas"] for n, d in deployments.items()}
    assert image == {"payments": "registry.example.com/acme/payments:v1",
                     "payments-canary": "registry.example.com/acme/payments:v2"}
    assert replicas == {"payments": 3, "payments-canary": 1}
    canary_live = ready_deployment(deployments["payments-canary"])
    promoted = plan_server(server(replicas=4, imageTag="v2"), [], [],
                           Observed(owned={"Deployment": [ready_deployment(deployments["payments"]), canary_live]}),
                           OPTIONS, NOW)
    assert ObjectRef("Deployment", NS, "payments-canary") in promoted.delete
    stable = by_kind(promoted.apply)["Deployment"]
    assert [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in stable] == [
        "registry.example.com/acme/payments:v2"]


def test_objects_no_longer_rendered_are_deleted() -> None:
    first = plan_server(server(), [], [], Observed(), OPTIONS, NOW)
    owned = by_kind(first.apply)
    no_ingress = RenderOptions(watch_policy_via_api=False, ingress_enabled=False)
    plan = plan_server(server(), [], [], Observed(owned=owned), no_ingress, NOW)
    deleted = {(r.kind, r.name) for r in plan.delete}
    assert deleted == {("Ingress", "payments"), ("ServiceAccount", "payments-gateway"),
                       ("Role", "payments-policy-reader"), ("RoleBinding", "payments-policy-reader")}


def _policy(plan: Any) -> dict[str, Any]:
    cm = next(o for o in plan.apply if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "payments-policy")
    doc: dict[str, Any] = json.loads(cm["data"]["policy.json"])
    assert cm["metadata"]["annotations"]["mcpruntime.org/policy-revision"] == doc["revision"]
    return doc


def test_grant_changes_rerender_only_this_servers_policy() -> None:
    before = _policy(plan_server(server(), [grant()], [], Observed(), OPTIONS, NOW))
    after = _policy(plan_server(server(), [grant(), grant("cursor-write", allowedSideEffects=["write"]),
                                           grant("other", server_name="ledger")], [], Observed(), OPTIONS, NOW))
    assert [g["name"] for g in before["grants"]] == ["cursor-read"]
    assert [g["name"] for g in after["grants"]] == ["cursor-read", "cursor-write"]
    assert before["revision"] != after["revision"]


def test_session_revoke_changes_the_policy_configmap() -> None:
    live = _policy(plan_server(server(), [grant()], [session()], Observed(), OPTIONS, NOW))
    revoked = _policy(plan_server(server(), [grant()], [session(revoked=True)], Observed(), OPTIONS, NOW))
    assert live["sessions"][0]["revoked"] is False
    assert revoked["sessions"][0]["revoked"] is True
    assert live["revision"] != revoked["revision"]


def test_unrenderable_spec_is_an_error_status_and_applies_nothing() -> None:
    plan = plan_server(server(envVars=[{"name": "PORT", "value": "1"}]), [], [], Observed(), OPTIONS, NOW)
    assert plan.apply == [] and plan.delete == []
    assert plan.status["phase"] == "Error"
    assert "PORT" in plan.status["message"]
    assert conditions(plan.status)["Ready"] == "False"


def test_server_without_uid_cannot_own_objects() -> None:
    body = server().model_dump(by_alias=True, mode="json", exclude_none=True)
    body["metadata"].pop("uid")
    plan = plan_server(MCPServer.model_validate(body), [], [], Observed(), OPTIONS, NOW)
    assert plan.status["phase"] == "Error" and "uid" in plan.status["message"]


def test_url_uses_host_and_tls() -> None:
    tls = RenderOptions(tls_enabled=True, tls_cluster_issuer="letsencrypt-prod")
    plan = plan_server(server(ingressHost="mcp.example.com"), [], [], Observed(), tls, NOW)
    assert plan.status["url"] == "https://mcp.example.com/payments/mcp"
    assert plan_server(server(), [], [], Observed(), OPTIONS, NOW).status["url"] == "/payments/mcp"


@pytest.mark.parametrize(("obj", "exists", "phase", "ready"), [
    (grant(), True, "Active", "True"),
    (grant(disabled=True), True, "Disabled", "False"),
    (grant(expiresAt="2026-01-01T00:00:00Z"), True, "Expired", "False"),
    (grant(), False, "Active", "False"),
    (session(), True, "Active", "True"),
    (session(revoked=True), True, "Revoked", "False"),
    (session(expiresAt="2026-11-21T03:59:59Z"), True, "Expired", "False"),
])
def test_grant_and_session_phases(obj: Any, exists: bool, phase: str, ready: str) -> None:
    status = plan_access_status(obj, exists, NOW)
    assert status["phase"] == phase
    assert conditions(status)["Ready"] == ready
    assert conditions(status)["ServerFound"] == ("True" if exists else "False")
    assert status["observedGeneration"] == obj.metadata.generation
    if not exists:
        assert "does not exist" in status["message"]


def test_settings_from_env() -> None:
    settings = OperatorSettings.from_env({
        "MCP_OPERATOR_GATEWAY_IMAGE": "registry.example.com/mcp-runtime:1.2",
        "MCP_SENTINEL_INGEST_URL": "http://ingest/api/v1/ingest/events",
        "MCP_SENTINEL_INGEST_KEY_SECRET": "sentinel-ingest:api-key",
        "MCP_OPERATOR_TLS_CLUSTER_ISSUER": "letsencrypt-prod",
        "MCP_OPERATOR_INGRESS_ANNOTATIONS": '{"traefik.ingress.kubernetes.io/router.entrypoints": "websecure"}',
        "MCP_OPERATOR_NAMESPACES": "mcp-team-acme, mcp-team-globex",
        "MCP_OPERATOR_PUBLIC_URL": "https://mcp.example.com",
        "MCP_OPERATOR_OAUTH_ISSUER": "https://platform.example.com/api/v1/oauth",
    })
    assert settings.render.public_url == "https://mcp.example.com"
    assert settings.render.oauth_issuer == "https://platform.example.com/api/v1/oauth"
    assert settings.render.gateway_image == "registry.example.com/mcp-runtime:1.2"
    assert settings.render.watch_policy_via_api is True
    assert settings.render.tls_enabled and settings.render.tls_cluster_issuer == "letsencrypt-prod"
    assert settings.render.ingest_key_secret is not None and settings.render.ingest_key_secret.key == "api-key"
    assert settings.namespaces == ("mcp-team-acme", "mcp-team-globex")
    assert settings.jwks_source == ("mcp-runtime", "mcp-runtime-jwks")


def test_a_remote_server_is_reconciled_into_a_gateway_only_deployment_and_turns_ready() -> None:
    """Switching a server to remote replaces its pods with gateway-only ones; Ready once those are."""
    remote = {"url": "https://mcp.example.com/mcp", "headerSecret": {"name": "saas", "key": "token"}}
    before = plan_server(server(), [grant()], [], Observed(jwks=JWKS), OPTIONS, NOW)
    switched = server(generation=2, image=None, imageTag=None, remote=remote)
    first = plan_server(switched, [grant()], [], Observed(jwks=JWKS), OPTIONS, NOW)
    kinds = by_kind(first.apply)
    (deployment,) = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["mcp-gateway"]
    assert pod["containers"][0]["image"] == "ghcr.io/acme/mcp-runtime:1"
    assert deployment["metadata"]["name"] == by_kind(before.apply)["Deployment"][0]["metadata"]["name"]
    assert first.status["phase"] == "Pending"
    for obj in first.apply:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    live = Observed(jwks=JWKS, owned={"Deployment": [ready_deployment(deployment, generation=2)]})
    ready = plan_server(server(generation=2, image=None, imageTag=None, remote=remote, status=first.status),
                        [grant()], [], live, OPTIONS, NOW)
    assert ready.status["phase"] == "Ready" and set(conditions(ready.status).values()) == {"True"}


def test_setup_makes_the_platform_the_authorization_server_of_the_sidecars() -> None:
    """What `setup` (and the Helm chart) give the platform and the operator: with TLS, the servers at
    https://mcp.<domain> are OAuth resources of the platform's issuer at https://platform.<domain>."""
    from mcp_runtime.kube.platform import PlatformConfig, render_platform

    def env_of(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
        deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
        return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}

    for tls, scheme in ((False, "http"), (True, "https")):
        objects = render_platform(PlatformConfig(domain="example.com", with_tls=tls, acme_email="ops@example.com"))
        operator = OperatorSettings.from_env(env_of(objects, "mcp-runtime-operator"))
        if tls:
            assert operator.render.public_url == "https://mcp.example.com"
            assert operator.render.oauth_issuer == "https://platform.example.com/api/v1/oauth"
        else:  # the platform serves OAuth only with an https issuer: sidecars name no authorization server
            assert operator.render.public_url is None and operator.render.oauth_issuer is None
        api = env_of(objects, "mcp-runtime-api")
        assert api["MCP_RUNTIME_PUBLIC_URL"] == f"{scheme}://platform.example.com"
        assert api["MCP_RUNTIME_SERVERS_URL"] == f"{scheme}://mcp.example.com"
