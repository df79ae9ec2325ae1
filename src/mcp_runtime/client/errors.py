"""How a call to the platform API fails: one line that says what went wrong and how to fix it.

The CLI prints these as `error: <message> (<hint>)`; the adapter turns them into JSON-RPC errors.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """A failure a person can act on: `message` says what, `hint` how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return f"error: {self.message}" + (f" ({self.hint})" if self.hint else "")

    def __str__(self) -> str:
        return self.message


class ApiCallError(ClientError):
    """A 4xx/5xx answer: the envelope's message on one line; `code` and `status` for callers to branch on."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.status, self.code, self.body = status, code, body
