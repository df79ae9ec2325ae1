"""Watch one file for changes with file-system events (inotify through `watchfiles`), not polling.

The parent directory is watched, so atomic replacements (write to a temp file + rename) and Kubernetes
ConfigMap/Secret updates (a `..data` symlink swap) are seen as well as in-place writes. The watcher
thread wakes every `step` (50 ms) to check for a stop and takes the GIL to do so; a smaller step would
tax the event loop for no gain, as a change is still seen in ~50-100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("mcp_runtime.gateway.filewatch")


class FileWatcher:
    """Calls `on_change()` (which re-reads the file) whenever something in its directory changes."""

    def __init__(self, path: Path, on_change: Callable[[], object], on_error: Callable[[str], None], *,
                 debounce_ms: int = 50) -> None:
        self.path = path
        self._on_change = on_change
        self._on_error = on_error
        self._debounce_ms = debounce_ms
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    async def start(self) -> None:
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._watch(), name=f"watch:{self.path}")

    async def _watch(self) -> None:
        from watchfiles import awatch

        assert self._stop is not None
        directory = self.path.parent
        while not self._stop.is_set():
            try:
                async for _changes in awatch(directory, stop_event=self._stop, debounce=self._debounce_ms,
                                             step=50, recursive=False, ignore_permission_denied=True,
                                             watch_filter=None):
                    self._on_change()
            except Exception as exc:  # the directory vanished, inotify limits, ...
                self._on_error(f"cannot watch {directory}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                self._on_change()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        assert self._stop is not None
        self._stop.set()
        try:
            await asyncio.wait_for(task, 2.0)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
