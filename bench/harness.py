"""Plumbing shared by the benchmarks: processes, their CPU time, the wrk load and the MCP handshake.

Why a module of its own: `gateway_overhead.py` and the peer scripts in `bench/peers/` must drive
every target the same way (same load generator, same checks, same CPU accounting), or their
figures would not compare.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LOAD_SCRIPT = BENCH / "jsonrpc_load.lua"
PROTOCOL_VERSION = "2025-06-18"
ACCEPT = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def repo_env() -> dict[str, str]:
    """This environment with the repository's `src/` importable (the gateway runs from the checkout)."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(REPO / "src") + os.pathsep + environment.get("PYTHONPATH", "")
    return environment


@contextlib.contextmanager
def process(argv: list[str], ready_url: str, *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            ready_status: int | None = None, timeout: float = 60, log: Path | None = None,
            uds: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in its own session until the block ends, once `ready_url` answers (with `ready_status`),
    through the unix socket `uds` if given.

    Its own session, so that the CPU of every process it starts (workers) is counted and all of them
    are stopped together. Output goes to `log` (or is dropped); a failed start shows its tail.
    """
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, env=dict(env) if env is not None else repo_env(), cwd=cwd,
                            start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        transport = httpx.HTTPTransport(uds=str(uds)) if uds else None
        while True:
            try:
                # Headers only: a ready URL may answer with an SSE stream that never ends (GET /mcp).
                with httpx.Client(transport=transport, timeout=2) as probe, probe.stream("GET", ready_url) as answer:
                    status = answer.status_code
                if ready_status is None or status == ready_status:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log else "(no log kept)"
                raise RuntimeError(f"{' '.join(argv[:4])} did not get ready at {ready_url}:\n{tail}")
            time.sleep(0.1)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


_TICK = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(sid: int) -> float:
    """User + system CPU of every live process in session `sid` (a target and the workers it forked)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (the stdio servers a bridge started, each in a session of its own)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def session_io_calls(sid: int) -> tuple[int, int]:
    """Read and write system calls (read/readv, write/writev: how uvloop moves socket bytes) made so far
    by every live process in session `sid`, from /proc/PID/io. Unlike CPU time, counts do not change
    with how busy the machine is, so they show a change in the relay's writes even on a loaded run."""
    reads = writes = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != sid:
                continue
            io = dict(line.split(": ") for line in Path(entry.path, "io").read_text().splitlines())
        except (OSError, ValueError):
            continue
        reads += int(io.get("syscr", 0))
        writes += int(io.get("syscw", 0))
    return reads, writes


def children_cpu_seconds() -> float:
    """CPU of this process's finished children (how wrk's own cost is read after it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def settle(sid: int, *, quiet: float = 0.02, interval: float = 0.25, limit: float = 150) -> None:
    """Wait until session `sid` is idle (< quiet s of CPU per interval), so that the work a load left
    in flight (requests the target still runs after wrk hung up) is not billed to the next run."""
    deadline = time.monotonic() + limit
    last = session_cpu_seconds(sid)
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = session_cpu_seconds(sid)
        if now - last < quiet:
            return
        last = now


@dataclass
class Load:
    """What one wrk run saw: every answer checked, latencies in ms."""

    sent: int
    requests: int
    ok: int
    bad: int
    socket_errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    wrk_cpu_us: float
    sample: str = ""
    """The first rejected answer, to say what went wrong."""

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.bad + self.socket_errors

    @property
    def in_flight(self) -> int:
        """Sent but not answered when the run ended: at most one per connection, unless something hung."""
        return self.sent - self.requests


class IdRange:
    """Hands out disjoint id ranges so no two runs against one session reuse a JSON-RPC id."""

    def __init__(self, start: int = 1_000) -> None:
        self._next = start

    def take(self) -> int:
        first = self._next
        self._next += 100_000_000
        return first


def run_load(url: str, headers: Mapping[str, str], tool: str, concurrency: int, duration: float,
             first_id: int, *, timeout_s: int = 10) -> Load:
    """`wrk` with `jsonrpc_load.lua`: `tools/call tool` at `concurrency` connections for `duration` s."""
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", f"--timeout={timeout_s}s",
            "-s", str(LOAD_SCRIPT)]
    for name, value in {**ACCEPT, **headers}.items():
        argv += ["-H", f"{name}: {value}"]
    argv += [url, "--", str(first_id), tool]
    before = children_cpu_seconds()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wrk_cpu = children_cpu_seconds() - before
    line = next((x for x in done.stdout.splitlines() if x.startswith("JSONRPC_LOAD ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    data = json.loads(line.split(" ", 1)[1])
    sockets = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return Load(sent=data["sent"], requests=data["requests"], ok=data["ok"], bad=data["bad"], socket_errors=sockets,
                seconds=data["duration_us"] / 1e6, p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000, wrk_cpu_us=wrk_cpu / max(data["requests"], 1) * 1e6,
                sample=data["sample"])


def mcp_handshake(url: str, headers: Mapping[str, str]) -> dict[str, str]:
    """`initialize` + `notifications/initialized` through `url`; returns the headers carrying the session.

    Servers without sessions (the fast upstream) simply send no `Mcp-Session-Id`.
    """
    init = httpx.post(url, headers={**ACCEPT, **headers}, timeout=30, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}})
    if init.status_code != 200 or '"result"' not in init.text:
        raise RuntimeError(f"initialize via {url} failed: {init.status_code} {init.text[:500]}")
    session = {"Mcp-Protocol-Version": PROTOCOL_VERSION}
    if "mcp-session-id" in init.headers:
        session["Mcp-Session-Id"] = init.headers["mcp-session-id"]
    note = httpx.post(url, headers={**ACCEPT, **headers, **session}, timeout=30,
                      json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    if note.status_code >= 300:
        raise RuntimeError(f"notifications/initialized via {url} failed: {note.status_code} {note.text[:500]}")
    return session


def check_call(url: str, headers: Mapping[str, str], tool: str) -> str:
    """One `tools/call` by hand before the load, so a broken setup fails with its answer, not a table of 0s."""
    answer = httpx.post(url, headers={**ACCEPT, **headers}, timeout=60, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "hello"}}})
    if answer.status_code != 200 or '"result"' not in answer.text or '"isError":true' in answer.text.replace(" ", ""):
        raise RuntimeError(f"tools/call {tool} via {url} failed: {answer.status_code} {answer.text[:500]}")
    return str(answer.headers.get("content-type", ""))
