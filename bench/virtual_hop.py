"""What the virtual-server hop adds to a tool call: `/v/<name>/mcp` vs the member's own governed route.

    .venv/bin/python bench/virtual_hop.py [--duration 5] [--concurrency 1 16]

One gateway process serves both paths to the same fast upstream (`bench/fast_upstream.py`): the direct
governed route `/fast/mcp`, and a virtual server `toolbox` with that one member (`/v/toolbox/mcp`,
tool `fast_echo`). Both are judged by the same policy document (the member's), so the difference is the
virtual hop alone: its session table, the name mapping, the member's backend session, the SSE relay.
`wrk` drives `tools/call` (bench/jsonrpc_load.lua); the gateway's CPU per call is read from /proc.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import REPO, IdRange, check_call, free_port, mcp_handshake, process, run_load, session_cpu_seconds, settle
from hops import virtual_gateway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}/mcp"
    with tempfile.TemporaryDirectory() as tmp, \
            process([sys.executable, str(REPO / "bench" / "fast_upstream.py"), str(up_port)], upstream), \
            virtual_gateway(upstream, Path(tmp)) as gateway:
        paths = {"direct": gateway.direct, "virtual": gateway.virtual}
        ids = IdRange()
        print(f"{'path':8} {'conc':>4} {'calls/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'gw CPU us/call':>15}")
        results: dict[tuple[str, int], tuple[float, float, float]] = {}
        for concurrency in args.concurrency:
            for name, (url, tool) in paths.items():
                auth = {"Authorization": f"Bearer {gateway.tokens[name]}"}
                headers = {**auth, **mcp_handshake(url, auth)}
                check_call(url, headers, tool)
                settle(gateway.pid)
                before = session_cpu_seconds(gateway.pid)
                load = run_load(url, headers, tool, concurrency, args.duration, ids.take())
                cpu = (session_cpu_seconds(gateway.pid) - before) / max(load.ok, 1) * 1e6
                rate = load.ok / load.seconds
                results[(name, concurrency)] = (rate, load.p50_ms, cpu)
                print(f"{name:8} {concurrency:>4} {rate:>9.0f} {load.p50_ms:>7.2f} {load.p99_ms:>7.2f} {cpu:>15.0f}"
                      f"{'' if load.bad == 0 and load.socket_errors == 0 else f'  ({load.bad} bad)'}")
        for concurrency in args.concurrency:
            d, v = results[("direct", concurrency)], results[("virtual", concurrency)]
            print(f"concurrency {concurrency}: virtual/direct throughput {v[0] / d[0]:.2f}, p50 {v[1] / d[1]:.2f}x "
                  f"(+{v[1] - d[1]:.2f} ms), CPU per call {v[2] / d[2]:.2f}x (+{v[2] - d[2]:.0f} us)")


if __name__ == "__main__":
    main()
