"""`mcp-runtime server build image`: build a server's image, tag it with the resolved registry reference, and
record that reference (image, imageTag) in its `.mcp` metadata entry.

The reference is `<registry host>/<scope prefix>/<name>:<tag>`; the scope prefix is the team slug for
tenant, `org` or `public`. The registry host comes from `$MCP_RUNTIME_REGISTRY`, else the platform's
registry info (when logged in), else the bundled registry's address.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import dump_yaml, write_atomic
from mcp_runtime.cli.common.metadata import MetadataDirOption, load_metadata, raw_entry, servers_path
from mcp_runtime.client import ApiClient, ClientError, client
from mcp_runtime.manifests.images import (
    DEFAULT_REGISTRY_ADDRESS,
    REGISTRY_ENV,
    ImageRef,
    ImageRefError,
    registry_host,
    scope_prefix,
)
from mcp_runtime.manifests.options import DEFAULT_GATEWAY_IMAGE
from mcp_runtime.resources import Scope
from mcp_runtime.runtime.builders import BuildError, build_image, find_builder
from mcp_runtime.runtime.package_image import build_package_image

app = typer.Typer(help="Build server images.", no_args_is_help=True)


def _platform_client() -> ApiClient | None:
    """The API client when logged in (or MCP_PLATFORM_API_TOKEN is set); None otherwise."""
    try:
        return client()
    except ClientError:
        return None


def resolve_registry_host(api: ApiClient | None) -> str:
    """Where the image goes: $MCP_RUNTIME_REGISTRY, else the platform's registry, else the bundled one."""
    if os.environ.get(REGISTRY_ENV):
        return registry_host(os.environ[REGISTRY_ENV])
    if api is not None:
        try:
            return str(api.get("registry/info")["host"])
        except ClientError:
            pass
    return DEFAULT_REGISTRY_ADDRESS


def resolve_team(api: ApiClient | None, team: str | None) -> str:
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
    """The raw metadata file and NAME's entry in it (either may be None), to record the image in."""
    if not servers_path(metadata_dir).exists():
        return None, None
    _, raw = load_metadata(metadata_dir)
    return raw, raw_entry(raw, name)


def _package_of(entry: dict[str, Any] | None) -> str | None:
    """The package spec of a stdio package server's metadata entry (None for any other server)."""
    stdio = (entry or {}).get("stdio")
    package = stdio.get("package") if isinstance(stdio, dict) else None
    return package if isinstance(package, str) and package else None


def _build_args(items: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--build-arg {item!r} is not KEY=VALUE")
        args[key] = value
    return args


def _reference(name: str, tag: str, scope: Scope, team: str | None) -> ImageRef:
    """`<registry host>/<scope prefix>/<name>:<tag>`; asks the platform only for what it must."""
    needs_api = (scope == Scope.tenant and not team) or not os.environ.get(REGISTRY_ENV)
    api = _platform_client() if needs_api else None
    host = resolve_registry_host(api)
    slug = resolve_team(api, team) if scope == Scope.tenant else None
    try:
        return ImageRef.parse(f"{host}/{scope_prefix(scope, slug)}/{name}:{tag}")
    except ImageRefError as exc:
        raise CliError(str(exc), hint="server names and tags must be valid image names") from None


@app.command("image")
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
    metadata_dir: Path = MetadataDirOption,
) -> None:
    """Build the image, tag it with the resolved registry reference, rewrite `.mcp` metadata, print the ref.

    A stdio server from a package (`stdio.package: npm:...` or `pypi:...` in its metadata) without --file
    gets an image with that package preinstalled on the platform image (BASE_IMAGE, default
    localhost/mcp-runtime:latest, from `mcp-runtime image platform`), so nothing downloads at pod start.
    """
    raw, entry = _metadata_entry(metadata_dir, name)
    chosen = scope or (Scope(entry["scope"]) if entry and entry.get("scope") else Scope.tenant)
    args = _build_args(build_arg)
    reference = _reference(name, tag, chosen, team)
    package = _package_of(entry) if file is None else None
    try:
        if package is not None:
            typer.echo(f"building {reference} with {package} preinstalled", err=True)
            used = build_package_image(str(reference), package, base=args.get("BASE_IMAGE", DEFAULT_GATEWAY_IMAGE),
                                       builder=find_builder(builder), platform=platform, stream=True)
        else:
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
