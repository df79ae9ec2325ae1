"""The lifeline: a tiny watchdog that stops a runtime's servers when the runtime dies, however it dies.

`mcp-runtime up` may die by SIGKILL (the OOM killer, `kill -9`), where no cleanup code runs. Its servers
run in their own sessions (so a Ctrl-C in the terminal reaches `up`, which stops them in order), and a
server's command may be a wrapper (`sh -c`, `npx`, `uvx`) whose real server is a grandchild that the
kernel's parent-death signal (set on the direct child) does not reach. So the process runtime starts this
script once, in a session of its own, with a pipe on its stdin that only the runtime holds:

    python -I -S lifeline.py MCP_RUNTIME_OWNER <owner-id>
    stdin:  "+ <pgid>\\n"  watch a server's process group      "- <pgid>\\n"  forget it

When the pipe reaches end of file (the runtime exited: cleanly, by exception, or killed) the lifeline
sends SIGTERM to every watched process group and to every process whose environment carries
`MCP_RUNTIME_OWNER=<owner-id>` (a server and all its descendants inherit it, even those that left the
process group with setsid), waits a short grace period, SIGKILLs what is left, and exits.

This module imports only the standard library: it runs as a script with `-I -S` so it starts in a few
milliseconds and nothing in the environment can change what it imports. The /proc helpers below are
also what the runtime uses to find leftovers of an earlier `up` (see `runtime/ownership.py`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable

GRACE_SECONDS = 3.0
_PROC = "/proc"


def environ_has(pid: int, marker: bytes) -> bool:
    """True when process `pid`'s environment holds the exact entry `marker` (b"NAME=value")."""
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as handle:
            data = handle.read()
    except OSError:  # gone, or not ours to read
        return False
    return marker in data.split(b"\0")


def processes_with(name: str, value: str, exclude: Iterable[int] = ()) -> list[int]:
    """Live processes (not zombies) whose environment carries `name=value`; empty where there is no /proc."""
    marker = f"{name}={value}".encode()
    skip = {os.getpid(), *exclude}
    found = []
    try:
        entries = os.listdir(_PROC)
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit() and int(entry) not in skip and environ_has(int(entry), marker) and alive(int(entry)):
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b") ", 1)[1][:1]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in (b"Z", b"X")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_all(groups: Iterable[int], pids: Iterable[int], signum: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def stop_all(groups: Iterable[int], marker: tuple[str, str] | None, grace: float = GRACE_SECONDS) -> list[int]:
    """SIGTERM the groups and the marked processes, SIGKILL whatever is left after `grace`; return the pids
    that were marked when it began (for a log line)."""
    groups = list(groups)
    first = processes_with(*marker) if marker else []
    signal_all(groups, first, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        left = processes_with(*marker) if marker else []
        if not left and not any(group_alive(g) for g in groups):
            return first
        time.sleep(0.05)
    # twice: a process may fork while we kill (a launcher restarting its child)
    for _ in range(2):
        signal_all(groups, processes_with(*marker) if marker else [], signal.SIGKILL)
        time.sleep(0.05)
    return first


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: lifeline.py ENV_NAME OWNER_ID  (stdin: '+ PGID' / '- PGID' lines)", file=sys.stderr)
        return 2
    marker = (argv[1], argv[2])
    # Ctrl-C in a terminal must not kill the watchdog before the runtime has stopped its servers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin.buffer:
        op, _, arg = line.decode(errors="replace").strip().partition(" ")
        if not arg.isdigit():
            continue
        if op == "+":
            groups.add(int(arg))
        elif op == "-":
            groups.discard(int(arg))
    stopped = stop_all(groups, marker)
    if stopped:
        print(f"lifeline: the runtime is gone; stopped {len(stopped)} server processes: {sorted(stopped)}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
