"""The official MCP conformance suite, directly against a reference server and through the gateway.

A differential test: every server scenario of `@modelcontextprotocol/conformance` (`--suite all`) runs
against two copies of `reference_server.py`, one reached directly and one behind the real gateway
(`mcp-runtime gateway run`, policy compiled from the server's tools/list, an allow-all grant and a
valid session token). The gateway must not change any verdict: same scenarios passing, same checks
succeeding, failing or warning. Both must also match `expected.json` (the direct results when it was
last regenerated, see docs/conformance.md), so a change on either side is noticed.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conformance_suite import (
    EXPECTED_FILE,
    Governed,
    ScenarioResult,
    find_suite,
    governed,
    load_expected,
    reference_server,
    run_suites,
    summary_table,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow


def _decisions(gateway_url: str) -> Counter[tuple[str, str]]:
    """(decision, reason) -> count, from the gateway's own /metrics."""
    text = httpx.get(gateway_url.removesuffix("/mcp") + "/metrics", timeout=5).text
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "mcp_gateway_decisions":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[(sample.labels["decision"], sample.labels["reason"])] += int(sample.value)
    return counts


def _differences(direct: dict[str, ScenarioResult], gateway: dict[str, ScenarioResult]) -> list[str]:
    lines = []
    for name in sorted(set(direct) | set(gateway)):
        d, g = direct.get(name), gateway.get(name)
        if d is None or g is None:
            lines.append(f"{name}: only run {'through the gateway' if d is None else 'directly'}")
        elif d.verdicts != g.verdicts:
            lines.append(f"{name}: direct {sorted(d.verdicts.items())}\n    gateway {sorted(g.verdicts.items())}"
                         + "".join(f"\n    gateway failure: {f}" for f in g.failures()))
    return lines


def test_gateway_passes_exactly_what_the_server_passes_directly() -> None:
    suite = find_suite()
    expected = load_expected()
    with reference_server() as direct_url, reference_server() as governed_upstream, \
            governed(governed_upstream) as gov, tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        _assert_gateway_enforces(gov)
        runs = run_suites(suite, {"direct": direct_url, "gateway": gov.url}, Path(tmp))
        decisions = _decisions(gov.gateway_url)
        gateway_log = gov.gateway_log.read_text(errors="replace")

    direct, gateway = runs["direct"].results, runs["gateway"].results
    print("\n" + summary_table(direct, gateway, expected["scenarios"]))

    # The suite ran every scenario it has, both ways.
    assert direct, f"no results from the suite run directly:\n{runs['direct'].output[-4000:]}"
    assert set(direct) == set(expected["scenarios"]), (
        f"the suite's scenarios changed: new {sorted(set(direct) - set(expected['scenarios']))}, "
        f"gone {sorted(set(expected['scenarios']) - set(direct))}; regenerate expected.json (docs/conformance.md)")
    # Differential: the gateway changes no verdict of any check.
    differences = _differences(direct, gateway)
    assert not differences, ("the gateway changed conformance results:\n" + "\n".join(differences)
                             + f"\n--- gateway log:\n{gateway_log[-4000:]}")
    # And the direct results are the recorded ones.
    actual = {name: "pass" if r.passed else "fail" for name, r in direct.items()}
    changed = {n: (expected["scenarios"][n], actual[n]) for n in actual if actual[n] != expected["scenarios"][n]}
    assert not changed, (f"results differ from {EXPECTED_FILE.name} (expected, now): {changed}\n"
                         + "\n".join(f for n in changed for f in direct[n].failures()))
    warned = {name: r.warnings() for name, r in direct.items() if r.warnings()}
    assert warned == expected.get("warnings", {})

    # The gateway really decided the traffic: the grant allowed it all; the one denial is the control request.
    assert decisions.pop(("deny", "missing_identity"), 0) == 1, decisions
    assert decisions[("allow", "allowed")] > 0, decisions
    assert [key for key in decisions if key[0] != "allow"] == [], decisions


def _assert_gateway_enforces(gov: Governed) -> None:
    """Control: the same gateway, without the injected token, refuses the request."""
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                             "clientInfo": {"name": "control", "version": "0"}}}
    answer = httpx.post(gov.gateway_url, json=initialize, timeout=5,
                        headers={"Accept": "application/json, text/event-stream"})
    assert answer.status_code == 401, answer.text
    # Every tool the server lists is declared with a side effect: no tool_side_effect_unknown masking.
    assert sorted(t.name for t in gov.policy.tools if t.side_effect is not None) == sorted(gov.tools)
