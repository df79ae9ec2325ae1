"""One way for every command to fail: a single line that says what and how to fix, exit code 1.

`CliError` is a click exception, so Typer's standalone mode (and its test runner) prints it and
exits with its code; no command needs its own try/except to avoid a traceback.
"""

from __future__ import annotations

from typing import IO, Any

import typer
from typer import rich_utils
from typer._click.exceptions import ClickException

from mcp_runtime.client.errors import ClientError


class CliError(ClientError, ClickException):
    """A user-facing failure printed as one line on stderr: `error: <message> (<hint>)`.

    A `ClientError` from the platform API client that reaches the command line is turned into one
    of these by the app's root group (`cli.app`), so it prints the same way."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, hint=hint)  # ClientError, then ClickException (MRO)
        self.exit_code = exit_code

    @classmethod
    def from_client(cls, exc: ClientError) -> CliError:
        return exc if isinstance(exc, CliError) else cls(exc.message, hint=exc.hint)

    def format_message(self) -> str:
        return self.render()

    def show(self, file: IO[Any] | None = None) -> None:
        typer.echo(self.render(), err=True)


_rich_format_error = rich_utils.rich_format_error


def _format_error(exc: ClickException) -> None:
    """Typer (with Rich) draws every click error in a panel and never calls `show`; keep ours one line."""
    if isinstance(exc, CliError):
        exc.show()
    else:
        _rich_format_error(exc)


rich_utils.rich_format_error = _format_error  # type: ignore[assignment]
