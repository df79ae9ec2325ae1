"""What the stdio bridge costs per tool call: the same SDK stdio server, called directly over stdio
(the SDK's stdio client, the baseline) and through `mcp-runtime bridge stdio` over Streamable HTTP,
in one run.

    .venv/bin/python bench/stdio_bridge.py [--calls 300]

Prints p50/p95 per call for both paths, the added p50, the ratio, and the bridge process's CPU per
call (from /proc, user+system, over the measured calls only; the server process is not counted).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import anyio
import httpx2
from harness import REPO
from hops import stdio_bridge
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

SERVER = REPO / "tests" / "fixtures" / "stdio" / "counter_server.py"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(session: ClientSession, calls: int) -> list[float]:
    for _ in range(20):  # warm-up
        await session.call_tool("pid", {})
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        await session.call_tool("bump", {})
        took.append(time.perf_counter() - started)
    return took


async def direct(calls: int) -> list[float]:
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER)])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return await _timed(session, calls)


async def bridged(url: str, calls: int, bridge_pid: int) -> tuple[list[float], float]:
    async with (
        httpx2.AsyncClient(timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        for _ in range(20):
            await session.call_tool("pid", {})
        cpu_before = _cpu_seconds(bridge_pid)
        took = []
        for _ in range(calls):
            started = time.perf_counter()
            await session.call_tool("bump", {})
            took.append(time.perf_counter() - started)
        return took, _cpu_seconds(bridge_pid) - cpu_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with stdio_bridge([sys.executable, str(SERVER)]) as bridge:
        base = anyio.run(direct, args.calls)
        through, cpu = anyio.run(bridged, bridge.url, args.calls, bridge.pid)

    def ms(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1000

    p50_base, p50_bridge = statistics.median(base) * 1000, statistics.median(through) * 1000
    print(f"calls per path          {args.calls}")
    print(f"direct stdio   p50 {p50_base:7.2f} ms  p95 {ms(base, 95):7.2f} ms")
    print(f"through bridge p50 {p50_bridge:7.2f} ms  p95 {ms(through, 95):7.2f} ms")
    print(f"added p50      {p50_bridge - p50_base:7.2f} ms   ratio {p50_bridge / p50_base:5.2f}x")
    print(f"bridge CPU per call {cpu / args.calls * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
