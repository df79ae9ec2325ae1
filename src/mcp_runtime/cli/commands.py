"""The list of command groups, in the order `mcp-runtime --help` shows them."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Mount every command group on the root app. Add one line per new group."""
    from mcp_runtime.cli import access, auth, crds, gateway, platform_serve, server, status, team, up

    app.command("up")(up.up)

    app.add_typer(auth.app, name="auth")
    app.command("status")(status.status)
    app.add_typer(server.app, name="server")
    app.add_typer(access.app, name="access")
    app.add_typer(team.app, name="team")
    app.add_typer(crds.app, name="crds")
    app.add_typer(gateway.app, name="gateway")
    app.add_typer(platform_serve.app, name="platform")
