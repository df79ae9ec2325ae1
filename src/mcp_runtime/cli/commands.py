"""The list of command groups, in the order `mcp-runtime --help` shows them."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Mount every command group on the root app. Add one line per new group."""
    from mcp_runtime.cli import (
        access,
        adapter,
        analytics,
        auth,
        cluster,
        crds,
        gateway,
        images,
        kube,
        operator_cmd,
        platform_serve,
        registry,
        sentinel_kube,
        server,
        server_kube,
        status,
        team,
        up,
    )

    app.command("up")(up.up)

    server_kube.register(server.app)  # server create|apply|export|patch --use-kube (logs: server_platform)
    app.add_typer(auth.app, name="auth")
    app.command("status")(status.status)
    app.add_typer(server.app, name="server")
    app.add_typer(access.app, name="access")
    app.add_typer(team.app, name="team")
    app.add_typer(analytics.app, name="analytics")
    app.add_typer(crds.app, name="crds")
    app.add_typer(gateway.app, name="gateway")
    app.add_typer(platform_serve.app, name="platform")
    app.add_typer(registry.app, name="registry")
    app.add_typer(images.image_app, name="image")
    app.command("setup")(kube.setup)
    app.command("bootstrap")(kube.bootstrap)
    app.add_typer(cluster.app, name="cluster")
    app.add_typer(sentinel_kube.app, name="sentinel")
    app.add_typer(operator_cmd.app, name="operator")
    app.add_typer(adapter.app, name="adapter")
