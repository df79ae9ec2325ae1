"""`mcp-runtime adapter proxy|stdio|config`: connect MCP clients to governed servers with a session token."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime

import httpx
import typer

from mcp_runtime.adapter.config import (
    CLIENT_CONFIG_FILES,
    CLIENTS,
    DEFAULT_LISTEN,
    MODES,
    AdapterSettings,
    client_snippet,
    is_loopback,
    parse_listen,
)
from mcp_runtime.adapter.session import AdapterError, IssuedSession, SessionManager
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.flags import parse_choice, parse_duration_flag
from mcp_runtime.cli.common.serving import OTLP_HELP, check_port_free, configure_logging, otlp_endpoint
from mcp_runtime.resources import Trust

app = typer.Typer(help="Connect MCP clients to governed servers (HTTP proxy, stdio shim, client config).",
                  no_args_is_help=True)

RuntimeUrlOption = typer.Option(..., "--runtime-url", help="The server's MCP URL, e.g. http://127.0.0.1:8080/payments/mcp")
ServerOption = typer.Option(None, "--server", help="Server name: get a session for it from the platform.")
AgentOption = typer.Option(None, "--agent", help="Agent (session) name, e.g. cursor; required with --server.")
AgentIdOption = typer.Option(None, "--agent-id", help="Agent identity the grants match (default: --agent).")
NamespaceOption = typer.Option(None, "--namespace", help="The server's namespace (needed when it is ambiguous).")
TrustOption = typer.Option(None, "--trust", help="Trust to consent to: low, medium or high (capped by the grant).")
TtlOption = typer.Option(None, "--ttl", help="Session lifetime to ask for, e.g. 30m, 4h (default: the platform's).")
AutoRefreshOption = typer.Option(False, "--auto-refresh", help="Renew the session before it expires.")
ProfileOption = typer.Option(None, "--profile", help="Platform profile to get sessions as (default: the active one).")
TokenFileOption = typer.Option(None, "--session-token-file", help="Read a session token from this file instead.")
LogLevelOption = typer.Option("info", "--log-level", help="debug, info, warning or error (logs go to stderr).")


def _settings(runtime_url: str, server: str | None, agent: str | None, agent_id: str | None,
              namespace: str | None, trust: str | None, ttl: str | None, auto_refresh: bool, profile: str | None,
              token_file: str | None, static_token: str | None = None) -> AdapterSettings:
    url = runtime_url.strip()
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--runtime-url {runtime_url!r} is not an http(s) URL",
                       hint="e.g. --runtime-url http://127.0.0.1:8080/payments/mcp")
    consented = parse_choice(trust, Trust, "--trust") if trust is not None else None
    ttl_seconds = int(parse_duration_flag(ttl, "--ttl").total_seconds()) if ttl is not None else None
    sources = [s for s in (server and "--server", token_file and "--session-token-file",
                           static_token is not None and "--token-stdin") if s]
    if len(sources) > 1:
        raise CliError(f"{' and '.join(sources)} are both given", hint="a session comes from exactly one of them")
    if not sources:
        raise CliError("no session source", hint="pass --server and --agent (the platform issues the session), "
                       "or a session token with --session-token-file or --token-stdin")
    if server and not (agent or agent_id):
        raise CliError("--agent is required with --server", hint="e.g. --agent cursor --agent-id cursor")
    return AdapterSettings(runtime_url=url, server=server, agent=agent, agent_id=agent_id, namespace=namespace,
                           trust=consented.value if consented else None, ttl_seconds=ttl_seconds,
                           auto_refresh=auto_refresh, profile=profile, static_token=static_token,
                           token_file=token_file)


def _describe(issued: IssuedSession, settings: AdapterSettings) -> str:
    who = "/".join(x for x in (issued.human_id, issued.agent_id) if x)
    parts = [f"session {issued.name}" if issued.name else "static session token"]
    if issued.namespace:
        parts.append(f"in {issued.namespace}")
    if who:
        parts.append(f"as {who}")
    if issued.expires_at:
        parts.append(f"expires {issued.expires_at}")
    parts.append("auto-refresh on" if settings.auto_refresh else "auto-refresh off")
    return ", ".join(parts)


def _check_runtime(settings: AdapterSettings) -> None:
    """Fail at start, in one line, when nothing answers at the runtime URL (any HTTP answer will do).

    Sent without the token: a gateway answers 401 at once, and no credential goes to a mistyped URL."""
    try:
        with httpx.stream("GET", settings.runtime_url, timeout=5, headers={"accept": "text/event-stream"}):
            pass
    except httpx.TransportError as exc:
        raise CliError(f"cannot reach the runtime at {settings.runtime_url} ({type(exc).__name__})",
                       hint="is the platform running? check --runtime-url") from None


@app.command("proxy")
def proxy(
    runtime_url: str = RuntimeUrlOption,
    server: str | None = ServerOption,
    agent: str | None = AgentOption,
    agent_id: str | None = AgentIdOption,
    namespace: str | None = NamespaceOption,
    trust: str | None = TrustOption,
    ttl: str | None = TtlOption,
    auto_refresh: bool = AutoRefreshOption,
    listen: str = typer.Option(DEFAULT_LISTEN, "--listen", help="HOST:PORT to serve MCP on (loopback only)."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a non-loopback --listen (anyone who reaches it uses your session)."),
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Read a session token from stdin."),
    session_token_file: str | None = TokenFileOption,
    profile: str | None = ProfileOption,
    log_level: str = LogLevelOption,
    otlp: str | None = typer.Option(None, "--otlp-endpoint", metavar="URL", help=OTLP_HELP),
) -> None:
    """Serve MCP on http://127.0.0.1:8099/mcp and forward it to the runtime with your session token."""
    import uvicorn

    from mcp_runtime.adapter.proxy import AdapterProxy

    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise CliError(f"--listen {exc}") from None
    if not is_loopback(host) and not allow_remote:
        raise CliError(f"--listen {listen} is reachable from other machines, and the proxy adds your session "
                       "token to every request", hint="listen on 127.0.0.1, or pass --allow-remote if you mean it")
    hint = "stop what runs there or pick another --listen HOST:PORT"
    check_port_free(host, port, in_use_hint=hint, other_hint=hint)
    static = sys.stdin.read().strip() if token_stdin else None
    settings = _settings(runtime_url, server, agent, agent_id, namespace, trust, ttl, auto_refresh, profile,
                         session_token_file, static)
    configure_logging(log_level, quiet=("httpx",))
    sessions = SessionManager(settings)
    try:
        issued = sessions.issue_sync()
    except AdapterError as exc:
        raise CliError.from_client(exc) from None
    _check_runtime(settings)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"adapter proxy: http://{shown}:{port}/mcp -> {settings.runtime_url} ({_describe(issued, settings)})",
               err=True)
    from mcp_runtime.telemetry import open_telemetry

    telemetry = open_telemetry("mcp-runtime-adapter", otlp_endpoint(otlp))
    proxy_app = AdapterProxy(sessions, allow_remote=allow_remote, telemetry=telemetry)
    config = uvicorn.Config(proxy_app, host=host, port=port,
                            lifespan="on", log_level=log_level.lower(), access_log=False, server_header=False,
                            timeout_graceful_shutdown=3)
    uvicorn.Server(config).run()


