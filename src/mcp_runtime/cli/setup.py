"""`mcp-runtime setup`: install or upgrade the platform on a cluster (`bootstrap` checks a fresh cluster first).

It runs pre-flight checks, then applies the CRDs, the `mcp-runtime` namespace, RBAC, the operator,
the platform API + dashboard, Sentinel ingest and the registry (the same objects the Helm chart
templates), through the Kubernetes API, or with `helm` when `--helm` is given and helm is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, get_args

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.kube import ContextOption, KubeconfigOption, kube_client, kube_failure
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured
from mcp_runtime.kube import KubeClient, KubeError
from mcp_runtime.kube.certs import CERT_MANAGER_URL, CERT_MANAGER_VERSION
from mcp_runtime.kube.doctor import DoctorOptions, Level, run_doctor
from mcp_runtime.kube.platform import (
    DATABASE_SECRET,
    IngressMode,
    PlatformConfig,
    PlatformMode,
    RegistryMode,
    render_platform,
)
from mcp_runtime.kube.teams import reapply_team_namespaces

CHART_DIR = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "mcp-runtime"

# env-file key -> (PlatformConfig field, kind)
ENV_KEYS: dict[str, tuple[str, str]] = {
    "MCP_PLATFORM_DOMAIN": ("domain", "str"),
    "MCP_SETUP_WITH_TLS": ("with_tls", "bool"),
    "MCP_SETUP_TLS_CLUSTER_ISSUER": ("tls_cluster_issuer", "str"),
    "MCP_SETUP_ACME_EMAIL": ("acme_email", "str"),
    "MCP_SETUP_REGISTRY_MODE": ("registry_mode", "str"),
    "MCP_SETUP_EXTERNAL_REGISTRY": ("external_registry", "str"),
    "MCP_SETUP_PLATFORM_MODE": ("platform_mode", "str"),
    "MCP_SETUP_INGRESS": ("ingress", "str"),
    "MCP_SETUP_SKIP_CERT_MANAGER_INSTALL": ("skip_cert_manager_install", "bool"),
    "MCP_SETUP_WITHOUT_SENTINEL": ("with_sentinel", "not"),
    "MCP_SETUP_TEST_MODE": ("test_mode", "bool"),
    "MCP_SETUP_IMAGE": ("image", "str"),
    "MCP_SETUP_NAMESPACE": ("namespace", "str"),
    "MCP_SETUP_CLICKHOUSE_URL": ("clickhouse_url", "str"),
    "MCP_SETUP_NATS_URL": ("nats_url", "str"),
}
_CHOICES = {"registry_mode": get_args(RegistryMode), "ingress": get_args(IngressMode),
            "platform_mode": get_args(PlatformMode)}


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def parse_env_file(path: Path) -> dict[str, Any]:
    """`KEY=value` lines (comments, `export`, quotes allowed) -> PlatformConfig fields. Unknown MCP_ keys fail."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CliError(f"cannot read env file {path}: {exc.strerror}") from None
    values: dict[str, Any] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip().strip("'\"")
        if not sep:
            raise CliError(f"{path}:{number}: expected KEY=value, got {raw!r}")
        if key not in ENV_KEYS:
            if key.startswith("MCP_"):
                raise CliError(f"{path}:{number}: unknown setting {key}",
                               hint="known: " + ", ".join(sorted(ENV_KEYS)))
            continue
        field_name, kind = ENV_KEYS[key]
        if kind == "bool":
            values[field_name] = _truthy(value)
        elif kind == "not":
            values[field_name] = not _truthy(value)
        else:
            values[field_name] = value or None
    return values


def resolve_config(env_file: Path | None, flags: dict[str, Any]) -> PlatformConfig:
    """Env file first, flags given on the command line override it."""
    values = parse_env_file(env_file) if env_file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    for name, allowed in _CHOICES.items():
        if name in values and values[name] not in allowed:
            raise CliError(f"{name.replace('_', '-')} {values[name]!r} is not one of {', '.join(allowed)}")
    known = {f.name for f in fields(PlatformConfig)}
    config = PlatformConfig(**{k: v for k, v in values.items() if k in known})
    if config.registry_mode == "external" and not config.external_registry:
        raise CliError("--registry-mode external needs the registry host",
                       hint="set MCP_SETUP_EXTERNAL_REGISTRY=registry.example.com")
    if config.with_tls and not (config.tls_cluster_issuer or config.acme_email):
        raise CliError("--with-tls needs a certificate issuer",
                       hint="pass --tls-cluster-issuer NAME (existing) or --acme-email you@example.com (Let's Encrypt)")
    if config.test_mode:
        config = replace(config, image_pull_policy="IfNotPresent")
    return config


