"""`registry push|catalog|status|info|provision`: the platform registry, pushes authorised by the platform.

A push asks the platform first (`POST registry/authorize`): a tenant image must be under one of the
caller's team slugs (short names get the caller's team prefix), org/ and public/ need write access to
those catalogs. Only then does skopeo (or the builder) send the image, to exactly the reference the
platform answered.
"""

from __future__ import annotations

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit
from mcp_runtime.client import client
from mcp_runtime.resources import Scope
from mcp_runtime.runtime.builders import BuildError, find_builder, local_image_exists, push_image

app = typer.Typer(help="Push images to the platform registry and inspect it.", no_args_is_help=True)


@app.command("push")
def push(
    image: str = typer.Option(..., "--image", help="The local image: the exact reference from `server build "
                              "image`, or a short name like payments:v1."),
    scope: Scope = typer.Option(Scope.tenant, "--scope", help="tenant, org or public."),
    team: str | None = typer.Option(None, "--team", help="Team slug for short tenant names (default: yours)."),
    builder: str | None = typer.Option(None, "--builder", help="docker, podman or buildah (default: first found)."),
    output: OutputFormat = OutputOption,
) -> None:
    """Push an image after the platform authorised it; prints the pushed reference."""
    api = client()
    answer = api.post("registry/authorize", {"image": image, "scope": str(scope), "team": team})
    reference = answer["reference"]
    try:
        tool = find_builder(builder)
        if not local_image_exists(image, tool):
            raise CliError(f"there is no local image {image}",
                           hint="build it first (mcp-runtime server build image NAME --tag T) and push that ref")
        used = push_image(image, reference, tool)
    except BuildError as exc:
        raise CliError(str(exc)) from None
    if output == OutputFormat.table:
        typer.echo(f"pushed with {used}", err=True)
        typer.echo(reference)
        return
    emit({**answer, "pushedWith": used}, output)


@app.command("catalog")
def catalog(output: OutputFormat = OutputOption) -> None:
    """Repositories and tags you can see: your teams', org/ and public/."""
    items = client().get("registry/catalog")["items"]
    emit(items, output, columns=[("REPOSITORY", "repository"), ("SCOPE", "scope"), ("TAGS", "tags")])


@app.command("info")
def info(output: OutputFormat = OutputOption) -> None:
    """The registry host image references start with, and the scope prefixes."""
    emit(client().get("registry/info"), output,
         columns=[("HOST", "host"), ("KIND", "kind"), ("URL", "url")])


@app.command("status")
def status(output: OutputFormat = OutputOption) -> None:
    """Whether the platform's registry answers."""
    answer = client().get("registry/status")
    emit(answer, output, columns=[("HOST", "host"), ("KIND", "kind"), ("REACHABLE", "reachable"),
                                  ("DETAIL", "detail")])
    if not answer.get("reachable"):
        raise typer.Exit(1)


@app.command("provision")
def provision(
    url: str = typer.Option(..., "--url", help="The external registry, e.g. registry.example.com."),
    output: OutputFormat = OutputOption,
) -> None:
    """Admin: use an external registry (image references and pushes go there from now on)."""
    emit(client().put("registry", {"url": url}), output, columns=[("HOST", "host"), ("KIND", "kind")])
