"""Room under the container's memory limit for one more server process.

Every session is a process, so a pod's memory grows with its sessions; past the limit the kernel kills
the container and every session in it goes (seen on the test cluster: the 8th `uvx mcp-server-time`
session under a 512Mi limit, the team namespaces' default). The bridge refuses a new session instead,
with a 503 that says why, while the open ones go on.

The limit is the bridge's cgroup's: v2 `memory.max`, `memory.current` and `inactive_file` in
`memory.stat`; v1 `memory.limit_in_bytes`, `memory.usage_in_bytes` and `total_inactive_file`. What counts
is the working set, usage less the inactive file cache the kernel reclaims first (what the kubelet
reports). No limit (a host process, an unlimited container) means no check. A session costs what the
open ones cost on average; one still starting counts at that average, and while the answer hangs on one
the next waits for it to settle (so a burst of clients against a fresh pod does not overshoot either).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_HEADROOM = 0.9
"""A new session must leave the working set under this share of the limit."""
UNLIMITED = 1 << 60  # cgroup v1 says "no limit" with a page-rounded LONG_MAX
MIB = 1024 * 1024


@dataclass(frozen=True)
class MemoryUse:
    limit: int
    working_set: int


def _stat(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _own_dir(root: Path, proc_cgroup: Path, v2: bool) -> Path:
    """This process's cgroup directory when it is visible (a host), else `root` (a container's own cgroup
    is mounted at the root, and /proc/self/cgroup may name a host path)."""
    try:
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if (v2 and controllers == "") or (not v2 and "memory" in controllers.split(",")):
                candidate = root / ("" if v2 else "memory") / path.lstrip("/")
                if candidate.is_dir():
                    return candidate
    except (OSError, ValueError):
        pass
    return root if v2 else root / "memory"


def read_memory(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> MemoryUse | None:
    """The limit and working set of this process's cgroup, or None when there is no limit or no cgroup."""
    v2 = (root / "cgroup.controllers").is_file()
    where = _own_dir(root, proc_cgroup, v2)
    try:
        if v2:
            text = (where / "memory.max").read_text().strip()
            if text == "max":
                return None
            limit, usage = int(text), int((where / "memory.current").read_text())
            inactive = _stat(where / "memory.stat", "inactive_file")
        else:
            limit = int((where / "memory.limit_in_bytes").read_text())
            usage = int((where / "memory.usage_in_bytes").read_text())
            inactive = _stat(where / "memory.stat", "total_inactive_file")
    except (OSError, ValueError):
        return None
    if limit >= UNLIMITED:
        return None
    return MemoryUse(limit=limit, working_set=max(0, usage - inactive))


def admission(use: MemoryUse | None, baseline: int, settled: int, starting: int,
              headroom: float = DEFAULT_HEADROOM) -> tuple[str, str | None]:
    """("admit", None), ("wait", why) or ("refuse", why) for one more session.

    `settled` sessions answered `initialize` (their memory is in the working set); `starting` ones have
    not yet, so they count at the average of the settled ones. While the answer depends on a starting
    session it is "wait" (ask again when it settled), not a refusal; with nothing measured yet, one
    session starts at a time."""
    if use is None or headroom <= 0 or settled + starting == 0:
        return ("admit", None)
    if settled == 0:
        return ("wait", "the first server process is still starting")
    per_session = max(0, use.working_set - baseline) // settled
    if use.working_set + per_session * (1 + starting) <= use.limit * headroom:
        return ("admit", None)
    why = (f"Not enough memory for another server process: this container uses {use.working_set // MIB} MiB "
           f"of its {use.limit // MIB} MiB limit and a session takes about {per_session // MIB} MiB; retry "
           "later, end an unused session (DELETE), or raise the memory limit (spec.resources)")
    return ("wait" if starting else "refuse", why)
