"""data-utility-mcp: a small MCP server on the official Python SDK.

It exists so the platform has a real Python upstream to publish, govern and test
against: seven simple tools, Streamable HTTP on ``http://localhost:8088/mcp`` by
default, and a ``ping`` tool that streams progress notifications.

Environment:
    PORT               listen port (default 8088)
    HOST               listen address (default 127.0.0.1; use 0.0.0.0 in a container)
    MCP_PATH           endpoint path (default /mcp)
    MCP_JSON_RESPONSE  "1"/"true" answers with plain JSON instead of SSE streams
    LOG_LEVEL          DEBUG|INFO|WARNING|ERROR (default INFO)
"""

from __future__ import annotations

import os
from typing import Annotated, Literal, cast

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

SERVER_NAME = "data-utility-mcp"
SERVER_VERSION = "0.1.0"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

Number = Annotated[float, Field(description="A number (integer or decimal).")]
Text = Annotated[str, Field(description="The text to transform.")]


def _tidy(value: float) -> int | float:
    """Show whole results as integers (2 + 3 is 5, not 5.0)."""
    return int(value) if float(value).is_integer() else value


def build_server() -> MCPServer:
    """Build the server with its seven tools (separate from main so tests can import it)."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    server: MCPServer = MCPServer(
        name=SERVER_NAME,
        version=SERVER_VERSION,
        instructions="Small data utilities: arithmetic, text case, reversal, echo and a ping with progress.",
        log_level=cast(LogLevel, level if level in LogLevel.__args__ else "INFO"),
    )

    @server.tool(description="Return the given text unchanged.")
    def echo(text: Annotated[str, Field(description="The text to echo back.")]) -> str:
        return text

    @server.tool(description="Add two numbers and return the sum.")
    def add(a: Number, b: Number) -> int | float:
        return _tidy(a + b)

    @server.tool(description="Multiply two numbers and return the product.")
    def multiply(a: Number, b: Number) -> int | float:
        return _tidy(a * b)

    @server.tool(description="Convert text to upper case.")
    def upper(text: Text) -> str:
        return text.upper()

    @server.tool(description="Convert text to lower case.")
    def lower(text: Text) -> str:
        return text.lower()

    @server.tool(description="Reverse the characters of a text.")
    def reverse(text: Text) -> str:
        return text[::-1]

    @server.tool(
        description=(
            "Answer 'pong'. With count > 1 it ticks count times, interval_ms apart, and sends one "
            "progress notification per tick when the caller asked for progress."
        )
    )
    async def ping(
        ctx: Context,
        count: Annotated[
            int, Field(ge=1, le=1000, description="Number of ticks (progress notifications).")
        ] = 1,
        interval_ms: Annotated[
            int, Field(ge=0, le=60_000, description="Milliseconds to wait between ticks.")
        ] = 0,
    ) -> str:
        for tick in range(1, count + 1):
            if tick > 1 and interval_ms:
                await anyio.sleep(interval_ms / 1000)
            # A no-op unless the client sent a progressToken with the call.
            await ctx.report_progress(tick, count, f"tick {tick}/{count}")
        return "pong"

    return server


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8088"))
    path = os.environ.get("MCP_PATH", "/mcp") or "/mcp"
    if not path.startswith("/"):
        path = "/" + path
    # DNS-rebinding protection stays on (the SDK enables it for loopback hosts):
    # a proxy in front of this server must forward the Host it was addressed by.
    build_server().run(
        "streamable-http",
        host=host,
        port=port,
        streamable_http_path=path,
        json_response=_env_flag("MCP_JSON_RESPONSE"),
    )


if __name__ == "__main__":
    main()
