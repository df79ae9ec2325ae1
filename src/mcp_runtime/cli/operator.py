"""`mcp-runtime operator run`: the Kubernetes operator (kopf) in the foreground."""

from __future__ import annotations

import typer

from mcp_runtime.cli.common.errors import CliError

app = typer.Typer(help="Run the Kubernetes operator.", no_args_is_help=True)


@app.command("run")
def run(
    namespace: list[str] = typer.Option([], "--namespace", "-n",
                                        help="Watch only these namespaces (repeat; default: all)."),
    liveness: str | None = typer.Option(None, "--liveness", help="Serve a liveness endpoint, "
                                        "e.g. http://0.0.0.0:8080/healthz."),
) -> None:
    """Reconcile MCPServer, MCPAccessGrant and MCPAgentSession until interrupted (uses KUBECONFIG or the
    pod's service account; settings from MCP_OPERATOR_* variables, see docs/kubernetes.md)."""
    try:
        from mcp_runtime.operator import handlers
    except ImportError as exc:
        raise CliError(f"the operator needs kopf: {exc}", hint="pip install 'mcp-runtime[kube]'") from None
    handlers.run(namespace or None, liveness=liveness)
