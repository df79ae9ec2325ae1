"""The CLI reference (docs/cli.md), generated from the command tree so it cannot drift from the code.

    python -m mcp_runtime.cli.reference > docs/cli.md

`tests/unit/test_cli_reference.py` fails when docs/cli.md differs from what this renders.
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import typer.main

PROG = "mcp-runtime"
REGENERATE = "python -m mcp_runtime.cli.reference > docs/cli.md"


@dataclass
class Entry:
    """One command of the tree: its full path (`access grant init`), the click command, its context."""

    path: tuple[str, ...]
    command: Any
    ctx: Any

    @property
    def title(self) -> str:
        return " ".join((PROG, *self.path))

    @property
    def is_group(self) -> bool:
        return hasattr(self.command, "list_commands")


def walk(app: typer.Typer | None = None) -> Iterator[Entry]:
    """Every visible command, depth first, groups before their commands, in `--help` order."""
    if app is None:
        from mcp_runtime.cli.app import app as root_app

        app = root_app
    root = typer.main.get_command(app)
    ctx = root.make_context(PROG, [], resilient_parsing=True)
    yield from _walk(Entry((), root, ctx))


def _walk(entry: Entry) -> Iterator[Entry]:
    yield entry
    if not entry.is_group:
        return
    for name in entry.command.list_commands(entry.ctx):
        child = entry.command.get_command(entry.ctx, name)
        if child is None or getattr(child, "hidden", False):
            continue
        child_ctx = child.make_context(name, [], parent=entry.ctx, resilient_parsing=True)
        yield from _walk(Entry((*entry.path, name), child, child_ctx))


# --- rendering ------------------------------------------------------------------------------------
def _anchor(title: str) -> str:
    """GitHub's heading anchor for "`mcp-runtime access grant init`"."""
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def _angles(text: str) -> str:
    """Angle brackets outside `code` spans would read as HTML tags: escape them."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _escape(text: str) -> str:
    """Markdown-safe table text (a pipe would end the cell)."""
    return _angles(text).replace("|", "\\|")


def _cell(text: str | None) -> str:
    return _escape(" ".join((text or "").split())) or " "


def _help(command: Any) -> str:
    text = inspect.cleandoc(command.help or "")
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def _short_help(command: Any) -> str:
    text = command.short_help or _help(command).split("\n\n", 1)[0]
    return " ".join(text.split())


def _is_option(param: Any) -> bool:
    return bool(param.opts) and param.opts[0].startswith("-")


def _type_name(annotation: Any) -> str:
    """A short name for an option's value, from its annotation (`X | None` -> X, `list[X]` -> X)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (list, tuple) or (args and len(args) == 1):
        return _type_name(args[0]) if args else "text"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(m.value) for m in annotation)
    names = {str: "text", int: "integer", float: "number", bool: "flag"}
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _value_type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    if param.metavar:
        return str(param.metavar)
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return _type_name(descriptor.annotation)
    click_type = getattr(param, "type", None)  # click-based Typer versions
    return str(getattr(click_type, "name", "text")).lower()


def _default(param: Any) -> str:
    if param.required:
        return "required"
    value = param.default
    if value is None or value == []:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        home = Path.home()
        value = f"~/{value.relative_to(home)}" if value.is_absolute() and value.is_relative_to(home) else str(value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    return f"`{value}`"


def _usage(entry: Entry) -> str:
    pieces = [entry.title]
    params = [p for p in entry.command.params if not getattr(p, "hidden", False)]
    if any(_is_option(p) for p in params) or not entry.path:
        pieces.append("[OPTIONS]")
    for param in params:
        if _is_option(param):
            continue
        name = (param.metavar or param.name).upper()
        if param.nargs == -1:
            name += "..."
        pieces.append(name if param.required else f"[{name}]")
    if entry.is_group:
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _params_section(entry: Entry) -> list[str]:
    params = [p for p in entry.command.params if not getattr(p, "hidden", False)]
    args = [p for p in params if not _is_option(p)]
    options = [p for p in params if _is_option(p)]
    lines: list[str] = []
    if args:
        lines += ["", "| Argument | Description |", "|---|---|"]
        for param in args:
            required = "" if param.required else " (optional)"
            lines.append(f"| `{(param.metavar or param.name).upper()}` | {_cell(param.help)}{required} |")
    if options:
        lines += ["", "| Option | Value | Default | Description |", "|---|---|---|---|"]
        for param in options:
            names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
            notes = " (repeatable)" if param.multiple else ""
            if param.envvar:
                envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
                notes += " Env: " + ", ".join(f"`{e}`" for e in envvars) + "."
            lines.append(f"| {names} | {_cell(_value_type(param))} | {_default(param)} | "
                         f"{_cell(param.help)}{_escape(notes)} |")
    return lines


def render_markdown(app: typer.Typer | None = None) -> str:
    """docs/cli.md: an index of every command, then one section per command with its help and options."""
    entries = list(walk(app))
    out = [
        "# CLI reference",
        "",
        "<!-- Generated from the command tree; do not edit by hand. Regenerate with:",
        f"     {REGENERATE} -->",
        "",
        f"Every `{PROG}` command, its help, arguments and options with their defaults, as "
        f"`{PROG} <command> --help` shows them. `-o json|yaml` prints what a command returns for scripts; "
        "errors are one line on stderr with exit code 1. Guides: [docs/README.md](README.md).",
        "",
        "Commands that talk to the platform also read these environment variables:",
        "",
        "| Variable | Meaning |",
        "|---|---|",
        "| `MCP_RUNTIME_CONFIG_DIR` | Where profiles are saved (default `~/.mcpruntime`, file `config.json`, "
        "mode 0600). |",
        "| `MCP_PLATFORM_API_PROFILE` | The profile one command runs as (default: the one chosen with `auth use`). |",
        "| `MCP_PLATFORM_API_TOKEN` + `MCP_PLATFORM_API_URL` | An API key and platform URL instead of a profile "
        "(CI). |",
        "",
        "## Commands",
        "",
    ]
    for entry in entries[1:]:
        indent = "  " * (len(entry.path) - 1)
        summary = _escape(_short_help(entry.command))
        out.append(f"{indent}- [`{' '.join(entry.path)}`](#{_anchor(entry.title)}): {summary}")
    for entry in entries:
        out += ["", f"{'#' * min(2 + max(len(entry.path) - 1, 0), 4)} `{entry.title}`", ""]
        help_text = _help(entry.command)
        if help_text:
            out += [_angles(help_text), ""]
        out += ["```text", _usage(entry), "```"]
        out += _params_section(entry)
        if entry.is_group:
            children = [(n, entry.command.get_command(entry.ctx, n)) for n in entry.command.list_commands(entry.ctx)]
            visible = [(n, c) for n, c in children if c is not None and not getattr(c, "hidden", False)]
            if visible:
                out += ["", "| Command | What it does |", "|---|---|"]
                out += [f"| [`{n}`](#{_anchor(f'{entry.title} {n}')}) | {_cell(_short_help(c))} |" for n, c in visible]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(render_markdown())


if __name__ == "__main__":
    main()
