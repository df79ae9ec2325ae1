"""PostgreSQL stopped and restarted under traffic: the platform API rides it out.

A private cluster (tests/fixtures/postgres_cluster.py, its own port and temp dir) serves the platform API
while worker threads read and write through it. The database is shut down (fast: every connection is
cut), stays down for a few seconds, starts again; then the same with a crash (immediate: recovery on
start). What a user would notice is asserted:

- during the gap every request ends quickly with 503 `store_unavailable` and a Retry-After header: no
  500, no hang;
- after the restart the same API process answers again without being restarted (the pool replaces the
  broken connections);
- nothing is half-written: every team and user that exists has its audit entry and vice versa, and
  every user created through a team has that membership (one transaction each).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, LivePlatform, platform_settings, serve_platform

from fixtures.postgres_cluster import PrivateCluster, private_postgres

pytestmark = pytest.mark.slow

REQUEST_BOUND = 20.0  # seconds: connect timeout (5) + pool wait (10) + slack; anything slower is a hang
GAP = 4.0


@dataclass
class Outcome:
    what: str
    status: int  # 0: the request raised (timeout, connection error)
    code: str | None
    retry_after: str | None
    seconds: float
    at: float


@dataclass
class Traffic:
    live: LivePlatform
    token: str
    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: list[Outcome] = field(default_factory=list)
    created_teams: dict[str, int] = field(default_factory=dict)  # slug -> status of its POST
    created_users: dict[str, tuple[str, int]] = field(default_factory=dict)  # email -> (team, status)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, client: httpx.Client, what: str, method: str, path: str, body: object = None) -> int:
        started = time.monotonic()
        try:
            answer = client.request(method, f"/api/v1{path}", json=body, timeout=REQUEST_BOUND + 10,
                                    headers={"Authorization": f"Bearer {self.token}"})
            status = answer.status_code
            code = answer.json().get("error") if status >= 400 and answer.content else None
            retry = answer.headers.get("Retry-After")
        except httpx.HTTPError as exc:
            status, code, retry = 0, type(exc).__name__, None
        with self.lock:
            self.outcomes.append(Outcome(what, status, code, retry, time.monotonic() - started, time.monotonic()))
        return status

    def writer(self, worker: int) -> None:
        with httpx.Client(base_url=self.live.url) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                slug = f"w{worker}-{n}-{uuid.uuid4().hex[:4]}"
                status = self.request(client, "create team", "POST", "/teams", {"slug": slug, "name": slug})
                with self.lock:
                    self.created_teams[slug] = status
                if status == 201:
                    email = f"{slug}@example.com"
                    status = self.request(client, "add user", "POST", f"/teams/{slug}/users",
                                          {"username": email, "password": "password-1", "role": "member"})
                    with self.lock:
                        self.created_users[email] = (slug, status)
                time.sleep(0.02)

    def reader(self) -> None:
        with httpx.Client(base_url=self.live.url) as client:
            while not self.stop.is_set():
                self.request(client, "list teams", "GET", "/teams")
                self.request(client, "list servers", "GET", "/runtime/servers")
                time.sleep(0.02)


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _outage(pg: PrivateCluster, traffic: Traffic, mode: str) -> tuple[float, float]:
    """Stop the database, keep it down for GAP seconds, start it; return (stopping_at, up_at)."""
    down_at = time.monotonic()
    pg.stop(mode)
    time.sleep(GAP)
    pg.start()
    return down_at, time.monotonic()


def test_the_api_rides_out_a_postgres_restart_under_traffic(tmp_path: Path) -> None:
    with private_postgres() as pg, serve_platform(platform_settings(tmp_path / "data", pg.url)) as live:
        token = live.login(ADMIN_EMAIL, ADMIN_PASSWORD)["accessToken"]
        traffic = Traffic(live, token)
        threads = [threading.Thread(target=traffic.writer, args=(i,)) for i in range(3)]
        threads += [threading.Thread(target=traffic.reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(2)
            windows = [_outage(pg, traffic, "fast")]
            time.sleep(4)
            windows.append(_outage(pg, traffic, "immediate"))
            recovered = time.monotonic()
            # the API recovers by itself: successes resume after the restart
            _wait_until(lambda: any(o.at > recovered and o.status in (200, 201) and o.what == "create team"
                                    for o in traffic.outcomes), 30, "a write to succeed after the restart")
            time.sleep(2)
        finally:
            traffic.stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a request hung"

        outcomes = traffic.outcomes
        unexpected = [o for o in outcomes if o.status not in (200, 201, 503)]
        assert not unexpected, unexpected[:10]
        unavailable = [o for o in outcomes if o.status == 503]
        assert unavailable, "the outage was not seen by any request"
        assert all(o.code == "store_unavailable" and o.retry_after == "2" for o in unavailable), unavailable[:5]
        slowest = max(outcomes, key=lambda o: o.seconds)
        assert slowest.seconds < REQUEST_BOUND, slowest
        for down_at, up_at in windows:  # each outage was answered with 503s, and only around it
            assert any(down_at <= o.at <= up_at + REQUEST_BOUND for o in unavailable)
        late = [o for o in unavailable if not any(d <= o.at <= u + REQUEST_BOUND for d, u in windows)]
        assert not late, late[:5]

        # nothing half-written: the stored state and the audit log agree, and no user lacks their team
        teams = {t["slug"] for t in traffic.live.call("GET", "/teams", token=token).json()["items"]}
        audit = traffic.live.call("GET", "/audit?limit=1000", token=token).json()["items"]
        audited_teams = {e["name"] for e in audit if e["kind"] == "Team" and e["action"] == "create"}
        audited_users = {e["name"] for e in audit if e["kind"] == "User" and e["action"] == "create"}
        worker_teams = {slug for slug in teams if slug.startswith("w")}
        assert worker_teams == {s for s in audited_teams if s.startswith("w")}
        assert {s for s, status in traffic.created_teams.items() if status == 201} <= worker_teams
        for email, (slug, status) in traffic.created_users.items():
            members = traffic.live.call("GET", f"/teams/{slug}/users", token=token).json()["items"]
            is_member = email in {m["email"] for m in members}
            assert is_member == (email in audited_users), (email, status, is_member)
            if status == 201:
                assert is_member
        print(f"{len(outcomes)} requests, {len(unavailable)} answered 503 store_unavailable during two outages; "
              f"slowest {slowest.seconds:.2f}s ({slowest.what}, {slowest.status})")
