"""`mcp-runtime gateway`: run the mcp-gateway in front of one MCP server (the sidecar entrypoint)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.serving import OTLP_HELP, configure_logging, otlp_endpoint
from mcp_runtime.resources.server import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_GATEWAY_PORT,
    DEFAULT_MCP_PATH,
    DEFAULT_READ_TIMEOUT,
)

if TYPE_CHECKING:
    from mcp_runtime.gateway import Gateway, PolicySource
    from mcp_runtime.gateway.keys_source import JwksFile
    from mcp_runtime.sentinel.emitter import Emitter

app = typer.Typer(help="Run the mcp-gateway: authenticate, authorize, forward and audit MCP requests.",
                  no_args_is_help=True)

DEFAULT_LISTEN = f"0.0.0.0:{DEFAULT_GATEWAY_PORT}"

# Options `gateway run` and `gateway virtual` share: one definition, so their flags and help cannot drift.
JWKS_FILE_OPTION: Any = typer.Option(..., "--jwks-file", metavar="FILE",
                                     help="Public keys (JWKS) session tokens are checked with; reloaded on change.")
INGEST_URL_OPTION: Any = typer.Option(None, "--ingest-url", metavar="URL",
                                      help="Sentinel ingest endpoint for analytics events.")
INGEST_KEY_FILE_OPTION: Any = typer.Option(None, "--ingest-key-file", metavar="FILE",
                                           help="File holding the ingest API key.")
APPROVALS_URL_OPTION: Any = typer.Option(
    None, "--approvals-url", metavar="URL",
    help="Where calls wait for a person's approval, with the ingest key (default: next to --ingest-url).")
SPOOL_DIR_OPTION: Any = typer.Option(None, "--spool-dir", metavar="DIR",
                                     help="Where undelivered events wait (kept across restarts).")
LOG_LEVEL_OPTION: Any = typer.Option("info", "--log-level", help="debug, info, warning or error.")
OTLP_OPTION: Any = typer.Option(None, "--otlp-endpoint", metavar="URL", help=OTLP_HELP)


def readable_file(path: Path, what: str, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{what} {path} does not exist", hint=f"check {flag}") from None
    except IsADirectoryError:
        raise CliError(f"{what} {path} is a directory, not a file", hint=f"check {flag}") from None
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}", hint=f"check {flag}") from None


def listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--listen must be HOST:PORT, got {value!r}", hint=f"for example {DEFAULT_LISTEN}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


@app.command("run")
def run(
    upstream: str = typer.Option(..., "--upstream", metavar="URL",
                                 help="The MCP server's endpoint, e.g. http://127.0.0.1:8088/mcp."),
    policy_file: Path | None = typer.Option(None, "--policy-file", metavar="FILE",
                                            help="Compiled policy document (JSON); reloaded when it changes."),
    policy_configmap: str | None = typer.Option(
        None, "--policy-configmap", metavar="NAMESPACE/NAME",
        help="Watch the policy ConfigMap through the Kubernetes API (a given --policy-file is read once at start)."),
    jwks_file: Path = JWKS_FILE_OPTION,
    listen: str = typer.Option(DEFAULT_LISTEN, "--listen", metavar="HOST:PORT", help="Address to serve on."),
    path: str = typer.Option(DEFAULT_MCP_PATH, "--path", help="Public MCP path (the server's ingress path)."),
    server: str | None = typer.Option(None, "--server", help="Server name (default: from the policy)."),
    namespace: str | None = typer.Option(None, "--namespace", help="Namespace (default: from the policy)."),
    ingest_url: str | None = INGEST_URL_OPTION,
    ingest_key_file: Path | None = INGEST_KEY_FILE_OPTION,
    approvals_url: str | None = APPROVALS_URL_OPTION,
    spool_dir: Path | None = SPOOL_DIR_OPTION,
    upstream_token_file: Path | None = typer.Option(
        None, "--upstream-token-file", metavar="FILE",
        help="Credential sent upstream as a bearer token (the client's never is)."),
    upstream_header: str | None = typer.Option(
        None, "--upstream-header", metavar="NAME",
        help="Send the credential of --upstream-credential-file in this header (a remote server's, e.g. X-API-Key)."),
    upstream_header_prefix: str = typer.Option("", "--upstream-header-prefix",
                                               help='Put before the credential, e.g. "Bearer ".'),
    upstream_credential_file: Path | None = typer.Option(
        None, "--upstream-credential-file", metavar="FILE", help="File holding the value of --upstream-header."),
    ca_file: Path | None = typer.Option(None, "--ca-file", metavar="FILE",
                                        help="PEM CAs an https upstream must chain to (default: the system CAs)."),
    connect_timeout: str = typer.Option(
        DEFAULT_CONNECT_TIMEOUT, "--connect-timeout", metavar="DURATION",
        help="How long to wait for a connection to the upstream (spec.gateway.timeouts.connect)."),
    read_timeout: str = typer.Option(
        DEFAULT_READ_TIMEOUT, "--read-timeout", metavar="DURATION",
        help="How long the upstream may take to start answering, and pause within an answer to a POST "
             "(spec.gateway.timeouts.read)."),
    resource_url: str | None = typer.Option(
        None, "--resource-url", metavar="URL",
        help="The server's public URL, its OAuth resource URI: the gateway publishes its protected resource "
             "metadata (RFC 9728) and names it in every 401. Needs --authorization-server."),
    authorization_server: list[str] = typer.Option(
        [], "--authorization-server", metavar="ISSUER",
        help="Issuer of the authorization server clients get tokens from (the platform's "
             "<platform URL>/api/v1/oauth); repeatable."),
    allowed_origin: list[str] = typer.Option(
        [], "--allowed-origin", metavar="ORIGIN",
        help="A browser origin (scheme://host[:port]) allowed besides the resource's own and loopback; repeatable."),
    log_level: str = LOG_LEVEL_OPTION,
    otlp: str | None = OTLP_OPTION,
) -> None:
    """Serve the gateway in front of one MCP server until interrupted.

    Clients send 'Authorization: Bearer <session token>'; tokens are verified with the JWKS.

    Every request is decided by the policy; allowed ones are forwarded to --upstream.

    Also serves /healthz, /readyz, /config/status and /metrics.
    """
    from mcp_runtime.gateway import Gateway, GatewayRoute
    from mcp_runtime.gateway.server import serve

    host, port = listen_address(listen)
    if not upstream.startswith(("http://", "https://")):
        raise CliError(f"--upstream must be an http(s) URL, got {upstream!r}",
                       hint="for example http://127.0.0.1:8088/mcp")
    if policy_file is None and policy_configmap is None:
        raise CliError("no policy source", hint="give --policy-file FILE or --policy-configmap NAMESPACE/NAME")
    if policy_file is not None:
        readable_file(policy_file, "policy file", "--policy-file")
    keys = jwks_keys(jwks_file)
    source = _policy_source(policy_file, policy_configmap)
    upstream_token = None
    if upstream_token_file is not None:
        raw = readable_file(upstream_token_file, "upstream token file", "--upstream-token-file")
        upstream_token = raw.decode().strip() or None
    emitter = analytics_emitter(ingest_url, ingest_key_file, spool_dir)
    connect_seconds = duration_seconds(connect_timeout, "--connect-timeout")
    read_seconds = duration_seconds(read_timeout, "--read-timeout")
    traces = otlp_endpoint(otlp)

    configure_logging(log_level)
    header = _upstream_header(upstream_header, upstream_header_prefix, upstream_credential_file)
    ca_bundle = readable_file(ca_file, "CA file", "--ca-file").decode("utf-8", "replace") if ca_file else None
    oauth = _oauth_resource(resource_url, authorization_server, allowed_origin)
    try:
        route = GatewayRoute(upstream=upstream, policy=source, keys=keys, server=server, namespace=namespace,
                             path=path, upstream_token=upstream_token, upstream_header=header, ca_bundle=ca_bundle,
                             connect_timeout=connect_seconds, read_timeout=read_seconds, **oauth)
        from mcp_runtime.telemetry import open_telemetry

        gateway = Gateway([route], emitter=emitter, telemetry=open_telemetry("mcp-gateway", traces))
    except ValueError as exc:
        raise CliError(str(exc), hint="check --upstream, --ca-file and the credential") from None
    if emitter is not None and ingest_url is not None and ingest_key_file is not None:
        report_tools_to_platform(gateway, ingest_url, ingest_key_file, approvals_url)
    doc = source.document
    who = f"{namespace or doc.server.namespace}/{server or doc.server.name}" if doc else server or "(from policy)"
    revision = doc.revision[:12] if doc else "none yet"
    typer.echo(f"mcp-gateway for {who}: http://{host}:{port}{route.public_path()} -> {upstream} "
               f"(policy {revision} from {source.describe()}, analytics {'on' if emitter else 'off'}, "
               f"OAuth resource {resource_url or 'off'}, traces {traces or 'off'})", err=True)
    serve(gateway, host, port, log_level=log_level.lower())


def report_tools_to_platform(gateway: Gateway, ingest_url: str, ingest_key_file: Path, approvals: str | None) -> None:
    """Tool definitions the gateway sees go to the platform next to the analytics (tool-definition pinning);
    calls that need a person's approval wait there (`approvals`, else next to the ingest URL)."""
    from mcp_runtime.gateway.approval_client import HttpApprovals, approvals_url
    from mcp_runtime.gateway.tool_report import ToolReporter, tools_url

    url = tools_url(ingest_url)
    if url is None:
        typer.echo(f"note: --ingest-url {ingest_url} does not end in /ingest/events: tool definitions are not "
                   "reported to the platform (pins are still enforced)", err=True)
        return
    key = readable_file(ingest_key_file, "ingest key file", "--ingest-key-file").decode().strip()
    gateway.drift_listener = ToolReporter(url, key)
    approvals = approvals or approvals_url(ingest_url)
    if approvals is not None:  # calls that need a person's approval wait in the platform (approval_client.py)
        gateway.request_path.approvals = HttpApprovals(approvals, key)


