"""Asking a stdio server for its tools (`server init --stdio-command`, `server validate --from-server stdio`).

The command runs behind the same stdio bridge a deploy uses, in this process, on a loopback port, and
the tools are listed over Streamable HTTP exactly as for `--from-server URL`: what init records is what
an agent will see through the gateway. What the server wrote on stderr is shown when it fails.
"""

from __future__ import annotations

import logging
import shlex
import socket
from collections import deque
from typing import Any

import anyio
import uvicorn

from mcp_runtime.bridge import BridgeConfig, StdioBridge
from mcp_runtime.bridge.child import resolve_command
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.resources import StdioSpec
from mcp_runtime.runtime.discovery import DiscoveredTool, DiscoveryError, discover_tools

PACKAGE_PREFIXES = ("npm:", "pypi:")
STDERR_LINES = 12


def stdio_spec(value: str) -> StdioSpec:
    """`--stdio-command` as a StdioSpec: a package shorthand (`npm:...`, `pypi:...`) or a command line."""
    text = value.strip()
    try:
        if text.startswith(PACKAGE_PREFIXES):
            return StdioSpec(package=text)
        argv = shlex.split(text)
    except ValueError as exc:
        raise CliError(f"--stdio-command {value!r}: {exc}",
                       hint='pass a command line such as "npx -y @modelcontextprotocol/server-everything@2026.8.31" '
                            "or a package such as npm:<pkg>@<version> or pypi:<pkg>==<version>") from None
    if not argv:
        raise CliError("--stdio-command is empty", hint="pass the command that starts the stdio server")
    return StdioSpec(command=argv[0], args=argv[1:])


class _Tail(logging.Handler):
    """Keeps the last lines the server wrote on stderr (the bridge logs them), for the error message."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=STDERR_LINES)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def discover_stdio(spec: StdioSpec, timeout: float, flag: str = "--stdio-command") -> list[Any]:
    """The tools the stdio server lists (started once, then stopped), or a CliError saying why not."""
    argv = spec.argv()
    try:
        resolve_command(argv)
    except FileNotFoundError as exc:
        raise CliError(f"{flag}: {exc}", hint="install it, or give the full path of the command") from None
    tail = _Tail()
    child_log = logging.getLogger("mcp_runtime.bridge")
    child_log.addHandler(tail)
    previous = child_log.level
    child_log.setLevel(logging.INFO)
    try:
        tools = anyio.run(_discover, spec, argv, timeout)
    except DiscoveryError as exc:
        said = "\n".join(f"  {line}" for line in tail.lines)
        raise CliError(f"{flag} {' '.join(argv)!r}: {exc.message}" + (f"; it wrote:\n{said}" if said else ""),
                       hint="check that the command starts an MCP server on stdio (see its output above)") from None
    finally:
        child_log.removeHandler(tail)
        child_log.setLevel(previous)
    return list({t.name: t for t in tools}.values())


async def _discover(spec: StdioSpec, argv: list[str], timeout: float) -> list[DiscoveredTool]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    bridge = StdioBridge(BridgeConfig(
        argv=argv, env={v.name: v.value for v in spec.env_vars}, cwd=spec.working_dir, max_sessions=1,
        initialize_timeout=timeout))
    server = uvicorn.Server(uvicorn.Config(bridge, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", access_log=False))
    outcome: list[DiscoveredTool] | DiscoveryError = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        try:
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.02)
            outcome = await discover_tools(f"http://127.0.0.1:{port}/mcp", timeout=timeout)
        except DiscoveryError as exc:
            outcome = exc
        finally:
            server.should_exit = True  # a graceful stop: the lifespan stops the process tree
    if isinstance(outcome, DiscoveryError):
        raise outcome
    return outcome
