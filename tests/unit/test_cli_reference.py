"""docs/cli.md is generated from the command tree: it must list every command, and be current."""

from __future__ import annotations

from pathlib import Path

import typer

from mcp_runtime.cli.reference import REGENERATE, render_markdown, walk

DOCS_CLI = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_docs_cli_md_is_current() -> None:
    expected = render_markdown()
    current = DOCS_CLI.read_text() if DOCS_CLI.exists() else ""
    assert current == expected, (
        f"docs/cli.md is out of date with the CLI; regenerate it from the repository root with:\n    {REGENERATE}"
    )


def test_every_command_of_the_tutorial_is_documented_with_its_options() -> None:
    text = render_markdown()
    for command in ("up", "auth login", "team create", "team user create", "server init", "server validate",
                    "access grant init", "access grant apply", "access session init", "analytics tools"):
        assert f"`mcp-runtime {command}`" in text, command
    init = text.split("## `mcp-runtime access grant init`", 1)[1].split("\n#", 1)[0]
    assert "| `--trust` | text | `low` |" in init and "| `--output` | path | required |" in init
    assert "(repeatable)" in init


def test_hidden_commands_and_options_stay_out() -> None:
    app = typer.Typer()

    @app.command()
    def shown(secret: bool = typer.Option(False, "--secret", hidden=True),
              level: int = typer.Option(3, "--level", help="How loud.")) -> None:
        """Shown to users."""

    @app.command(hidden=True)
    def internal() -> None:
        """Not for users."""

    paths = [e.path for e in walk(app)]
    assert ("internal",) not in paths
    text = render_markdown(app)
    assert "--secret" not in text and "| `--level` | integer | `3` | How loud. |" in text
