"""Turning flag values into typed values, or one `CliError` that names the flag and the values it takes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.resources import parse_duration
from mcp_runtime.resources.common import check_dns_label, check_tool_name

E = TypeVar("E", bound=StrEnum)


def parse_choice(value: str, enum: type[E], flag: str) -> E:
    """`value` as a member of `enum`, or a CliError naming the flag and the allowed values."""
    try:
        return enum(value.strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise CliError(f"{flag} {value!r} is not allowed", hint=f"use one of {allowed}") from None


def parse_duration_flag(value: str, flag: str) -> timedelta:
    """`30m`, `4h`, `7d` as a timedelta, or a CliError that starts with the flag."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise CliError(f"{flag} {exc}") from None


def parse_timestamp(value: str, flag: str) -> datetime:
    """An ISO 8601 time (`2026-01-31T12:00:00Z`); without a zone it is taken as UTC."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{flag} {value!r} is not an ISO 8601 time",
                       hint="use e.g. 2026-01-31T12:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_expiry(expires_in: str | None, expires_at: str | None, *, now: datetime,
                   required: bool) -> datetime | None:
    """`--expires-in D` (relative to now) or `--expires-at ISO` as an absolute UTC time in the future."""
    if expires_in and expires_at:
        raise CliError("--expires-in and --expires-at are both given", hint="pass only one of them")
    if expires_in:
        moment = now + parse_duration_flag(expires_in, "--expires-in")
    elif expires_at:
        moment = parse_timestamp(expires_at, "--expires-at")
        if moment <= now:
            raise CliError(f"--expires-at {expires_at!r} is in the past",
                           hint="give a future time, or use --expires-in, e.g. 4h")
    elif required:
        raise CliError("an expiry is required", hint="pass --expires-in (e.g. 4h) or --expires-at (ISO 8601 time)")
    else:
        return None
    return moment.replace(microsecond=0)


def format_time(moment: datetime) -> str:
    """The one way the CLI writes a time into YAML and annotations: `2026-01-31T12:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tool_name(name: str, flag: str) -> str:
    """A tool name as the resource models accept it, or a CliError that starts with `flag`."""
    try:
        return check_tool_name(name.strip())
    except ValueError as exc:
        raise CliError(f"{flag} {exc}") from None


def dns_label(value: str, what: str) -> str:
    """A Kubernetes name (lowercase letters, digits, '-'), or a CliError that starts with `what`."""
    try:
        return check_dns_label(value)
    except ValueError as exc:
        raise CliError(f"{what} {exc}") from None


def check_unique(names: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CliError(f"{what} {name!r} is given twice", hint="name each tool once")
        seen.add(name)


_SPLIT_HINT = re.compile(r"\s*:\s*")


def split_spec(value: str, flag: str, fmt: str, example: str) -> list[str]:
    """`a:b:c` into its three parts, or a CliError that shows the expected format."""
    parts = _SPLIT_HINT.split(value.strip())
    if len(parts) != 3 or not all(parts):
        raise CliError(f"{flag} {value!r} is not {fmt}", hint=f"for example {flag} {example}")
    return parts
