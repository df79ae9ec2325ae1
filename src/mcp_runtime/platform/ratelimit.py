"""Login throttling per (email, client IP): a sliding window of failures, in memory."""

from __future__ import annotations

import threading
import time
from collections import deque


class LoginRateLimiter:
    """After `max_failures` failed logins within `window_seconds`, further attempts wait (429)."""

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures, self.window = max_failures, window_seconds
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, email: str, ip: str) -> int:
        """Seconds to wait before another attempt is allowed; 0 when allowed now."""
        with self._lock:
            key = (email.lower(), ip)
            window = self._prune(key)
            if not window:
                del self._failures[key]  # keep only keys with recent failures: memory stays bounded by them
                return 0
            if len(window) < self.max_failures:
                return 0
            return max(1, int(window[0] + self.window - time.monotonic()) + 1)

    def failed(self, email: str, ip: str) -> None:
        with self._lock:
            self._prune((email.lower(), ip)).append(time.monotonic())

    def succeeded(self, email: str, ip: str) -> None:
        with self._lock:
            self._failures.pop((email.lower(), ip), None)

    def _prune(self, key: tuple[str, str]) -> deque[float]:
        window = self._failures.setdefault(key, deque())
        horizon = time.monotonic() - self.window
        while window and window[0] < horizon:
            window.popleft()
        return window
