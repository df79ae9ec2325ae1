"""`mcp-runtime status`: the platform at a glance (URL, health, runtime, store, servers by phase)."""

from __future__ import annotations

import os
from typing import Any

from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured, print_fields
from mcp_runtime.client import URL_ENV, ApiClient, ClientError, Config, Profile, client, normalize_url


def _client() -> tuple[ApiClient, bool]:
    """The active profile's client; without a login, an anonymous one when MCP_PLATFORM_API_URL is set."""
    try:
        return client(), True
    except ClientError:
        url = os.environ.get(URL_ENV)
        if not url or Config.load().active_name():
            raise
        return ApiClient(Profile(name="anonymous", api_url=normalize_url(url))), False


def status(output: OutputFormat = OutputOption) -> None:
    """Platform health at a glance: is the API up, which runtime runs servers, and how they are doing."""
    api, signed_in = _client()
    answer: dict[str, Any] = api.get("status", auth=signed_in)
    answer = {"apiUrl": api.profile.api_url, **answer}
    if emit_structured(answer, output):
        return
    health = f"{answer.get('status')} (version {answer.get('version')})"
    lines: list[tuple[str, Any]] = [("Platform", api.profile.api_url), ("Health", health)]
    if "servers" in answer:
        servers = answer["servers"]
        phases = ", ".join(f"{phase} {count}" for phase, count in servers.get("byPhase", {}).items())
        user = answer.get("user", {})
        lines += [("Signed in", f"{user.get('email')}{' (admin)' if user.get('admin') else ''}"),
                  ("Runtime", answer.get("runtime")), ("Store", answer.get("store")),
                  ("Servers", f"{servers.get('total', 0)}" + (f" ({phases})" if phases else ""))]
    else:
        lines.append(("Signed in", "no (log in with mcp-runtime auth login to see servers)"))
    print_fields(lines, dash_empty=False)
