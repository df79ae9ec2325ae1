"""Where a route's policy document comes from: pushed in process, or a watched file.

A source holds the last good document. A bad update never replaces it: the error is kept for
`/config/status` and counted, and the gateway keeps deciding with the previous revision. Until a first
document arrives the route fails closed (503 `policy_unavailable`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_runtime.gateway.filewatch import FileWatcher

if TYPE_CHECKING:
    from mcp_runtime.policy import PolicyDocument

log = logging.getLogger("mcp_runtime.gateway.policy")

ReloadListener = Callable[[bool], None]
"""Called with True after a good load and False after a rejected one (used for metrics)."""


def _parse(data: bytes | str) -> PolicyDocument:
    from mcp_runtime.policy import PolicyDocument

    return PolicyDocument.from_json(data.encode() if isinstance(data, str) else data)


class PolicySource:
    """The current document of one route plus what `/config/status` reports about it."""

    kind = "abstract"

    def __init__(self) -> None:
        self.document: PolicyDocument | None = None
        self.loaded_at: datetime | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.reloads = 0
        self._listeners: list[ReloadListener] = []
        self._lock = threading.Lock()

    def add_listener(self, listener: ReloadListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ReloadListener) -> None:
        """Forget a listener (a route unmounted while its source lives on, as in the process runtime)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _accept(self, document: PolicyDocument) -> None:
        with self._lock:
            changed = self.document is None or self.document.revision != document.revision
            self.document = document
            self.loaded_at = datetime.now(UTC)
            self.last_error = None
            self.last_error_at = None
            self.reloads += 1
        if changed:
            log.info("policy revision %s loaded (%s)", document.revision[:12], self.describe())
        for listener in self._listeners:
            listener(True)

    def _reject(self, error: str) -> None:
        with self._lock:
            self.last_error = error
            self.last_error_at = datetime.now(UTC)
        kept = self.document.revision[:12] if self.document is not None else "none"
        log.error("policy update rejected (%s): %s; keeping revision %s", self.describe(), error, kept)
        for listener in self._listeners:
            listener(False)

    def describe(self) -> str:
        return self.kind

    def status(self) -> dict[str, Any]:
        doc = self.document
        return {
            "source": self.describe(),
            "loaded": doc is not None,
            "revision": doc.revision if doc is not None else None,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "reloads": self.reloads,
        }

    async def start(self) -> None:
        """Begin watching (no-op for pushed sources)."""

    async def stop(self) -> None:
        """Stop watching."""


class InProcessPolicySource(PolicySource):
    """The platform pushes compiled documents straight in (process runtime): effective at once."""

    kind = "in-process"

    def __init__(self, document: PolicyDocument | bytes | str | None = None) -> None:
        super().__init__()
        if document is not None:
            self.push(document)

    def push(self, document: PolicyDocument | bytes | str) -> bool:
        """Install a document (object or canonical JSON). Returns False, keeping the last, if invalid."""
        if isinstance(document, bytes | str):
            try:
                document = _parse(document)
            except Exception as exc:
                self._reject(f"invalid policy document: {exc}")
                return False
        self._accept(document)
        return True


class FilePolicySource(PolicySource):
    """A policy file (a ConfigMap mount in Kubernetes), reloaded on file-system events.

    See `FileWatcher`: atomic replacements and ConfigMap symlink swaps are seen too.
    """

    kind = "file"

    def __init__(self, path: Path | str, *, debounce_ms: int = 50) -> None:
        super().__init__()
        self.path = Path(path)
        self._debounce_ms = debounce_ms
        self._watcher: FileWatcher | None = None
        self._last_bytes: bytes | None = None

    def describe(self) -> str:
        return f"file:{self.path}"

    def load(self) -> bool:
        """Read and install the file now. False (last good kept, error recorded) when it is bad."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            self._reject(f"cannot read {self.path}: {exc.strerror or exc}")
            return False
        if data == self._last_bytes and self.document is not None and self.last_error is None:
            return True
        try:
            document = _parse(data)
        except Exception as exc:
            self._reject(f"invalid policy document in {self.path}: {exc}")
            return False
        self._last_bytes = data
        self._accept(document)
        return True

    async def start(self) -> None:
        if self._watcher is None:
            self.load()
            self._watcher = FileWatcher(self.path, self.load, self._reject, debounce_ms=self._debounce_ms)
            await self._watcher.start()

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await watcher.stop()
