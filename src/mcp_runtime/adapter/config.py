"""What an adapter is told to do (`AdapterSettings`), where it may listen, and client config snippets.

The snippets are what `mcp-runtime adapter config` prints: the JSON a desktop MCP client reads to
start `mcp-runtime adapter stdio` (stdio mode), to call the runtime URL directly with a session
token in a header (http mode), or just the URL for clients that do MCP authorization (OAuth) themselves
(oauth mode: they sign the user in through the dashboard, docs/authorization.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_LISTEN = "127.0.0.1:8099"
CLIENTS = ("claude-code", "claude-desktop", "cursor", "vscode")
MODES = ("stdio", "http", "oauth")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

# Where each client reads the snippet from (shown on stderr next to it).
CLIENT_CONFIG_FILES = {
    "claude-code": ".mcp.json in the project (or: claude mcp add-json <name> '<the server entry>')",
    "claude-desktop": "claude_desktop_config.json (Claude Desktop: Settings > Developer > Edit Config)",
    "cursor": "~/.cursor/mcp.json (or .cursor/mcp.json in a project)",
    "vscode": ".vscode/mcp.json (or the user settings' mcp section)",
}


@dataclass
class AdapterSettings:
    """One adapter's target and identity. With `server` set, sessions come from the platform."""

    runtime_url: str
    server: str | None = None
    agent: str | None = None  # session name hint (`--agent`)
    agent_id: str | None = None  # the agent identity (`--agent-id`); defaults to `agent`
    namespace: str | None = None
    trust: str | None = None
    ttl_seconds: int | None = None
    auto_refresh: bool = False
    profile: str | None = None
    static_token: str | None = None  # `--token-stdin`
    token_file: str | None = None  # `--session-token-file`, read again on every renewal
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def platform_url_guess(self) -> str:
        """The runtime URL's origin: the platform's URL when it runs as `mcp-runtime up`."""
        parts = urlsplit(self.runtime_url)
        return f"{parts.scheme}://{parts.netloc}"

    def session_request(self) -> dict[str, Any]:
        """The body of `POST runtime/adapter/sessions` for these settings."""
        body: dict[str, Any] = {"server": self.server, "namespace": self.namespace, "agent": self.agent,
                                "agentID": self.agent_id or self.agent, "trust": self.trust,
                                "ttlSeconds": self.ttl_seconds}
        return {k: v for k, v in body.items() if v is not None}


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:8099`) -> (host, port). ValueError with a readable message."""
    text = value.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def stdio_args(settings: AdapterSettings) -> list[str]:
    """The `mcp-runtime` arguments that start `adapter stdio` for these settings."""
    args = ["adapter", "stdio", "--runtime-url", settings.runtime_url]
    if settings.server:
        args += ["--server", settings.server]
    if settings.agent:
        args += ["--agent", settings.agent]
    if settings.agent_id:
        args += ["--agent-id", settings.agent_id]
    if settings.namespace:
        args += ["--namespace", settings.namespace]
    if settings.trust:
        args += ["--trust", settings.trust]
    if settings.profile:
        args += ["--profile", settings.profile]
    if settings.auto_refresh:
        args.append("--auto-refresh")
    return args


def client_snippet(client: str, name: str, settings: AdapterSettings, *, mode: str,
                   token: str | None = None, command: str = "mcp-runtime") -> dict[str, Any]:
    """The JSON that makes `client` use this server: via `adapter stdio`, the URL plus a bearer token, or
    the URL alone (oauth: the client authorizes itself)."""
    if mode == "oauth":
        if client == "claude-desktop":
            raise ValueError("Claude Desktop adds remote servers in Settings > Connectors, not in its config file")
        if client == "vscode":
            return {"servers": {name: {"type": "http", "url": settings.runtime_url}}}
        if client == "claude-code":
            return {"mcpServers": {name: {"type": "http", "url": settings.runtime_url}}}
        return {"mcpServers": {name: {"url": settings.runtime_url}}}
    if mode == "stdio":
        entry: dict[str, Any] = {"command": command, "args": stdio_args(settings)}
        if client == "vscode":
            return {"servers": {name: {"type": "stdio", **entry}}}
        return {"mcpServers": {name: entry}}
    if token is None:
        raise ValueError("http mode needs a session token")
    headers = {"Authorization": f"Bearer {token}"}
    if client == "vscode":
        return {"servers": {name: {"type": "http", "url": settings.runtime_url, "headers": headers}}}
    if client == "cursor":
        return {"mcpServers": {name: {"url": settings.runtime_url, "headers": headers}}}
    if client == "claude-code":
        return {"mcpServers": {name: {"type": "http", "url": settings.runtime_url, "headers": headers}}}
    raise ValueError(f"{client} reads only stdio servers from its config file")