def _preflight(client: KubeClient, config: PlatformConfig) -> None:
    """Refuse to install on a cluster that cannot work; print warnings that do not block."""
    checks = {"api-reachable", "api-version", "nodes-present", "nodes-ready", "ingress-class",
              "default-storage-class"}
    failed = []
    for result in run_doctor(client, DoctorOptions(namespace=config.namespace, ingress_class=config.ingress_class)):
        if result.id not in checks:
            continue
        level = result.level
        if result.id == "ingress-class" and config.ingress == "none":
            continue
        if result.id == "default-storage-class" and (config.test_mode or config.registry_mode == "external"):
            continue
        typer.echo(f"pre-flight {level.value:<4} {result.id}: {result.detail}")
        if level == Level.fail:
            failed.append(result)
        if result.id == "api-reachable" and level == Level.fail:
            break
    if failed:
        first = failed[0]
        raise CliError(f"pre-flight check {first.id} failed: {first.detail}", hint=first.fix)


def _plan_lines(config: PlatformConfig, objects: list[dict[str, Any]], use_helm: bool) -> list[str]:
    lines = ["pre-flight: API reachable, Kubernetes >= 1.26, nodes Ready, IngressClass, default StorageClass"]
    if config.with_tls and not config.skip_cert_manager_install:
        lines.append(f"install cert-manager {CERT_MANAGER_VERSION} with kubectl unless its CRDs exist "
                     f"({CERT_MANAGER_URL})")
    if use_helm:
        lines.append(f"helm upgrade --install mcp-runtime {CHART_DIR} --namespace {config.namespace} "
                     "(values from these settings)")
    else:
        for obj in objects:
            ns = obj["metadata"].get("namespace")
            lines.append(f"apply {obj['kind']} {obj['metadata']['name']}" + (f" -n {ns}" if ns else ""))
    lines.append("re-apply team namespaces (mcp-team-*): quota, limits, NetworkPolicy, RoleBindings")
    if config.platform_mode != "none":
        lines.append(f"then: create Secret {DATABASE_SECRET} (key url, PostgreSQL) in {config.namespace}"
                     + (" (optional in test mode: SQLite in the pod)" if config.test_mode else ""))
    return lines


def helm_values(config: PlatformConfig) -> list[str]:
    """`--set` arguments that give the chart the same settings."""
    sets = {
        "domain": config.domain, "image.repository": config.image.rsplit(":", 1)[0],
        "image.tag": config.image.rsplit(":", 1)[1] if ":" in config.image.rsplit("/", 1)[-1] else "latest",
        "tls.enabled": str(config.with_tls).lower(), "tls.clusterIssuer": config.issuer or "",
        "tls.acmeEmail": config.acme_email or "", "registry.mode": config.registry_mode,
        "registry.external": config.external_registry or "",
        "platform.enabled": str(config.platform_mode != "none").lower(),
        "ingress.enabled": str(config.ingress != "none").lower(), "sentinel.enabled": str(config.with_sentinel).lower(),
        "testMode": str(config.test_mode).lower(),
    }
    return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]


