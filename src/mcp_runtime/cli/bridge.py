"""`mcp-runtime bridge stdio`: serve a stdio MCP server over Streamable HTTP (the entrypoint of every
stdio server, in the process runtime, in podman and in Kubernetes)."""

from __future__ import annotations

import os

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.serving import check_port_free, configure_logging
from mcp_runtime.resources.common import parse_duration

app = typer.Typer(help="Serve a stdio MCP server over Streamable HTTP, one process per MCP session.",
                  no_args_is_help=True)


def _env_pairs(values: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--env {item!r} is not NAME=VALUE", hint="for example --env ROOT=/data")
        env[name] = value
    return env


def _env_port() -> int:
    raw = os.environ.get("PORT", "8088")
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise CliError(f"PORT={raw!r} is not a port number", hint="set PORT to 1-65535 or pass --port")
    return int(raw)


@app.command("stdio", context_settings={"allow_interspersed_args": False})
def stdio(
    command: list[str] = typer.Argument(..., metavar="-- CMD [ARGS]...",
                                        help="The stdio server's command, after `--`."),
    port: int | None = typer.Option(None, "--port", min=1, max=65535,
                                    help="Port to serve on [default: $PORT, else 8088]."),
    host: str | None = typer.Option(None, "--host", help="Address to bind [default: $HOST, else 0.0.0.0]."),
    path: str | None = typer.Option(None, "--path", help="MCP endpoint path [default: $MCP_PATH, else /mcp]."),
    max_sessions: int = typer.Option(16, "--max-sessions", min=1, max=1000,
                                     help="Most MCP sessions (processes) at once; more get a 503."),
    idle_timeout: str = typer.Option("15m", "--idle-timeout",
                                     help="End a session (and stop its process) after this long without a request."),
    initialize_timeout: str = typer.Option("60s", "--initialize-timeout",
                                           help="End a session whose process does not answer initialize in time."),
    max_line_bytes: int = typer.Option(4 * 1024 * 1024, "--max-line-bytes", min=1024,
                                       help="Longest stdout line (one JSON-RPC message) the server may write."),
    cwd: str | None = typer.Option(None, "--cwd", help="Working directory of the server processes."),
    env: list[str] = typer.Option([], "--env", metavar="NAME=VALUE", help="Extra environment (repeatable)."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run CMD once per MCP session and relay Streamable HTTP at --path to its stdin/stdout.

    Example: mcp-runtime bridge stdio --port 8088 -- npx -y @modelcontextprotocol/server-everything@2026.8.31

    The server's stderr goes to this process's log. /healthz answers 200 while it runs.
    """
    import uvicorn

    from mcp_runtime.bridge import BridgeConfig, StdioBridge
    from mcp_runtime.bridge.child import resolve_command

    port = port or _env_port()
    host = host or os.environ.get("HOST") or "0.0.0.0"
    path = path or os.environ.get("MCP_PATH") or "/mcp"
    if not command:
        raise CliError("no command given", hint="put the stdio server's command after `--`")
    try:
        resolve_command(command)
        idle = parse_duration(idle_timeout).total_seconds()
        init = parse_duration(initialize_timeout).total_seconds()
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc), hint="fix the command or the option") from None
    configure_logging(log_level)
    check_port_free(host, port, in_use_hint="pass another --port", other_hint="check --host")
    bridge = StdioBridge(BridgeConfig(
        argv=command, path="/" + path.strip("/"), env=_env_pairs(env), cwd=cwd, max_sessions=max_sessions,
        idle_timeout=idle, initialize_timeout=init, max_line=max_line_bytes))
    uvicorn.Server(uvicorn.Config(bridge, host=host, port=port, log_level=log_level.lower(),
                                  access_log=False, lifespan="on", timeout_graceful_shutdown=5)).run()
