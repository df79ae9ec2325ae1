"""A durable, bounded FIFO of serialized events on one SQLite file.

The emitter writes here whatever it could not deliver, and replays it oldest first. SQLite in WAL mode
with `synchronous=FULL` means an appended batch is on disk when `append` returns: a crash or restart of
the process loses nothing that was spooled. The spool is bounded (`max_events`) so an ingest outage
cannot fill the disk; when it is full, `append` stores what fits and reports how many it refused, and
the caller counts and logs those as dropped.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger("mcp_runtime.sentinel.spool")

_SCHEMA_VERSION = 1
_DELETE_CHUNK = 500  # stay well below SQLite's bound-parameter limit


class SpooledEvent(NamedTuple):
    """One spooled event: its position in the FIFO and its JSON text."""

    seq: int
    payload: str


class EventSpool:
    """A thread-safe FIFO of JSON strings in SQLite; `path=None` keeps it in memory (not durable)."""

    def __init__(self, path: Path | str | None, max_events: int = 1_000_000) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.path = Path(path) if path is not None else None
        self.max_events = max_events
        self._lock = threading.Lock()
        self._conn = self._open()
        row = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
        self._depth = int(row[0])
        self._closed = False

    # -- opening -----------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            return self._connect(":memory:")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # events name people and agents: the file is private to the service account
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            return self._connect(str(self.path))
        except sqlite3.DatabaseError as exc:
            # A damaged spool must not stop the gateway: keep the file for inspection, start afresh.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            logger.error("event spool %s is unreadable (%s); moved it to %s and started a new one",
                         self.path, exc, aside)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                sidecar = self.path.with_name(self.path.name + suffix)
                if sidecar.exists():
                    sidecar.rename(aside.with_name(aside.name + suffix))
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            return self._connect(str(self.path))

    @staticmethod
    def _connect(target: str) -> sqlite3.Connection:
        conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS events ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " payload TEXT NOT NULL)"
            )
            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            conn.execute("SELECT COUNT(*) FROM events").fetchone()
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    # -- the FIFO ----------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """How many events are spooled (kept in memory: cheap enough for a metrics scrape)."""
        return self._depth

    def __len__(self) -> int:
        return self._depth

    def append(self, payloads: Sequence[str]) -> int:
        """Store `payloads` at the tail, in order; return how many were stored.

        When the spool is full the newest events are the ones refused: the older ones already spooled
        stay, so what survives an outage is a contiguous prefix of what happened.
        """
        if not payloads:
            return 0
        with self._lock:
            self._check_open()
            room = max(0, self.max_events - self._depth)
            accepted = payloads[:room]
            if accepted:
                with self._transaction():
                    self._conn.executemany("INSERT INTO events (payload) VALUES (?)",
                                           [(p,) for p in accepted])
                self._depth += len(accepted)
            return len(accepted)

    def peek(self, limit: int) -> list[SpooledEvent]:
        """The oldest `limit` events, without removing them (remove them with `ack`)."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT seq, payload FROM events ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [SpooledEvent(int(seq), str(payload)) for seq, payload in rows]

    def ack(self, seqs: Sequence[int]) -> int:
        """Delete the events with these `seq`s (delivered); return how many were deleted."""
        if not seqs:
            return 0
        deleted = 0
        with self._lock:
            self._check_open()
            with self._transaction():
                for start in range(0, len(seqs), _DELETE_CHUNK):
                    chunk = list(seqs[start:start + _DELETE_CHUNK])
                    marks = ",".join("?" * len(chunk))
                    cur = self._conn.execute(f"DELETE FROM events WHERE seq IN ({marks})", chunk)
                    deleted += cur.rowcount
            self._depth -= deleted
        return deleted

    def close(self) -> None:
        """Checkpoint and close the file; further calls raise `RuntimeError`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.path is not None:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- helpers -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("event spool is closed")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        else:
            self._conn.execute("ROLLBACK")