@app.command("stdio")
def stdio(
    runtime_url: str = RuntimeUrlOption,
    server: str | None = ServerOption,
    agent: str | None = AgentOption,
    agent_id: str | None = AgentIdOption,
    namespace: str | None = NamespaceOption,
    trust: str | None = TrustOption,
    ttl: str | None = TtlOption,
    auto_refresh: bool = AutoRefreshOption,
    session_token_file: str | None = TokenFileOption,
    token_stdin: bool = typer.Option(False, "--token-stdin", hidden=True),
    profile: str | None = ProfileOption,
    log_level: str = typer.Option("warning", "--log-level", help="debug, info, warning or error (stderr)."),
) -> None:
    """Speak MCP on stdin/stdout (for Claude Desktop and other stdio clients), forwarding to the runtime."""
    from mcp_runtime.adapter.stdio import StdioBridge

    if token_stdin:
        raise CliError("--token-stdin does not work with adapter stdio: stdin carries the MCP messages",
                       hint="put the token in a file and pass --session-token-file, or use --server")

    settings = _settings(runtime_url, server, agent, agent_id, namespace, trust, ttl, auto_refresh, profile,
                         session_token_file)
    configure_logging(log_level, quiet=("httpx",))
    sessions = SessionManager(settings)
    bridge = StdioBridge(sessions)
    try:
        issued = sessions.issue_sync()
        logging.getLogger("mcp_runtime.adapter").info("%s", _describe(issued, settings))
    except AdapterError as exc:
        # stdout is the protocol: say it on stderr now, and as a JSON-RPC error to every request
        # (each request tries again, so a grant applied meanwhile is picked up)
        sessions.last_error = exc
        bridge.report(exc)
    try:
        asyncio.run(bridge.run())
    except KeyboardInterrupt:
        pass


