"""Printing results: Rich tables and `Key: value` lines for people, `-o json|yaml` for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = typer.Option(OutputFormat.table, "--output", "-o", help="Output format: table, json or yaml.")


def emit(data: Any, fmt: OutputFormat, *, columns: Sequence[tuple[str, str]] | None = None,
         title: str | None = None) -> None:
    """Print `data` (a dict or a list of dicts) in the chosen format.

    `columns` is a list of (header, key) used for the table view; keys may be dotted paths.
    """
    if fmt == OutputFormat.json:
        typer.echo(json.dumps(data, indent=2, default=str, sort_keys=False))
        return
    if fmt == OutputFormat.yaml:
        typer.echo(yaml.safe_dump(_plain(data), sort_keys=False).rstrip())
        return
    rows = data if isinstance(data, list) else [data]
    if columns is None:
        columns = [(key.upper(), key) for key in (rows[0].keys() if rows else [])]
    table = Table(title=title, show_edge=False, header_style="bold", box=None, pad_edge=False)
    for header, _ in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*[_cell(_lookup(row, key)) for _, key in columns])
    console.print(table)


def emit_structured(data: Any, fmt: OutputFormat) -> bool:
    """With `-o json|yaml`, print `data` and return True; with `-o table` return False (the caller prints)."""
    if fmt == OutputFormat.table:
        return False
    emit(data, fmt)
    return True


def print_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]], *, heading: str | None = None) -> None:
    """A table under an optional heading line (the parts of `server get`, `server status`, ...)."""
    if heading:
        console.print(heading)
    emit(rows, OutputFormat.table, columns=columns)


def print_fields(pairs: Sequence[tuple[str, Any]], *, dash_empty: bool = True) -> None:
    """`Key:   value` lines, values aligned; with `dash_empty` an empty value shows as `-`."""
    width = max(len(k) for k, _ in pairs) + 2
    for key, value in pairs:
        shown = "-" if dash_empty and value in (None, "", []) else value
        typer.echo(f"{key + ':':<{width}}{shown}")


def _plain(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))


def _lookup(row: Any, dotted: str) -> Any:
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
