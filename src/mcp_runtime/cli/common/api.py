"""What the commands that talk to the platform API share: finding an object's namespace by its name,
and how a grant's tool rules are shown."""

from __future__ import annotations

from typing import Any

import typer

from mcp_runtime.client import ApiClient

NamespaceOption = typer.Option(None, "--namespace", "-n", help="Namespace (found by name when omitted).")


def namespaces_named(api: ApiClient, collection: str, name: str) -> list[str]:
    """The namespaces (sorted) holding a visible `runtime/<collection>` object called `name`; the caller
    says what none or several mean."""
    items = api.get(f"runtime/{collection}")["items"]
    return sorted({str(i["metadata"]["namespace"]) for i in items if i["metadata"]["name"] == name})


def shown_tool_rules(rules: list[dict[str, Any]]) -> list[str]:
    """A grant's tool rules in one cell: `name` for allow, `!name` for deny, `*` when there are none."""
    return [r["name"] if r.get("decision", "allow") == "allow" else f"!{r['name']}" for r in rules] or ["*"]