def setup(
    env_file: Path | None = typer.Option(None, "--env-file", help="KEY=value file (MCP_SETUP_*, MCP_PLATFORM_DOMAIN)."),
    with_tls: bool | None = typer.Option(None, "--with-tls/--without-tls", help="TLS on every Ingress."),
    tls_cluster_issuer: str | None = typer.Option(None, "--tls-cluster-issuer",
                                                  help="Existing cert-manager ClusterIssuer."),
    acme_email: str | None = typer.Option(None, "--acme-email",
                                          help="Create a Let's Encrypt ClusterIssuer for this email."),
    registry_mode: str | None = typer.Option(None, "--registry-mode", help="bundled-http | bundled-https | external."),
    platform_mode: str | None = typer.Option(None, "--platform-mode",
                                             help="tenant (platform API) | none (operator only)."),
    ingress: str | None = typer.Option(None, "--ingress", help="traefik | none."),
    without_sentinel: bool = typer.Option(False, "--without-sentinel", help="Skip analytics ingest."),
    test_mode: bool = typer.Option(False, "--test-mode", help="Local dev (Kind/k3d): no PVCs, optional database."),
    skip_cert_manager_install: bool = typer.Option(False, "--skip-cert-manager-install",
                                                   help="cert-manager is managed elsewhere."),
    image: str | None = typer.Option(None, "--image", help="Platform image (operator, API, gateway sidecar)."),
    use_helm: bool = typer.Option(False, "--helm", help="Install the Helm chart with helm instead of the API."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Print the plan (or the manifests with -o yaml); change nothing."),
    output: OutputFormat = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Install or upgrade the platform on the current cluster (runs pre-flight checks first)."""
    flags: dict[str, Any] = {"with_tls": with_tls, "tls_cluster_issuer": tls_cluster_issuer, "acme_email": acme_email,
                             "registry_mode": registry_mode, "platform_mode": platform_mode, "ingress": ingress,
                             "image": image, "with_sentinel": False if without_sentinel else None,
                             "test_mode": test_mode or None,
                             "skip_cert_manager_install": skip_cert_manager_install or None}
    config = resolve_config(env_file, flags)  # a flag not given (None) leaves the env file's value
    objects = render_platform(config)
    if use_helm:
        _check_helm()
    if dry_run:
        if not emit_structured(objects, output):
            typer.echo(f"setup plan for {config.domain} (namespace {config.namespace}); nothing is changed:")
            for line in _plan_lines(config, objects, use_helm):
                typer.echo(f"  - {line}")
        return
    client = kube_client(kubeconfig, context)
    _preflight(client, config)
    try:
        _install(client, config, objects, use_helm, kubeconfig)
    except KubeError as exc:
        raise kube_failure(exc, "setup stopped") from None
    typer.echo(f"MCP Runtime is installed in namespace {config.namespace}.")
    if config.platform_mode != "none" and client.get("Secret", DATABASE_SECRET, config.namespace) is None:
        typer.echo(f"next: kubectl -n {config.namespace} create secret generic {DATABASE_SECRET} "
                   "--from-literal=url=postgresql+psycopg://USER:PASS@HOST/DB")
    typer.echo("check it: mcp-runtime cluster doctor")


def _check_helm() -> None:
    if shutil.which("helm") is None:
        raise CliError("--helm given but helm is not installed", hint="drop --helm to apply through the API")
    if not (CHART_DIR / "Chart.yaml").is_file():
        raise CliError(f"the Helm chart is not part of this installation ({CHART_DIR})",
                       hint="run from a checkout of the repository (deploy/helm/mcp-runtime), or drop --helm")


def _install(client: KubeClient, config: PlatformConfig, objects: list[dict[str, Any]], use_helm: bool,
             kubeconfig: str | None) -> None:
    """cert-manager when TLS needs it, the platform (helm or the API), then every team namespace again."""
    if config.with_tls and not config.skip_cert_manager_install:
        _install_cert_manager(client)
    if use_helm:
        _helm_install(config, kubeconfig)
    else:
        for obj in objects:
            action, _ = client.apply(obj)
            ns = obj["metadata"].get("namespace")
            typer.echo(f"{obj['kind'].lower()}/{obj['metadata']['name']}{' -n ' + ns if ns else ''} {action}")
    for action, kind, name in reapply_team_namespaces(client):
        if action != "unchanged":
            typer.echo(f"{kind.lower()}/{name} {action}")


def _install_cert_manager(client: KubeClient) -> None:
    if client.get("CustomResourceDefinition", "clusterissuers.cert-manager.io") is not None:
        typer.echo("cert-manager already installed")
        return
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise CliError("cert-manager is not installed and kubectl is not available to install it",
                       hint=f"kubectl apply -f {CERT_MANAGER_URL}, or pass --skip-cert-manager-install")
    typer.echo(f"installing cert-manager {CERT_MANAGER_VERSION}")
    done = subprocess.run([kubectl, "apply", "-f", CERT_MANAGER_URL], capture_output=True, text=True)
    if done.returncode != 0:
        raise CliError(f"installing cert-manager failed: {done.stderr.strip()[:300]}",
                       hint="install it yourself and pass --skip-cert-manager-install")


def _helm_install(config: PlatformConfig, kubeconfig: str | None) -> None:
    args = ["helm", "upgrade", "--install", "mcp-runtime", str(CHART_DIR), "--namespace", config.namespace,
            "--create-namespace", *helm_values(config)]
    if kubeconfig:
        args += ["--kubeconfig", kubeconfig]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise CliError(f"helm failed: {done.stderr.strip()[:300]}")
    typer.echo(done.stdout.strip())
