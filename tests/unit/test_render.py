"""The manifest renderer: every object validates against the Kubernetes 1.30 schemas, and the wiring a
user depends on holds (traffic goes through the gateway, the app listens on the route, secrets stay in
Secrets, canary splits, names fit, output is deterministic)."""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest

from mcp_runtime.manifests import (
    APP_CONTAINER,
    GATEWAY_CONTAINER,
    OwnerReference,
    RenderedServer,
    RenderError,
    RenderOptions,
    SecretKey,
    TeamNamespaceOptions,
    owner_reference_for,
    render_cluster_roles,
    render_jwks_configmap,
    render_server,
    render_team_namespace,
)
from mcp_runtime.manifests.images import has_registry_host, qualify_image
from mcp_runtime.manifests.names import label_value, object_name
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer

K8S_VERSION = "1.30"
NS = "mcp-team-acme"
TEAM = "6f1c1a52-33b5-4d8e-9a0e-7d3f2b9c1e44"
INGEST = "http://sentinel-ingest.mcp-runtime.svc/api/v1/ingest/events"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def make_server(name: str = "payments", **spec: Any) -> MCPServer:
    body: dict[str, Any] = {
        "teamID": TEAM,
        "image": "acme/payments",
        "imageTag": "v1",
        "tools": [{"name": "echo", "sideEffect": "read"}],
    }
    body.update(spec)
    return MCPServer.model_validate({"metadata": {"name": name, "namespace": NS}, "spec": body})


def policy_for(server: MCPServer) -> PolicyDocument:
    grant = MCPAccessGrant.model_validate({
        "metadata": {"name": "globex-cursor", "namespace": NS},
        "spec": {"serverRef": {"name": server.name}, "subject": {"teamID": "globex", "agentID": "cursor"},
                 "maxTrust": "medium", "allowedSideEffects": ["read"],
                 "toolRules": [{"name": "echo", "decision": "allow"}]},
    })
    session = MCPAgentSession.model_validate({
        "metadata": {"name": "sess-1", "namespace": NS},
        "spec": {"serverRef": {"name": server.name}, "subject": {"teamID": "globex", "agentID": "cursor"},
                 "consentedTrust": "low", "expiresAt": datetime(2030, 1, 1, tzinfo=UTC).isoformat()},
    })
    return compile_policy(server, [grant], [session])


