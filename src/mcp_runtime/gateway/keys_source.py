"""The platform's public keys from a JWKS file, reloaded when it changes (signing-key rotation).

A rotated key ring publishes the new key beside the old ones; the gateway picks the new JWKS up within
moments, so tokens signed with the new key verify without restarting the sidecar. A bad update keeps
the keys in use and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mcp_runtime.gateway.filewatch import FileWatcher
from mcp_runtime.security import KeyRingError, PublicKeySet

log = logging.getLogger("mcp_runtime.gateway.keys")


class JwksFile:
    """Current verifier keys from `path`; `PublicKeySet.load_jwks_file` errors surface on first load."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.keys = PublicKeySet.load_jwks_file(self.path)
        self.last_error: str | None = None
        self._listeners: list[Callable[[PublicKeySet], None]] = []
        self._watcher: FileWatcher | None = None

    def add_listener(self, listener: Callable[[PublicKeySet], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[PublicKeySet], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def load(self) -> bool:
        try:
            keys = PublicKeySet.load_jwks_file(self.path)
        except (KeyRingError, OSError) as exc:
            self._error(f"cannot load JWKS {self.path}: {exc}")
            return False
        self.last_error = None
        if keys.jwks() != self.keys.jwks():
            self.keys = keys
            log.info("verifier keys reloaded from %s: %s", self.path, ", ".join(keys))
            for listener in self._listeners:
                listener(keys)
        return True

    def _error(self, message: str) -> None:
        self.last_error = message
        log.error("%s; keeping the keys in use", message)

    async def start(self) -> None:
        if self._watcher is None:
            self.load()
            self._watcher = FileWatcher(self.path, self.load, self._error)
            await self._watcher.start()

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await watcher.stop()
