"""Which server processes belong to which runtime, so none outlives it and none is adopted by mistake.

Ownership is proved, never guessed from an answering port:

- Every process the runtime starts gets two environment entries that its descendants inherit:
  `MCP_RUNTIME_OWNER=<id of the data directory>` and `MCP_RUNTIME_LAUNCH=<one start of one server>`.
- Only one runtime may use a data directory at a time (`DataDirLock`, an flock the kernel drops when the
  holder dies, however it dies). So a process carrying the data directory's owner id while we hold the
  lock is a leftover of an earlier runtime: `reap_leftovers` stops it before anything starts.
- A server counts as Ready only when the socket listening on its port belongs to a process carrying its
  current launch id (`listener_owned_by`): an answer from anything else on that port is not adopted.
- The `Lifeline` (see `lifeline.py`) stops every server when the runtime dies, and the direct child of
  each start also gets the kernel's parent-death signal (`parent_death_signal`).

Each server's port is kept in `run/<namespace>__<name>.json` so it survives a restart of `up`; that is
what makes the checks above matter: the port a server had is the port a leftover would still hold.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from mcp_runtime.runtime import lifeline

log = logging.getLogger(__name__)

OWNER_ENV = "MCP_RUNTIME_OWNER"
LAUNCH_ENV = "MCP_RUNTIME_LAUNCH"
LOCK_FILE = "runtime.lock"
_PR_SET_PDEATHSIG = 1
_TCP_LISTEN = "0A"


class DataDirInUse(RuntimeError):
    """Another live runtime holds the data directory."""


def owner_id(data_dir: Path) -> str:
    """A stable id for a data directory (the owner marker of every process started from it)."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:20]


class DataDirLock:
    """An exclusive flock on `run/runtime.lock`; the kernel releases it when the holder exits or is killed."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the runtime's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirInUse(
                f"another mcp-runtime (pid {holder}) is running servers from {self.path.parent.parent}; "
                "stop it first, or pass a different --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def reap_leftovers(owner: str, grace: float = lifeline.GRACE_SECONDS) -> list[int]:
    """Stop every process still carrying `owner` (call with the data directory locked); return their pids."""
    return lifeline.stop_all((), (OWNER_ENV, owner), grace)


@dataclass
class ServerRecord:
    """What the runtime remembers of one server between runs of `up`."""

    port: int
    pid: int | None = None
    launch: str | None = None

    @staticmethod
    def path(run_dir: Path, namespace: str, name: str) -> Path:
        return run_dir / f"{namespace}__{name}.json"

    @classmethod
    def load(cls, path: Path) -> ServerRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(port=int(data["port"]), pid=data.get("pid"), launch=data.get("launch"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle)
        os.replace(temp, path)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str] | None:
    """Inodes of the TCP sockets listening on `port` in this network namespace (None without /proc/net)."""
    inodes: set[str] = set()
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes if found_table else None


def listener_owned_by(port: int, launch: str) -> bool | None:
    """True when the socket listening on `port` belongs to a process of this launch; None where /proc
    cannot tell (not Linux), False when something else listens there (or nothing does)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in lifeline.processes_with(LAUNCH_ENV, launch):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                        return True
    return False


def parent_death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the kernel SIGKILL the child when the thread that started it dies (Linux).

    The function is resolved here, in the parent, so the child only makes one foreign call before exec.
    It covers the direct child only; the `Lifeline` covers its descendants."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return set_pdeathsig


class Lifeline:
    """The watchdog process that stops this runtime's servers when the runtime dies (see `lifeline.py`)."""

    def __init__(self, owner: str, log_file: Path) -> None:
        self._owner = owner
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._groups: set[int] = set()

    def start(self) -> None:
        with open(self._log_file, "ab") as err:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", lifeline.__file__, OWNER_ENV, self._owner],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, close_fds=True,
                start_new_session=True,  # out of reach of signals sent to the runtime's process group
            )
        for pgid in self._groups:  # a restarted lifeline learns the groups the old one watched
            self._send(f"+ {pgid}")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def watch(self, pgid: int) -> None:
        self._groups.add(pgid)
        self._send(f"+ {pgid}")

    def forget(self, pgid: int) -> None:
        self._groups.discard(pgid)
        self._send(f"- {pgid}")

    def _send(self, line: str) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is not None:
            log.error("the runtime's lifeline (pid %s) exited with %s; starting a new one",
                      process.pid, process.returncode)
            self._process = None
            self.start()
            return
        try:
            assert process.stdin is not None
            process.stdin.write(line.encode() + b"\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            log.error("the runtime's lifeline stopped listening; starting a new one")
            self._process = None
            self.start()

    def close(self, timeout: float = 10.0) -> None:
        """Close the pipe: the lifeline stops whatever is left and exits."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
            process.wait()
