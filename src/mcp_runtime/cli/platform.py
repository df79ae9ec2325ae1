"""`mcp-runtime platform serve`: the platform API and dashboard, without gateway or runtime (Kubernetes
runs those elsewhere; `mcp-runtime up` mounts everything in one process)."""

from __future__ import annotations

from pathlib import Path

import typer

from mcp_runtime.cli.common.serving import OTLP_HELP, otlp_endpoint
from mcp_runtime.platform.settings import DATA_DIR_SHOWN

app = typer.Typer(help="Run the platform API.", no_args_is_help=True)


@app.command()
def serve(
    data_dir: Path = typer.Option(DATA_DIR_SHOWN, "--data-dir", help="Where the SQLite file and "
                                  "the generated admin password live."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    database_url: str | None = typer.Option(None, "--database-url", envvar="MCP_RUNTIME_DATABASE_URL",
                                            help="postgresql+psycopg://... (default: SQLite in --data-dir)."),
    log_level: str = typer.Option("info", "--log-level"),
    dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard", help="Serve the dashboard at /."),
    otlp: str | None = typer.Option(None, "--otlp-endpoint", metavar="URL", help=OTLP_HELP),
) -> None:
    """Serve the platform API at http://HOST:PORT/api/v1 (and the dashboard at /) until interrupted."""
    import uvicorn

    from mcp_runtime.compose.site import create_site
    from mcp_runtime.platform import Platform, PlatformSettings, create_app
    from mcp_runtime.telemetry import open_telemetry

    telemetry = open_telemetry("mcp-runtime-platform", otlp_endpoint(otlp))
    settings = PlatformSettings.from_env(data_dir.expanduser(), database_url=database_url)
    platform = Platform(settings)
    app_ = create_site(platform, telemetry) if dashboard else create_app(platform=platform, telemetry=telemetry)
    typer.echo(f"platform API on http://{host}:{port}/api/v1 (data in {settings.data_dir})"
               + (f", dashboard on http://{host}:{port}/" if dashboard else ""), err=True)
    uvicorn.run(app_, host=host, port=port, log_level=log_level)