def render(server: MCPServer, **options: Any) -> RenderedServer:
    return render_server(server, policy_for(server), RenderOptions(**options))


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas() -> Iterator[None]:
    """kubernetes_validate re-reads its JSON schema files on every call; read each once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kubernetes_validate.utils, "schema_contents",
                      functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents))
        yield


def validate_all(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        name = obj["metadata"]["name"]
        assert len(name) <= 63 and DNS_1035.match(name), name
        for key, value in obj["metadata"].get("labels", {}).items():
            assert LABEL_VALUE.match(value) and len(value) <= 63, (key, value)


def containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    return {c["name"]: c for c in spec["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def arg_value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


# --- the matrix: every combination renders objects the API server would accept -------------------------

GATEWAY = [{"enabled": True}, {"enabled": False}, {"enabled": True, "port": 9000}]
ANALYTICS: list[dict[str, Any] | None] = [
    None,
    {"disabled": True},
    {"ingestURL": INGEST, "apiKeySecretRef": {"name": "ingest-key", "key": "api-key"}},
]
INGRESS = [{}, {"ingressHost": "mcp.example.com"}, {"ingressHost": "acme.example.com", "ingressPath": "/acme/pay/mcp",
                                                    "ingressClass": "nginx"}]
WORKLOAD = [
    {},
    {"envVars": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "EMPTY"}],
     "secretEnvVars": [{"name": "API_TOKEN", "secretKeyRef": {"name": "payments-secrets", "key": "token"}}],
     "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
     "imagePullSecrets": ["regcred", "other-cred"]},
]
ROLLOUT: list[dict[str, Any] | None] = [
    None,
    {"strategy": "RollingUpdate", "maxSurge": "25%", "maxUnavailable": 0},
    {"strategy": "Recreate"},
    {"strategy": "Canary", "canaryReplicas": 1},
]
TOOLS = [
    [{"name": "echo", "sideEffect": "read"}],
    [{"name": "echo", "sideEffect": "read"},
     {"name": "create_invoice", "sideEffect": "write", "requiredTrust": "medium"},
     {"name": "drop/all", "sideEffect": "destructive", "requiredTrust": "high", "riskLevel": "critical"}],
]

def _matrix() -> list[Any]:
    """Every gateway x analytics x rollout combination; ingress, workload and tool shapes rotate through
    them so each value of those meets every gateway and analytics setting without a full product."""
    cases = []
    for n, ((gi, g), (ai, a), (ri, r)) in enumerate(itertools.product(enumerate(GATEWAY), enumerate(ANALYTICS),
                                                                       enumerate(ROLLOUT))):
        ii, wi, ti = n % len(INGRESS), (n // 3) % len(WORKLOAD), (n // 2) % len(TOOLS)
        cases.append(pytest.param(g, a, INGRESS[ii], WORKLOAD[wi], r, TOOLS[ti],
                                  id=f"gw{gi}-an{ai}-ro{ri}-ing{ii}-wl{wi}-tools{ti}"))
    return cases


MATRIX = _matrix()


@pytest.mark.parametrize(("gateway", "analytics", "ingress", "workload", "rollout", "tools"), MATRIX)
def test_matrix_validates_against_kubernetes_schemas(
    gateway: dict[str, Any], analytics: dict[str, Any] | None, ingress: dict[str, Any], workload: dict[str, Any],
    rollout: dict[str, Any] | None, tools: list[dict[str, Any]],
) -> None:
    spec: dict[str, Any] = {"gateway": gateway, "tools": tools, "replicas": 3, **ingress, **workload}
    if analytics is not None:
        spec["analytics"] = analytics
    if rollout is not None:
        spec["rollout"] = rollout
    server = make_server(**spec)
    rendered = render(server, ingest_url=INGEST, registry_host="registry.example.com")
    validate_all([*rendered.all(), rendered.pod()])

    service_target = rendered.service["spec"]["ports"][0]["targetPort"]
    assert service_target == (server.spec.gateway.port if server.spec.gateway.enabled else server.spec.port)
    for deployment in rendered.deployments:
        names = set(containers(deployment))
        assert names == ({APP_CONTAINER, GATEWAY_CONTAINER} if server.spec.gateway.enabled else {APP_CONTAINER})
        assert env_of(containers(deployment)[APP_CONTAINER])["MCP_PATH"] == server.spec.ingress_path


@pytest.mark.parametrize("options", [
    RenderOptions(),
    RenderOptions(watch_policy_via_api=True, restart_on_policy_change=True, image_pull_policy="IfNotPresent"),
    RenderOptions(tls_enabled=True, tls_cluster_issuer="letsencrypt", ingress_annotations={"a.b/c": "d"},
                  labels={"env": "prod"}, owner_reference=OwnerReference("mcpruntime.org/v1alpha1", "MCPServer",
                                                                         "payments", "uid-123")),
    RenderOptions(tls_enabled=True, tls_issuer="team-ca", run_as_user=None, run_as_group=None,
                  ingest_url=INGEST, ingest_key_secret=SecretKey("mcp-ingest", "key"),
                  app_default_resources={"requests": {"cpu": "10m"}}, ingress_enabled=False),
    RenderOptions(tls_enabled=True, public_url="https://mcp.example.com",
                  oauth_issuer="https://platform.example.com/api/v1/oauth"),
], ids=["defaults", "watch-api", "tls-owner", "tls-no-host-issuer", "oauth-resource"])
def test_option_variants_validate(options: RenderOptions) -> None:
    for server in (make_server(ingressHost="mcp.example.com"), make_server()):
        rendered = render_server(server, policy_for(server), options)
        validate_all([*rendered.all(), rendered.pod()])


# --- behaviour ------------------------------------------------------------------------------------------

def test_all_traffic_goes_through_the_gateway_sidecar() -> None:
    server = make_server(port=8088, servicePort=80, gateway={"port": 8091})
    rendered = render(server)
    assert rendered.service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8091, "protocol": "TCP"}]
    gateway = containers(rendered.deployment)[GATEWAY_CONTAINER]
    assert gateway["command"] == ["mcp-runtime"]
    args = gateway["args"]
    assert args[:2] == ["gateway", "run"]
    assert arg_value(args, "--upstream") == "http://127.0.0.1:8088/payments/mcp"
    assert arg_value(args, "--listen") == "0.0.0.0:8091"
    assert arg_value(args, "--policy-file") == "/etc/mcp-runtime/policy/policy.json"
    assert arg_value(args, "--jwks-file") == "/etc/mcp-runtime/jwks/jwks.json"
    assert gateway["ports"][0]["containerPort"] == 8091
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {m["mountPath"]: m.get("readOnly") for m in gateway["volumeMounts"]}["/etc/mcp-runtime/policy"] is True
    volumes = {v["name"]: v for v in rendered.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == rendered.policy_configmap["metadata"]["name"] == "payments-policy"
    assert volumes["jwks"]["configMap"]["name"] == "mcp-runtime-jwks"


def test_sidecar_follows_custom_route_and_ports() -> None:
    server = make_server(port=3000, gateway={"port": 4000}, publicPathPrefix="billing/v2")
    rendered = render(server)
    args = containers(rendered.deployment)[GATEWAY_CONTAINER]["args"]
    assert server.spec.ingress_path == "/billing/v2/mcp"
    assert arg_value(args, "--upstream") == "http://127.0.0.1:3000/billing/v2/mcp"
    app = containers(rendered.deployment)[APP_CONTAINER]
    assert env_of(app)["PORT"] == "3000"
    assert env_of(app)["MCP_PATH"] == "/billing/v2/mcp"
    assert rendered.ingress is not None
    assert rendered.ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/billing/v2/mcp"
    assert app["readinessProbe"]["tcpSocket"]["port"] == app["ports"][0]["name"]
    assert app["ports"][0]["containerPort"] == 3000


def test_upstream_url_override_is_used() -> None:
    server = make_server(gateway={"upstreamURL": "http://127.0.0.1:8088/mcp"})
    args = containers(render(server).deployment)[GATEWAY_CONTAINER]["args"]
    assert arg_value(args, "--upstream") == "http://127.0.0.1:8088/mcp"


def test_without_gateway_the_service_targets_the_app() -> None:
    rendered = render(make_server(gateway={"enabled": False}), watch_policy_via_api=True)
    assert rendered.service["spec"]["ports"][0]["targetPort"] == 8088
    assert list(containers(rendered.deployment)) == [APP_CONTAINER]
    assert rendered.rbac == []
    assert rendered.deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_ingest_flags_only_when_analytics_is_on() -> None:
    on = render(make_server(analytics={"apiKeySecretRef": {"name": "ingest-key", "key": "api-key"}}), ingest_url=INGEST)
    args = containers(on.deployment)[GATEWAY_CONTAINER]["args"]
    assert arg_value(args, "--ingest-url") == INGEST
    assert arg_value(args, "--ingest-key-file") == "/etc/mcp-runtime/ingest/api-key"
    volumes = {v["name"]: v for v in on.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["ingest-key"]["secret"]["secretName"] == "ingest-key"
    assert volumes["ingest-key"]["secret"]["items"] == [{"key": "api-key", "path": "api-key"}]
    # The key is mounted into the sidecar only, never into the app.
    assert all(m["name"] != "ingest-key" for m in containers(on.deployment)[APP_CONTAINER]["volumeMounts"])

    spec_url = render(make_server(analytics={"ingestURL": "http://other/ingest"}), ingest_url=INGEST,
                      ingest_key_secret=SecretKey("platform-ingest", "k"))
    args = containers(spec_url.deployment)[GATEWAY_CONTAINER]["args"]
    assert arg_value(args, "--ingest-url") == "http://other/ingest"
    volumes = {v["name"]: v for v in spec_url.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["ingest-key"]["secret"]["secretName"] == "platform-ingest"

    for rendered in (render(make_server(analytics={"disabled": True}), ingest_url=INGEST), render(make_server())):
        args = containers(rendered.deployment)[GATEWAY_CONTAINER]["args"]
        assert "--ingest-url" not in args and "--ingest-key-file" not in args


def test_sidecars_export_traces_when_the_operator_is_told_where() -> None:
    from mcp_runtime.operator.settings import OperatorSettings

    settings = OperatorSettings.from_env({"MCP_RUNTIME_OTLP_ENDPOINT": "http://otel-collector.observability:4318"})
    assert settings.render.otlp_endpoint == "http://otel-collector.observability:4318"
    traced = render(make_server(), otlp_endpoint=settings.render.otlp_endpoint)
    args = containers(traced.deployment)[GATEWAY_CONTAINER]["args"]
    assert arg_value(args, "--otlp-endpoint") == "http://otel-collector.observability:4318"
    assert "--otlp-endpoint" not in containers(render(make_server()).deployment)[GATEWAY_CONTAINER]["args"]


def test_env_vars_and_secret_env_vars() -> None:
    server = make_server(
        envVars=[{"name": "LOG_LEVEL", "value": "debug"}],
        secretEnvVars=[{"name": "API_TOKEN", "secretKeyRef": {"name": "payments-secrets", "key": "token"}}],
    )
    app = containers(render(server).deployment)[APP_CONTAINER]
    env = {e["name"]: e for e in app["env"]}
    assert env["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "debug"}
    assert env["API_TOKEN"] == {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "payments-secrets",
                                                                                    "key": "token"}}}
    assert "value" not in env["API_TOKEN"]
    assert env["PORT"]["value"] == "8088" and env["HOST"]["value"] == "0.0.0.0"


@pytest.mark.parametrize("field", ["envVars", "secretEnvVars"])
@pytest.mark.parametrize("name", ["PORT", "MCP_PATH"])
def test_reserved_env_names_are_refused(field: str, name: str) -> None:
    entry = {"name": name, "value": "1"} if field == "envVars" else {"name": name,
                                                                      "secretKeyRef": {"name": "s", "key": "k"}}
    with pytest.raises(RenderError, match=name):
        render(make_server(**{field: [entry]}))


def test_user_host_wins() -> None:
    app = containers(render(make_server(envVars=[{"name": "HOST", "value": "::"}])).deployment)[APP_CONTAINER]
    assert [e for e in app["env"] if e["name"] == "HOST"] == [{"name": "HOST", "value": "::"}]


def test_canary_splits_replicas_behind_one_service() -> None:
    server = make_server(replicas=5, rollout={"strategy": "Canary", "canaryReplicas": 2, "maxSurge": 1})
    rendered = render(server, registry_host="registry.example.com",
                      canary_stable_image="registry.example.com/acme/payments:v0")
    assert rendered.canary_deployment is not None
    stable, canary = rendered.deployment, rendered.canary_deployment
    assert stable["metadata"]["name"] == "payments" and canary["metadata"]["name"] == "payments-canary"
    assert stable["spec"]["replicas"] == 3 and canary["spec"]["replicas"] == 2
    assert containers(stable)[APP_CONTAINER]["image"] == "registry.example.com/acme/payments:v0"
    assert containers(canary)[APP_CONTAINER]["image"] == "registry.example.com/acme/payments:v1"
    service_selector = rendered.service["spec"]["selector"]
    for deployment in (stable, canary):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service_selector.items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    # The two Deployments never select each other's pods.
    assert stable["spec"]["selector"]["matchLabels"] != canary["spec"]["selector"]["matchLabels"]
    assert not (canary["spec"]["selector"]["matchLabels"].items()
                <= stable["spec"]["template"]["metadata"]["labels"].items())


def test_canary_default_size_and_first_deploy_image() -> None:
    rendered = render(make_server(replicas=4, rollout={"strategy": "Canary"}))
    assert rendered.canary_deployment is not None
    assert rendered.deployment["spec"]["replicas"] == 3 and rendered.canary_deployment["spec"]["replicas"] == 1
    images = {containers(d)[APP_CONTAINER]["image"] for d in rendered.deployments}
    assert images == {"acme/payments:v1"}


def test_rollout_strategies() -> None:
    assert render(make_server()).deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert render(make_server(rollout={"strategy": "Recreate"})).deployment["spec"]["strategy"] == {"type": "Recreate"}
    rolling = render(make_server(rollout={"maxSurge": "50%", "maxUnavailable": 1})).deployment["spec"]["strategy"]
    assert rolling == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 1}}
    assert render(make_server(rollout={"strategy": "Recreate"})).canary_deployment is None


def test_selectors_are_stable_across_redeploys() -> None:
    """A Deployment's selector is immutable: image, replicas, strategy or team changes must not touch it."""
    first = render(make_server())
    for changed in (make_server(imageTag="v2", replicas=4), make_server(rollout={"strategy": "Canary"}),
                    make_server(teamID="other-team"), make_server(rollout={"strategy": "Recreate"})):
        again = render(changed)
        assert again.deployment["spec"]["selector"] == first.deployment["spec"]["selector"]
        assert again.service["spec"]["selector"] == first.service["spec"]["selector"]
        assert again.deployment["metadata"]["name"] == first.deployment["metadata"]["name"]


