"""Reading and writing the local files the scaffolding commands work on, failing as one `CliError` line.

`.mcp/servers.yaml` (see `metadata`), grant and session YAML: every problem names the file, the field and
what to do, and nothing is ever half-written (each write goes to a temp file in the same directory, then a
rename).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.resources import (
    SERVER_KIND,
    MCPAccessGrant,
    MCPAgentSession,
    ResourceError,
    SideEffect,
    Trust,
    load_resources,
)
from mcp_runtime.resources.kinds import kind_name

R = TypeVar("R", MCPAccessGrant, MCPAgentSession)

# pydantic says "missing required field" without the values a field takes; these fields are required enums.
_ALLOWED_WHEN_MISSING = {
    "sideEffect": f"sideEffect is one of {', '.join(e.value for e in SideEffect)}",
    "requiredTrust": f"requiredTrust is one of {', '.join(t.value for t in Trust)}",
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
            raise CliError(f"{what} {path} is empty", hint=f"pass a {kind_name(kind)} YAML with {flag}")
        for resource in resources:
            if not isinstance(resource, kind):
                other = "--session-file" if isinstance(resource, MCPAgentSession) else "--grant-file"
                raise CliError(
                    f"{path}: holds a {resource.kind} ({resource.metadata.name}), but {flag} takes a {kind_name(kind)}",
                    hint=f"pass it with {other}" if resource.kind != SERVER_KIND else "pass the right file",
                )
            loaded.append((path, resource))
    return loaded
