"""`mcp-runtime gateway virtual`: serve one virtual server (`/v/<name>/mcp`) on Kubernetes.

The operator renders a Deployment per MCPVirtualServer running this command (manifests/virtual.py). It
mounts one governed route per member (upstream: the member's app, policy: the member's ConfigMap watched
through the API, as `gateway run --policy-configmap` does) and the virtual endpoint over them, so every
member call is decided by that member's own policy document (docs/virtual-servers.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.serving import configure_logging, otlp_endpoint
from mcp_runtime.cli.gateway import (
    APPROVALS_URL_OPTION,
    INGEST_KEY_FILE_OPTION,
    INGEST_URL_OPTION,
    JWKS_FILE_OPTION,
    LOG_LEVEL_OPTION,
    OTLP_OPTION,
    SPOOL_DIR_OPTION,
    analytics_emitter,
    duration_seconds,
    jwks_keys,
    listen_address,
    readable_file,
    report_tools_to_platform,
)

if TYPE_CHECKING:
    from mcp_runtime.gateway import Gateway, GatewayRoute
    from mcp_runtime.gateway.keys_source import JwksFile
    from mcp_runtime.resources import MCPVirtualServer
    from mcp_runtime.sentinel.emitter import Emitter


def member_path(namespace: str, name: str) -> str:
    """Where a member's governed route sits in the virtual gateway (governed like the member's own route)."""
    return f"/_member/{namespace}/{name}/mcp"


def load_config(path: Path) -> tuple[MCPVirtualServer, list[dict[str, Any]]]:
    """The virtual server and its members from the file the operator renders (key `virtual.json`)."""
    from mcp_runtime.resources import MCPVirtualServer

    try:
        data = json.loads(readable_file(path, "config file", "--config"))
        virtual = MCPVirtualServer.model_validate(data["virtualServer"])
        members = list(data.get("members") or [])
        for member in members:
            for key in ("namespace", "name", "upstream", "policyConfigMap"):
                if not isinstance(member.get(key), str) or not member[key]:
                    raise ValueError(f"a member has no {key}")
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"config file {path} is not a virtual server's config: {exc}",
                       hint="it is the `virtual.json` of the ConfigMap <name>-virtual the operator renders") from None
    if not virtual.metadata.namespace:
        raise CliError(f"config file {path}: the virtual server has no namespace", hint="check --config")
    return virtual, members


def member_routes(members: list[dict[str, Any]], keys: JwksFile) -> list[GatewayRoute]:
    """One governed route per member: its app as upstream, its policy ConfigMap watched through the API."""
    from mcp_runtime.gateway import GatewayRoute
    from mcp_runtime.gateway.configmap_source import ConfigMapPolicySource

    routes = []
    for member in members:
        try:
            source = ConfigMapPolicySource(member["policyConfigMap"])
        except ValueError as exc:
            raise CliError(str(exc), hint="policyConfigMap takes NAMESPACE/NAME") from None
        routes.append(GatewayRoute(
            upstream=member["upstream"], policy=source, keys=keys, server=member["name"],
            namespace=member["namespace"], path=member_path(member["namespace"], member["name"]),
            connect_timeout=duration_seconds(member.get("connectTimeout") or "10s", "connectTimeout"),
            read_timeout=duration_seconds(member.get("readTimeout") or "300s", "readTimeout")))
    return routes


def virtual(
    config: Path = typer.Option(..., "--config", metavar="FILE",
                                help="The virtual server and its members (the operator's <name>-virtual ConfigMap)."),
    jwks_file: Path = JWKS_FILE_OPTION,
    listen: str = typer.Option("0.0.0.0:8091", "--listen", metavar="HOST:PORT", help="Address to serve on."),
    ingest_url: str | None = INGEST_URL_OPTION,
    ingest_key_file: Path | None = INGEST_KEY_FILE_OPTION,
    approvals_url: str | None = APPROVALS_URL_OPTION,
    spool_dir: Path | None = SPOOL_DIR_OPTION,
    log_level: str = LOG_LEVEL_OPTION,
    otlp: str | None = OTLP_OPTION,
) -> None:
    """Serve one virtual server at /v/<name>/mcp until interrupted (the operator's virtual gateway).

    Each member call is decided by that member's policy, watched from its ConfigMap through the API;
    with --ingest-url each call is an event of the member with the virtual server named.

    /readyz answers 200 once every member's policy is loaded (and names the missing ones until then).
    """
    from mcp_runtime.gateway.server import serve

    host, port = listen_address(listen)
    server, members = load_config(config)
    keys = jwks_keys(jwks_file)
    routes = member_routes(members, keys)
    traces = otlp_endpoint(otlp)
    emitter = analytics_emitter(ingest_url, ingest_key_file, spool_dir)
    configure_logging(log_level)
    gateway = _build(server, routes, keys, traces, emitter)
    if emitter is not None and ingest_url is not None and ingest_key_file is not None:
        report_tools_to_platform(gateway, ingest_url, ingest_key_file, approvals_url)  # drift reports and approvals too
    names = ", ".join(f"{m['namespace']}/{m['name']}" for m in members) or "none"
    typer.echo(f"mcp-gateway for virtual server {server.metadata.namespace}/{server.metadata.name}: "
               f"http://{host}:{port}/v/{server.metadata.name}/mcp (members {names}; analytics "
               f"{'on' if emitter else 'off'}, traces {traces or 'off'})", err=True)
    serve(gateway, host, port, log_level=log_level.lower())


def _build(server: MCPVirtualServer, routes: list[GatewayRoute], keys: JwksFile, traces: str | None,
           emitter: Emitter | None) -> Gateway:
    """The gateway with the member routes and the virtual server mounted; its verifier follows key rotation."""
    import asyncio

    from mcp_runtime.gateway import Gateway
    from mcp_runtime.gateway.auth import TokenVerifier
    from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
    from mcp_runtime.telemetry import open_telemetry

    try:
        gateway = Gateway(routes, emitter=emitter, telemetry=open_telemetry("mcp-gateway", traces))
    except ValueError as exc:
        raise CliError(str(exc), hint="check the members' upstream URLs in --config") from None
    endpoint = asyncio.run(gateway.add_virtual(VirtualRoute(server, keys)))  # nothing to await yet: no loop kept

    def rotated(new_keys: Any) -> None:
        endpoint.verifier = TokenVerifier(new_keys)

    keys.add_listener(rotated)
    return gateway
