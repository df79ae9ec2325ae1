"""Soak: mixed traffic through `mcp-runtime up` for a long time; memory, files, errors and analytics must hold.

    PYTHONPATH=src:tests .venv/bin/python bench/soak.py [--minutes 30] [--workers 6] [--json result.json]

`mcp-runtime up` runs as a user runs it (a subprocess on a fresh data dir; team acme, owner alice, the
data-utility example deployed as `payments` behind the gateway, a grant for agent cursor on echo, add and
ping: tests/fixtures/platform_up.py sets it up through the CLI and the API). Then, for `--minutes`:

- `--workers` MCP clients (raw JSON-RPC over HTTP keep-alive, each with its own adapter session and MCP
  session) loop: `tools/call add` (allowed), `tools/list`, `tools/call upper` (denied: not granted);
- a claude worker calls `echo` under grant `payments-claude`, which the governance thread disables and
  enables every `--grant-every` seconds: its calls are allowed or denied `no_matching_grant`, nothing else;
- every `--revoke-every` seconds a fresh session is issued, used, revoked, and the next call with it must
  be denied `session_revoked` (within a second: revocation is pushed, not polled);
- a monitor samples the `up` process's RSS and open files every 5 s.

At the end it waits for the analytics pipeline to settle and compares: the platform's event count for
`payments` must equal the number of audited requests made (every JSON-RPC request; none lost, none
twice). It prints RSS and open files at warm-up end and at the end with their slope per minute after
warm-up, every unexpected outcome (there must be none), the request counts and the load average.
Exit status 1 on any unexpected outcome, a count mismatch, or growth past `--max-growth-mb`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from fixtures.platform_up import NAMESPACE, SERVER, PlatformWorld, grant_doc_for, running_platform  # noqa: E402

PROTOCOL = "2025-06-18"
WARM_UP = 0.2  # the first fifth of the run is warm-up: caches, pools and the policy document grow to size


@dataclass
class Sample:
    at: float
    rss_mb: float
    open_files: int


@dataclass
class Result:
    minutes: float
    requests: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    unexpected_count: int = 0
    revocations: int = 0
    revocation_max_ms: float = 0.0
    grant_toggles: int = 0
    analytics_events: int = -1
    samples: list[Sample] = field(default_factory=list)
    rss_mb_warm: float = 0.0
    rss_mb_end: float = 0.0
    rss_mb_slope_per_min: float = 0.0
    open_files_warm: int = 0
    open_files_end: int = 0
    open_files_slope_per_min: float = 0.0
    loadavg: list[list[float]] = field(default_factory=list)


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.outcomes: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.unexpected_count = 0

    def record(self, what: str, outcome: str, expected: set[str]) -> None:
        with self.lock:
            self.requests += 1
            self.outcomes[f"{what}: {outcome}"] += 1
            if outcome not in expected:
                self.unexpected_count += 1
                if len(self.unexpected) < 50:
                    self.unexpected.append(f"{time.strftime('%H:%M:%S')} {what}: {outcome} (expected {expected})")


class McpClient:
    """One MCP client through the gateway: its own session token and MCP session, keep-alive HTTP."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = httpx.Client(timeout=30, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": PROTOCOL})
        self.next_id = 0

    def rpc(self, method: str, params: dict[str, Any] | None = None) -> str:
        """"ok", a denial reason, or what went wrong (`http <status>`, an exception's name)."""
        self.next_id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            body["params"] = params
        try:
            answer = self.http.post(self.url, json=body)
        except httpx.HTTPError as exc:
            return f"transport {type(exc).__name__}"
        if method == "initialize" and "mcp-session-id" in answer.headers:
            self.http.headers["Mcp-Session-Id"] = answer.headers["mcp-session-id"]
        if answer.status_code == 401:
            return str(answer.json().get("error"))
        if answer.status_code != 200:
            return f"http {answer.status_code}"
        message = _message(answer)
        if message is None:
            return "no JSON-RPC answer"
        if "error" in message:
            data = message["error"].get("data") or {}
            return str(data.get("reason") or f"rpc error {message['error'].get('code')}")
        result = message.get("result") or {}
        return "tool error" if result.get("isError") else "ok"

    def initialize(self) -> str:
        outcome = self.rpc("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                          "clientInfo": {"name": "soak", "version": "1"}})
        if outcome == "ok":
            self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        return outcome

    def close(self) -> None:
        self.http.close()


def _message(answer: httpx.Response) -> dict[str, Any] | None:
    if "json" in answer.headers.get("content-type", ""):
        data = answer.json()
        return data if isinstance(data, dict) else None
    for line in reversed(answer.text.splitlines()):  # an SSE answer: the last data line holds the response
        if line.startswith("data:"):
            data = json.loads(line[5:])
            return data if isinstance(data, dict) else None
    return None


def _issue(world: PlatformWorld, agent: str, agent_id: str) -> dict[str, Any]:
    """An adapter session for alice's `agent` (a fresh login each time: access tokens last 15 minutes)."""
    answer = world.http.post(f"{world.url}/api/v1/runtime/adapter/sessions", headers={
        "Authorization": f"Bearer {world.user_token()}"}, json={"server": SERVER, "agent": agent,
                                                                 "agentID": agent_id})
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def _worker(world: PlatformWorld, token: str, tally: Tally, stop: threading.Event) -> None:
    client = McpClient(world.runtime_url, token)
    tally.record("initialize", client.initialize(), {"ok"})
    n = 0
    while not stop.is_set():
        n += 1
        tally.record("call add", client.rpc("tools/call", {"name": "add", "arguments": {"a": n, "b": 1}}), {"ok"})
        tally.record("list", client.rpc("tools/list"), {"ok"})
        if n % 3 == 0:
            tally.record("call upper", client.rpc("tools/call", {"name": "upper", "arguments": {"text": "x"}}),
                         {"tool_not_granted"})
    client.close()


def _claude(world: PlatformWorld, token: str, tally: Tally, stop: threading.Event) -> None:
    """Calls under the grant the governance thread toggles: allowed or `no_matching_grant`, nothing else."""
    client = McpClient(world.runtime_url, token)
    while not stop.is_set():
        if "Mcp-Session-Id" not in client.http.headers:  # initialize may be refused while the grant is off
            tally.record("claude initialize", client.initialize(), {"ok", "no_matching_grant"})
        else:
            tally.record("claude call echo", client.rpc("tools/call", {"name": "echo", "arguments": {"text": "hi"}}),
                         {"ok", "no_matching_grant"})
        time.sleep(0.05)
    client.close()


def _governance(world: PlatformWorld, tally: Tally, result: Result, stop: threading.Event,
                grant_every: float, revoke_every: float) -> None:
    """Toggle the claude grant every `grant_every` s; issue, use and revoke a session every `revoke_every` s.
    A failure is an unexpected outcome, never the end of the thread."""
    state = {"enabled": True, "next_revoke": time.monotonic() + revoke_every, "n": 0}
    while not stop.wait(grant_every):
        try:
            _govern_once(world, tally, result, state, revoke_every)
        except Exception as exc:
            tally.record("governance", f"{type(exc).__name__}: {exc}", set())


def _govern_once(world: PlatformWorld, tally: Tally, result: Result, state: dict[str, Any],
                 revoke_every: float) -> None:
    enabled = state["enabled"]
    action = "disable" if enabled else "enable"
    answer = world.api("POST", f"runtime/grants/{NAMESPACE}/{SERVER}-claude/{action}")
    if answer.status_code != 200:
        tally.record(f"grant {action}", f"http {answer.status_code}", {"ok"})
    state["enabled"] = not enabled
    result.grant_toggles += 1
    if time.monotonic() < state["next_revoke"]:
        return
    state["next_revoke"] = time.monotonic() + revoke_every
    state["n"] += 1
    issued = _issue(world, f"churn-{state['n']}", "cursor")
    client = McpClient(world.runtime_url, issued["token"])
    tally.record("churn initialize", client.initialize(), {"ok"})
    tally.record("churn call", client.rpc("tools/call", {"name": "echo", "arguments": {"text": "x"}}), {"ok"})
    name = issued["session"]["metadata"]["name"]
    answer = world.api("POST", f"runtime/sessions/{NAMESPACE}/{name}/revoke")
    revoked_at = time.monotonic()  # the revoke is stored: from now on no call may pass
    if answer.status_code != 200:
        tally.record("revoke", f"http {answer.status_code}", {"ok"})
    outcome = client.rpc("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    while outcome == "ok" and time.monotonic() - revoked_at < 1.0:
        tally.record("call after revoke (in flight)", outcome, {"ok"})
        time.sleep(0.05)
        outcome = client.rpc("tools/call", {"name": "echo", "arguments": {"text": "x"}})
    result.revocation_max_ms = max(result.revocation_max_ms, (time.monotonic() - revoked_at) * 1000)
    tally.record("call after revoke", outcome, {"session_revoked"})
    result.revocations += 1
    client.close()


def _monitor(pid: int, result: Result, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("VmRSS:")) / 1024
            files = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            return
        result.samples.append(Sample(time.monotonic(), rss, files))
        stop.wait(5)


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope per minute."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return 60 * sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def soak(base: Path, args: argparse.Namespace) -> Result:
    result = Result(minutes=args.minutes)
    tally = Tally()
    with running_platform(base) as world:
        claude_team = world.team_id
        created = world.api("POST", "runtime/grants", json=grant_doc_for(
            f"{SERVER}-claude", claude_team, "claude", ["echo"]))
        assert created.status_code == 201, created.text
        tokens = [_issue(world, f"worker-{i}", "cursor")["token"] for i in range(args.workers)]
        claude = _issue(world, "claude", "claude")["token"]
        stop = threading.Event()
        result.loadavg.append(list(os.getloadavg()))
        threads = [threading.Thread(target=_worker, args=(world, t, tally, stop)) for t in tokens]
        threads.append(threading.Thread(target=_claude, args=(world, claude, tally, stop)))
        threads.append(threading.Thread(target=_governance, args=(world, tally, result, stop,
                                                                  args.grant_every, args.revoke_every)))
        monitor = threading.Thread(target=_monitor, args=(world.process.pid, result, stop))
        for thread in [*threads, monitor]:
            thread.start()
        started = time.monotonic()
        try:
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(5)
                if args.progress:
                    last = result.samples[-1] if result.samples else None
                    print(f"  {(time.monotonic() - started) / 60:5.1f} min: {tally.requests} requests, "
                          f"{tally.unexpected_count} unexpected, RSS {last.rss_mb if last else 0:.0f} MB, "
                          f"{last.open_files if last else 0} files", flush=True)
                if len(result.samples) == 0 and world.process.poll() is not None:
                    break
        finally:
            result.loadavg.append(list(os.getloadavg()))
            stop.set()
            for thread in [*threads, monitor]:
                thread.join(timeout=120)
        result.analytics_events = _settled_count(world, tally.requests)
    result.requests = tally.requests
    result.outcomes = dict(sorted(tally.outcomes.items()))
    result.unexpected, result.unexpected_count = tally.unexpected, tally.unexpected_count
    _summarize(result, started)
    return result


def _settled_count(world: PlatformWorld, expected: int) -> int:
    """The platform's event count for the server once it stops changing (or reaches `expected`)."""
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        count = int(world.api("GET", f"analytics/usage?section=totals&server={SERVER}").json()["totals"]["events"])
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since > (2 if count == expected else 15):
            return count
        time.sleep(0.5)
    return last


def _summarize(result: Result, started: float) -> None:
    warm = started + result.minutes * 60 * WARM_UP
    after = [s for s in result.samples if s.at >= warm]
    if after:
        result.rss_mb_warm, result.open_files_warm = after[0].rss_mb, after[0].open_files
        result.rss_mb_end, result.open_files_end = after[-1].rss_mb, after[-1].open_files
        result.rss_mb_slope_per_min = _slope([(s.at, s.rss_mb) for s in after])
        result.open_files_slope_per_min = _slope([(s.at, float(s.open_files)) for s in after])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--grant-every", type=float, default=3.0)
    parser.add_argument("--revoke-every", type=float, default=10.0)
    parser.add_argument("--max-growth-mb", type=float, default=50.0,
                        help="RSS growth after warm-up that fails the run (default 50)")
    parser.add_argument("--progress", action="store_true", help="a line every 5 s")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    print(f"soak: {args.minutes:g} min through mcp-runtime up, {args.workers} workers + claude + governance; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    with TemporaryDirectory(prefix="soak-") as tmp:
        result = soak(Path(tmp), args)
    samples = result.samples
    result.samples = samples[:: max(1, len(samples) // 200)]  # keep the JSON small
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    print(f"requests: {result.requests} audited JSON-RPC requests; analytics events: {result.analytics_events}")
    for outcome, count in result.outcomes.items():
        print(f"  {count:>8}  {outcome}")
    print(f"unexpected outcomes: {result.unexpected_count} {result.unexpected[:10]}")
    print(f"grant toggles: {result.grant_toggles}; revocations: {result.revocations}; the slowest first call after "
          f"a revoke answered {result.revocation_max_ms:.0f} ms after it (calls allowed after a revoke: "
          f"{result.outcomes.get('call after revoke (in flight): ok', 0)})")
    print(f"up RSS after warm-up {result.rss_mb_warm:.0f} MB -> end {result.rss_mb_end:.0f} MB "
          f"({result.rss_mb_slope_per_min:+.2f} MB/min); open files {result.open_files_warm} -> "
          f"{result.open_files_end} ({result.open_files_slope_per_min:+.2f}/min)")
    print(f"load average (1/5/15 min) at start and end: {result.loadavg}")
    growth = result.rss_mb_end - result.rss_mb_warm
    ok = (result.unexpected_count == 0 and result.analytics_events == result.requests
          and growth <= args.max_growth_mb and result.open_files_end <= result.open_files_warm + 10)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
