"""`mcp-runtime image base|platform`: images without any image registry (an mmdebstrap Debian base, and the
platform image the podman runtime's gateway sidecar runs). `server build image` builds a server's image."""

from __future__ import annotations

import time

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.runtime.builders import BuildError

app = typer.Typer(help="Images without an image registry: a Debian base and the platform image.",
                  no_args_is_help=True)


@app.command("base")
def image_base(
    python: bool = typer.Option(False, "--python", help="Include python3 and python3-venv."),
    name: str | None = typer.Option(None, "--name", help="Image name (default: localhost/mcp-runtime-base:"
                                    "bookworm, or localhost/mcp-runtime-python:bookworm with --python)."),
    suite: str = typer.Option("bookworm", "--suite", help="Debian suite."),
    mirror: str | None = typer.Option(None, "--mirror", help="Debian mirror (default: $MCP_RUNTIME_DEBIAN_MIRROR "
                                      "or http://deb.debian.org/debian)."),
    package: list[str] = typer.Option([], "--package", help="Extra Debian package (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the image exists."),
) -> None:
    """Build a minimal Debian (+ Python) base image with mmdebstrap and import it (no image registry needed)."""
    from mcp_runtime.runtime.base_image import BaseImageSpec, build_base_image, default_base_name, image_exists

    target = name or default_base_name(python)
    try:
        if not force and image_exists(target):
            typer.echo(f"{target} exists (use --force to rebuild)", err=True)
            typer.echo(target)
            return
        started = time.monotonic()
        build_base_image(BaseImageSpec(name=target, python=python, suite=suite, mirror=mirror,
                                       extra_packages=tuple(package)), stream=True)
    except BuildError as exc:
        raise CliError(str(exc)) from None
    typer.echo(f"built {target} in {time.monotonic() - started:.0f}s", err=True)
    typer.echo(target)


@app.command("platform")
def image_platform(
    name: str | None = typer.Option(None, "--name", help="Image name (default: localhost/mcp-runtime:latest, "
                                    "what the podman runtime's gateway sidecar runs)."),
    base: str | None = typer.Option(None, "--base", help="Base image with python3 + venv (default: "
                                    "localhost/mcp-runtime-python:bookworm; built when missing)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the sources did not change."),
) -> None:
    """Build the platform image (this mcp-runtime, from wheels built on this machine) for gateway sidecars."""
    from mcp_runtime.manifests.options import DEFAULT_GATEWAY_IMAGE
    from mcp_runtime.runtime.base_image import (
        PYTHON_BASE_IMAGE,
        BaseImageSpec,
        build_base_image,
        build_platform_image,
        image_exists,
    )

    target = name or DEFAULT_GATEWAY_IMAGE
    base_image = base or PYTHON_BASE_IMAGE
    try:
        if base is None and not image_exists(base_image):
            build_base_image(BaseImageSpec(name=base_image, python=True), stream=True)
        built = build_platform_image(target, base=base_image, force=force, stream=True)
    except BuildError as exc:
        raise CliError(str(exc)) from None
    typer.echo(f"{'built' if built else 'up to date:'} {target}", err=True)
    typer.echo(target)