def _oauth_resource(resource_url: str | None, issuers: list[str], origins: list[str]) -> dict[str, Any]:
    """The route's OAuth fields: the resource URI and its authorization servers go together."""
    if (resource_url is None) != (not issuers):
        raise CliError("--resource-url and --authorization-server go together",
                       hint="give the server's public URL and the platform's issuer (<platform URL>/api/v1/oauth)")
    for flag, url in [("--resource-url", resource_url), *(("--authorization-server", i) for i in issuers)]:
        if url is not None and not _is_http_url(url):
            raise CliError(f"{flag} must be an absolute http(s) URL without query or fragment, got {url!r}",
                           hint="for example https://mcp.example.com/payments/mcp")
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise CliError(f"--allowed-origin must be scheme://host[:port], got {origin!r}",
                           hint="for example https://app.example.com")
    return {"resource_url": resource_url, "authorization_servers": tuple(issuers),
            "allowed_origins": tuple(o.rstrip("/") for o in origins)}


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.query and not parts.fragment


def _upstream_header(name: str | None, prefix: str, credential_file: Path | None) -> tuple[str, str] | None:
    """(header, prefix + value) for a remote upstream: both flags or neither."""
    if (name is None) != (credential_file is None):
        raise CliError("--upstream-header and --upstream-credential-file go together",
                       hint="give the header name and the file holding its value")
    if name is None or credential_file is None:
        return None
    value = readable_file(credential_file, "upstream credential file", "--upstream-credential-file").decode().strip()
    if not value:
        raise CliError(f"upstream credential file {credential_file} is empty", hint="check the Secret it comes from")
    return name, prefix + value


