"""`mcp-runtime platform serve`: the platform API and dashboard, without gateway or runtime (Kubernetes
runs those elsewhere; `mcp-runtime up` mounts everything in one process)."""

from __future__ import annotations

from pathlib import Path

import typer

from mcp_runtime.cli.common.errors import CliError
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
    runtime: str = typer.Option("none", "--runtime", envvar="MCP_PLATFORM_RUNTIME",
                                help="none (store and govern only) or kubernetes (servers, grants and sessions "
                                     "as CRDs the operator runs; team namespaces; the JWKS for the sidecars)."),
    kubeconfig: str | None = typer.Option(None, "--kubeconfig", help="With --runtime kubernetes (default: "
                                          "$KUBECONFIG, ~/.kube/config, or the pod's ServiceAccount)."),
) -> None:
    """Serve the platform API at http://HOST:PORT/api/v1 (and the dashboard at /) until interrupted."""
    import uvicorn

    from mcp_runtime.compose.site import create_site
    from mcp_runtime.platform import Platform, PlatformSettings, create_app
    from mcp_runtime.telemetry import open_telemetry

    if runtime not in ("none", "kubernetes"):
        raise CliError(f"--runtime {runtime!r} is not a runtime `platform serve` runs",
                       hint="use --runtime none or --runtime kubernetes (`mcp-runtime up` runs process and podman)")
    telemetry = open_telemetry("mcp-runtime-platform", otlp_endpoint(otlp))
    settings = PlatformSettings.from_env(data_dir.expanduser(), database_url=database_url)
    if runtime == "kubernetes":
        from mcp_runtime.compose.kubernetes import open_kubernetes_platform
        from mcp_runtime.kube import KubeClient, KubeConfigError, KubeError

        try:
            platform = open_kubernetes_platform(settings, KubeClient.from_environment(kubeconfig))
        except KubeConfigError as exc:
            raise CliError(str(exc), hint="set KUBECONFIG or pass --kubeconfig") from None
        except KubeError as exc:
            raise CliError(f"cannot use the cluster: {exc}",
                           hint="set KUBECONFIG (or --kubeconfig) to a cluster where `mcp-runtime setup` ran") from None
    else:
        platform = Platform(settings)
    app_ = create_site(platform, telemetry) if dashboard else create_app(platform=platform, telemetry=telemetry)
    typer.echo(f"platform API on http://{host}:{port}/api/v1 ({runtime} runtime, data in {settings.data_dir})"
               + (f", dashboard on http://{host}:{port}/" if dashboard else ""), err=True)
    uvicorn.run(app_, host=host, port=port, log_level=log_level)
