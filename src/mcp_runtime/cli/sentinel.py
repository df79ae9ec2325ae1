"""`mcp-runtime sentinel status|events|logs|restart|port-forward` over the Kubernetes API.

Components this platform runs: `api` / `ui` (the platform API serves the dashboard), `ingest`, `gateway`
(the sidecar of every MCP server), `registry`, `operator`. ClickHouse, NATS, Grafana and Prometheus are
external services here: naming them says so instead of failing obscurely.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.flags import format_time
from mcp_runtime.cli.common.kube import (
    ContextOption,
    KubeconfigOption,
    PlatformNamespaceOption,
    kube_client,
    kube_failure,
    print_pod_logs,
)
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, emit_structured
from mcp_runtime.kube import KubeClient, KubeError
from mcp_runtime.kube.events import list_events
from mcp_runtime.kube.platform import API, INGEST, OPERATOR, REGISTRY
from mcp_runtime.manifests import GATEWAY_CONTAINER
from mcp_runtime.manifests.common import LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY
from mcp_runtime.resources import parse_duration

app = typer.Typer(help="Inspect and operate the analytics (Sentinel) stack. Needs KUBECONFIG.", no_args_is_help=True)

COMPONENTS: dict[str, str] = {"api": API, "ui": API, "ingest": INGEST, "registry": REGISTRY, "operator": OPERATOR}
PORTS = {API: 80, INGEST: 80, REGISTRY: 5000}
EXTERNAL = {"clickhouse", "zookeeper", "kafka", "nats", "processor", "prometheus", "grafana", "otel-collector",
            "tempo", "loki", "promtail"}
GATEWAY_SELECTOR = f"{LABEL_COMPONENT}=mcp-server,{LABEL_MANAGED_BY}={MANAGED_BY}"  # every server's Deployment


def _deployment_for(component: str) -> str:
    if component in COMPONENTS:
        return COMPONENTS[component]
    if component in EXTERNAL:
        raise CliError(f"{component} is not run by this platform (it is an external service here)",
                       hint="operate it where it runs; the platform only needs its URL")
    raise CliError(f"unknown component {component!r}", hint="one of: " + ", ".join([*COMPONENTS, "gateway"]))


def _rows(client: KubeClient, namespace: str) -> list[dict[str, Any]]:
    rows = []
    for component, name in COMPONENTS.items():
        if component == "ui":
            continue
        live = client.get("Deployment", name, namespace)
        if live is None:
            rows.append({"component": component, "deployment": name, "ready": "-", "status": "not installed"})
            continue
        wanted = int(live["spec"].get("replicas", 1))
        ready = int((live.get("status") or {}).get("readyReplicas") or 0)
        rows.append({"component": component, "deployment": name, "ready": f"{ready}/{wanted}",
                     "status": "Ready" if ready >= wanted and wanted > 0 else "NotReady"})
    gateways = client.list("Deployment", label_selector=GATEWAY_SELECTOR)
    ready = sum(1 for d in gateways if int((d.get("status") or {}).get("readyReplicas") or 0)
                >= int(d["spec"].get("replicas", 1)))
    rows.append({"component": "gateway", "deployment": f"{len(gateways)} server deployment(s)",
                 "ready": f"{ready}/{len(gateways)}", "status": "Ready" if ready == len(gateways) else "NotReady"})
    return rows


@app.command("status")
def status(namespace: str = PlatformNamespaceOption, output: OutputFormat = OutputOption,
           kubeconfig: str | None = KubeconfigOption, context: str | None = ContextOption) -> None:
    """Readiness of every component the platform runs."""
    client = kube_client(kubeconfig, context)
    try:
        rows = _rows(client, namespace)
    except KubeError as exc:
        raise kube_failure(exc, "cannot read the Sentinel components") from None
    emit(rows, output, columns=[("COMPONENT", "component"), ("DEPLOYMENT", "deployment"), ("READY", "ready"),
                                ("STATUS", "status")])


EVENT_COLUMNS = [("LAST SEEN", "lastSeen"), ("TYPE", "type"), ("REASON", "reason"), ("OBJECT", "object"),
                 ("COUNT", "count"), ("MESSAGE", "message")]


@app.command("events")
def events(
    component: str | None = typer.Argument(None, help="Only this component's objects: api, ingest, registry, "
                                                      "operator (default: every event in the namespace)."),
    warnings: bool = typer.Option(False, "--warnings", help="Only Warning events."),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="At most this many, newest first."),
    namespace: str = PlatformNamespaceOption,
    output: OutputFormat = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Recent Kubernetes events of the platform's components (scheduling, image pulls, crashes), newest first."""
    if component == "gateway":
        raise CliError("the gateway runs beside each server: its events are the server's",
                       hint="mcp-runtime server status NAME --namespace NS --use-kube")
    prefixes = [_deployment_for(component)] if component else []
    client = kube_client(kubeconfig, context)
    try:
        rows = list_events(client, namespace, name_prefixes=prefixes, warnings_only=warnings, limit=limit)
    except KubeError as exc:
        raise kube_failure(exc, f"cannot list the events in {namespace}") from None
    if emit_structured(rows, output):
        return
    if not rows:
        typer.echo(f"No {'warning ' if warnings else ''}events in {namespace}"
                   + (f" for {component}" if component else "") + " (Kubernetes keeps them about an hour).")
        return
    emit(rows, output, columns=EVENT_COLUMNS)


