"""`mcp-runtime up`: the whole platform on this machine, in one process."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.serving import check_port_free, configure_logging
from mcp_runtime.platform.settings import ADMIN_PASSWORD_FILE, DEFAULT_DATA_DIR, PlatformSettings

if TYPE_CHECKING:
    from mcp_runtime.compose.embedded import EmbeddedPlatform
    from mcp_runtime.compose.podman_stack import PodmanStack


def up(
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="Where the SQLite store, keys and logs live."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port for the API, dashboard and gateway."),
    runtime: str = typer.Option("process", "--runtime",
                                help="process (local subprocesses) or podman (pods from the platform registry)."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the platform API, the dashboard and the gateway for every deployed server.

    With --runtime process (the default) servers run as local processes from their run command;
    with --runtime podman they run as pods (app + gateway sidecar) from images in the bundled
    registry. Either way they are reachable at http://HOST:PORT/<server>/mcp. Ctrl-C stops them;
    the next `up` brings them back.
    """
    import uvicorn

    from mcp_runtime.gateway.coalesce import CoalescingHttpToolsProtocol

    configure_logging(log_level, quiet=("alembic",))
    check_port_free(host, port, in_use_hint="stop what runs there or pass --port", other_hint="check --host")
    data_dir = _data_dir(data_dir)
    settings = PlatformSettings.from_env(data_dir)
    password_file = data_dir / ADMIN_PASSWORD_FILE
    had_password_file = password_file.exists()
    public_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if runtime not in ("process", "podman"):
        raise CliError(f"--runtime {runtime!r} is not known", hint="use process or podman")
    stack = _podman_stack(data_dir, host, port) if runtime == "podman" else None
    embedded = _start(settings, public_url, stack)
    _print_banner(embedded, settings, public_url, password_file, had_password_file)
    config = uvicorn.Config(embedded.asgi, host=host, port=port, lifespan="on", interface="asgi3",
                            http=CoalescingHttpToolsProtocol,
                            log_level=log_level.lower(),
                            access_log=False, server_header=False, timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run()
    finally:
        if stack is not None:
            stack.stop()


def _data_dir(data_dir: Path) -> Path:
    """The data directory, absolute and created (or a CliError saying to choose another)."""
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create data directory {data_dir}: {exc.strerror}",
                       hint="pass a writable --data-dir") from None
    return data_dir


def _start(settings: PlatformSettings, public_url: str, stack: PodmanStack | None) -> EmbeddedPlatform:
    """The one-process platform, wired to the podman stack when there is one; a failure stops the stack."""
    from mcp_runtime.compose.embedded import EmbeddedPlatform

    try:
        if stack is not None:
            settings.registry_host = stack.registry_host
        embedded = EmbeddedPlatform(settings, public_url=public_url,
                                    runtime_factory=stack.runtime_factory if stack is not None else None)
        if stack is not None:
            embedded.runtime_name = "podman"
            if stack.runtime is not None and stack.ingest_url:
                stack.runtime.ingest_api_key = embedded.platform.ingest_keys.local_key
            stack.attach(embedded.platform)
            stack.start()
    except Exception as exc:
        if stack is not None:
            stack.stop()
        raise CliError(f"the platform could not start: {exc}",
                       hint=f"check {settings.data_dir} and MCP_RUNTIME_DATABASE_URL") from None
    return embedded


def _podman_stack(data_dir: Path, host: str, port: int) -> PodmanStack:
    """Podman, the bundled registry and the sidecar image: built once, then reused."""
    from mcp_runtime.compose.podman_stack import PodmanStack
    from mcp_runtime.runtime.podman import PodmanRuntimeError

    # pods reach the platform's ingest through podman's host alias; that needs a non-loopback listener
    ingest_url = (f"http://host.containers.internal:{port}/api/v1/ingest/events"
                  if host not in ("127.0.0.1", "localhost", "::1") else None)
    stack = PodmanStack(data_dir, ingest_url=ingest_url)
    try:
        stack.prepare(echo=typer.echo)
    except PodmanRuntimeError as exc:
        raise CliError(str(exc), hint="or run `mcp-runtime up` with the process runtime") from None
    return stack


def _print_banner(embedded: EmbeddedPlatform, settings: PlatformSettings, public_url: str, password_file: Path,
                  had_password_file: bool) -> None:
    lines = [
        f"MCP Runtime is starting ({embedded.runtime_name} runtime).",
        f"  dashboard   {public_url}/",
        f"  API         {public_url}/api/v1   (docs: {public_url}/api/v1/docs)",
        f"  servers     {public_url}/<server>/mcp",
        f"  data        {settings.data_dir}",
        "",
    ]
    if password_file.exists() and not had_password_file:
        password = password_file.read_text().strip()
        lines += [
            f"Created admin {settings.admin_email} with password: {password}",
            f"  (shown once; it is also in {password_file}, mode 0600 — change it or set "
            "MCP_RUNTIME_ADMIN_PASSWORD before the first start)",
            "",
        ]
    lines += [
        "Next:",
        f"  mcp-runtime auth login --api-url {public_url} --email {settings.admin_email} --profile admin",
        "  mcp-runtime team create acme --name \"Acme Corp\"",
        "  mcp-runtime server init payments --from-server http://localhost:8088 --run \"python app.py\"",
        "  mcp-runtime server deploy payments --scope tenant",
        "Press Ctrl-C to stop.",
    ]
    typer.echo("\n".join(lines))