def test_policy_configmap_round_trips() -> None:
    server = make_server(tools=TOOLS[1])
    policy = policy_for(server)
    rendered = render_server(server, policy, RenderOptions())
    cm = rendered.policy_configmap
    assert cm["metadata"]["name"] == "payments-policy"
    assert cm["metadata"]["annotations"]["mcpruntime.org/policy-revision"] == policy.revision
    loaded = PolicyDocument.from_json(cm["data"]["policy.json"])
    assert loaded == policy
    assert cm["data"]["policy.json"].encode() == policy.to_json()


def test_policy_revision_on_pod_template_only_when_restarting() -> None:
    server = make_server()
    policy = policy_for(server)
    hot = render_server(server, policy, RenderOptions())
    assert "mcpruntime.org/policy-revision" not in hot.deployment["spec"]["template"]["metadata"]["annotations"]
    restart = render_server(server, policy, RenderOptions(restart_on_policy_change=True))
    annotations = restart.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["mcpruntime.org/policy-revision"] == policy.revision


def test_security_context_is_locked_down() -> None:
    rendered = render(make_server())
    pod_spec = rendered.deployment["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    for container in pod_spec["containers"]:
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}


def test_watch_policy_via_api_renders_least_privilege_rbac() -> None:
    rendered = render(make_server(), watch_policy_via_api=True)
    kinds = {o["kind"]: o for o in rendered.rbac}
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding"}
    assert kinds["Role"]["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                                       "resourceNames": ["payments-policy"], "verbs": ["get", "list", "watch"]}]
    assert kinds["RoleBinding"]["subjects"][0]["name"] == kinds["ServiceAccount"]["metadata"]["name"]
    pod_spec = rendered.deployment["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    # The token reaches the sidecar only, never the app container.
    assert pod_spec["automountServiceAccountToken"] is False
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    mounts = {name: [m["mountPath"] for m in c["volumeMounts"]] for name, c in containers(rendered.deployment).items()}
    assert token_dir in mounts[GATEWAY_CONTAINER] and token_dir not in mounts[APP_CONTAINER]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    sources = volumes["kube-api-access"]["projected"]["sources"]
    assert any("serviceAccountToken" in source for source in sources)
    args = containers(rendered.deployment)[GATEWAY_CONTAINER]["args"]
    assert arg_value(args, "--policy-configmap") == f"{NS}/payments-policy"
    assert "--policy-file" in args  # the mount stays as the fallback
    validate_all(rendered.all())


def test_ingress_shape() -> None:
    plain = render(make_server()).ingress
    assert plain is not None
    assert plain["spec"]["ingressClassName"] == "traefik"
    rule = plain["spec"]["rules"][0]
    assert "host" not in rule
    assert rule["http"]["paths"][0] == {"path": "/payments/mcp", "pathType": "Prefix",
                                        "backend": {"service": {"name": "payments", "port": {"number": 80}}}}
    assert "tls" not in plain["spec"]

    tls = render(make_server(ingressHost="mcp.example.com", ingressClass="nginx"), tls_enabled=True,
                 tls_cluster_issuer="letsencrypt").ingress
    assert tls is not None
    assert tls["spec"]["ingressClassName"] == "nginx"
    assert tls["spec"]["rules"][0]["host"] == "mcp.example.com"
    assert tls["spec"]["tls"] == [{"hosts": ["mcp.example.com"], "secretName": "payments-tls"}]
    assert tls["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert render(make_server(), ingress_enabled=False).ingress is None


def test_labels_and_owner_reference() -> None:
    server = make_server()
    server.metadata.uid = "0b6c2f7e-uid"
    owner = owner_reference_for(server)
    rendered = render(server, owner_reference=owner, labels={"env": "prod", "app.kubernetes.io/name": "x"})
    for obj in rendered.all():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "payments"
        assert labels["app.kubernetes.io/instance"] == "payments"
        assert labels["app.kubernetes.io/managed-by"] == "mcp-runtime"
        assert labels["mcpruntime.org/server"] == "payments"
        assert labels["mcpruntime.org/team"] == TEAM
        assert labels["env"] == "prod"
        assert obj["metadata"]["namespace"] == NS
        assert obj["metadata"]["ownerReferences"] == [{
            "apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer", "name": "payments",
            "uid": "0b6c2f7e-uid", "controller": True, "blockOwnerDeletion": True}]
    assert "ownerReferences" not in rendered.pod()["metadata"]
    with pytest.raises(ValueError, match="uid"):
        owner_reference_for(make_server())


def test_pod_for_podman_has_the_deployment_template() -> None:
    rendered = render(make_server(imagePullSecrets=["regcred"]), image_pull_policy="IfNotPresent")
    pod = rendered.pod()
    template = rendered.deployment["spec"]["template"]
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "payments"
    assert pod["metadata"]["labels"] == template["metadata"]["labels"]
    assert pod["spec"]["containers"] == template["spec"]["containers"]
    assert pod["spec"]["volumes"] == template["spec"]["volumes"]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert all(c["imagePullPolicy"] == "IfNotPresent" for c in pod["spec"]["containers"])
    pod["spec"]["containers"].clear()  # a copy: the rendered Deployment is unaffected
    assert rendered.deployment["spec"]["template"]["spec"]["containers"]


def test_resources_and_image_registry_prefix() -> None:
    rendered = render(make_server(resources={"limits": {"memory": "1Gi"}}), registry_host="registry.local:5000")
    app = containers(rendered.deployment)[APP_CONTAINER]
    assert app["image"] == "registry.local:5000/acme/payments:v1"
    assert app["resources"] == {"limits": {"memory": "1Gi"}}
    full = render(make_server(image="ghcr.io/acme/payments@sha256:" + "a" * 64), registry_host="registry.local:5000")
    assert containers(full.deployment)[APP_CONTAINER]["image"] == "ghcr.io/acme/payments@sha256:" + "a" * 64


def test_deterministic_output() -> None:
    def build() -> list[dict[str, Any]]:
        server = make_server(tools=TOOLS[1], rollout={"strategy": "Canary"}, replicas=3, **WORKLOAD[1])
        rendered = render(server, ingest_url=INGEST, watch_policy_via_api=True, tls_enabled=True)
        return [*rendered.all(), rendered.pod()]

    first, second = build(), build()
    assert first == second
    assert json.dumps(first, sort_keys=False) == json.dumps(second, sort_keys=False)


def test_long_server_names_fit() -> None:
    name = "a" + "b" * 61 + "c"
    assert len(name) == 63
    rendered = render(make_server(name=name, rollout={"strategy": "Canary"}, replicas=2),
                      watch_policy_via_api=True, tls_enabled=True)
    objects = [*rendered.all(), rendered.pod()]
    validate_all(objects)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(set(names)) == len(names)
    assert rendered.canary_deployment is not None
    assert rendered.canary_deployment["metadata"]["name"].endswith("-canary")
    assert rendered.policy_configmap["metadata"]["name"].endswith("-policy")
    # The volume points at the (shortened) ConfigMap that is actually rendered.
    volumes = {v["name"]: v for v in rendered.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == rendered.policy_configmap["metadata"]["name"]


def test_names_starting_with_a_digit_become_valid_service_names() -> None:
    rendered = render(make_server(name="9lives"))
    assert rendered.service["metadata"]["name"] == "mcp-9lives"
    assert rendered.ingress is not None
    assert rendered.ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "mcp-9lives"
    validate_all(rendered.all())


def test_name_helpers() -> None:
    assert object_name("payments") == "payments"
    assert object_name("x" * 63, "-canary") != object_name("x" * 62 + "y", "-canary")
    assert len(object_name("x" * 63, "-policy-reader")) == 63
    assert label_value("Acme Corp") != label_value("Acme_Corp!")
    assert len(label_value("t" * 100)) <= 63
    assert not has_registry_host("payments:v1") and not has_registry_host("acme/payments")
    assert has_registry_host("localhost/payments") and has_registry_host("registry:5000/p")
    assert qualify_image("payments:v1", "reg.example.com") == "reg.example.com/payments:v1"
    assert qualify_image("docker.io/library/python:3.11", "reg.example.com") == "docker.io/library/python:3.11"


def test_team_label_is_sanitized_but_kept_in_annotation() -> None:
    team = "Acme Corp / payments team with a very long identifier that is not a label value at all"
    rendered = render(make_server(teamID=team))
    labels = rendered.deployment["metadata"]["labels"]
    assert LABEL_VALUE.match(labels["mcpruntime.org/team"]) and len(labels["mcpruntime.org/team"]) <= 63
    assert rendered.deployment["metadata"]["annotations"]["mcpruntime.org/team-id"] == team
    validate_all(rendered.all())


def test_jwks_configmap() -> None:
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1", "alg": "EdDSA", "use": "sig"}]}
    cm = render_jwks_configmap(jwks, NS)
    validate_all([cm])
    assert cm["metadata"]["name"] == RenderOptions().jwks_configmap
    assert json.loads(cm["data"]["jwks.json"]) == jwks


# --- team namespaces ------------------------------------------------------------------------------------

def test_team_namespace_objects_validate_and_isolate() -> None:
    team = render_team_namespace("acme", TEAM, TeamNamespaceOptions(ingress_controller_namespace="kube-system",
                                                                    allow_from_namespaces=("monitoring",)))
    objects = team.all()
    validate_all(objects)
    assert team.namespace["metadata"]["name"] == "mcp-team-acme"
    assert team.namespace["metadata"]["labels"]["mcpruntime.org/team"] == TEAM
    assert team.namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(o["metadata"].get("namespace") == "mcp-team-acme" for o in objects[1:])
    policy = team.network_policy["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress"]
    sources = policy["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}} in sources
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in sources
    assert {"podSelector": {}} in sources
    assert len(sources) == 3
    bindings = {b["roleRef"]["name"]: b["subjects"][0]["name"] for b in team.role_bindings}
    assert bindings == {"mcp-runtime-team-owner": "mcp-runtime:team:acme:owner",
                        "mcp-runtime-team-member": "mcp-runtime:team:acme:member"}
    assert team.limit_range["spec"]["limits"][0]["default"]["memory"] == "512Mi"
    assert team.resource_quota["spec"]["hard"]["pods"] == "100"


def test_rendered_servers_meet_the_team_namespace_pod_security() -> None:
    """`restricted` admission: the rendered pod's security settings are the ones it requires."""
    pod = render(make_server()).pod()
    spec = pod["spec"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("slug", ["Acme", "-acme", "acme_corp", "a" * 60, ""])
def test_bad_team_slugs_are_refused(slug: str) -> None:
    with pytest.raises(RenderError, match="slug"):
        render_team_namespace(slug, TEAM)


def test_cluster_roles() -> None:
    roles = render_cluster_roles()
    validate_all(roles)
    by_name = {r["metadata"]["name"]: r for r in roles}
    assert set(by_name) == {"mcp-runtime-team-owner", "mcp-runtime-team-member"}

    def verbs(role: dict[str, Any], group: str, resource: str) -> set[str]:
        return {v for rule in role["rules"] if group in rule["apiGroups"] and resource in rule["resources"]
                for v in rule["verbs"]}

    owner, member = by_name["mcp-runtime-team-owner"], by_name["mcp-runtime-team-member"]
    assert {"create", "delete"} <= verbs(owner, "mcpruntime.org", "mcpaccessgrants")
    assert verbs(owner, "mcpruntime.org", "mcpagentsessions") == {"get", "list", "watch"}
    assert verbs(member, "mcpruntime.org", "mcpservers") == {"get", "list", "watch"}
    assert verbs(member, "", "secrets") == set()
    assert verbs(member, "", "pods/log") == {"get", "list", "watch"}


def test_render_does_not_mutate_its_input() -> None:
    server = make_server(rollout={"strategy": "Canary"}, replicas=2)
    before = copy.deepcopy(server.model_dump())
    render(server, watch_policy_via_api=True)
    assert server.model_dump() == before


def test_a_policy_for_another_server_is_refused() -> None:
    other = make_server(name="billing")
    with pytest.raises(RenderError, match="billing"):
        render_server(make_server(), policy_for(other), RenderOptions())




def test_a_stdio_server_runs_the_bridge_as_its_app_entrypoint() -> None:
    server = make_server(stdio={
        "package": "npm:@modelcontextprotocol/server-everything@2026.8.31", "maxSessions": 4,
        "envVars": [{"name": "LOG_LEVEL", "value": "debug"}],
        "secretEnvVars": [{"name": "API_KEY", "secretKeyRef": {"name": "everything", "key": "api-key"}}]})
    rendered = render(server)
    validate_all([rendered.deployment])
    app = containers(rendered.deployment)[APP_CONTAINER]
    assert app["command"] == ["mcp-runtime", "bridge", "stdio", "--max-sessions", "4", "--idle-timeout", "15m",
                              "--", "npx", "-y", "@modelcontextprotocol/server-everything@2026.8.31"]
    env = {e["name"]: e for e in app["env"]}
    assert env["LOG_LEVEL"]["value"] == "debug"
    assert env["API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "everything", "key": "api-key"}
    assert env["PORT"]["value"] == "8088"  # the bridge serves where the gateway sidecar forwards


def test_stdio_env_may_not_set_the_platform_variables() -> None:
    with pytest.raises(RenderError, match="PORT"):
        render(make_server(stdio={"command": "server", "envVars": [{"name": "PORT", "value": "1"}]}))


def remote_server(**remote: Any) -> MCPServer:
    spec = {"teamID": TEAM, "tools": [{"name": "search", "sideEffect": "read"}],
            "remote": {"url": "https://mcp.example.com/mcp", **remote}}
    return MCPServer.model_validate({"metadata": {"name": "saas", "namespace": NS}, "spec": spec})


def test_a_remote_server_renders_a_gateway_only_deployment() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    server = remote_server(caBundle=pem, headerSecret={"name": "saas-key", "key": "api-key", "header": "X-API-Key"})
    rendered = render(server, watch_policy_via_api=True)
    validate_all(rendered.all())
    pod = rendered.deployment["spec"]["template"]["spec"]
    assert list(containers(rendered.deployment)) == [GATEWAY_CONTAINER]  # nothing of the remote runs here
    args = containers(rendered.deployment)[GATEWAY_CONTAINER]["args"]
    assert arg_value(args, "--upstream") == "https://mcp.example.com/mcp"
    assert arg_value(args, "--upstream-header") == "X-API-Key"
    assert "--upstream-header-prefix" not in args
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["remote-credential"]["secret"]["secretName"] == "saas-key"
    assert volumes["remote-credential"]["secret"]["items"] == [{"key": "api-key", "path": "credential"}]
    assert rendered.policy_configmap["data"]["remote-ca.pem"] == pem  # public data, beside the policy
    assert {"key": "remote-ca.pem", "path": "remote-ca.pem"} in volumes["policy"]["configMap"]["items"]
    assert "app-tmp" not in volumes
    # the Service still targets the gateway, the only way in
    assert rendered.service["spec"]["ports"][0]["targetPort"] == server.spec.gateway.port


def test_a_remote_server_without_credential_or_ca_mounts_nothing_extra() -> None:
    rendered = render(remote_server())
    validate_all(rendered.all())
    args = containers(rendered.deployment)[GATEWAY_CONTAINER]["args"]
    assert "--upstream-header" not in args and "--ca-file" not in args
    assert set(rendered.policy_configmap["data"]) == {"policy.json"}


def test_a_per_caller_token_remote_is_refused_with_the_reason() -> None:
    with pytest.raises(RenderError, match=r"sessionToken.*\(mcp-runtime up\) only"):
        render(remote_server(sessionToken={}))
