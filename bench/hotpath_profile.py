"""Where a process spends its CPU under load: py-spy samples it, this folds the stacks into top frames.

py-spy (PyPI `py-spy`) samples from outside the process without pausing it (`--nonblocking`), so
the gateway runs unchanged: no profiler code inside it. In py-spy's default pausing mode every thread
is stopped 250 times a second, and /proc then bills each of them CPU it would not have used. Only
samples where a thread was on a CPU are kept (py-spy drops idle ones by default), so percentages are
shares of the gateway's CPU time. Time in C code without a Python frame of its own (uvloop's loop,
socket calls) shows under the nearest Python frame, `Runner.run` for the loop itself.

One catch, measured here: py-spy counts the file watchers' threads (watchfiles, sleeping inside Rust
with a timeout) as busy, while /proc shows them using no CPU at all. So the CPU of each thread is read
from /proc over the same window, and stacks of threads that used (almost) none are left out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness import REPO


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("profiling needs py-spy: .venv/bin/pip install py-spy")
    return found


def start_recording(pid: int, seconds: float, out: Path, *, native: bool = False,
                    rate: int = 250) -> subprocess.Popen[bytes]:
    """Start `py-spy record` on `pid` for `seconds`, writing folded stacks to `out`."""
    argv = [py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", str(rate), "--format", "raw", "--function", "--output", str(out)]
    # Native stacks can only be read from a stopped thread; Python stacks are read on the fly.
    argv.append("--native" if native else "--nonblocking")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def thread_cpu(pid: int) -> dict[int, tuple[str, int]]:
    """CPU ticks so far of each thread of `pid`: tid -> (name, ticks)."""
    out: dict[int, tuple[str, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        out[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return out


def thread_report(pid: int, before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]) -> tuple[str, bool]:
    """Per-thread CPU over a window, and whether the main thread (tid == pid) did (nearly) all of it."""
    used = {tid: (name, ticks - before.get(tid, (name, 0))[1]) for tid, (name, ticks) in after.items()}
    total = sum(ticks for _, ticks in used.values()) or 1
    parts = [f"{name}[{tid}{' main' if tid == pid else ''}] {100 * ticks / total:.0f}%"
             for tid, (name, ticks) in sorted(used.items(), key=lambda kv: -kv[1][1]) if ticks]
    main_only = used.get(pid, ("", 0))[1] >= 0.95 * total
    return "CPU by thread (/proc): " + (", ".join(parts) or "none"), main_only


_IDLE_CALLS = ("epoll_wait ", "epoll_pwait ", "clock_nanosleep ", "nanosleep ", "futex ", "poll ", "select ",
               "pthread_cond_wait", "pthread_cond_timedwait", "__futex_abstimed_wait")
"""Leaf frames of a thread waiting in the kernel: with --native, py-spy reports these as busy."""

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_SITE = re.compile(r".*/site-packages/")


def short(frame: str) -> str:
    """`func (path:line)` with the path cut to what tells the frame apart (package-relative)."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    path = _SITE.sub("", path)
    path = path.replace(str(REPO / "src") + "/", "").replace(str(REPO) + "/", "")
    path = re.sub(r"^/root/\.pyenv/versions/[^/]+/lib/python[\d.]+/", "", path)
    line = f":{match['line']}" if match["line"] else ""
    return f"{match['func']} ({path}{line})"


@dataclass
class Profile:
    samples: int
    own: Counter[str]
    """Samples where the frame was on top of the stack (its own code, not callees)."""
    total: Counter[str]
    """Samples where the frame was anywhere on the stack (it and what it called)."""


def fold(path: Path, *, main_only: bool = False) -> Profile:
    """Read py-spy's raw (folded) output: one `frame;frame;...;leaf COUNT` line per distinct stack.

    `main_only` keeps the main thread's stacks (those not started by `threading.Thread._bootstrap`).
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if main_only and "_bootstrap (" in stack and "threading.py" in stack:
            continue
        frames = [short(f) for f in stack.split(";") if f]
        # The first frame is the thread ("process 123:..." / "thread ..."); keep real frames only.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames or frames[-1].startswith(_IDLE_CALLS):
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return Profile(samples, own, total)


def report(title: str, profile: Profile, top: int = 25) -> str:
    if profile.samples == 0:
        return f"{title}: no samples (was the process busy? is ptrace allowed?)"
    lines = [f"{title}: {profile.samples} samples on CPU", "", "  own%  frame (self time: the frame's own code)"]
    lines += [f"{100 * n / profile.samples:6.1f}  {frame}" for frame, n in profile.own.most_common(top)]
    # Frames on (nearly) every stack are the launcher and the loop's entry: they say nothing.
    inner = [(frame, n) for frame, n in profile.total.most_common() if n < 0.9 * profile.samples]
    lines += ["", "  tot%  frame (inclusive: the frame and everything it called; frames on >= 90% of stacks left out)"]
    lines += [f"{100 * n / profile.samples:6.1f}  {frame}" for frame, n in inner[:top]]
    return "\n".join(lines)
