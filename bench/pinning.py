"""Tool-definition pinning: what it costs a `tools/list` answer, and how fast an approval takes effect.
Not a test.

    .venv/bin/python bench/pinning.py [--tools 50] [--lists 2000] [--approvals 20]

1. filter:  the gateway's `tools/list` filter (`ToolWatch.filter`) over an answer of N tools, on a server
            without pins (the baseline: the evaluator's allowed set only) and with every tool pinned
            (a canonical-JSON SHA-256 per tool, the evaluator per tool). Prints microseconds of CPU per
            answer and per tool, and the ratio pinned / unpinned.
2. approve: `platform.tools.approve` on an in-process platform (SQLite in a temp directory) whose published
            policy feeds an `InProcessPolicySource`, as in `mcp-runtime up`: the time from the approval
            call to the gateway's source holding the new revision and the evaluator allowing the call,
            against the baseline of enabling a grant (`access.set_grant_disabled`) taking effect the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from mcp_runtime.gateway.pinning import ToolWatch
from mcp_runtime.gateway.policy_source import InProcessPolicySource
from mcp_runtime.platform import Platform, PlatformSettings
from mcp_runtime.policy import Identity, allowed_tools, compile_policy, evaluate
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer
from mcp_runtime.resources.pinning import ToolPin, tool_digest

NS = "mcp-team-acme"
NOW = datetime.now(UTC)
BOB = Identity(agent_id="cursor", team_id="globex", session_id="s1")


def definitions(n: int, variant: str = "") -> list[dict[str, Any]]:
    return [{"name": f"tool{i}", "description": f"Tool number {i} does a useful thing.{variant}",
             "inputSchema": {"type": "object", "properties": {"a": {"type": "string", "description": "an a"},
                                                              "b": {"type": "integer"}}, "required": ["a"]},
             "annotations": {"readOnlyHint": True}} for i in range(n)]


def server(tools: list[dict[str, Any]], pinned: bool) -> MCPServer:
    return MCPServer.model_validate({"metadata": {"name": "payments", "namespace": NS}, "spec": {
        "image": "acme/payments", "tools": [{"name": t["name"], "sideEffect": "read",
                                             **({"pin": ToolPin.of(t).to_wire()} if pinned else {})} for t in tools]}})


def access(name: str = "payments") -> tuple[MCPAccessGrant, MCPAgentSession]:
    grant = MCPAccessGrant.model_validate({"metadata": {"name": "g", "namespace": NS}, "spec": {
        "serverRef": {"name": name}, "subject": {"agentID": "cursor", "teamID": "globex"}, "maxTrust": "high"}})
    session = MCPAgentSession.model_validate({"metadata": {"name": "s1", "namespace": NS}, "spec": {
        "serverRef": {"name": name}, "subject": {"agentID": "cursor", "teamID": "globex"}, "consentedTrust": "high",
        "expiresAt": NOW + timedelta(hours=1)}})
    return grant, session


def filter_cost(n: int, lists: int) -> None:
    tools = definitions(n)
    grant, session = access()
    results = {}
    for pinned in (False, True):
        doc = compile_policy(server(tools, pinned), [grant], [session])
        watch = ToolWatch()
        started = time.process_time()
        for _ in range(lists):
            allowed = set(allowed_tools(doc, BOB, NOW))
            visible = watch.filter(doc, BOB, NOW, allowed)
            shown = [t for t in tools if visible(t)]
        cpu = (time.process_time() - started) / lists
        assert len(shown) == n, "every reviewed tool must be shown"
        results[pinned] = cpu
        print(f"filter  {'pinned  ' if pinned else 'unpinned'} {n} tools: {cpu * 1e6:8.1f} us CPU per answer, "
              f"{cpu * 1e6 / n:6.2f} us per tool")
    print(f"filter  ratio pinned/unpinned: {results[True] / results[False]:.2f}")


def approve_to_effect(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform(PlatformSettings(data_dir=Path(tmp), admin_email="admin@example.com",
                                             admin_password="admin-password-1"))
        admin = platform.identity.principal(platform.store.get_user_by_email("admin@example.com"))  # type: ignore[arg-type]
        source = InProcessPolicySource()
        platform.publisher.subscribe(lambda ns, name, doc: doc is not None and source.push(doc))
        reviewed = definitions(1)
        platform.repo.create(server(reviewed, pinned=True), "bench")
        grant, session = access()
        platform.repo.create(grant, "bench")
        platform.repo.create(session, "bench")
        platform.policies.recompile(NS, "payments")
        approvals, grants = [], []
        for i in range(rounds):
            changed = definitions(1, variant=f" v{i}")
            seen = {"tool0": tool_digest(changed[0])}
            platform.tools.record(NS, "payments", {"tool0": {"digest": seen["tool0"], "definition": changed[0]}})
            doc = source.document
            assert doc is not None and not evaluate(doc, BOB, "tool0", NOW, observed=seen).allowed
            started = time.perf_counter()
            platform.tools.approve(admin, NS, "payments", ["tool0"])
            assert source.document is not None and evaluate(source.document, BOB, "tool0", NOW, observed=seen).allowed
            approvals.append(time.perf_counter() - started)
            platform.access.set_grant_disabled(admin, NS, "g", True)
            started = time.perf_counter()
            platform.access.set_grant_disabled(admin, NS, "g", False)
            assert source.document is not None and evaluate(source.document, BOB, "tool0", NOW, observed=seen).allowed
            grants.append(time.perf_counter() - started)
        platform.close()
    a, g = statistics.median(approvals) * 1000, statistics.median(grants) * 1000
    print(f"approve to effect: median {a:.1f} ms, max {max(approvals) * 1000:.1f} ms over {rounds} approvals")
    print(f"grant enable to effect (baseline): median {g:.1f} ms; ratio approve/grant {a / g:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", type=int, default=50)
    parser.add_argument("--lists", type=int, default=2000)
    parser.add_argument("--approvals", type=int, default=20)
    args = parser.parse_args()
    filter_cost(args.tools, args.lists)
    approve_to_effect(args.approvals)


if __name__ == "__main__":
    main()
