"""`mcp-runtime bootstrap`: check a fresh cluster before `setup` (and, on k3s, fix registry trust)."""

from __future__ import annotations

from pathlib import Path

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.kube import ContextOption, KubeconfigOption, kube_client, print_checks
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured
from mcp_runtime.kube import KubeClient, KubeError
from mcp_runtime.kube.doctor import CheckResult, Level, run_doctor
from mcp_runtime.kube.platform import PlatformConfig

K3S_REGISTRIES = Path("/etc/rancher/k3s/registries.yaml")
BUNDLED_REGISTRY = PlatformConfig().registry_host  # what `setup` installs with its defaults
CHECKS = ("api-reachable", "api-version", "nodes-present", "nodes-ready", "ingress-class", "ingress-controller",
          "default-storage-class", "cert-manager")


def bootstrap(
    provider: str = typer.Option("generic", "--provider", help="generic | k3s."),
    apply: bool = typer.Option(False, "--apply", help="Fix what can be fixed (k3s: trust the bundled HTTP registry)."),
    registry: str = typer.Option(BUNDLED_REGISTRY, "--registry",
                                 help="Registry host the nodes must pull from."),
    registries_file: Path = typer.Option(K3S_REGISTRIES, "--k3s-registries-file", hidden=True),
    output: OutputFormat = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Check a fresh cluster before `setup`: API, version, nodes, ingress, storage, DNS, registry trust."""
    if provider not in ("generic", "k3s"):
        raise CliError(f"provider {provider!r} is not supported", hint="use --provider k3s or generic")
    client = kube_client(kubeconfig, context)
    results = [r for r in run_doctor(client) if r.id in CHECKS]
    results.append(_cluster_dns(client))
    if provider == "k3s":
        results.append(_k3s_registry_trust(registry, registries_file, apply))
    if not emit_structured([r.as_dict() for r in results], output):
        print_checks(results)
    if any(r.level == Level.fail for r in results):
        raise typer.Exit(1)


def _cluster_dns(client: KubeClient) -> CheckResult:
    """One more check like the doctor's: servers find each other by cluster DNS."""
    try:
        dns = [d for d in client.list("Deployment", "kube-system") if d["metadata"]["name"] == "coredns"]
    except KubeError:
        dns = []
    if dns:
        return CheckResult("cluster-dns", "CoreDNS runs", Level.passed, "coredns Deployment in kube-system")
    return CheckResult("cluster-dns", "CoreDNS runs", Level.warn, "no coredns Deployment in kube-system",
                       "install CoreDNS (k3s ships it); servers resolve each other by DNS")


def _k3s_registry_trust(registry: str, path: Path, apply: bool) -> CheckResult:
    entry = f'  "{registry}":\n    endpoint:\n      - "http://{registry}"\n'
    text = path.read_text() if path.is_file() else ""
    check, title = "k3s-registry-trust", "k3s trusts the registry"
    if f'"{registry}"' in text:
        return CheckResult(check, title, Level.passed, f"{path} lists {registry}")
    if not apply:
        return CheckResult(check, title, Level.warn, f"{path} does not list {registry}: nodes cannot pull over HTTP "
                           "from it", "mcp-runtime bootstrap --provider k3s --apply (on each node, as root), then "
                           "restart k3s")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = text if "mirrors:" in text else text + ("\n" if text and not text.endswith("\n") else "") + "mirrors:\n"
        path.write_text(new + entry)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", hint="run as root on the k3s node") from None
    return CheckResult(check, title, Level.passed, f"added {registry} to {path}; restart k3s (systemctl restart k3s)")