def _pods(client: KubeClient, component: str, namespace: str) -> tuple[list[dict[str, Any]], str | None]:
    if component == "gateway":
        return client.list("Pod", label_selector=GATEWAY_SELECTOR), GATEWAY_CONTAINER
    name = _deployment_for(component)
    return client.list("Pod", namespace, label_selector=f"{LABEL_NAME}={name}"), None


def _since_seconds(since: str | None) -> int | None:
    if not since:
        return None
    try:
        return int(parse_duration(since).total_seconds())
    except ValueError as exc:
        raise CliError(str(exc)) from None


@app.command("logs")
def logs(
    component: str = typer.Argument(..., help="api, ui, ingest, gateway, registry or operator."),
    follow: bool = typer.Option(False, "--follow", "-f"),
    tail: int | None = typer.Option(None, "--tail"),
    since: str | None = typer.Option(None, "--since", help="e.g. 15m, 1h."),
    previous: bool = typer.Option(False, "--previous", help="The previous (crashed) container."),
    namespace: str = PlatformNamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Print a component's logs (every pod; with --follow, the first pod)."""
    client = kube_client(kubeconfig, context)
    try:
        pods, container = _pods(client, component, namespace)
    except KubeError as exc:
        raise kube_failure(exc, f"cannot list the pods of {component}") from None
    if not pods:
        raise CliError(f"{component} has no pods", hint="mcp-runtime sentinel status")
    query = {"container": container, "tailLines": tail, "sinceSeconds": _since_seconds(since),
             "previous": previous or None}
    print_pod_logs(client, pods, query, follow=follow, failure="cannot read the logs of {namespace}/{pod}")


def _restart(client: KubeClient, name: str, namespace: str) -> None:
    stamp = format_time(datetime.now(UTC))
    client.patch("Deployment", name, namespace,
                 {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}})
    typer.echo(f"deployment/{name} -n {namespace} restarted")


@app.command("restart")
def restart(
    component: str | None = typer.Argument(None, help="api, ingest, gateway, registry or operator."),
    all_: bool = typer.Option(False, "--all", help="Every component."),
    namespace: str = PlatformNamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Rolling-restart a component (like kubectl rollout restart)."""
    if not component and not all_:
        raise CliError("name a component or pass --all", hint="e.g. mcp-runtime sentinel restart ingest")
    client = kube_client(kubeconfig, context)
    try:
        if all_ or component == "gateway":
            for d in client.list("Deployment", label_selector=GATEWAY_SELECTOR):
                _restart(client, d["metadata"]["name"], d["metadata"]["namespace"])
        if all_:
            for name in sorted(set(COMPONENTS.values())):
                if client.get("Deployment", name, namespace) is not None:
                    _restart(client, name, namespace)
        elif component != "gateway":
            assert component is not None
            _restart(client, _deployment_for(component), namespace)
    except KubeError as exc:
        raise kube_failure(exc, "restart failed") from None


@app.command("port-forward")
def port_forward(
    component: str = typer.Argument(..., help="api, ui, ingest or registry."),
    local_port: int = typer.Option(0, "--port", help="Local port (default: a free one)."),
    namespace: str = PlatformNamespaceOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Serve a component on 127.0.0.1 through the API server's service proxy (HTTP only), until Ctrl-C."""
    name = _deployment_for(component)
    if name not in PORTS:
        raise CliError(f"{component} has no HTTP service to forward")
    client = kube_client(kubeconfig, context)
    if client.get("Service", name, namespace) is None:
        raise CliError(f"Service {name} not found in {namespace}", hint="mcp-runtime sentinel status")
    from mcp_runtime.kube.service_proxy import serve_service_proxy

    asyncio.run(serve_service_proxy(namespace, name, PORTS[name], local_port,
                                    on_ready=lambda url: typer.echo(f"forwarding {url} -> {namespace}/{name}")))
