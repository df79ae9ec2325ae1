"""The load bench's short form in CI: 1,000 open SSE streams and 200 tool-calling clients for a minute
against one gateway process, with two clients that never read (bench/gateway_load.py runs it; the long
run and its figures are in bench/README.md).

Asserted is what a user would notice, not speed (the figures are the bench's job): no call and no stream
fails, every stream is still alive at the end, every caller keeps getting answers while the slow readers
hang on (per-connection back-pressure: nobody is stalled), nothing is left in flight afterwards, and the
gateway's memory stays bounded (far below what buffering the firehose streams would take).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.servers import REPO_ROOT

pytestmark = pytest.mark.slow

RSS_BOUND_MB = 600  # the slow readers' upstream produces ~hundreds of MB/s: buffering it would blow this


def test_thousand_streams_and_two_hundred_callers_with_slow_readers(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "gateway_load.py"), "--streams", "1000",
                           "--callers", "200", "--slow", "2", "--duration", "60", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    print(done.stdout)
    assert out.exists(), done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["streams_opened"] == 1000 and result["streams_alive_at_end"] == 1000, result["stream_errors"]
    assert not result["stream_errors"] and not result["call_errors"], (result["stream_errors"], result["call_errors"])
    phase_a, phase_b = result["phases"]
    assert phase_a["calls"] > 0 and phase_b["calls"] > 0 and phase_a["errors"] == phase_b["errors"] == 0
    assert result["callers_without_calls_in_b"] == 0, "a caller was stalled while the slow readers hung on"
    assert result["slow_clients"] == 2
    assert result["inflight_after"] == 0
    assert result["rss_mb_peak"] < RSS_BOUND_MB, result
    assert done.returncode == 0, done.stdout + done.stderr
