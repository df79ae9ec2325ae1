"""What the gateway costs: the same tools/call load direct to an upstream and through the gateway.

    .venv/bin/python bench/gateway_overhead.py [--duration 5] [--concurrency 1 16 64]

Runs, in one go and on this machine, against (a) the Python example server `examples/data-utility-mcp`
and (b) a minimal fast upstream (`bench/fast_upstream.py`): each upstream, and a gateway in front of it
started exactly as the sidecar is (`mcp-runtime gateway run`, its own process), and the load generator
`wrk` (Debian package `wrk`) as a third process. Every request carries a real session token and is
decided by the real policy, so "through the gateway" means governed. Prints requests/s, p50 and p99 per
concurrency, the latency the gateway adds and the throughput ratio, and checks the targets of
DESIGN.md section 15.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from mcp_runtime.policy import compile_policy  # noqa: E402
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer  # noqa: E402
from mcp_runtime.security import KeyRing, SessionClaims, issue_session_token  # noqa: E402

NAMESPACE = "bench"
AGENT = "bench-agent"
TEAM = "bench-team"
SESSION = "s-bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(REPO / "src") + os.pathsep + environment.get("PYTHONPATH", "")
    return environment


@contextlib.contextmanager
def process(argv: list[str], ready_url: str, *, extra_env: dict[str, str] | None = None,
            cwd: Path | None = None, ready_status: int | None = None) -> Iterator[None]:
    """Run `argv` in its own process group until the block ends; wait until `ready_url` answers."""
    proc = subprocess.Popen(argv, env={**env(), **(extra_env or {})}, cwd=cwd, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status = httpx.get(ready_url, timeout=1).status_code
                if ready_status is None or status == ready_status:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{argv[:4]} did not start: {err}")
            time.sleep(0.05)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def policy_files(directory: Path, server: str, keyring: KeyRing) -> tuple[Path, Path]:
    """A compiled policy granting the bench agent `echo` on `server`, and the JWKS to verify it with."""
    srv = MCPServer.model_validate({
        "metadata": {"name": server, "namespace": NAMESPACE},
        "spec": {"image": f"bench/{server}", "teamID": TEAM,
                 "tools": [{"name": "echo", "sideEffect": "read"}, {"name": "reverse", "sideEffect": "write"}]},
    })
    grant = MCPAccessGrant.model_validate({
        "metadata": {"name": "g-bench", "namespace": NAMESPACE},
        "spec": {"serverRef": {"name": server}, "subject": {"agentID": AGENT, "teamID": TEAM},
                 "maxTrust": "high", "toolRules": [{"name": "echo"}]},
    })
    session = MCPAgentSession.model_validate({
        "metadata": {"name": SESSION, "namespace": NAMESPACE},
        "spec": {"serverRef": {"name": server}, "subject": {"agentID": AGENT, "teamID": TEAM, "humanID": "bench"},
                 "consentedTrust": "high", "expiresAt": (datetime.now(UTC) + timedelta(hours=2)).isoformat()},
    })
    policy = directory / f"{server}.policy.json"
    policy.write_bytes(compile_policy(srv, [grant], [session]).to_json())
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps(keyring.jwks()))
    return policy, jwks


def token(keyring: KeyRing, server: str) -> str:
    now = datetime.now(UTC)
    return issue_session_token(keyring, SessionClaims(
        session_id=SESSION, namespace=NAMESPACE, server=server, human_id="bench", agent_id=AGENT,
        team_id=TEAM, trust="high", expires_at=now + timedelta(hours=2), issued_at=now))


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_us_per_request: float | None = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to report CPU per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, headers: dict[str, str], body: str, concurrency: int, duration: float, workdir: Path) -> Run:
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--latency", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = int(errors.group(1)) if errors else 0
    if socket_errors:
        count += sum(int(x) for x in socket_errors.groups())
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Run(rps, p50, p99, count, total)


def mcp_session(url: str, headers: dict[str, str]) -> dict[str, str]:
    """Initialize an MCP session (the SDK server wants one); returns the headers that carry it."""
    init = httpx.post(url, headers=headers, timeout=10, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}})
    init.raise_for_status()
    session = {"Mcp-Session-Id": init.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-06-18"}
    httpx.post(url, headers={**headers, **session}, timeout=10,
               json={"jsonrpc": "2.0", "method": "notifications/initialized"}).raise_for_status()
    return session


def bench_upstream(name: str, upstream_argv: list[str], upstream_env: dict[str, str], cwd: Path | None,
                   keyring: KeyRing, workdir: Path, concurrency: list[int], duration: float,
                   needs_session: bool) -> list[tuple[int, Run, Run]]:
    up_port, gw_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}/mcp"
    gateway_url = f"http://127.0.0.1:{gw_port}/mcp"
    policy, jwks = policy_files(workdir, name, keyring)
    gateway_argv = [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream", upstream_url,
                    "--policy-file", str(policy), "--jwks-file", str(jwks), "--listen", f"127.0.0.1:{gw_port}",
                    "--log-level", "warning"]
    base_headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    auth = {"Authorization": f"Bearer {token(keyring, name)}"}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": "hello"}}})
    results = []
    with process(upstream_argv, upstream_url,
                 extra_env={**upstream_env, "PORT": str(up_port)}, cwd=cwd) as upstream, \
            process(gateway_argv, f"http://127.0.0.1:{gw_port}/readyz", ready_status=200) as gateway:
        session = mcp_session(gateway_url, {**base_headers, **auth}) if needs_session else {}
        direct_headers = {**base_headers, **session}
        gateway_headers = {**base_headers, **auth, **session}
        check = httpx.post(gateway_url, headers=gateway_headers, content=body, timeout=10)
        assert check.status_code == 200 and '"error"' not in check.text, check.text
        for c in concurrency:
            wrk(upstream_url, direct_headers, body, c, 1, workdir)  # warm up both paths
            wrk(gateway_url, gateway_headers, body, c, 1, workdir)
            before = cpu_seconds(upstream.pid)
            direct = wrk(upstream_url, direct_headers, body, c, duration, workdir)
            direct.cpu_us_per_request = (cpu_seconds(upstream.pid) - before) / max(direct.requests, 1) * 1e6
            before = cpu_seconds(gateway.pid)
            governed = wrk(gateway_url, gateway_headers, body, c, duration, workdir)
            governed.cpu_us_per_request = (cpu_seconds(gateway.pid) - before) / max(governed.requests, 1) * 1e6
            results.append((c, direct, governed))
            print(f"  {name:<14} c={c:<3} direct {direct.rps:8.0f} req/s p50 {direct.p50_ms:6.3f} ms "
                  f"p99 {direct.p99_ms:6.3f} ms | gateway {governed.rps:8.0f} req/s p50 {governed.p50_ms:6.3f} ms "
                  f"p99 {governed.p99_ms:6.3f} ms, {governed.cpu_us_per_request:.0f} us CPU/call | "
                  f"errors {direct.errors}/{governed.errors}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--only", choices=["python", "fast"], help="bench one upstream only")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed as the load generator: apt-get install wrk", file=sys.stderr)
        return 2
    keyring = KeyRing.generate()
    table: dict[str, list[tuple[int, Run, Run]]] = {}
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        workdir = Path(tmp)
        print(f"gateway overhead, {os.cpu_count()} CPUs, {args.duration:g} s per point, load generator wrk")
        if args.only in (None, "python"):
            table["data-utility"] = bench_upstream(
                "data-utility", [sys.executable, "app.py"], {"HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"},
                REPO / "examples" / "data-utility-mcp", keyring, workdir, args.concurrency, args.duration,
                needs_session=True)
        if args.only in (None, "fast"):
            table["fast"] = bench_upstream(
                "fast", [sys.executable, str(REPO / "bench" / "fast_upstream.py")], {}, None, keyring, workdir,
                args.concurrency, args.duration, needs_session=False)

    print("\nupstream        conc   direct/s  gateway/s  ratio   added p50   added p99  upstream CPU/call"
          "  gateway CPU/call")
    for name, rows in table.items():
        for c, direct, governed in rows:
            print(f"{name:<14} {c:>5} {direct.rps:>10.0f} {governed.rps:>10.0f} {governed.rps / direct.rps:>6.0%} "
                  f"{governed.p50_ms - direct.p50_ms:>8.3f} ms {governed.p99_ms - direct.p99_ms:>8.3f} ms "
                  f"{direct.cpu_us_per_request or 0:>14.0f} us {governed.cpu_us_per_request or 0:>14.0f} us")
    print("\ntargets (DESIGN.md section 15):")
    ok = True
    for name, rows in table.items():
        first = next((r for r in rows if r[0] == 1), None)
        if first is not None:
            added = first[2].p50_ms - first[1].p50_ms
            good = added <= 0.5
            ok &= good
            print(f"  {'PASS' if good else 'FAIL'} {name}: added p50 at concurrency 1 = {added:.3f} ms (<= 0.5 ms)")
    if "data-utility" in table:
        worst = min(g.rps / d.rps for _, d, g in table["data-utility"])
        good = worst >= 0.8
        ok &= good
        print(f"  {'PASS' if good else 'FAIL'} data-utility: lowest throughput ratio = {worst:.0%} (>= 80%)")
    if "fast" in table:
        best = max(g.rps for _, _, g in table["fast"])
        good = best >= 3000
        ok &= good
        print(f"  {'PASS' if good else 'FAIL'} fast upstream: governed calls/s = {best:.0f} (>= 3,000)")
    errors = sum(d.errors + g.errors for rows in table.values() for _, d, g in rows)
    if errors:
        ok = False
        print(f"  FAIL {errors} requests failed or were answered with errors")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
