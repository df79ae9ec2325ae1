"""The analytics stores, SQLite and ClickHouse (real engine, in process through chdb), run the same cases.

What a platform team would notice: an event delivered twice counts once; the Tools table of the
multi-team tutorial (server, tool, user, team, agent, calls, denied) shows cross-team calls; a team sees
the traffic of its own servers and the calls it made, nothing else; both stores answer identically.
"""

from __future__ import annotations

import random
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_runtime.sentinel.clickhouse_store import ChdbExecutor, ClickHouseEventStore, event_json_row
from mcp_runtime.sentinel.events import AnalyticsEvent, new_event_id
from mcp_runtime.sentinel.open_store import open_event_store
from mcp_runtime.sentinel.sqlite_store import SQLiteEventStore
from mcp_runtime.sentinel.store import EVENT_COLUMNS, EventStore, TimeBucket, UsageFilter

ACME_NS, GLOBEX_NS = "mcp-team-acme", "mcp-team-globex"
ACME, GLOBEX, INITECH = "team-acme-uuid", "team-globex-uuid", "team-initech-uuid"
T0 = datetime(2026, 11, 20, 9, 0, 0, 123456, tzinfo=UTC)


def event(minutes: float, *, server: str = "payments", namespace: str = ACME_NS, team: str | None = GLOBEX,
          human: str | None = "bob@globex.com", agent: str | None = "cursor", tool: str | None = "refund",
          decision: str = "allow", reason: str | None = None, method: str = "tools/call",
          latency: float = 2.0) -> AnalyticsEvent:
    return AnalyticsEvent(
        timestamp=T0 + timedelta(minutes=minutes), server=server, namespace=namespace, team_id=team,
        human_id=human, agent_id=agent, subject_team_id=team, session_id="sess-1" if human else None,
        rpc_method=method, tool_name=tool, decision=decision,  # type: ignore[arg-type]
        reason=reason or ("allowed" if decision == "allow" else "tool_not_granted"),
        matched_grant="globex-payments" if decision == "allow" else None, required_trust="medium",
        effective_trust="high", side_effect="write", status=200 if decision == "allow" else 403,
        latency_ms=latency, bytes_in=120, bytes_out=340, policy_revision="rev-1")


def tutorial_events() -> list[AnalyticsEvent]:
    """Acme owns `payments`; Globex's bob calls it through Cursor; Acme's alice too; Globex owns `ledger`."""
    return [
        event(0),                                                                    # bob: refund ok
        event(5),                                                                    # bob: refund ok
        event(10, tool="void", decision="deny"),                                     # bob: void denied
        event(70, team=ACME, human="alice@acme.com", agent="claude", tool="refund"),  # alice, next hour
        event(75, team=ACME, human="alice@acme.com", agent="claude", tool=None, method="tools/list"),
        event(190, server="ledger", namespace=GLOBEX_NS, tool="post", latency=4.0),  # bob, own server
        event(24 * 60 + 1, team=None, human=None, agent=None, tool="refund", decision="deny",
              reason="missing_identity"),                                           # anonymous, next day
    ]


# ---------------------------------------------------------------------------------------------------
# The two stores behind one fixture
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chdb_executor() -> Iterator[ChdbExecutor]:
    with tempfile.TemporaryDirectory(prefix="chdb-") as path:
        executor = ChdbExecutor(path)
        yield executor
        executor.close()


def new_clickhouse_store(executor: ChdbExecutor, ttl_days: int | None = 30) -> ClickHouseEventStore:
    return ClickHouseEventStore(executor, database=f"t_{uuid.uuid4().hex[:12]}", ttl_days=ttl_days)


def drop(store: ClickHouseEventStore) -> None:
    store.executor.command(f"DROP DATABASE IF EXISTS {store.database}")


