"""`mcp-runtime cluster doctor`: read-only diagnostics of a cluster running MCP Runtime."""

from __future__ import annotations

import typer

from mcp_runtime.cli.kube_common import ContextOption, KubeconfigOption, kube_client
from mcp_runtime.cli.output import OutputFormat, OutputOption, emit
from mcp_runtime.kube.doctor import DoctorOptions, Level, run_doctor
from mcp_runtime.kube.platform import SYSTEM_NAMESPACE

app = typer.Typer(help="Inspect the cluster MCP Runtime runs on.", no_args_is_help=True)

_MARK = {Level.passed: "PASS", Level.warn: "WARN", Level.fail: "FAIL"}


@app.command("doctor")
def doctor(
    namespace: str = typer.Option(SYSTEM_NAMESPACE, "--namespace", help="The platform's namespace."),
    ingress_class: str = typer.Option("traefik", "--ingress-class", help="The IngressClass servers use."),
    output: OutputFormat = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Run every check (pass / warn / fail, with the fix). Exit code 1 when any check fails."""
    client = kube_client(kubeconfig, context)
    results = list(run_doctor(client, DoctorOptions(namespace=namespace, ingress_class=ingress_class)))
    if output != OutputFormat.table:
        emit([r.as_dict() for r in results], output)
    else:
        for r in results:
            typer.echo(f"{_MARK[r.level]}  {r.id:<24} {r.detail}")
            if r.fix:
                typer.echo(f"      fix: {r.fix}")
        counts = {level: sum(1 for r in results if r.level == level) for level in Level}
        typer.echo(f"\n{len(results)} checks: {counts[Level.passed]} passed, {counts[Level.warn]} warnings, "
                   f"{counts[Level.fail]} failed")
    if any(r.level == Level.fail for r in results):
        raise typer.Exit(1)
