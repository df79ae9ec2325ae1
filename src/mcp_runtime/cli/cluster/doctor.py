"""`mcp-runtime cluster doctor`: read-only diagnostics of a cluster running MCP Runtime."""

from __future__ import annotations

import typer

from mcp_runtime.cli.common.kube import (
    ContextOption,
    KubeconfigOption,
    PlatformNamespaceOption,
    kube_client,
    print_checks,
)
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured
from mcp_runtime.kube.doctor import DoctorOptions, Level, run_doctor


def doctor(
    namespace: str = PlatformNamespaceOption,
    ingress_class: str = typer.Option(DoctorOptions.ingress_class, "--ingress-class",
                                      help="The IngressClass servers use."),
    output: OutputFormat = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Run every check (pass / warn / fail, with the fix). Exit code 1 when any check fails."""
    client = kube_client(kubeconfig, context)
    results = list(run_doctor(client, DoctorOptions(namespace=namespace, ingress_class=ingress_class)))
    if not emit_structured([r.as_dict() for r in results], output):
        print_checks(results)
        counts = {level: sum(1 for r in results if r.level == level) for level in Level}
        typer.echo(f"\n{len(results)} checks: {counts[Level.passed]} passed, {counts[Level.warn]} warnings, "
                   f"{counts[Level.fail]} failed")
    if any(r.level == Level.fail for r in results):
        raise typer.Exit(1)