@pytest.fixture(params=["sqlite", "clickhouse"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        sqlite = SQLiteEventStore(tmp_path / "analytics.db")
        yield sqlite
        sqlite.close()
    else:
        clickhouse = new_clickhouse_store(request.getfixturevalue("chdb_executor"))
        yield clickhouse
        drop(clickhouse)


@pytest.fixture
def loaded(store: EventStore) -> EventStore:
    store.insert(tutorial_events())
    return store


ADMIN = UsageFilter()


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def test_the_same_event_delivered_again_counts_once(store: EventStore) -> None:
    events = tutorial_events()
    first = store.insert(events)
    assert (first.accepted, first.duplicates) == (7, 0)
    again = store.insert([events[0], events[0], events[3], event(300)])  # a replay plus one new event
    assert (again.accepted, again.duplicates) == (1, 3)
    assert store.count() == 8
    assert store.totals(ADMIN).events == 8
    assert store.insert([]).accepted == 0


def test_stored_events_come_back_exactly(store: EventStore) -> None:
    events = tutorial_events()
    tricky = event(1, server="o'brien\\svc", tool="naïve \"tool\" ✓\ttab", human="x'; DROP TABLE x; --")
    store.insert([*events, tricky])
    assert sorted(store.events(ADMIN), key=lambda e: e.event_id) == sorted([*events, tricky],
                                                                           key=lambda e: e.event_id)
    assert store.by_tool(UsageFilter(server="o'brien\\svc"))[0].tool == "naïve \"tool\" ✓\ttab"
    assert store.totals(UsageFilter(human="x'; DROP TABLE x; --")).events == 1


def test_concurrent_writers_of_overlapping_batches_store_each_event_once(store: EventStore) -> None:
    events = [event(i / 10, human=f"user{i % 7}") for i in range(300)]
    results = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        sample = rng.sample(events, 200)
        for start in range(0, len(sample), 25):
            results.append(store.insert(sample[start:start + 25]))

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = {e.event_id for e in store.events(ADMIN, limit=1000)}
    written = set().union(*[{e.event_id for e in random.Random(s).sample(events, 200)} for s in range(4)])
    assert stored == written
    assert store.totals(ADMIN).events == len(written)
    assert sum(r.accepted + r.duplicates for r in results) == 800


# ---------------------------------------------------------------------------------------------------
# The queries
# ---------------------------------------------------------------------------------------------------


def test_tools_table_shows_who_from_which_team_called_what(loaded: EventStore) -> None:
    rows = [(r.server, r.tool, r.human_id, r.team_id, r.agent_id, r.calls, r.denied)
            for r in loaded.by_tool(ADMIN)]
    assert rows == [
        ("payments", "refund", "bob@globex.com", GLOBEX, "cursor", 2, 0),
        ("payments", "refund", None, None, None, 1, 1),
        ("payments", "refund", "alice@acme.com", ACME, "claude", 1, 0),
        ("payments", "void", "bob@globex.com", GLOBEX, "cursor", 1, 1),
        ("ledger", "post", "bob@globex.com", GLOBEX, "cursor", 1, 0),
    ]  # most calls first, then by namespace, server, tool, human (anonymous first), team, agent
    top = loaded.by_tool(ADMIN)[0]
    assert top.namespace == ACME_NS and top.last_seen == T0 + timedelta(minutes=5)
    assert len(loaded.by_tool(ADMIN, limit=2)) == 2


def test_totals_servers_actors_and_reasons(loaded: EventStore) -> None:
    totals = loaded.totals(ADMIN)
    assert (totals.events, totals.allowed, totals.denied) == (7, 5, 2)
    assert (totals.humans, totals.agents, totals.servers) == (2, 2, 2)

    servers = loaded.by_server(ADMIN)
    assert [(s.namespace, s.server, s.calls, s.allowed, s.denied, s.tool_calls, s.humans, s.agents)
            for s in servers] == [(ACME_NS, "payments", 6, 4, 2, 5, 2, 2),
                                  (GLOBEX_NS, "ledger", 1, 1, 0, 1, 1, 1)]
    assert servers[0].avg_latency_ms == pytest.approx(2.0)
    assert servers[0].last_seen == T0 + timedelta(minutes=24 * 60 + 1)

    actors = {(a.human_id, a.agent_id, a.team_id): (a.calls, a.allowed, a.denied, a.servers)
              for a in loaded.by_actor(ADMIN)}
    assert actors == {("bob@globex.com", "cursor", GLOBEX): (4, 3, 1, 2),
                      ("alice@acme.com", "claude", ACME): (2, 2, 0, 1),
                      (None, None, None): (1, 0, 1, 1)}
    assert loaded.by_actor(ADMIN)[0].human_id == "bob@globex.com"

    reasons = [(r.decision, r.reason, r.count) for r in loaded.by_reason(ADMIN)]
    assert reasons == [("allow", "allowed", 5), ("deny", "missing_identity", 1),
                       ("deny", "tool_not_granted", 1)]


def test_time_series_fills_empty_buckets(loaded: EventStore) -> None:
    hours = loaded.time_series(ADMIN, "hour")
    assert hours[0] == TimeBucket(start=datetime(2026, 11, 20, 9, tzinfo=UTC), calls=3, allowed=2, denied=1)
    assert hours[1] == TimeBucket(start=datetime(2026, 11, 20, 10, tzinfo=UTC), calls=2, allowed=2, denied=0)
    assert hours[2].calls == 0 and hours[3].calls == 1
    assert hours[-1] == TimeBucket(start=datetime(2026, 11, 21, 9, tzinfo=UTC), calls=1, allowed=0, denied=1)
    assert len(hours) == 25 and sum(h.calls for h in hours) == 7
    days = loaded.time_series(ADMIN, "day")
    assert [(d.start.day, d.calls, d.allowed, d.denied) for d in days] == [(20, 6, 5, 1), (21, 1, 0, 1)]
    assert loaded.time_series(UsageFilter(server="nothing-here"), "hour") == []
    # a window: one bucket per hour of it, even the empty ones at either end
    window = UsageFilter(since=datetime(2026, 11, 20, 7, 30, tzinfo=UTC), until=datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert [(b.start.hour, b.calls) for b in loaded.time_series(window, "hour")] == [
        (7, 0), (8, 0), (9, 3), (10, 2), (11, 0)]
    quiet = UsageFilter(server="nothing-here", since=datetime(2026, 11, 1, tzinfo=UTC),
                        until=datetime(2026, 11, 3, tzinfo=UTC))
    assert [(b.start.day, b.calls) for b in loaded.time_series(quiet, "day")] == [(1, 0), (2, 0)]
    forever = UsageFilter(since=datetime(2000, 1, 1, tzinfo=UTC))  # too many hours: the data's range
    assert len(loaded.time_series(forever, "hour")) == 25
    with pytest.raises(ValueError):
        loaded.time_series(ADMIN, "week")  # type: ignore[arg-type]


def test_filters_narrow_by_server_team_agent_decision_and_time(loaded: EventStore) -> None:
    assert loaded.totals(UsageFilter(server="ledger")).events == 1
    assert loaded.totals(UsageFilter(namespace=ACME_NS)).events == 6
    assert loaded.totals(UsageFilter(team=GLOBEX)).events == 4
    assert loaded.totals(UsageFilter(agent="claude")).events == 2
    assert loaded.totals(UsageFilter(human="alice@acme.com")).events == 2
    assert loaded.totals(UsageFilter(tool="void")).events == 1
    assert loaded.totals(UsageFilter(decision="deny")).denied == 2
    assert loaded.totals(UsageFilter(decision="deny")).allowed == 0
    # since is inclusive, until exclusive
    assert loaded.totals(UsageFilter(since=T0 + timedelta(minutes=5))).events == 6
    assert loaded.totals(UsageFilter(until=T0 + timedelta(minutes=5))).events == 1
    window = UsageFilter(since=T0 + timedelta(minutes=60), until=T0 + timedelta(hours=24))
    assert loaded.totals(window).events == 3
    naive = (T0 + timedelta(minutes=5)).replace(tzinfo=None)  # naive datetimes are taken as UTC
    assert loaded.totals(UsageFilter(since=naive)).events == 6
    assert loaded.totals(UsageFilter(server="payments", team=GLOBEX, decision="allow")).events == 2


def test_recent_is_newest_first_and_events_pages_forward(loaded: EventStore) -> None:
    recent = loaded.recent(ADMIN, limit=3)
    assert [e.timestamp for e in recent] == sorted((e.timestamp for e in recent), reverse=True)
    assert recent[0].reason == "missing_identity" and len(recent) == 3

    pages, after = [], None
    while page := loaded.events(ADMIN, limit=3, after_event_id=after):
        pages.append(page)
        after = page[-1].event_id
    ids = [e.event_id for page in pages for e in page]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert ids == sorted(ids) and len(set(ids)) == 7

    # following: nothing new after the last id until a new event arrives
    assert loaded.events(ADMIN, after_event_id=after) == []
    newer = event(400)
    loaded.insert([newer])
    assert loaded.events(ADMIN, after_event_id=after) == [newer]
    assert loaded.events(UsageFilter(server="ledger"), after_event_id=after) == []


# ---------------------------------------------------------------------------------------------------
# Visibility: a team sees its servers' traffic and its own calls
# ---------------------------------------------------------------------------------------------------


def test_owning_team_sees_all_traffic_of_its_servers(loaded: EventStore) -> None:
    acme = UsageFilter.for_teams([ACME_NS], [ACME])
    assert loaded.totals(acme).events == 6  # payments: globex's, alice's and the anonymous calls
    assert {r.server for r in loaded.by_server(acme)} == {"payments"}
    assert {(r.human_id, r.team_id) for r in loaded.by_tool(acme)} == {
        ("bob@globex.com", GLOBEX), ("alice@acme.com", ACME), (None, None)}


def test_calling_team_sees_its_calls_to_other_teams_servers_but_not_theirs(loaded: EventStore) -> None:
    globex = UsageFilter.for_teams([GLOBEX_NS], [GLOBEX])
    assert loaded.totals(globex).events == 4  # 3 calls to acme's payments + its own ledger
    assert {r.human_id for r in loaded.by_tool(globex)} == {"bob@globex.com"}
    assert all(e.team_id == GLOBEX for e in loaded.events(globex))
    visible_ids = {e.event_id for e in loaded.events(globex)}
    assert {e.event_id for e in loaded.recent(globex, limit=100)} == visible_ids
    assert sum(b.calls for b in loaded.time_series(globex, "day")) == 4
    assert {(a.human_id, a.team_id) for a in loaded.by_actor(globex)} == {("bob@globex.com", GLOBEX)}
    # narrowing never widens visibility
    assert loaded.totals(UsageFilter.for_teams([GLOBEX_NS], [GLOBEX], team=ACME)).events == 0


def test_a_team_sees_its_servers_in_shared_namespaces_but_not_their_neighbours(loaded: EventStore) -> None:
    org = "mcp-servers-org"
    loaded.insert([event(30, server="search", namespace=org),  # globex's bob -> initech's org server
                   event(31, server="search", namespace=org, team=ACME, human="alice@acme.com"),
                   event(32, server="wiki", namespace=org, team=ACME, human="alice@acme.com")])  # not initech's
    initech = UsageFilter.for_teams(["mcp-team-initech"], [INITECH], servers=[(org, "search")])
    assert loaded.totals(initech).events == 2
    assert {(r.server, r.human_id, r.team_id) for r in loaded.by_tool(initech)} == {
        ("search", "bob@globex.com", GLOBEX), ("search", "alice@acme.com", ACME)}
    # the three visibility rules add up: acme's namespace, acme's own calls anywhere, and a shared server
    acme = UsageFilter.for_teams([ACME_NS], [ACME], servers=[(org, "search")])
    assert loaded.totals(acme).events == 6 + 1 + 2  # payments, alice's call to wiki, both search calls
    assert loaded.totals(UsageFilter(visible_servers=[(org, "wiki"), (GLOBEX_NS, "ledger")])).events == 2


def test_a_team_with_no_traffic_and_empty_visibility_see_nothing(loaded: EventStore) -> None:
    for nothing in (UsageFilter.for_teams(["mcp-team-initech"], [INITECH]), UsageFilter.for_teams([], []),
                    UsageFilter(visible_namespaces=[]),  # type: ignore[arg-type]
                    UsageFilter(visible_team_ids=("no-such-team",)), UsageFilter(visible_servers=()),
                    UsageFilter.for_teams([], [], servers=[(ACME_NS, "no-such-server")])):
        assert loaded.totals(nothing).events == 0
        assert loaded.by_tool(nothing) == [] and loaded.by_server(nothing) == []
        assert loaded.events(nothing) == [] and loaded.recent(nothing) == []
        assert loaded.by_reason(nothing) == [] and loaded.time_series(nothing) == []
    # one side set and the other None: fails closed to the side that is set
    assert loaded.totals(UsageFilter(visible_namespaces=(GLOBEX_NS,))).events == 1
    assert loaded.totals(UsageFilter(visible_team_ids=(ACME,))).events == 2


def test_a_single_string_is_not_taken_as_a_list_of_namespaces() -> None:
    with pytest.raises(TypeError):
        UsageFilter(visible_namespaces="mcp-team-acme")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        UsageFilter(visible_team_ids="team-acme-uuid")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# Zero loss: any batching, any repeats, exactly the unique set
# ---------------------------------------------------------------------------------------------------

_POOL = [event(i * 7.5, human=f"user{i % 5}", team=[ACME, GLOBEX, None][i % 3],
               decision="deny" if i % 4 == 0 else "allow") for i in range(60)]
deliveries = st.lists(st.lists(st.integers(0, len(_POOL) - 1), min_size=0, max_size=40),
                      min_size=1, max_size=12)


def assert_exactly_unique(store: EventStore, batches: list[list[int]]) -> None:
    expected: set[str] = set()
    for batch in batches:
        before = len(expected)
        expected.update(_POOL[i].event_id for i in batch)
        result = store.insert([_POOL[i] for i in batch])
        assert result.accepted == len(expected) - before
        assert result.accepted + result.duplicates == len(batch)
    assert store.count() == len(expected)
    assert {e.event_id for e in store.events(ADMIN, limit=1000)} == expected
    assert store.totals(ADMIN).events == len(expected)
    assert sum(r.calls for r in store.by_server(ADMIN)) == len(expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=deliveries)
def test_zero_loss_sqlite(batches: list[list[int]]) -> None:
    with tempfile.TemporaryDirectory() as path:
        store = SQLiteEventStore(Path(path) / "a.db")
        try:
            assert_exactly_unique(store, batches)
        finally:
            store.close()


def test_zero_loss_clickhouse(chdb_executor: ChdbExecutor) -> None:
    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batches=deliveries)
    def check(batches: list[list[int]]) -> None:
        store = new_clickhouse_store(chdb_executor)
        try:
            assert_exactly_unique(store, batches)
        finally:
            drop(store)

    check()


# ---------------------------------------------------------------------------------------------------
# Store specifics
# ---------------------------------------------------------------------------------------------------


def test_clickhouse_table_is_replacing_partitioned_by_day_with_ttl(chdb_executor: ChdbExecutor) -> None:
    store = new_clickhouse_store(chdb_executor, ttl_days=90)
    try:
        [[ddl]] = chdb_executor.query(f"SHOW CREATE TABLE {store.table}", {})
        assert "ReplacingMergeTree" in ddl
        assert "PARTITION BY toDate(timestamp)" in ddl
        assert "ORDER BY (namespace, server, event_id)" in ddl
        assert "TTL toDateTime(timestamp) + toIntervalDay(90)" in ddl
        ClickHouseEventStore(chdb_executor, database=store.database)  # DDL is idempotent
    finally:
        drop(store)
    with pytest.raises(ValueError):
        ClickHouseEventStore(chdb_executor, database="x; DROP DATABASE y")


def test_clickhouse_rows_of_one_event_from_racing_writers_count_once(chdb_executor: ChdbExecutor) -> None:
    """Two writers that both saw an id as new both insert it: queries still count it once, before and
    after ClickHouse merges the parts."""
    store = new_clickhouse_store(chdb_executor)
    try:
        events = tutorial_events()
        store.insert(events)
        body = "\n".join(event_json_row(e) for e in events[:3]).encode()
        chdb_executor.insert_json_each_row(store.table, EVENT_COLUMNS, body)  # bypasses the id check
        [[raw]] = chdb_executor.query(f"SELECT count() FROM {store.table}", {})
        assert int(raw) == 10  # the physical rows, not yet merged
        assert store.count() == 7 and store.totals(ADMIN).events == 7
        assert sum(r.calls for r in store.by_tool(ADMIN)) == 6
        assert len(store.events(ADMIN)) == 7
        chdb_executor.command(f"OPTIMIZE TABLE {store.table} FINAL")
        [[merged]] = chdb_executor.query(f"SELECT count() FROM {store.table}", {})
        assert int(merged) == 7 and store.totals(ADMIN).events == 7
    finally:
        drop(store)


def test_sqlite_store_is_one_wal_file_that_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "analytics.db"
    store = SQLiteEventStore(path)
    events = tutorial_events()
    store.insert(events)
    store.close()
    with pytest.raises(RuntimeError):
        store.totals(ADMIN)
    reopened = SQLiteEventStore(path)
    try:
        assert reopened.count() == 7
        assert reopened.insert(events).duplicates == 7
        with reopened._connection() as conn:  # the journal mode a platform team relies on
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        reopened.close()
    with pytest.raises(ValueError):
        SQLiteEventStore(":memory:")


def test_new_event_ids_page_in_emission_order(store: EventStore) -> None:
    first, second = event(0), event(0)
    assert new_event_id() > second.event_id > first.event_id
    store.insert([second, first])
    assert [e.event_id for e in store.events(ADMIN)] == [first.event_id, second.event_id]


def test_store_urls_pick_the_implementation(tmp_path: Path) -> None:
    for url in (f"sqlite://{tmp_path}/a.db", str(tmp_path / "b.db")):
        opened = open_event_store(url)
        try:
            assert isinstance(opened, SQLiteEventStore) and opened.insert(tutorial_events()).accepted == 7
        finally:
            opened.close()
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()
    with pytest.raises(ValueError):
        open_event_store("mongodb://nope")


def test_sqlite_prune_drops_events_past_retention(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "a.db", retention_days=30)
    try:
        store.insert(tutorial_events())
        assert store.prune(before=T0 + timedelta(minutes=60), chunk=2) == 3  # the first hour's three
        assert store.count() == 4
        now = datetime.now(UTC)
        old, fresh = (event(0).model_copy(update={"event_id": new_event_id(), "timestamp": now - timedelta(days=d)})
                      for d in (31, 29))
        store.insert([old, fresh])
        assert store.prune() >= 1  # the 31-day-old event (and the tutorial's, if the clock is past 2026-12-20)
        remaining = {e.event_id for e in store.events(ADMIN)}
        assert fresh.event_id in remaining and old.event_id not in remaining
    finally:
        store.close()
    assert SQLiteEventStore(tmp_path / "b.db").prune() == 0  # no retention: keep everything


# ---------------------------------------------------------------------------------------------------
# The replay inputs (event version 2) and the schema upgrade that keeps older rows
# ---------------------------------------------------------------------------------------------------


def replay_event(minutes: float, **fields: object) -> AnalyticsEvent:
    base = event(minutes).model_dump()
    base.update({"event_id": new_event_id(), "event_version": 2, "session_state": "active",
                 "consented_trust": "medium", "arguments_digest": "ab" * 32, **fields})
    return AnalyticsEvent.model_validate(base)


def test_replay_inputs_round_trip_and_method_narrows(store: EventStore) -> None:
    recorded = [replay_event(1), replay_event(2, session_state="revoked", consented_trust="low"),
                replay_event(3, session_state=None, consented_trust=None, arguments_digest=None,
                             rpc_method="tools/list", tool_name=None)]
    plain = event(0)
    store.insert([plain, *recorded])
    back = {e.event_id: e for e in store.events(ADMIN)}
    for sent in recorded:
        assert back[sent.event_id] == sent
    assert back[plain.event_id].event_version == 1  # an event that does not say is version 1
    calls = store.events(UsageFilter(method="tools/call"))
    assert len(calls) == 3 and {e.rpc_method for e in calls} == {"tools/call"}
    assert store.totals(UsageFilter(method="tools/list")).events == 1


# The table as release 1 created it (before the replay inputs), copied from that release's code.
SQLITE_V1 = """
CREATE TABLE sentinel_events (
    event_id TEXT PRIMARY KEY NOT NULL, ts_us INTEGER NOT NULL, trace_id TEXT, source TEXT NOT NULL,
    server TEXT NOT NULL, namespace TEXT NOT NULL, team_id TEXT, human_id TEXT, agent_id TEXT,
    subject_team_id TEXT, session_id TEXT, rpc_method TEXT NOT NULL, tool_name TEXT, decision TEXT NOT NULL,
    reason TEXT, matched_grant TEXT, required_trust TEXT, effective_trust TEXT, side_effect TEXT,
    status INTEGER NOT NULL, latency_ms REAL NOT NULL, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL,
    policy_revision TEXT
) WITHOUT ROWID;
CREATE INDEX sentinel_events_ts ON sentinel_events (ts_us);
PRAGMA user_version = 1;
"""
V1_COLUMNS = EVENT_COLUMNS[:EVENT_COLUMNS.index("policy_revision") + 1]


def test_sqlite_upgrade_keeps_release_1_rows_and_marks_them_version_1(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "analytics.db"
    old = [event(i) for i in range(5)]
    with sqlite3.connect(path) as conn:
        conn.executescript(SQLITE_V1)
        conn.executemany(
            f"INSERT INTO sentinel_events ({', '.join('ts_us' if c == 'timestamp' else c for c in V1_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in V1_COLUMNS)})",
            [tuple(int((e.timestamp - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
                   if c == "timestamp" else getattr(e, c) for c in V1_COLUMNS) for e in old])
    store = SQLiteEventStore(path)
    try:
        assert store.count() == 5
        assert sorted(store.events(ADMIN), key=lambda e: e.event_id) == sorted(old, key=lambda e: e.event_id)
        assert {e.event_version for e in store.events(ADMIN)} == {1}
        new = replay_event(10)
        assert store.insert([new]).accepted == 1 and store.events(UsageFilter(), after_event_id=max(
            e.event_id for e in old))[-1] == new
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4  # 3: the hash-chain columns; 4: client_id
    SQLiteEventStore(path).close()  # reopening an upgraded file changes nothing


def test_sqlite_refuses_a_newer_schema_instead_of_guessing(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "analytics.db"
    SQLiteEventStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer than this version"):
        SQLiteEventStore(path)


def test_clickhouse_upgrade_adds_the_columns_and_keeps_release_1_rows(chdb_executor: ChdbExecutor) -> None:
    database = f"t_{uuid.uuid4().hex[:12]}"
    current = ClickHouseEventStore.__new__(ClickHouseEventStore)  # only to render the v1 DDL below
    current.database, current.table, current.ttl_days = database, f"{database}.sentinel_events", None
    create_v1 = current.ddl()[1]
    for name in ("event_version", "session_state", "consented_trust", "arguments_digest", "chain_id", "chain_seq",
                 "prev_hash", "record_hash", "client_id"):
        create_v1 = "\n".join(line for line in create_v1.splitlines() if not line.strip().startswith(name))
    chdb_executor.command(f"CREATE DATABASE {database}")
    chdb_executor.command(create_v1)
    [[columns]] = chdb_executor.query(f"SELECT count() FROM system.columns WHERE database = '{database}'", {})
    assert int(columns) == len(V1_COLUMNS)
    old = [event(i) for i in range(4)]
    body = "\n".join(_v1_row(e) for e in old).encode()
    chdb_executor.insert_json_each_row(f"{database}.sentinel_events", V1_COLUMNS, body)
    store = ClickHouseEventStore(chdb_executor, database=database)
    try:
        assert store.count() == 4
        assert sorted(store.events(ADMIN), key=lambda e: e.event_id) == sorted(old, key=lambda e: e.event_id)
        new = replay_event(10)
        store.insert([new])
        assert {e.event_id: e for e in store.events(ADMIN)}[new.event_id] == new
    finally:
        drop(store)


def _v1_row(e: AnalyticsEvent) -> str:
    import json

    row = {c: getattr(e, c) for c in V1_COLUMNS}
    row["timestamp"] = e.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")
    return json.dumps(row)


def test_both_stores_give_the_replay_the_same_calls_and_name_the_old_ones(store: EventStore) -> None:
    from mcp_runtime.platform.simulate import TOO_OLD, recorded_calls

    calls = [replay_event(i, tool_name=["echo", "add"][i % 2]) for i in range(30)]
    others = [replay_event(5, rpc_method="tools/list", tool_name=None), replay_event(6, server="ledger"),
              replay_event(7, timestamp=T0 - timedelta(days=2))]
    store.insert([*calls, event(8), *others])  # event(8): an older gateway's event, version 1
    got = list(recorded_calls(store, ACME_NS, "payments", T0 - timedelta(hours=1), T0 + timedelta(hours=1)))
    assert len(got) == 31 and sum(1 for c in got if c.gap == TOO_OLD) == 1
    replayable = sorted((c for c in got if c.gap is None), key=lambda c: c.at)
    assert [(c.at, c.tool, c.session_state, c.consented_trust) for c in replayable] == [
        (e.timestamp, e.tool_name, "active", "medium") for e in sorted(calls, key=lambda e: e.timestamp)]
    assert all(c.identity is not None and c.identity.session_id == "sess-1" and c.identity.team_id == GLOBEX
               for c in replayable)
