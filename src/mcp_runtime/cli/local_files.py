"""Reading and writing the local files the scaffolding commands work on, failing as one `CliError` line.

`.mcp/servers.yaml`, grant and session YAML: every problem names the file, the field and what to do,
and nothing is ever half-written (each write goes to a temp file in the same directory, then a rename).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mcp_runtime.cli.errors import CliError
from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    ResourceError,
    ServersFile,
    load_resources,
    load_servers_file,
    parse_duration,
    parse_yaml,
)

SERVERS_FILE = "servers.yaml"
E = TypeVar("E", bound=StrEnum)
R = TypeVar("R", MCPAccessGrant, MCPAgentSession)

# pydantic says "missing required field" without the values a field takes; these fields are required enums.
_ALLOWED_WHEN_MISSING = {
    "sideEffect": "sideEffect is one of read, write, destructive",
    "requiredTrust": "requiredTrust is one of low, medium, high",
}


def read_text(path: Path, what: str) -> str:
    """The text of `path`; a missing, unreadable or binary file is a CliError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{what} {path} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise CliError(f"{what} {path} is a directory, not a file", hint="pass the YAML file itself") from None
    except PermissionError:
        raise CliError(f"{what} {path} is not readable (permission denied)",
                       hint="fix its permissions or run as its owner") from None
    except UnicodeDecodeError:
        raise CliError(f"{what} {path} is not UTF-8 text", hint="pass a YAML file") from None
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror}", hint="check the path") from None


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` all at once: a temp file in the same directory, then `os.replace`.

    A failure leaves the old file (or no file) in place, never a truncated one.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", hint="choose a writable directory") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise CliError(f"cannot write {path}: {exc.strerror}", hint="choose a writable path") from None


def _mode_for(path: Path) -> int:
    """Keep an existing file's permissions; a new file gets the usual 0666 minus the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def resource_error(exc: ResourceError, hint: str) -> CliError:
    """A ResourceError as a CliError; a missing enum field also gets the values it takes."""
    message = str(exc)
    extra = [text for field, text in _ALLOWED_WHEN_MISSING.items() if f"{field}: missing required field" in message]
    if "not valid YAML" in message:  # the message already says to fix the syntax
        return CliError(message)
    return CliError(message, hint="; ".join([*extra, hint]))


def servers_path(metadata_dir: Path) -> Path:
    return metadata_dir / SERVERS_FILE


def load_metadata(metadata_dir: Path, *, missing_ok: bool = False) -> tuple[ServersFile, dict[str, Any]]:
    """Load `<metadata_dir>/servers.yaml` as the model and as the raw mapping it was written as.

    The raw mapping lets `server init` keep other entries exactly as their authors wrote them.
    """
    path = servers_path(metadata_dir)
    if missing_ok and not path.exists():
        return ServersFile(), {"version": "v1", "servers": []}
    if not path.exists():
        raise CliError(f"no metadata at {path}",
                       hint="create it with 'mcp-runtime server init NAME', or pass --metadata-dir")
    text = read_text(path, "metadata file")
    hint = f"fix {path} and re-run"
    try:
        model = load_servers_file(text, source=str(path))
        raw = parse_yaml(text, source=str(path)) or {}
    except ResourceError as exc:
        raise resource_error(exc, hint) from None
    raw.setdefault("version", "v1")
    if raw.get("servers") is None:
        raw["servers"] = []
    return model, raw


def load_resource_files(paths: Sequence[Path], kind: type[R], flag: str) -> list[tuple[Path, R]]:
    """Every resource in the given YAML files (multi-document files allowed), each of `kind`."""
    what = "grant file" if kind is MCPAccessGrant else "session file"
    loaded: list[tuple[Path, R]] = []
    for path in paths:
        text = read_text(path, what)
        try:
            resources = load_resources(text, source=str(path))
        except ResourceError as exc:
            raise resource_error(exc, f"fix {path} and re-run") from None
        if not resources:
            raise CliError(f"{what} {path} is empty", hint=f"pass a {kind.__name__} YAML with {flag}")
        for resource in resources:
            if not isinstance(resource, kind):
                other = "--session-file" if isinstance(resource, MCPAgentSession) else "--grant-file"
                raise CliError(
                    f"{path}: holds a {resource.kind} ({resource.metadata.name}), but {flag} takes a {kind.__name__}",
                    hint=f"pass it with {other}" if resource.kind != "MCPServer" else "pass the right file",
                )
            loaded.append((path, resource))
    return loaded


def parse_choice(value: str, enum: type[E], flag: str) -> E:
    """`value` as a member of `enum`, or a CliError naming the flag and the allowed values."""
    try:
        return enum(value.strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise CliError(f"{flag} {value!r} is not allowed", hint=f"use one of {allowed}") from None


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
        try:
            moment = now + parse_duration(expires_in)
        except ValueError as exc:
            raise CliError(f"--expires-in {exc}") from None
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
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
