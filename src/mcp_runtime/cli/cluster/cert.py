"""`mcp-runtime cluster cert status|apply|wait`: cert-manager Certificates for the platform's hosts
(the hosts of the platform's Ingresses, see `mcp_runtime.kube.certs`)."""

from __future__ import annotations

from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.kube import (
    ContextOption,
    KubeconfigOption,
    PlatformNamespaceOption,
    kube_client,
    kube_failure,
    object_ref,
)
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, emit_structured
from mcp_runtime.kube import KubeClient, KubeError
from mcp_runtime.kube.certs import (
    CertError,
    apply_certificates,
    certificate_rows,
    issuer_state,
    require_cert_manager,
    require_hosts,
    wait_ready,
)
from mcp_runtime.resources import parse_duration

app = typer.Typer(help="cert-manager Certificates for the platform's hosts (platform.<domain>, registry.<domain>).",
                  no_args_is_help=True)

COLUMNS = [("CERTIFICATE", "certificate"), ("HOSTS", "hosts"), ("ISSUER", "issuer"), ("READY", "ready"),
           ("EXPIRES", "expires"), ("MANAGED BY", "managedBy"), ("MESSAGE", "message")]


def _failure(exc: CertError | KubeError, doing: str) -> CliError:
    if isinstance(exc, CertError):
        return CliError(exc.message, hint=exc.hint)
    return kube_failure(exc, doing)


def _issuers(client: KubeClient, rows: list[dict[str, Any]]) -> dict[str, str]:
    return {name: issuer_state(client, name) for name in sorted({r["issuer"] for r in rows if r["issuer"]})}


@app.command("status")
def status(namespace: str = PlatformNamespaceOption, output: OutputFormat = OutputOption,
           kubeconfig: str | None = KubeconfigOption, context: str | None = ContextOption) -> None:
    """cert-manager, the ClusterIssuers, and each platform host's Certificate (Ready, expiry, message)."""
    client = kube_client(kubeconfig, context)
    try:
        require_cert_manager(client)
        rows = certificate_rows(client, namespace)
        issuers = _issuers(client, rows)
    except (CertError, KubeError) as exc:
        raise _failure(exc, "cannot read the certificates") from None
    if emit_structured({"certManager": "installed", "clusterIssuers": issuers, "certificates": rows}, output):
        return
    typer.echo("cert-manager: installed")
    for name, state in issuers.items():
        typer.echo(f"ClusterIssuer {name}: {state}")
    typer.echo("")
    emit(rows, output, columns=COLUMNS)


@app.command("apply")
def apply(
    issuer: str | None = typer.Option(None, "--issuer", help="ClusterIssuer to use (default: the one each "
                                                             "Ingress names in cert-manager.io/cluster-issuer)."),
    namespace: str = PlatformNamespaceOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the Certificates (-o yaml); change nothing."),
    output: OutputFormat = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Create or update a Certificate for each platform host, and point its Ingress at the Secret."""
    client = kube_client(kubeconfig, context)
    try:
        results = apply_certificates(client, namespace, issuer, dry_run=dry_run)
    except (CertError, KubeError) as exc:
        raise _failure(exc, "cannot apply the certificates") from None
    if dry_run and emit_structured([obj for _, obj in results], output):
        return
    if emit_structured([{"object": object_ref(obj), "action": action} for action, obj in results], output):
        return
    for action, obj in results:
        typer.echo(f"{object_ref(obj)} {action}")
    if not dry_run:
        typer.echo("cert-manager issues them now; wait for it: mcp-runtime cluster cert wait")


@app.command("wait")
def wait(
    timeout: str = typer.Option("5m", "--timeout", help="Give up after this long, e.g. 10m."),
    namespace: str = PlatformNamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Wait until every platform host's Certificate is Ready; exit 1 naming those that are not at --timeout."""
    try:
        seconds = parse_duration(timeout).total_seconds()
    except ValueError as exc:
        raise CliError(f"--timeout: {exc}") from None
    client = kube_client(kubeconfig, context)
    try:
        require_cert_manager(client)
        hosts = require_hosts(client, namespace)
        typer.echo(f"waiting up to {timeout} for {len(hosts)} certificate(s) to be Ready ...")
        pending = wait_ready(client, namespace, seconds,
                            on_ready=lambda r: typer.echo(f"certificate/{r['certificate']} Ready "
                                                          f"(expires {r['expires'] or '-'})"))
    except (CertError, KubeError) as exc:
        raise _failure(exc, "cannot read the certificates") from None
    if pending:
        names = ", ".join(f"{r['certificate']} ({r['ready']}: {r['message']})" for r in pending)
        raise CliError(f"timed out after {timeout}: not Ready: {names}",
                       hint="is cert-manager's controller running? kubectl -n cert-manager logs deploy/cert-manager; "
                            "mcp-runtime cluster cert status")
    typer.echo("all certificates are Ready")
