"""`mcp-runtime server logs`: the server's output as its runtime captured it, through the platform API,
or (admins, `--use-kube`) straight from its pods through the Kubernetes API."""

from __future__ import annotations

import typer

from mcp_runtime.cli.common.api import NamespaceOption
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.kube import kube_client, kube_failure, print_pod_logs
from mcp_runtime.cli.server.common import locate
from mcp_runtime.cli.server.kube import get_server
from mcp_runtime.client import client
from mcp_runtime.kube import KubeError
from mcp_runtime.manifests import APP_CONTAINER, GATEWAY_CONTAINER
from mcp_runtime.manifests.common import LABEL_SERVER
from mcp_runtime.manifests.names import label_value

DEFAULT_TAIL = 200


def logs(name: str = typer.Argument(..., help="Server name."), namespace: str | None = NamespaceOption,
         tail: int | None = typer.Option(None, "--tail", min=0,
                                         help=f"Lines from the end to show (default {DEFAULT_TAIL})."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
         gateway: bool = typer.Option(False, "--gateway", help="With --use-kube: the mcp-gateway sidecar's logs."),
         use_kube: bool = typer.Option(False, "--use-kube", help="Read the pods' logs from the Kubernetes API "
                                       "(admin; needs RBAC and --namespace)."),
         # not the shared KubeconfigOption: these only matter with --use-kube, and say so
         kubeconfig: str | None = typer.Option(None, "--kubeconfig", help="With --use-kube: kubeconfig file."),
         context: str | None = typer.Option(None, "--context", help="With --use-kube: kubeconfig context."),
         ) -> None:
    """Print the server's output as its runtime captured it (its team and admins only)."""
    if use_kube:
        if not namespace:
            raise CliError("--use-kube needs --namespace", hint=f"e.g. --namespace mcp-team-<team> {name}")
        _pod_logs(name, namespace, follow=follow, tail=tail, gateway=gateway, kubeconfig=kubeconfig,
                  context=context)
        return
    if gateway:
        raise CliError("--gateway reads the gateway sidecar of a Kubernetes pod", hint="add --use-kube")
    api = client()
    path = f"runtime/servers/{locate(api, name, namespace)}/{name}/logs"
    params = {"tail": DEFAULT_TAIL if tail is None else tail}
    if not follow:
        for line in api.get(path, params=params)["lines"]:
            typer.echo(line)
        return
    try:
        for line in api.stream_lines(path, params={**params, "follow": "true"}):
            typer.echo(line)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _pod_logs(name: str, namespace: str, *, follow: bool, tail: int | None, gateway: bool,
              kubeconfig: str | None, context: str | None) -> None:
    """The logs of the server's pods (the app container, or the gateway sidecar)."""
    kube = kube_client(kubeconfig, context)
    get_server(kube, name, namespace)
    try:
        pods = kube.list("Pod", namespace, label_selector=f"{LABEL_SERVER}={label_value(name)}")
    except KubeError as exc:
        raise kube_failure(exc, f"cannot list the pods of {namespace}/{name}") from None
    if not pods:
        raise CliError(f"MCPServer {name} has no pods yet",
                       hint=f"see why: kubectl -n {namespace} describe deployment {name}")
    print_pod_logs(kube, pods, {"container": GATEWAY_CONTAINER if gateway else APP_CONTAINER, "tailLines": tail},
                   follow=follow, failure="cannot read the logs of pod {pod}")
