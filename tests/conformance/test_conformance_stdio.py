"""The official MCP conformance suite against the reference server hosted as a **stdio** server: the same
`reference_server.py`, run with `--stdio` behind `mcp-runtime bridge stdio` (one process per MCP session,
as every runtime hosts stdio servers) and behind the real gateway, as a differential against the recorded
results of that server reached directly over HTTP (`expected.json`). Every scenario must keep its verdict:
the bridge and the gateway together must be invisible to the suite.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
from conformance_suite import HERE, find_suite, governed, load_expected, run_suites

from fixtures.servers import run_server_process

pytestmark = pytest.mark.slow


def test_a_stdio_hosted_server_behind_the_gateway_keeps_every_verdict() -> None:
    suite = find_suite()
    expected = load_expected()["scenarios"]
    # the suite opens a session per scenario and ends none: room for all of them (one process each)
    bridge = [sys.executable, "-m", "mcp_runtime", "bridge", "stdio", "--host", "127.0.0.1",
              "--max-sessions", "100", "--log-level", "warning",
              "--", sys.executable, str(HERE / "reference_server.py"), "--stdio"]
    with run_server_process(bridge, cwd=HERE, env={"LOG_LEVEL": "warning"}) as server, \
            governed(server.url) as gov, tempfile.TemporaryDirectory(prefix="conformance-stdio-") as tmp:
        runs = run_suites(suite, {"stdio": gov.url}, Path(tmp))
    results = runs["stdio"].results
    assert set(results) == set(expected), runs["stdio"].output[-4000:]
    changed = {name: ("pass" if r.passed else "fail", expected[name]) for name, r in results.items()
               if ("pass" if r.passed else "fail") != expected[name]}
    assert not changed, "\n".join(f"{n}: {now} (over HTTP {then}) " + "; ".join(results[n].failures()[:2])
                                  for n, (now, then) in sorted(changed.items()))
