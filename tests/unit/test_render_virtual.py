"""A virtual server on Kubernetes: the objects the operator renders validate against the 1.30 schemas, and
the wiring a user depends on holds (members' apps reached only by V's gateway pods, V reads exactly its
members' policy ConfigMaps, owner references only in V's namespace, labels elsewhere), and the plan's
status says what is missing."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.gateway_virtual import load_config, member_routes
from mcp_runtime.kube.client import ANNOTATION_APPLIED_HASH, manifest_hash
from mcp_runtime.manifests import RenderError, RenderOptions, SecretKey
from mcp_runtime.manifests.virtual import (
    ANNOTATION_CONFIG,
    CONFIG_KEY,
    LABEL_VIRTUAL,
    LABEL_VIRTUAL_NAMESPACE,
    RenderedVirtual,
    render_virtual,
)
from mcp_runtime.operator.virtual import plan_virtual
from mcp_runtime.resources import MCPServer, MCPVirtualServer

NS = "mcp-team-acme"
OTHER = "mcp-team-tools"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
UID = "0b6f7c1e-1111-4222-8333-944455556666"
INGEST = "http://sentinel-ingest.mcp-runtime.svc/api/v1/ingest/events"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kubernetes_validate.utils, "schema_contents",
                      functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents))
        yield


def member(name: str, namespace: str, **spec: Any) -> MCPServer:
    body: dict[str, Any] = {"image": f"acme/{name}", "imageTag": "v1", "port": 8088,
                            "tools": [{"name": "echo", "sideEffect": "read"}]}
    body.update(spec)
    if "remote" in spec:
        body = {k: v for k, v in body.items() if k not in ("image", "imageTag", "port")}
    return MCPServer.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": body})


def virtual(name: str = "toolbox", members: list[tuple[str, str | None]] | None = None) -> MCPVirtualServer:
    refs = members or [("payments", None), ("helper", OTHER)]
    return MCPVirtualServer.model_validate({
        "metadata": {"name": name, "namespace": NS, "uid": UID, "generation": 2},
        "spec": {"teamID": "acme", "members": [
            {"serverRef": {"name": n, **({"namespace": ns} if ns else {})}} for n, ns in refs]}})


PAYMENTS = member("payments", NS)
HELPER = member("helper", OTHER, ingressPath="/tools/helper/mcp", port=9000)


def rendered(v: MCPVirtualServer | None = None, members: list[MCPServer] | None = None,
             **options: Any) -> RenderedVirtual:
    from mcp_runtime.operator.virtual import owner_of

    v = v or virtual()
    return render_virtual(v, members if members is not None else [PAYMENTS, HELPER],
                          RenderOptions(owner_reference=owner_of(v), **options))


def by(objects: list[dict[str, Any]], kind: str, namespace: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and o["metadata"]["namespace"] == namespace]


def test_every_object_is_one_the_api_server_accepts_with_valid_names_and_labels() -> None:
    long = virtual("a" * 63, [("payments", None), ("b" * 60, OTHER)])
    for objects in (rendered().all(), rendered(long, [PAYMENTS, member("b" * 60, OTHER)]).all(),
                    rendered(ingress_enabled=False, tls_enabled=True, otlp_endpoint="http://otel:4318").all(),
                    rendered(ingest_url=INGEST, ingest_key_secret=SecretKey("ingest", "api-key")).all()):
        for obj in objects:
            kubernetes_validate.validate(obj, "1.30", strict=True)
            assert len(obj["metadata"]["name"]) <= 63 and DNS_1035.match(obj["metadata"]["name"])
            for value in obj["metadata"]["labels"].values():
                assert LABEL_VALUE.match(value) and len(value) <= 63
        assert len({(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects}) == len(objects)


def test_owner_references_only_in_the_virtual_servers_namespace_and_labels_everywhere() -> None:
    objects = rendered().all()
    for obj in objects:
        meta = obj["metadata"]
        assert meta["labels"][LABEL_VIRTUAL] == "toolbox" and meta["labels"][LABEL_VIRTUAL_NAMESPACE] == NS
        owners = meta.get("ownerReferences")
        if meta["namespace"] == NS:
            assert owners == [{"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPVirtualServer",
                               "name": "toolbox", "uid": UID, "controller": True, "blockOwnerDeletion": True}]
        else:
            assert owners is None  # the API server would refuse (or GC) a cross-namespace owner
    kinds = {(o["kind"], o["metadata"]["namespace"]) for o in objects}
    assert {("ConfigMap", NS), ("Deployment", NS), ("Service", NS), ("Ingress", NS), ("ServiceAccount", NS),
            ("Role", OTHER), ("RoleBinding", OTHER), ("Service", OTHER), ("NetworkPolicy", OTHER),
            ("Role", NS), ("NetworkPolicy", NS)} <= kinds


def test_the_gateway_reads_exactly_its_members_policy_configmaps() -> None:
    objects = rendered().all()
    for namespace, configmaps in ((NS, ["payments-policy"]), (OTHER, ["helper-policy"])):
        [role] = by(objects, "Role", namespace)
        assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": configmaps,
                                  "verbs": ["get", "list", "watch"]}]
        [binding] = by(objects, "RoleBinding", namespace)
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "toolbox-virtual-gateway",
                                        "namespace": NS}]


def test_members_apps_are_reached_directly_and_only_by_the_virtual_gateway_pods() -> None:
    r = rendered()
    objects = r.all()
    gateway_pods = r.deployment["spec"]["template"]["metadata"]["labels"]
    config = json.loads(r.config["data"][CONFIG_KEY])
    upstreams = {m["name"]: m["upstream"] for m in config["members"]}
    for server, namespace in ((PAYMENTS, NS), (HELPER, OTHER)):
        [direct] = [s for s in by(objects, "Service", namespace) if s["metadata"]["name"].endswith("-direct")]
        # the app port, never the member's sidecar: V governs with the member's policy itself
        assert direct["spec"]["ports"][0]["targetPort"] == server.spec.port != server.spec.gateway.port
        assert direct["spec"]["selector"] == {"app.kubernetes.io/instance": server.name,
                                              "mcpruntime.org/server": server.name}
        path = server.spec.ingress_path or f"/{server.name}/mcp"
        assert upstreams[server.name] == (f"http://{direct['metadata']['name']}.{namespace}.svc:"
                                          f"{server.spec.port}{path}")
        [policy] = by(objects, "NetworkPolicy", namespace)
        assert policy["spec"]["podSelector"]["matchLabels"] == direct["spec"]["selector"]
        [rule] = policy["spec"]["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": server.spec.port}]
        [peer] = rule["from"]
        assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NS}}
        assert all(gateway_pods[k] == v for k, v in peer["podSelector"]["matchLabels"].items())


def test_the_gateway_deployment_is_locked_down_and_serves_the_virtual_path() -> None:
    r = rendered()
    pod = r.deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "toolbox-virtual-gateway"
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["command"] == ["mcp-runtime"]
    assert container["args"] == ["gateway", "virtual", "--config", "/etc/mcp-runtime/virtual/virtual.json",
                                 "--jwks-file", "/etc/mcp-runtime/jwks/jwks.json", "--listen", "0.0.0.0:8091"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["jwks"]["configMap"]["name"] == "mcp-runtime-jwks"
    assert volumes["config"]["configMap"]["name"] == "toolbox-virtual"
    assert "projected" in volumes["kube-api-access"]
    [rule] = r.ingress["spec"]["rules"] if r.ingress else []
    assert rule["http"]["paths"][0]["path"] == "/v/toolbox/mcp"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == r.service["metadata"]["name"]
    # a changed member list rolls the pods (the config is read once at start)
    fewer = rendered(members=[PAYMENTS])
    annotation = r.deployment["spec"]["template"]["metadata"]["annotations"][ANNOTATION_CONFIG]
    assert fewer.deployment["spec"]["template"]["metadata"]["annotations"][ANNOTATION_CONFIG] != annotation
    assert rendered().all() == r.all()  # deterministic


def test_with_analytics_the_gateway_sends_events_and_holds_approvals_with_the_namespaces_ingest_key() -> None:
    r = rendered(ingest_url=INGEST, ingest_key_secret=SecretKey("ingest", "key"),
                 approvals_url="http://api.mcp-runtime.svc/api/v1/ingest/approvals")
    pod = r.deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--ingest-url") + 1] == INGEST
    assert args[args.index("--ingest-key-file") + 1] == "/etc/mcp-runtime/ingest/api-key"
    assert args[args.index("--approvals-url") + 1].endswith("/ingest/approvals")
    [secret] = [v["secret"] for v in pod["volumes"] if "secret" in v]
    assert secret["secretName"] == "ingest" and secret["items"] == [{"key": "key", "path": "api-key"}]
    assert "--ingest-url" not in rendered().deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_a_member_it_cannot_govern_is_refused_with_the_reason() -> None:
    remote = member("saas", NS, remote={"url": "https://mcp.example.com/mcp"})
    with pytest.raises(RenderError, match="saas is a remote server"):
        rendered(members=[PAYMENTS, remote])
    ungoverned = member("helper", OTHER, gateway={"enabled": False})
    with pytest.raises(RenderError, match="runs without its gateway"):
        rendered(members=[PAYMENTS, ungoverned])


def test_the_gateway_reads_the_config_the_operator_renders(tmp_path: Path) -> None:
    from mcp_runtime.gateway.keys_source import JwksFile
    from mcp_runtime.security import KeyRing

    r = rendered()
    path = tmp_path / "virtual.json"
    path.write_text(r.config["data"][CONFIG_KEY])
    server, members = load_config(path)
    assert server.spec == virtual().spec and server.metadata.namespace == NS and server.metadata.name == "toolbox"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeyRing.generate().jwks()))
    routes = member_routes(members, JwksFile(jwks))
    assert [(r.namespace, r.server, r.policy.describe()) for r in routes] == [
        (NS, "payments", f"configmap:{NS}/payments-policy"), (OTHER, "helper", f"configmap:{OTHER}/helper-policy")]
    path.write_text(json.dumps({"virtualServer": {"metadata": {"name": "x"}}}))
    with pytest.raises(CliError, match="is not a virtual server's config"):
        load_config(path)


def _ready(deployment: dict[str, Any]) -> dict[str, Any]:
    live = json.loads(json.dumps(deployment))
    live["metadata"].update({"generation": 1, "annotations": {ANNOTATION_APPLIED_HASH: manifest_hash(deployment)}})
    live["status"] = {"readyReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1}
    return live


def test_the_plan_says_which_member_is_missing_deletes_what_is_stale_and_turns_ready() -> None:
    v = virtual()
    stale = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "toolbox-mcp-team-acme-old-direct", "namespace": OTHER}}
    missing = plan_virtual(v, {(NS, "payments"): PAYMENTS, (OTHER, "helper"): None}, [stale], None, None,
                           RenderOptions(), NOW)
    assert missing.status["phase"] == "Pending"
    assert "members mcp-team-tools/helper not found" in missing.status["message"]
    assert missing.status["url"] == "/v/toolbox/mcp"
    conditions = {c["type"]: c for c in missing.status["conditions"]}
    assert conditions["MembersFound"]["status"] == "False" and conditions["Ready"]["status"] == "False"
    assert [(d.kind, d.namespace, d.name) for d in missing.delete] == [("Service", OTHER, stale["metadata"]["name"])]
    assert not by(missing.apply, "Role", OTHER)  # nothing is opened in a namespace with no member

    members = {(NS, "payments"): PAYMENTS, (OTHER, "helper"): HELPER}
    first = plan_virtual(v, members, [], None, {"keys": []}, RenderOptions(public_url="https://mcp.example.com"),
                         NOW)
    assert first.apply[0]["metadata"]["name"] == "mcp-runtime-jwks"  # the keys the gateway mounts
    assert first.status["phase"] == "Pending" and first.status["url"] == "https://mcp.example.com/v/toolbox/mcp"
    [deployment] = [o for o in first.apply if o["kind"] == "Deployment"]
    labelled = [o for o in first.apply if LABEL_VIRTUAL in o["metadata"]["labels"]]
    ready = plan_virtual(v, members, labelled, _ready(deployment), None, RenderOptions(), NOW)
    assert ready.status["phase"] == "Ready" and ready.delete == []
    assert ready.status["message"].startswith("serving /v/toolbox/mcp")

    broken = plan_virtual(v, {(NS, "payments"): member("payments", NS, remote={"url": "https://x.example/mcp"})},
                          [], None, None, RenderOptions(), NOW)
    assert broken.status["phase"] == "Error" and broken.apply == []


def test_without_cluster_dns_the_gateway_reaches_members_by_their_direct_services_cluster_ip() -> None:
    from mcp_runtime.operator.settings import OperatorSettings
    from mcp_runtime.operator.virtual import cluster_ips

    v = virtual()
    first = rendered()
    services = [dict(o, spec={**o["spec"], "clusterIP": f"10.0.0.{i}"})
                for i, o in enumerate((o for o in first.cross if o["kind"] == "Service"), start=2)]
    hosts = cluster_ips(v, [PAYMENTS, HELPER], services)
    assert sorted(hosts.values()) == ["10.0.0.2", "10.0.0.3"]
    plan = plan_virtual(v, {(NS, "payments"): PAYMENTS, (OTHER, "helper"): HELPER}, services, None, None,
                        RenderOptions(), NOW, hosts)
    [config] = [o for o in plan.apply if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "toolbox-virtual"]
    upstreams = sorted(m["upstream"] for m in json.loads(config["data"][CONFIG_KEY])["members"])
    assert upstreams == ["http://10.0.0.2:8088/payments/mcp", "http://10.0.0.3:9000/tools/helper/mcp"]
    assert OperatorSettings.from_env({"MCP_OPERATOR_VIRTUAL_MEMBER_ADDRESS": "cluster-ip"}).virtual_member_address \
        == "cluster-ip"
    assert OperatorSettings.from_env({}).virtual_member_address == "dns"
    with pytest.raises(ValueError, match="dns or cluster-ip"):
        OperatorSettings.from_env({"MCP_OPERATOR_VIRTUAL_MEMBER_ADDRESS": "ip"})
