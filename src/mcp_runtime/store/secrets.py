"""Secrets of the process and podman runtimes: credentials the platform must hand on, so stored retrievable.

A remote server's `headerSecret` names a Secret whose value the gateway sends to the remote. Unlike a
password or an API key (stored hashed: only compared), that value must be read back, so it cannot be
hashed. On Kubernetes it is a Secret object; here it is one file per Secret under the data directory,
`secrets/<namespace>/<name>.json`, created 0600 in a 0700 directory and replaced atomically. The platform
API writes values and lists key names; nothing returns or logs a value.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAX_VALUE = 16 * 1024
"""Largest value of one key (16 KiB: a token, a key, a certificate)."""
MAX_KEYS = 32
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


class SecretError(ValueError):
    """A secret that cannot be stored as given (the message says why and what to do)."""


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: where it is, its key names, when it changed. Never a value."""

    namespace: str
    name: str
    keys: tuple[str, ...]
    updated_at: datetime


class SecretFiles:
    """The secrets of one data directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, namespace: str, name: str) -> Path:
        for what, value in (("namespace", namespace), ("secret name", name)):
            if len(value) > 63 or not _NAME.match(value):
                raise SecretError(f"{value[:70]!r} is not a valid {what}: use lowercase letters, digits and '-'")
        return self.root / namespace / f"{name}.json"

    def put(self, namespace: str, name: str, data: dict[str, str]) -> SecretInfo:
        """Set these keys (others the secret has are kept); returns what may be shown of the result."""
        for key, value in data.items():
            if not _KEY.match(key):
                raise SecretError(f"{key[:60]!r} is not a valid secret key: use letters, digits, '-', '_', '.'")
            if len(value.encode()) > MAX_VALUE:
                raise SecretError(f"the value of {key!r} is larger than {MAX_VALUE} bytes")
            if not value or not value.isprintable():
                raise SecretError(f"the value of {key!r} must be non-empty printable text (no line breaks): "
                                  "strip the trailing newline of the file it came from")
        path = self._path(namespace, name)
        merged = {**self._read(path), **data}
        if len(merged) > MAX_KEYS:
            raise SecretError(f"a secret holds at most {MAX_KEYS} keys")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        os.chmod(path.parent, 0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(merged, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return self._info(namespace, name, path, merged)

    def get(self, namespace: str, name: str, key: str) -> str | None:
        """The value of one key, or None when the secret or the key does not exist."""
        return self._read(self._path(namespace, name)).get(key)

    def info(self, namespace: str, name: str) -> SecretInfo | None:
        path = self._path(namespace, name)
        data = self._read(path)
        return self._info(namespace, name, path, data) if data else None

    def list(self, namespace: str | None = None) -> list[SecretInfo]:
        found: list[SecretInfo] = []
        dirs = [self.root / namespace] if namespace else sorted(p for p in self.root.glob("*") if p.is_dir())
        for directory in dirs:
            for path in sorted(directory.glob("*.json")):
                info = self.info(directory.name, path.stem)
                if info is not None:
                    found.append(info)
        return found

    def delete(self, namespace: str, name: str) -> bool:
        path = self._path(namespace, name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    @staticmethod
    def _read(path: Path) -> dict[str, str]:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    @staticmethod
    def _info(namespace: str, name: str, path: Path, data: dict[str, str]) -> SecretInfo:
        updated = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return SecretInfo(namespace=namespace, name=name, keys=tuple(sorted(data)), updated_at=updated)
