"""`server build image` (build + tag with the resolved registry reference + rewrite `.mcp` metadata) and
`image base|platform` (images without any image registry: mmdebstrap base, the platform image).

The reference is `<registry host>/<scope prefix>/<name>:<tag>`; the scope prefix is the team slug for
tenant, `org` or `public`. The registry host comes from `$MCP_RUNTIME_REGISTRY`, else the platform's
registry info (when logged in), else the bundled registry's address.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.errors import CliError
from mcp_runtime.cli.local_files import dump_yaml, load_metadata, servers_path, write_atomic
from mcp_runtime.client.errors import ClientError
from mcp_runtime.manifests.images import DEFAULT_REGISTRY_ADDRESS, ImageRef, ImageRefError, scope_prefix
from mcp_runtime.resources import Scope
from mcp_runtime.runtime.builders import BuildError, build_image, find_builder

REGISTRY_ENV = "MCP_RUNTIME_REGISTRY"

build_app = typer.Typer(help="Build server images.", no_args_is_help=True)
image_app = typer.Typer(help="Images without an image registry: a Debian base and the platform image.",
                        no_args_is_help=True)


def register(server_app: typer.Typer) -> None:
    """`server build image ...` lives under the `server` group."""
    server_app.add_typer(build_app, name="build")


def _platform_client() -> Any | None:
    """The API client when logged in (or MCP_PLATFORM_API_TOKEN is set); None otherwise."""
    from mcp_runtime.client import client

    try:
        return client()
    except ClientError:
        return None


def resolve_registry_host(api: Any | None) -> str:
    if os.environ.get(REGISTRY_ENV):
        return os.environ[REGISTRY_ENV].strip().rstrip("/").removeprefix("https://").removeprefix("http://")
    if api is not None:
        try:
            return str(api.get("registry/info")["host"])
        except ClientError:
            pass
    return DEFAULT_REGISTRY_ADDRESS


def resolve_team(api: Any | None, team: str | None) -> str:
    """The team slug of tenant images: --team, else the caller's only team."""
    if team:
        return team
    if api is None:
        raise CliError("tenant images live under your team's slug, and no platform login is known",
                       hint="log in (mcp-runtime auth login) or pass --team SLUG")
    teams = api.get("teams").get("items") or []
    if len(teams) == 1:
        return str(teams[0]["slug"])
    if not teams:
        raise CliError("you belong to no team, so there is no tenant prefix", hint="pass --team or --scope org")
    slugs = ", ".join(t["slug"] for t in teams)
    raise CliError(f"you belong to several teams ({slugs})", hint="choose one with --team")


def _metadata_entry(metadata_dir: Path, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if not servers_path(metadata_dir).exists():
        return None, None
    _, raw = load_metadata(metadata_dir)
    for entry in raw.get("servers") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return raw, entry
    return raw, None


@build_app.command("image")
def build_server_image(
    name: str = typer.Argument(..., help="Server name (the image repository's last part)."),
    tag: str = typer.Option(..., "--tag", "-t", help="Image tag, e.g. v1.0.0."),
    platform: str | None = typer.Option(None, "--platform", help="Target platform, e.g. linux/amd64 "
                                        "(default for docker: linux/amd64 or $MCP_DOCKER_PLATFORM)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Containerfile (default: Containerfile or "
                                     "Dockerfile in the context)."),
    context: Path = typer.Option(Path("."), "--context", help="Build context directory."),
    scope: Scope | None = typer.Option(None, "--scope", help="tenant, org or public (default: the metadata's "
                                       "scope, else tenant)."),
    team: str | None = typer.Option(None, "--team", help="Team slug for tenant images (default: your team)."),
    build_arg: list[str] = typer.Option([], "--build-arg", help="KEY=VALUE passed to the build (repeatable), "
                                        "e.g. BASE_IMAGE=localhost/mcp-runtime-python:bookworm."),
    builder: str | None = typer.Option(None, "--builder", help="docker, podman or buildah (default: the first "
                                       "found; $MCP_RUNTIME_BUILDER)."),
    metadata_dir: Path = typer.Option(Path(".mcp"), "--metadata-dir", help="Directory holding servers.yaml."),
) -> None:
    """Build the image, tag it with the resolved registry reference, rewrite `.mcp` metadata, print the ref."""
    raw, entry = _metadata_entry(metadata_dir, name)
    chosen = scope or (Scope(entry["scope"]) if entry and entry.get("scope") else Scope.tenant)
    args: dict[str, str] = {}
    for item in build_arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--build-arg {item!r} is not KEY=VALUE")
        args[key] = value
    needs_api = (chosen == Scope.tenant and not team) or not os.environ.get(REGISTRY_ENV)
    api = _platform_client() if needs_api else None
    host = resolve_registry_host(api)
    slug = resolve_team(api, team) if chosen == Scope.tenant else None
    try:
        reference = ImageRef.parse(f"{host}/{scope_prefix(chosen, slug)}/{name}:{tag}")
    except ImageRefError as exc:
        raise CliError(str(exc), hint="server names and tags must be valid image names") from None
    try:
        used = build_image(str(reference), context, containerfile=file, platform=platform, build_args=args,
                           builder=find_builder(builder), stream=True)
    except BuildError as exc:
        raise CliError(str(exc)) from None
    if raw is not None and entry is not None:
        entry["image"] = f"{reference.host}/{reference.repository}"
        entry["imageTag"] = reference.tag
        write_atomic(servers_path(metadata_dir), dump_yaml(raw))
        typer.echo(f"built with {used.name}; updated {servers_path(metadata_dir)} (image, imageTag)", err=True)
    else:
        typer.echo(f"built with {used.name}; no .mcp metadata entry named {name} to update", err=True)
    typer.echo(str(reference))


@image_app.command("base")
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


@image_app.command("platform")
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
