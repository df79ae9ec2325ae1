"""Policy replay (`access simulate`) speed: recorded calls replayed per second, against direct baselines. Not a test.

    .venv/bin/python bench/replay.py [--events 200000] [--quick]

One run, on a fresh SQLite event store in a temp directory holding a week of one server's tool calls (plus
other servers' traffic, which the replay must skip):

1. read:    every `tools/call` event of the server in the window, page by page as `runtime/simulate` reads
            them (`store.events`, parsed into `AnalyticsEvent`): the I/O a replay cannot avoid;
2. decide:  `evaluate` twice per call (current and proposed document) on prepared inputs: the least
            decision work a replay can do;
3. core:    `policy.replay.Replayer.add` on prepared `RecordedCall`s (the recorded session put back into
            the document, both decisions, grouping);
4. replay:  the whole path of `runtime/simulate` after the change is compiled: read + `recorded_call` + core.

It prints events/s and CPU microseconds per event for each, and the ratios core/decide and replay/read.
It checks that the replay saw every call and that the change it replays (deleting one grant) changed
exactly the calls that grant allowed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from mcp_runtime.platform.simulate import recorded_call, recorded_calls
from mcp_runtime.policy import (
    PolicyDocument,
    RecordedCall,
    Replayer,
    compile_policy,
    evaluate,
    session_state,
)
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.sentinel.sqlite_store import SQLiteEventStore

NS = "mcp-team-acme"
TOOLS = [{"name": f"tool{i}", "sideEffect": ["read", "write"][i % 2], "requiredTrust": ["low", "medium"][i % 2]}
         for i in range(7)]
AGENTS = 20
NOW = datetime.now(UTC).replace(microsecond=0)


def documents() -> tuple[PolicyDocument, PolicyDocument]:
    server = MCPServer.model_validate({"metadata": {"name": "payments", "namespace": NS},
                                       "spec": {"image": "acme/payments", "tools": TOOLS}})
    grants = [MCPAccessGrant.model_validate({
        "metadata": {"name": f"grant-{i:02d}", "namespace": NS},
        "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": f"agent{i}", "teamID": "globex"},
                 "maxTrust": ["low", "medium", "high"][i % 3],
                 "toolRules": [{"name": f"tool{t}"} for t in range(7) if (t + i) % 3]}}) for i in range(AGENTS)]
    sessions = [MCPAgentSession.model_validate({
        "metadata": {"name": f"s-{i}", "namespace": NS},
        "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": f"agent{i}", "teamID": "globex"},
                 "consentedTrust": ["low", "medium", "high"][i % 3], "expiresAt": NOW + timedelta(days=30)}})
        for i in range(AGENTS)]
    current = compile_policy(server, grants, sessions)
    return current, compile_policy(server, grants[1:], sessions)  # the change: delete grant-00


def recorded_week(current: PolicyDocument, count: int) -> list[AnalyticsEvent]:
    """What the gateway records for `count` calls of the server over the last week, decided by `current`."""
    from mcp_runtime.policy import Identity

    events = []
    step = timedelta(days=7) / count
    for i in range(count):
        agent = i % AGENTS
        identity = Identity(human_id=f"user{agent}@globex.com", agent_id=f"agent{agent}", team_id="globex",
                            session_id=f"s-{agent}")
        at = NOW - timedelta(days=7) + i * step
        tool = f"tool{(i // AGENTS) % 7}"
        decision = evaluate(current, identity, tool, at)
        state, session = session_state(current, identity, at)
        events.append(AnalyticsEvent(
            timestamp=at, server="payments", namespace=NS, team_id="acme", human_id=identity.human_id,
            agent_id=identity.agent_id, subject_team_id="globex", session_id=identity.session_id,
            rpc_method="tools/call", tool_name=tool, decision="allow" if decision.allowed else "deny",
            reason=str(decision.reason), matched_grant=decision.matched_grant, status=200, latency_ms=1.0,
            policy_revision=current.revision, event_version=2, session_state=str(state),
            consented_trust=str(session.consented_trust) if session else None, arguments_digest="0" * 64))
    return events


def noise(count: int) -> list[AnalyticsEvent]:
    return [AnalyticsEvent(timestamp=NOW - timedelta(minutes=i % 10_000), server=f"other{i % 5}", namespace=NS,
                           rpc_method="tools/call", tool_name="echo", decision="allow", reason="allowed",
                           status=200, latency_ms=1.0) for i in range(count)]


def measure(label: str, count: int, run: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = count / wall
    print(f"{label:<58} {count:>9,} calls  {rate:>11,.0f} calls/s  {cpu / count * 1e6:>7.1f} us CPU/call")
    return rate, cpu / count, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="recorded calls of the server")
    parser.add_argument("--quick", action="store_true", help="20,000 calls: a smoke run")
    args = parser.parse_args()
    count = 20_000 if args.quick else args.events
    current, proposed = documents()
    events = recorded_week(current, count)
    # deleting grant-00 leaves agent0 without a grant: all its calls change (allowed ones are lost)
    expected_changes = sum(1 for e in events if e.agent_id == "agent0")
    expected_lost = sum(1 for e in events if e.matched_grant == "grant-00" and e.decision == "allow")
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        store = SQLiteEventStore(Path(tmp) / "analytics.db", synchronous="NORMAL")
        for start in range(0, count, 5_000):
            store.insert(events[start:start + 5_000])
        store.insert(noise(count // 4))
        since, until = NOW - timedelta(days=8), NOW + timedelta(minutes=1)
        print(f"a week of {count:,} tool calls of one server (+{count // 4:,} of other servers), SQLite, "
              f"{AGENTS} grants and sessions; the change replayed: deleting one grant")

        def read() -> int:
            from mcp_runtime.sentinel.store import MAX_QUERY_ROWS, UsageFilter

            flt = UsageFilter(server="payments", namespace=NS, method="tools/call", since=since, until=until)
            seen, after = 0, None
            while True:
                page = store.events(flt, MAX_QUERY_ROWS, after_event_id=after)
                seen += len(page)
                if len(page) < MAX_QUERY_ROWS:
                    return seen
                after = page[-1].event_id

        calls: list[RecordedCall] = [recorded_call(e) for e in events]
        prepared = [(c.identity, c.tool, c.at) for c in calls]

        def decide() -> int:
            for identity, tool, at in prepared:
                evaluate(current, identity, tool, at)
                evaluate(proposed, identity, tool, at)
            return len(prepared)

        def core() -> Any:
            replayer = Replayer(current, proposed)
            for call in calls:
                replayer.add(call)
            return replayer.report()

        def replay() -> Any:
            replayer = Replayer(current, proposed)
            for call in recorded_calls(store, NS, "payments", since, until):
                replayer.add(call)
            return replayer.report()

        read_rate, _, seen = measure("1. read the window (store.events pages)", count, read)
        decide_rate, _, _ = measure("2. decide: evaluate x2 on prepared inputs", count, decide)
        core_rate, _, core_report = measure("3. core: Replayer.add on RecordedCalls", count, core)
        replay_rate, _, report = measure("4. replay: read + recorded_call + core (runtime/simulate)", count, replay)
        store.close()
    print(f"core / decide: {core_rate / decide_rate:.2f}   replay / read: {replay_rate / read_rate:.2f}")
    ok = (seen == count and report.replayed == count and report.changed == expected_changes == core_report.changed
          and report.newly_denied == expected_lost)
    print(f"[{'ok' if ok else 'MISMATCH'}] replayed {report.replayed:,} of {count:,}; changed {report.changed:,} "
          f"(expected {expected_changes:,}), newly denied {report.newly_denied:,} (expected {expected_lost:,}); "
          f"drifted {report.drifted}")
    return 0 if ok and report.drifted == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