def duration_seconds(value: str, flag: str) -> float:
    """A duration flag (`10s`, `5m`) in seconds."""
    from mcp_runtime.resources import parse_duration

    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise CliError(f"{flag}: {exc}", hint=f"for example {flag} 30s") from None


def jwks_keys(jwks_file: Path) -> JwksFile:
    """The session-token keys, watched for changes."""
    from mcp_runtime.gateway.keys_source import JwksFile
    from mcp_runtime.security import KeyRingError

    readable_file(jwks_file, "JWKS file", "--jwks-file")
    try:
        return JwksFile(jwks_file)
    except KeyRingError as exc:
        raise CliError(f"JWKS file {jwks_file} is not usable: {exc}", hint="check --jwks-file") from None


def _policy_source(policy_file: Path | None, policy_configmap: str | None) -> PolicySource:
    """The ConfigMap watch (seeded from the file when given), or the file; either must hold a usable policy."""
    from mcp_runtime.gateway import FilePolicySource
    from mcp_runtime.gateway.configmap_source import ConfigMapPolicySource

    if policy_configmap is not None:
        try:
            watched = ConfigMapPolicySource(policy_configmap, initial_file=policy_file)
        except ValueError as exc:
            raise CliError(str(exc), hint="--policy-configmap takes NAMESPACE/NAME") from None
        if policy_file is not None and watched.document is None:
            raise CliError(watched.last_error or f"policy file {policy_file} is not usable",
                           hint="check --policy-file")
        return watched
    assert policy_file is not None
    source = FilePolicySource(policy_file)
    if not source.load():
        raise CliError(source.last_error or f"policy file {policy_file} is not usable", hint="check --policy-file")
    return source


def analytics_emitter(ingest_url: str | None, ingest_key_file: Path | None, spool_dir: Path | None) -> Emitter | None:
    """Analytics to Sentinel ingest when configured (URL and key both), else none."""
    if ingest_url is None and ingest_key_file is None and spool_dir is None:
        return None
    if ingest_url is None or ingest_key_file is None:
        raise CliError("analytics needs both --ingest-url and --ingest-key-file",
                       hint="give both, or neither to run without analytics")
    api_key = readable_file(ingest_key_file, "ingest key file", "--ingest-key-file").decode().strip()
    if not api_key:
        raise CliError(f"ingest key file {ingest_key_file} is empty", hint="check --ingest-key-file")
    from mcp_runtime.sentinel.emitter import Emitter

    return Emitter(ingest_url=ingest_url, api_key=api_key,
                   spool_path=spool_dir / "events.sqlite" if spool_dir is not None else None)
