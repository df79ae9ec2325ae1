"""The soak's short form in CI: two minutes of mixed traffic through `mcp-runtime up` (bench/soak.py; the
30-minute run and its figures are in bench/README.md).

Calls, lists, denials, a grant disabled and enabled every few seconds, sessions issued and revoked: no
outcome other than the expected ones, every revocation enforced, the analytics count equal to the audited
requests made (none lost, none doubled), and the platform's memory and open files flat after warm-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.servers import REPO_ROOT

pytestmark = pytest.mark.slow


def test_two_minutes_of_mixed_traffic_through_up(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'src'}{os.pathsep}{REPO_ROOT / 'tests'}"}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "soak.py"), "--minutes", "2", "--json",
                           str(out)], capture_output=True, text=True, timeout=900, env=env)
    print(done.stdout)
    assert out.exists(), done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["unexpected_count"] == 0, result["unexpected"]
    assert result["requests"] > 1000
    assert result["analytics_events"] == result["requests"]
    assert result["revocations"] >= 5 and result["grant_toggles"] >= 20
    outcomes = result["outcomes"]
    assert outcomes.get("call after revoke: session_revoked") == result["revocations"]
    assert outcomes.get("claude call echo: ok", 0) > 0 and outcomes.get("claude call echo: no_matching_grant", 0) > 0
    assert result["rss_mb_end"] - result["rss_mb_warm"] < 50, result["samples"]
    assert result["open_files_end"] <= result["open_files_warm"] + 10, result["samples"]
    assert done.returncode == 0, done.stdout + done.stderr
