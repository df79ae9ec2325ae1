"""Load: many open SSE streams and many tool-calling clients against one gateway, plus clients that never read.

    .venv/bin/python bench/gateway_load.py [--streams 1000] [--callers 200] [--duration 120] [--slow 2]
                                           [--json result.json]

One gateway runs exactly as the sidecar does (`mcp-runtime gateway run`, its own process, policy and JWKS
files) in front of `bench/fast_upstream.py` (its GET answers a server-to-client SSE stream with a tick
every `--interval` seconds). Every request carries a real Ed25519 session token and is decided by the
real policy. The load generator (this process, uvloop, raw asyncio sockets: cheap enough not to starve
the gateway on two cores) then:

1. opens `--streams` SSE streams (GET) and keeps them open for the whole run;
2. phase A (a third of `--duration`): `--callers` clients call `tools/call` in a loop, each on its own
   keep-alive connection;
3. phase B (the rest): the same, while `--slow` clients open a firehose stream (64 KiB events as fast as
   the reader takes them) and never read a byte: per-connection back-pressure must keep them from
   stalling anyone else or growing the gateway's memory;
4. checks that every stream is still alive (it saw a tick within the last two intervals), closes
   everything and reads the gateway's in-flight gauge (it must fall back to 0).

It prints requests/s, p50/p99/max call latency per phase, stream and call errors, the gateway's RSS
(sampled each second, and its peak VmHWM), open files, CPU per call, and the machine's load average.
Exit status 1 when any request failed or a stream died.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mcp_runtime.policy import compile_policy  # noqa: E402
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer  # noqa: E402
from mcp_runtime.security import KeyRing, SessionClaims, issue_session_token  # noqa: E402

NAMESPACE, AGENT, TEAM, SESSION, SERVER = "bench", "bench-agent", "bench-team", "s-bench", "fast"

CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "hello"}}}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def policy_files(directory: Path, keyring: KeyRing) -> tuple[Path, Path]:
    """A compiled policy granting the bench agent `echo`, and the JWKS its tokens verify with."""
    server = MCPServer.model_validate({"metadata": {"name": SERVER, "namespace": NAMESPACE}, "spec": {
        "image": f"bench/{SERVER}", "teamID": TEAM, "tools": [{"name": "echo", "sideEffect": "read"}]}})
    grant = MCPAccessGrant.model_validate({"metadata": {"name": "g-bench", "namespace": NAMESPACE}, "spec": {
        "serverRef": {"name": SERVER}, "subject": {"agentID": AGENT, "teamID": TEAM}, "maxTrust": "high",
        "toolRules": [{"name": "echo"}]}})
    session = MCPAgentSession.model_validate({"metadata": {"name": SESSION, "namespace": NAMESPACE}, "spec": {
        "serverRef": {"name": SERVER}, "subject": {"agentID": AGENT, "teamID": TEAM, "humanID": "bench"},
        "consentedTrust": "high", "expiresAt": (datetime.now(UTC) + timedelta(hours=4)).isoformat()}})
    policy, jwks = directory / "policy.json", directory / "jwks.json"
    policy.write_bytes(compile_policy(server, [grant], [session]).to_json())
    jwks.write_text(json.dumps(keyring.jwks()))
    return policy, jwks


def token(keyring: KeyRing) -> str:
    now = datetime.now(UTC)
    return issue_session_token(keyring, SessionClaims(
        session_id=SESSION, namespace=NAMESPACE, server=SERVER, human_id="bench", agent_id=AGENT,
        team_id=TEAM, trust="high", expires_at=now + timedelta(hours=4), issued_at=now))


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    calls: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | str]:
        lat = sorted(self.latencies_ms) or [0.0]
        return {"phase": self.name, "seconds": round(self.seconds, 1), "calls": self.calls, "errors": self.errors,
                "rps": round(self.calls / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": round(statistics.median(lat), 2), "p99_ms": round(lat[int(len(lat) * 0.99) - 1 if
                                                                                len(lat) > 1 else 0], 2),
                "max_ms": round(lat[-1], 2)}


@dataclass
class Result:
    streams: int
    streams_opened: int = 0
    streams_alive_at_end: int = 0
    stream_errors: list[str] = field(default_factory=list)
    call_errors: list[str] = field(default_factory=list)
    phases: list[dict[str, float | int | str]] = field(default_factory=list)
    callers_without_calls_in_b: int = 0
    slow_clients: int = 0
    slow_client_bytes_buffered: int = 0
    rss_mb_start: float = 0.0
    rss_mb_after_streams: float = 0.0
    rss_mb_end: float = 0.0
    rss_mb_peak: float = 0.0  # sampled each second while under load
    rss_mb_hwm: float = 0.0  # the kernel's high-water mark (VmHWM), start-up included
    open_files_peak: int = 0
    inflight_after: float = -1.0
    gateway_cpu_us_per_call: float = 0.0
    loadavg: list[list[float]] = field(default_factory=list)
    open_seconds: float = 0.0


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _mb(value: str) -> float:
    return int(value.split()[0]) / 1024


@contextlib.contextmanager
def _process(argv: list[str], log: Path, ready: tuple[str, int], env: dict[str, str] | None = None
             ) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})})
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(ready, timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[:4]} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    return status, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    parts = []
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return b"".join(parts)
        parts.append(data[:-2])


class Stream:
    """One open SSE stream: counts ticks, remembers when the last one came."""

    def __init__(self) -> None:
        self.ticks = 0
        self.last = 0.0
        self.error: str | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, path: str, headers: dict[str, str], opened: asyncio.Future[None]) -> None:
        try:
            reader, self.writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            self.writer.write(_request("GET", path, headers))
            status, _ = await _read_head(reader)
            if status != 200:
                raise RuntimeError(f"GET answered {status}")
            while True:
                data = await reader.read(65536)
                if not data:
                    raise RuntimeError("the stream ended")
                count = data.count(b"tick")
                if count:
                    self.ticks += count
                    self.last = time.monotonic()
                    if not opened.done():
                        opened.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            if not opened.done():
                opened.set_exception(exc)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _caller(port: int, path: str, headers: dict[str, str], phases: list[Phase], current: list[Phase],
                  stop: asyncio.Event, errors: list[str], counts: list[int], index: int) -> None:
    request = _request("POST", path, headers, CALL)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while not stop.is_set():
        phase = current[0]
        started = time.monotonic()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            writer.write(request)
            status, answer_headers = await asyncio.wait_for(_read_head(reader), 30)
            body = await asyncio.wait_for(_read_body(reader, answer_headers), 30)
            if status != 200 or b'"result"' not in body:
                raise RuntimeError(f"{status} {body[:200]!r}")
            phase.latencies_ms.append((time.monotonic() - started) * 1000)
            phase.calls += 1
            counts[index] += 1
            if answer_headers.get("connection", "").lower() == "close":
                writer.close()
                writer = None
        except Exception as exc:
            phase.errors += 1
            if len(errors) < 20:
                errors.append(f"{type(exc).__name__}: {exc}")
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.1)
    if writer is not None:
        writer.close()


def _slow_client(port: int, path: str, headers: dict[str, str]) -> socket.socket:
    """A firehose stream whose reader never reads (a tiny receive buffer so back-pressure starts at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(_request("GET", path, {**headers, "X-Bench-Firehose": "1"}))
    return sock


async def _monitor(pid: int, result: Result, stop: asyncio.Event) -> None:
    while not stop.is_set():
        status = _status(pid)
        result.rss_mb_peak = max(result.rss_mb_peak, _mb(status["VmRSS"]))
        with contextlib.suppress(OSError):
            result.open_files_peak = max(result.open_files_peak, len(os.listdir(f"/proc/{pid}/fd")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def _inflight(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    total = 0.0
    for line in data.decode().splitlines():
        if line.startswith("mcp_gateway_inflight_requests{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def run_load(args: argparse.Namespace, gateway_port: int, gateway_pid: int, auth: dict[str, str]
                   ) -> Result:
    result = Result(streams=args.streams)
    path = "/mcp"
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **auth}
    stop_monitor = asyncio.Event()
    monitor = asyncio.create_task(_monitor(gateway_pid, result, stop_monitor))
    result.rss_mb_start = _mb(_status(gateway_pid)["VmRSS"])
    result.loadavg.append(list(os.getloadavg()))

    # 1. the open streams
    streams = [Stream() for _ in range(args.streams)]
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    for batch in range(0, args.streams, 100):
        opened = []
        for stream in streams[batch:batch + 100]:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            tasks.append(asyncio.create_task(stream.run(gateway_port, f"{path}?interval={args.interval}", base,
                                                        future)))
            opened.append(future)
        done = await asyncio.gather(*(asyncio.wait_for(f, 60) for f in opened), return_exceptions=True)
        result.streams_opened += sum(1 for d in done if not isinstance(d, BaseException))
    result.open_seconds = time.monotonic() - started
    result.rss_mb_after_streams = _mb(_status(gateway_pid)["VmRSS"])

    # 2./3. callers: phase A without, phase B with clients that never read
    phases = [Phase("A: streams + callers"), Phase("B: streams + callers + slow readers")]
    current = [phases[0]]
    stop = asyncio.Event()
    counts = [0] * args.callers
    cpu_before = cpu_seconds(gateway_pid)
    callers = [asyncio.create_task(_caller(gateway_port, path, base, phases, current, stop, result.call_errors,
                                           counts, i)) for i in range(args.callers)]
    phase_a = args.duration / 3
    begin = time.monotonic()
    await asyncio.sleep(phase_a)
    phases[0].seconds = time.monotonic() - begin
    result.loadavg.append(list(os.getloadavg()))
    slow = [_slow_client(gateway_port, path, base) for _ in range(args.slow)]
    result.slow_clients = len(slow)
    counts_at_b = list(counts)
    current[0] = phases[1]
    begin = time.monotonic()
    await asyncio.sleep(args.duration - phase_a)
    phases[1].seconds = time.monotonic() - begin
    stop.set()
    await asyncio.gather(*callers)
    calls = sum(p.calls for p in phases)
    result.gateway_cpu_us_per_call = (cpu_seconds(gateway_pid) - cpu_before) / max(calls, 1) * 1e6
    result.callers_without_calls_in_b = sum(1 for before, after in zip(counts_at_b, counts, strict=True)
                                            if after == before)
    result.loadavg.append(list(os.getloadavg()))

    # 4. every stream alive, then close everything
    now = time.monotonic()
    result.streams_alive_at_end = sum(1 for s in streams if s.error is None and now - s.last < 2 * args.interval + 5)
    result.stream_errors = [s.error for s in streams if s.error][:20]
    for sock in slow:
        with contextlib.suppress(OSError):
            result.slow_client_bytes_buffered += len(sock.recv(1 << 20, socket.MSG_DONTWAIT))
        sock.close()
    for stream in streams:
        stream.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result.phases = [p.summary() for p in phases]
    deadline = time.monotonic() + 30
    while (inflight := _inflight(gateway_port)) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    result.inflight_after = inflight
    await asyncio.sleep(1)
    status = _status(gateway_pid)
    result.rss_mb_end = _mb(status["VmRSS"])
    result.rss_mb_hwm = _mb(status["VmHWM"])
    stop_monitor.set()
    await monitor
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of calls (default 120)")
    parser.add_argument("--slow", type=int, default=2, help="clients that never read (default 2)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between stream ticks")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    keyring = KeyRing.generate()
    with tempfile.TemporaryDirectory(prefix="gw-load-") as tmp:
        workdir = Path(tmp)
        policy, jwks = policy_files(workdir, keyring)
        up_port, gw_port = free_port(), free_port()
        gateway_argv = [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream",
                        f"http://127.0.0.1:{up_port}/mcp", "--policy-file", str(policy), "--jwks-file", str(jwks),
                        "--listen", f"127.0.0.1:{gw_port}", "--log-level", "warning"]
        with _process([sys.executable, str(REPO / "bench" / "fast_upstream.py"), str(up_port)],
                      workdir / "upstream.log", ("127.0.0.1", up_port)), \
                _process(gateway_argv, workdir / "gateway.log", ("127.0.0.1", gw_port)) as gateway:
            import uvloop

            auth = {"Authorization": f"Bearer {token(keyring)}"}
            print(f"gateway load: {args.streams} open SSE streams, {args.callers} callers, {args.slow} clients that "
                  f"never read, {args.duration:g} s of calls; {os.cpu_count()} CPUs, load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            result = uvloop.run(run_load(args, gw_port, gateway.pid, auth))
            gateway_log = (workdir / "gateway.log").read_text()[-3000:]
    _report(result)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    ok = (not result.call_errors and not result.stream_errors and result.streams_opened == args.streams
          and result.streams_alive_at_end == args.streams and result.inflight_after == 0)
    if not ok and gateway_log.strip():
        print("gateway log (tail):\n" + gateway_log)
    return 0 if ok else 1


def _report(r: Result) -> None:
    print(f"streams: {r.streams_opened}/{r.streams} opened in {r.open_seconds:.1f}s, "
          f"{r.streams_alive_at_end} alive at the end; errors: {len(r.stream_errors)} {r.stream_errors[:3]}")
    print("phase                                   calls   errors    req/s   p50 ms   p99 ms   max ms")
    for p in r.phases:
        print(f"{p['phase']:<38} {p['calls']:>7} {p['errors']:>8} {p['rps']:>8} {p['p50_ms']:>8} "
              f"{p['p99_ms']:>8} {p['max_ms']:>8}")
    print(f"call errors: {r.call_errors[:5]}; callers that made no call while the slow readers were connected: "
          f"{r.callers_without_calls_in_b}")
    print(f"gateway RSS: start {r.rss_mb_start:.0f} MB, with streams {r.rss_mb_after_streams:.0f} MB, "
          f"peak under load {r.rss_mb_peak:.0f} MB (VmHWM {r.rss_mb_hwm:.0f} MB), end {r.rss_mb_end:.0f} MB; "
          f"open files peak {r.open_files_peak}; "
          f"CPU {r.gateway_cpu_us_per_call:.0f} us/call; in flight after: {r.inflight_after:g}")
    print(f"load average (1/5/15 min) at start, after phase A, at end: {r.loadavg}")


if __name__ == "__main__":
    raise SystemExit(main())
