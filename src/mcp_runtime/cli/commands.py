"""The one list of command groups, in the order `mcp-runtime --help` shows them (Typer lists the
top-level commands first, then the groups). Each lives in the module or package named after it."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Mount every command group on the root app. Add one line per new group."""
    from mcp_runtime.cli import (
        access,
        adapter,
        analytics,
        audit,
        auth,
        bootstrap,
        bridge,
        cluster,
        crds,
        gateway,
        gateway_virtual,
        image,
        operator,
        platform,
        registry,
        secret,
        sentinel,
        server,
        setup,
        status,
        team,
        up,
    )

    app.command("up")(up.up)
    app.command("status")(status.status)
    app.command("setup")(setup.setup)
    app.command("bootstrap")(bootstrap.bootstrap)
    app.add_typer(auth.app, name="auth")
    app.add_typer(server.app, name="server")
    app.add_typer(access.app, name="access")
    app.add_typer(secret.app, name="secret")
    app.add_typer(team.app, name="team")
    app.add_typer(analytics.app, name="analytics")
    app.add_typer(audit.app, name="audit")
    app.add_typer(crds.app, name="crds")
    gateway.app.command("virtual")(gateway_virtual.virtual)
    app.add_typer(gateway.app, name="gateway")
    app.add_typer(platform.app, name="platform")
    app.add_typer(registry.app, name="registry")
    app.add_typer(image.app, name="image")
    app.add_typer(cluster.app, name="cluster")
    app.add_typer(sentinel.app, name="sentinel")
    app.add_typer(operator.app, name="operator")
    app.add_typer(adapter.app, name="adapter")
    app.add_typer(bridge.app, name="bridge")