@app.command("config")
def config(
    client: str = typer.Option(..., "--client", help="claude-code, claude-desktop, cursor or vscode."),
    server: str = typer.Option(..., "--server", help="Server name."),
    runtime_url: str = RuntimeUrlOption,
    agent: str | None = typer.Option(None, "--agent", help="Agent (session) name (default: the client's name)."),
    agent_id: str | None = AgentIdOption,
    namespace: str | None = NamespaceOption,
    trust: str | None = TrustOption,
    ttl: str | None = TtlOption,
    mode: str = typer.Option("stdio", "--mode", help="stdio: the client starts `adapter stdio`; "
                             "http: the client calls the URL with a session token; oauth: the client "
                             "calls the URL and signs you in itself (MCP authorization)."),
    profile: str | None = ProfileOption,
) -> None:
    """Print the JSON snippet that makes an MCP client use this server through the platform."""
    client = client.strip().lower()
    if client not in CLIENTS:
        raise CliError(f"--client {client!r} is not supported", hint=f"use one of {', '.join(CLIENTS)}")
    if mode not in MODES:
        raise CliError(f"--mode {mode!r} is not allowed", hint="use stdio, http or oauth")
    settings = _settings(runtime_url, server, agent or client, agent_id, namespace, trust, ttl,
                         mode == "stdio", profile, None)
    if mode == "oauth":
        if client == "claude-desktop":
            raise CliError("Claude Desktop adds remote (OAuth) servers in Settings > Connectors, not in its "
                           "config file", hint=f"add a custom connector with the URL {runtime_url}, or use "
                           "--mode stdio")
        typer.echo(json.dumps(client_snippet(client, server, settings, mode="oauth"), indent=2))
        typer.echo(f"paste into {CLIENT_CONFIG_FILES[client]}; the client opens your browser to sign in "
                   "and allow it on first use", err=True)
        return
    if mode == "stdio":
        snippet = client_snippet(client, server, settings, mode="stdio")
    else:
        if client == "claude-desktop":
            raise CliError("Claude Desktop reads only stdio servers from its config file",
                           hint="use --mode stdio (it starts `mcp-runtime adapter stdio`)")
        try:
            issued = SessionManager(settings).issue_sync()
        except AdapterError as exc:
            raise CliError.from_client(exc) from None
        snippet = client_snippet(client, server, settings, mode="http", token=issued.token)
        typer.echo(f"warning: this token expires at {issued.expires_at or 'an unknown time'} "
                   f"({_remaining(issued.expires_at)}); run this command again then, or use --mode stdio, "
                   "which renews sessions on its own", err=True)
    typer.echo(json.dumps(snippet, indent=2))
    typer.echo(f"paste into {CLIENT_CONFIG_FILES[client]}", err=True)


def _remaining(expires_at: str | None) -> str:
    if not expires_at:
        return "lifetime unknown"
    try:
        left = datetime.fromisoformat(expires_at) - datetime.now(UTC)
    except ValueError:
        return "lifetime unknown"
    minutes = max(int(left.total_seconds() // 60), 0)
    return f"in {minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"in {minutes}m"
