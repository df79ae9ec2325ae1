"""`cluster doctor`: read-only checks of a cluster running MCP Runtime, each with the fix.

Every check reads through the Kubernetes API and returns pass, warn or fail with one line of detail and,
unless it passed, what to do. A check that cannot read what it needs (RBAC) fails with that as its
reason rather than crashing the run. The list is documented in docs/kubernetes.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mcp_runtime.kube.client import KubeClient, KubeError
from mcp_runtime.kube.platform import (
    API,
    DATABASE_SECRET,
    INGEST,
    INGEST_KEY_SECRET,
    JWKS_CONFIGMAP,
    OPERATOR,
    REGISTRY,
    SYSTEM_NAMESPACE,
)
from mcp_runtime.manifests import TEAM_MEMBER_ROLE, TEAM_OWNER_ROLE, policy_configmap_name
from mcp_runtime.resources import GRANT_KIND, SERVER_KIND, SESSION_KIND
from mcp_runtime.resources.crd import render_crds

Manifest = dict[str, Any]
MIN_MINOR = 26
SESSION_BACKLOG = 500


class Level(StrEnum):
    passed = "pass"
    warn = "warn"
    fail = "fail"


@dataclass(frozen=True)
class CheckResult:
    id: str
    title: str
    level: Level
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "result": self.level.value, "detail": self.detail,
                "fix": self.fix}


@dataclass(frozen=True)
class DoctorOptions:
    namespace: str = SYSTEM_NAMESPACE
    ingress_class: str = "traefik"


def _ok(detail: str) -> tuple[Level, str, None]:
    return Level.passed, detail, None


def _ready(deployment: Manifest) -> tuple[int, int]:
    wanted = int(deployment.get("spec", {}).get("replicas", 1))
    ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    return wanted, ready


def _condition(obj: Manifest, type_: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return str(cond.get("status"))
    return None


class _Doctor:
    def __init__(self, client: KubeClient, options: DoctorOptions) -> None:
        self.client = client
        self.options = options
        self._cache: dict[tuple[str, str | None], list[Manifest]] = {}

    def all(self, kind: str, namespace: str | None = None) -> list[Manifest]:
        key = (kind, namespace)
        if key not in self._cache:
            self._cache[key] = self.client.list(kind, namespace)
        return self._cache[key]

    def team_namespaces(self) -> list[Manifest]:
        return [n for n in self.all("Namespace") if n["metadata"]["name"].startswith("mcp-team-")]

    # cluster ----------------------------------------------------------------------------------
    def api_version(self) -> tuple[Level, str, str | None]:
        info = self.client.version()
        minor = int(re.sub(r"\D", "", str(info.get("minor", "0"))) or 0)
        text = info.get("gitVersion") or f"{info.get('major')}.{info.get('minor')}"
        if int(info.get("major", 1)) == 1 and minor < MIN_MINOR:
            return Level.fail, f"Kubernetes {text}", f"upgrade the cluster to 1.{MIN_MINOR} or later"
        return _ok(f"Kubernetes {text}")

    def nodes_present(self) -> tuple[Level, str, str | None]:
        nodes = self.all("Node")
        if not nodes:
            return Level.fail, "no nodes registered", "join at least one node (k3s: install the agent)"
        return _ok(f"{len(nodes)} node(s)")

    def nodes_ready(self) -> tuple[Level, str, str | None]:
        nodes = self.all("Node")
        not_ready = [n["metadata"]["name"] for n in nodes if _condition(n, "Ready") != "True"]
        if not_ready:
            return Level.fail, f"not Ready: {', '.join(not_ready)}", "kubectl describe node <name>; check the kubelet"
        return _ok(f"{len(nodes)} node(s) Ready") if nodes else (Level.warn, "no nodes to check", None)

    def default_storage_class(self) -> tuple[Level, str, str | None]:
        classes = self.all("StorageClass")
        default = [c["metadata"]["name"] for c in classes if (c["metadata"].get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class") == "true"]
        if default:
            return _ok(f"default StorageClass {default[0]}")
        return (Level.warn, "no default StorageClass: the bundled registry's PersistentVolumeClaim stays Pending",
                "install a provisioner (k3s ships local-path) or use setup --registry-mode external")

    # CRDs ---------------------------------------------------------------------------------------
    def crd_installed(self, filename: str) -> tuple[Level, str, str | None]:
        name = render_crds()[filename]["metadata"]["name"]
        live = self.client.get("CustomResourceDefinition", name)
        if live is None:
            return (Level.fail, f"CRD {name} is missing",
                    "mcp-runtime setup (or: mcp-runtime crds print | kubectl apply -f -)")
        if _condition(live, "Established") not in (None, "True"):
            return Level.fail, f"CRD {name} is not Established", "kubectl describe crd " + name
        return _ok(f"CRD {name} installed")

    def crd_current(self, filename: str) -> tuple[Level, str, str | None]:
        wanted = render_crds()[filename]
        name = wanted["metadata"]["name"]
        live = self.client.get("CustomResourceDefinition", name)
        if live is None:
            return Level.fail, f"CRD {name} is missing", "mcp-runtime setup"
        want = [(v["name"], v["schema"]) for v in wanted["spec"]["versions"]]
        have = [(v.get("name"), v.get("schema")) for v in live.get("spec", {}).get("versions", [])]
        if want != have:
            return (Level.warn, f"CRD {name} differs from this CLI's version",
                    "re-run mcp-runtime setup to install the CRDs this version expects")
        return _ok(f"CRD {name} matches this version")

    # platform namespace -----------------------------------------------------------------------
    def system_namespace(self) -> tuple[Level, str, str | None]:
        if self.client.get("Namespace", self.options.namespace) is None:
            return Level.fail, f"namespace {self.options.namespace} is missing", "mcp-runtime setup"
        return _ok(f"namespace {self.options.namespace} exists")

    def _deployment(self, name: str, what: str, *, missing: Level, fix: str) -> tuple[Level, str, str | None]:
        live = self.client.get("Deployment", name, self.options.namespace)
        if live is None:
            return missing, f"{what} ({name}) is not installed", fix
        wanted, ready = _ready(live)
        if ready < max(wanted, 1):
            return (Level.fail, f"{what}: {ready}/{wanted} replicas ready",
                    f"kubectl -n {self.options.namespace} describe deployment {name}; "
                    f"kubectl -n {self.options.namespace} logs deployment/{name}")
        return _ok(f"{what}: {ready}/{wanted} replicas ready")

    def operator_ready(self) -> tuple[Level, str, str | None]:
        return self._deployment(OPERATOR, "operator", missing=Level.fail, fix="mcp-runtime setup")

    def operator_rbac(self) -> tuple[Level, str, str | None]:
        missing = [f"{kind} {OPERATOR}" for kind in ("ClusterRole", "ClusterRoleBinding")
                   if self.client.get(kind, OPERATOR) is None]
        if self.client.get("ServiceAccount", OPERATOR, self.options.namespace) is None:
            missing.append(f"ServiceAccount {OPERATOR}")
        if missing:
            return Level.fail, "missing " + ", ".join(missing), "mcp-runtime setup"
        return _ok("operator ServiceAccount, ClusterRole and binding exist")

    def platform_api_ready(self) -> tuple[Level, str, str | None]:
        return self._deployment(API, "platform API", missing=Level.warn,
                                fix="mcp-runtime setup --platform-mode tenant (CLI users need the API)")

    def ingest_ready(self) -> tuple[Level, str, str | None]:
        return self._deployment(INGEST, "Sentinel ingest", missing=Level.warn,
                                fix="mcp-runtime setup without --without-sentinel (analytics is off)")

    def registry_ready(self) -> tuple[Level, str, str | None]:
        return self._deployment(REGISTRY, "bundled registry", missing=Level.warn,
                                fix="fine with an external registry; "
                                    "else mcp-runtime setup --registry-mode bundled-http")

    def database_secret(self) -> tuple[Level, str, str | None]:
        if self.client.get("Deployment", API, self.options.namespace) is None:
            return _ok("platform API not installed; no database needed")
        secret = self.client.get("Secret", DATABASE_SECRET, self.options.namespace)
        if secret is None or "url" not in (secret.get("data") or {}) | (secret.get("stringData") or {}):
            return (Level.fail, f"Secret {DATABASE_SECRET} with key url is missing",
                    f"kubectl -n {self.options.namespace} create secret generic {DATABASE_SECRET} "
                    "--from-literal=url=postgresql+psycopg://user:pass@host/db")
        return _ok(f"Secret {DATABASE_SECRET} has the database URL")

    def ingest_key_secret(self) -> tuple[Level, str, str | None]:
        if self.client.get("Deployment", INGEST, self.options.namespace) is None:
            return _ok("Sentinel not installed; no ingest key needed")
        if self.client.get("Secret", INGEST_KEY_SECRET, self.options.namespace) is None:
            return (Level.warn, f"Secret {INGEST_KEY_SECRET} is missing: gateways send analytics unauthenticated "
                    "and ingest rejects them", f"create an API key and store it: kubectl -n {self.options.namespace} "
                    f"create secret generic {INGEST_KEY_SECRET} --from-literal=api-key=<key>")
        return _ok(f"Secret {INGEST_KEY_SECRET} exists")

    def jwks_configmap(self) -> tuple[Level, str, str | None]:
        cm = self.client.get("ConfigMap", JWKS_CONFIGMAP, self.options.namespace)
        if cm is None or not (cm.get("data") or {}).get("jwks.json"):
            return (Level.fail, f"ConfigMap {JWKS_CONFIGMAP} with jwks.json is missing: gateways cannot verify "
                    "session tokens", "start the platform API once (it publishes its signing keys) or re-run setup")
        return _ok(f"ConfigMap {JWKS_CONFIGMAP} holds the platform's public keys")

    # ingress and TLS ------------------------------------------------------------------------------
    def ingress_class(self) -> tuple[Level, str, str | None]:
        classes = [c["metadata"]["name"] for c in self.all("IngressClass")]
        if self.options.ingress_class in classes:
            return _ok(f"IngressClass {self.options.ingress_class} exists")
        if classes:
            return (Level.warn, f"no IngressClass {self.options.ingress_class} (found: {', '.join(classes)})",
                    "set spec.ingressClass on servers, or: mcp-runtime cluster config --ingress traefik")
        return Level.fail, "no IngressClass at all: servers are unreachable from outside", \
            "mcp-runtime cluster config --ingress traefik (k3s ships Traefik already)"

    def ingress_controller(self) -> tuple[Level, str, str | None]:
        """The Traefik that serves the class: the one `cluster config` installed for it (any namespace; its
        pods are labelled with the class), else one named traefik in `traefik` or `kube-system` (k3s's).
        Ready, not merely there: a Deployment whose image cannot be pulled routes nothing."""
        ours = [d for d in self.client.list("Deployment", None, label_selector="app.kubernetes.io/name=traefik")
                if ((d.get("spec") or {}).get("selector") or {}).get("matchLabels", {}).get(
                    "app.kubernetes.io/instance") == self.options.ingress_class]
        names = {n["metadata"]["name"] for n in self.all("Namespace")}
        found = ours or [d for candidate in ("traefik", "kube-system") if candidate in names
                         for d in self.all("Deployment", candidate) if "traefik" in d["metadata"]["name"]]
        if not found:
            return (Level.warn, "no Traefik Deployment found in traefik or kube-system",
                    "mcp-runtime cluster config --ingress traefik (team NetworkPolicies admit namespace traefik)")
        deployment = found[0]
        where = f"{deployment['metadata']['namespace']}/{deployment['metadata']['name']}"
        wanted, ready = _ready(deployment)
        if ready < 1:
            return (Level.fail, f"Traefik {where} has no ready pod (0/{wanted}): Ingresses are not served",
                    f"kubectl -n {deployment['metadata']['namespace']} describe pods (an image it cannot pull: "
                    "mcp-runtime cluster config --ingress traefik --image IMAGE)")
        return _ok(f"Traefik {where} runs ({ready}/{wanted} ready)")

    def cert_manager(self) -> tuple[Level, str, str | None]:
        if self.client.get("CustomResourceDefinition", "clusterissuers.cert-manager.io") is None:
            return (Level.warn, "cert-manager is not installed: no automatic TLS",
                    "mcp-runtime setup --with-tls (installs it unless --skip-cert-manager-install)")
        return _ok("cert-manager CRDs installed")

    def cluster_issuers(self) -> tuple[Level, str, str | None]:
        referenced = set()
        for ingress in self.all("Ingress"):
            issuer = (ingress["metadata"].get("annotations") or {}).get("cert-manager.io/cluster-issuer")
            if issuer:
                referenced.add(issuer)
        if not referenced:
            return _ok("no Ingress asks for a ClusterIssuer")
        if self.client.get("CustomResourceDefinition", "clusterissuers.cert-manager.io") is None:
            return Level.fail, f"Ingresses use {', '.join(sorted(referenced))} but cert-manager is missing", \
                "install cert-manager: mcp-runtime setup --with-tls"
        missing = sorted(i for i in referenced if self.client.get("ClusterIssuer", i) is None)
        if missing:
            return Level.fail, f"ClusterIssuer {', '.join(missing)} does not exist", \
                "create it, or setup --with-tls --acme-email you@example.com"
        return _ok(f"ClusterIssuer {', '.join(sorted(referenced))} exists")

    # teams ----------------------------------------------------------------------------------------
    def team_cluster_roles(self) -> tuple[Level, str, str | None]:
        missing = [r for r in (TEAM_OWNER_ROLE, TEAM_MEMBER_ROLE) if self.client.get("ClusterRole", r) is None]
        if missing:
            return Level.fail, f"missing ClusterRole {', '.join(missing)}", "mcp-runtime setup"
        return _ok("team owner and member ClusterRoles exist")

    def _per_team(self, kind: str, what: str, fix: str) -> tuple[Level, str, str | None]:
        teams = self.team_namespaces()
        if not teams:
            return _ok("no team namespaces yet")
        missing = [t["metadata"]["name"] for t in teams if not self.all(kind, t["metadata"]["name"])]
        if missing:
            return Level.fail, f"no {what} in {', '.join(missing)}", fix
        return _ok(f"{len(teams)} team namespace(s) have a {what}")

    def team_quota(self) -> tuple[Level, str, str | None]:
        return self._per_team("ResourceQuota", "ResourceQuota",
                              "mcp-runtime setup (re-applies every team namespace's objects)")

    def team_limits(self) -> tuple[Level, str, str | None]:
        return self._per_team("LimitRange", "LimitRange", "mcp-runtime setup (re-applies team namespace objects)")

    def team_network_policy(self) -> tuple[Level, str, str | None]:
        return self._per_team("NetworkPolicy", "default-deny NetworkPolicy",
                              "mcp-runtime setup (re-applies it): without it other teams reach pods "
                              "directly, bypassing the gateway")

    def team_role_bindings(self) -> tuple[Level, str, str | None]:
        return self._per_team("RoleBinding", "RoleBinding for owners/members",
                              "mcp-runtime setup (re-applies team namespace objects)")

    def team_pod_security(self) -> tuple[Level, str, str | None]:
        teams = self.team_namespaces()
        loose = [t["metadata"]["name"] for t in teams
                 if (t["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce") != "restricted"]
        if loose:
            return (Level.warn, f"Pod Security is not 'restricted' in {', '.join(loose)}",
                    "kubectl label ns <name> pod-security.kubernetes.io/enforce=restricted")
        return _ok("team namespaces enforce Pod Security 'restricted'") if teams else _ok("no team namespaces yet")

    # servers --------------------------------------------------------------------------------------
    def servers(self) -> list[Manifest]:
        return self.all(SERVER_KIND)

    def servers_ready(self) -> tuple[Level, str, str | None]:
        servers = self.servers()
        errors = [f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in servers
                  if (s.get("status") or {}).get("phase") == "Error"]
        pending = [f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in servers
                   if (s.get("status") or {}).get("phase") not in ("Ready", "Error")]
        if errors:
            return Level.fail, f"in Error: {', '.join(errors)}", "mcp-runtime server get <name> --namespace <ns> " \
                "shows the message; fix the spec"
        if pending:
            return Level.warn, f"not Ready yet: {', '.join(pending)}", \
                "mcp-runtime server logs <name> --namespace <ns> --use-kube"
        return _ok(f"{len(servers)} server(s) Ready")

    def servers_observed(self) -> tuple[Level, str, str | None]:
        lagging = [f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in self.servers()
                   if (s.get("status") or {}).get("observedGeneration") != s["metadata"].get("generation")]
        if lagging:
            return Level.warn, f"the operator has not processed the latest spec of {', '.join(lagging)}", \
                "check the operator: kubectl -n mcp-runtime logs deployment/mcp-runtime-operator"
        return _ok("the operator has processed every server's latest spec")

    def policy_configmaps(self) -> tuple[Level, str, str | None]:
        missing = []
        for s in self.servers():
            if (s.get("spec", {}).get("gateway") or {}).get("enabled", True) is False:
                continue
            ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
            if self.client.get("ConfigMap", policy_configmap_name(name), ns) is None:
                missing.append(f"{ns}/{name}")
        if missing:
            return Level.fail, f"no policy ConfigMap for {', '.join(missing)}: their gateways deny everything", \
                "check the operator logs; the server's status says why"
        return _ok("every governed server has its policy ConfigMap")

    def namespace_jwks(self) -> tuple[Level, str, str | None]:
        namespaces = sorted({s["metadata"]["namespace"] for s in self.servers()})
        missing = [ns for ns in namespaces if self.client.get("ConfigMap", JWKS_CONFIGMAP, ns) is None]
        if missing:
            return Level.fail, f"no {JWKS_CONFIGMAP} ConfigMap in {', '.join(missing)}", \
                f"check that {self.options.namespace}/{JWKS_CONFIGMAP} exists; the operator copies it"
        return _ok(f"{len(namespaces)} server namespace(s) have the JWKS")

    def _dangling(self, kind: str, what: str) -> tuple[Level, str, str | None]:
        servers = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in self.servers()}
        dangling = [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in self.all(kind)
                    if (o["metadata"].get("namespace"), (o.get("spec") or {}).get("serverRef", {}).get("name"))
                    not in servers]
        if dangling:
            return Level.warn, f"{what} naming a server that does not exist: {', '.join(dangling[:10])}", \
                f"delete them or create the server (a {what[:-1]} must live in its server's namespace)"
        return _ok(f"every {what[:-1]} names an existing server")

    def grants_dangling(self) -> tuple[Level, str, str | None]:
        return self._dangling(GRANT_KIND, "grants")

    def sessions_dangling(self) -> tuple[Level, str, str | None]:
        return self._dangling(SESSION_KIND, "sessions")

    def sessions_backlog(self) -> tuple[Level, str, str | None]:
        now = datetime.now(UTC)
        per_server: dict[tuple[str, str], int] = {}
        for s in self.all(SESSION_KIND):
            spec = s.get("spec") or {}
            expires = spec.get("expiresAt")
            done = spec.get("revoked") or (expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) < now)
            if done:
                key = (s["metadata"]["namespace"], spec.get("serverRef", {}).get("name", ""))
                per_server[key] = per_server.get(key, 0) + 1
        big = [f"{ns}/{name} ({n})" for (ns, name), n in per_server.items() if n > SESSION_BACKLOG]
        if big:
            return Level.warn, f"many expired or revoked sessions: {', '.join(big)}; they grow the policy document", \
                "delete old sessions: kubectl delete mcpagentsession -n <ns> <names>"
        return _ok("no large backlog of expired or revoked sessions")


CHECKS: list[tuple[str, str, str]] = [
    ("api-version", "Kubernetes version is supported", "api_version"),
    ("nodes-present", "Nodes are registered", "nodes_present"),
    ("nodes-ready", "All nodes are Ready", "nodes_ready"),
    ("default-storage-class", "A default StorageClass exists", "default_storage_class"),
    *[(f"crd-{f.split('_')[1].split('.')[0]}", f"CRD {f.split('_')[1].split('.')[0]} is installed",
       f"crd_installed:{f}") for f in sorted(render_crds())],
    *[(f"crd-{f.split('_')[1].split('.')[0]}-current", f"CRD {f.split('_')[1].split('.')[0]} matches this version",
       f"crd_current:{f}") for f in sorted(render_crds())],
    ("system-namespace", "The platform namespace exists", "system_namespace"),
    ("operator-rbac", "Operator RBAC exists", "operator_rbac"),
    ("operator-ready", "The operator is running", "operator_ready"),
    ("platform-api-ready", "The platform API is running", "platform_api_ready"),
    ("ingest-ready", "Sentinel ingest is running", "ingest_ready"),
    ("registry-ready", "The bundled registry is running", "registry_ready"),
    ("database-secret", "The platform database is configured", "database_secret"),
    ("ingest-key-secret", "Gateways have an ingest API key", "ingest_key_secret"),
    ("jwks-configmap", "The platform's public keys are published", "jwks_configmap"),
    ("ingress-class", "The ingress class exists", "ingress_class"),
    ("ingress-controller", "The ingress controller runs", "ingress_controller"),
    ("cert-manager", "cert-manager is installed", "cert_manager"),
    ("cluster-issuers", "ClusterIssuers used by Ingresses exist", "cluster_issuers"),
    ("team-cluster-roles", "Team ClusterRoles exist", "team_cluster_roles"),
    ("team-quota", "Team namespaces have a ResourceQuota", "team_quota"),
    ("team-limits", "Team namespaces have a LimitRange", "team_limits"),
    ("team-network-policy", "Team namespaces default-deny ingress", "team_network_policy"),
    ("team-role-bindings", "Team namespaces bind owners and members", "team_role_bindings"),
    ("team-pod-security", "Team namespaces enforce Pod Security", "team_pod_security"),
    ("servers-ready", "MCP servers are Ready", "servers_ready"),
    ("servers-observed", "The operator is up to date with every server", "servers_observed"),
    ("policy-configmaps", "Every governed server has its policy", "policy_configmaps"),
    ("namespace-jwks", "Every server namespace has the public keys", "namespace_jwks"),
    ("grants-dangling", "Grants name existing servers", "grants_dangling"),
    ("sessions-dangling", "Sessions name existing servers", "sessions_dangling"),
    ("sessions-backlog", "No large backlog of dead sessions", "sessions_backlog"),
]


def run_doctor(client: KubeClient, options: DoctorOptions | None = None) -> Iterator[CheckResult]:
    """Run every check in order. If the API is unreachable, that is the only (failed) result."""
    options = options or DoctorOptions()
    try:
        client.version()
    except KubeError as exc:
        yield CheckResult("api-reachable", "The Kubernetes API answers", Level.fail, exc.message,
                          "check KUBECONFIG / the current context: kubectl cluster-info")
        return
    yield CheckResult("api-reachable", "The Kubernetes API answers", Level.passed, f"reached {client.host}")
    doctor = _Doctor(client, options)
    for check_id, title, method in CHECKS:
        name, _, arg = method.partition(":")
        func: Callable[..., tuple[Level, str, str | None]] = getattr(doctor, name)
        try:
            level, detail, fix = func(arg) if arg else func()
        except KubeError as exc:
            level, detail = Level.fail, f"cannot read what this check needs: {exc.message}"
            fix = "run with a kubeconfig user that may read cluster-wide objects (cluster-admin)"
        yield CheckResult(check_id, title, level, detail, fix if level != Level.passed else None)
