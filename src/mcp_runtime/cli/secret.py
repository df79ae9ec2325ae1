"""`mcp-runtime secret`: credentials the platform hands on for a server, e.g. a remote server's API key.

Values go in (from a file or stdin, never a flag: a flag would sit in the shell history and the process
list) and never come back out: `list` shows names and key names only. On Kubernetes use a Secret object
(`kubectl create secret generic NAME --from-file=KEY=FILE -n NAMESPACE`); this command is for the
platform's own store (`mcp-runtime up`, the podman runtime).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, emit_structured
from mcp_runtime.client import client
from mcp_runtime.resources import team_namespace

app = typer.Typer(help="Set and list the secrets servers use (values are write-only).", no_args_is_help=True)

COLUMNS = [("NAME", "name"), ("NAMESPACE", "namespace"), ("KEYS", "keys"), ("UPDATED", "updatedAt")]
MAX_VALUE_FILE = 16 * 1024

NamespaceOption = typer.Option(None, "--namespace", "-n", help="Namespace of the secret (the server's).")
TeamOption = typer.Option(None, "--team", help="Team slug: the team's namespace (mcp-team-<slug>).")


def _namespace(namespace: str | None, team: str | None) -> str:
    if namespace and team:
        raise CliError("--team and --namespace both choose the namespace", hint="pass only one")
    if team:
        return team_namespace(team)
    if not namespace:
        raise CliError("which namespace? a secret lives in its server's namespace",
                       hint="pass --namespace mcp-team-<team> or --team <team>")
    return namespace


def read_value(from_file: Path | None, from_stdin: bool, what: str = "--from-file") -> str:
    """The value from a file or stdin, one trailing newline removed; bounded, non-empty, one line."""
    if (from_file is None) == (not from_stdin):
        raise CliError("give the value with exactly one of --from-file FILE or --from-stdin",
                       hint="values never go on the command line, where the shell history would keep them")
    if from_file is not None:
        try:
            raw = from_file.read_bytes()[: MAX_VALUE_FILE + 1]
        except OSError as exc:
            raise CliError(f"cannot read {what} {from_file}: {exc.strerror}") from None
    else:
        raw = sys.stdin.buffer.read(MAX_VALUE_FILE + 1)
    if len(raw) > MAX_VALUE_FILE:
        raise CliError(f"the value is larger than {MAX_VALUE_FILE} bytes")
    value = raw.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
    if not value or not value.isprintable():
        raise CliError("the value must be one non-empty line of printable text")
    return value


@app.command("set")
def set_secret(
    name: str = typer.Argument(..., help="Secret name (lowercase letters, digits and '-')."),
    key: str = typer.Option(..., "--key", help="The key to set, e.g. api-key."),
    from_file: Path | None = typer.Option(None, "--from-file", help="Read the value from this file."),
    from_stdin: bool = typer.Option(False, "--from-stdin", help="Read the value from stdin."),
    namespace: str | None = NamespaceOption,
    team: str | None = TeamOption,
    output: OutputFormat = OutputOption,
) -> None:
    """Set one key of a secret (created when missing; its other keys are kept)."""
    ns = _namespace(namespace, team)
    value = read_value(from_file, from_stdin)
    info = client().put(f"secrets/{ns}/{name}", {"data": {key: value}})
    if emit_structured(info, output):
        return
    typer.echo(f"Set key {key} of secret {name} in namespace {ns} (keys: {', '.join(info['keys'])})")


@app.command("list")
def list_secrets(namespace: str | None = NamespaceOption, team: str | None = TeamOption,
                 output: OutputFormat = OutputOption) -> None:
    """List the secrets of a namespace: names and key names, never values."""
    items = client().get(f"secrets/{_namespace(namespace, team)}")["items"]
    for item in items:
        item["keys"] = ", ".join(item["keys"]) if output == OutputFormat.table else item["keys"]
    emit(items, output, columns=COLUMNS)


@app.command("delete")
def delete_secret(name: str = typer.Argument(..., help="Secret name."), namespace: str | None = NamespaceOption,
                  team: str | None = TeamOption) -> None:
    """Delete a secret (a remote server that uses it is unrouted until it is set again)."""
    ns = _namespace(namespace, team)
    client().delete(f"secrets/{ns}/{name}")
    typer.echo(f"Deleted secret {name} in namespace {ns}")
