"""Operating servers through the API: the runtime's `check` refusal, status, logs, events, platform status."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from platform_support import RecordingRuntime, World, deploy_body

from mcp_runtime.platform.hooks import NoRuntime
from mcp_runtime.resources import Condition, ConditionStatus, MCPServerStatus, ServerPhase

ACME = "mcp-team-acme"
_names = itertools.count()


def fresh(prefix: str = "ops") -> str:
    return f"{prefix}{next(_names)}"


@pytest.fixture
def runtime(world: World) -> Iterator[RecordingRuntime]:
    recording = RecordingRuntime()
    world.live.platform.set_runtime(recording)
    try:
        yield recording
    finally:
        world.live.platform.set_runtime(NoRuntime())


def runnable(name: str, **extra: Any) -> dict[str, Any]:
    body = deploy_body(name, ACME, **extra)
    body["metadata"]["run"] = {"command": "python app.py", "workingDir": "/srv/app"}
    return body


def test_deploy_refused_when_the_runtime_cannot_run_the_server(world: World, runtime: RecordingRuntime) -> None:
    name = fresh()
    answer = world.call("owner", "POST", "/runtime/servers", deploy_body(name, ACME))
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "not_runnable"
    assert body["message"].startswith(f"server {name} has no run command")
    assert "--run" in body["message"]
    # nothing stored, nothing started
    assert world.call("owner", "GET", f"/runtime/servers/{ACME}/{name}").status_code == 404
    assert runtime.events == []

    created = world.ok("owner", "POST", "/runtime/servers", runnable(name))
    assert created["spec"]["run"]["command"] == "python app.py"
    assert runtime.events == [("created", ACME, name)]

    # an update that drops the run command is refused too, and leaves the stored server as it was
    again = world.call("owner", "POST", "/runtime/servers", deploy_body(name, ACME, update=True))
    assert again.status_code == 422 and again.json()["error"] == "not_runnable"
    assert world.ok("owner", "GET", f"/runtime/servers/{ACME}/{name}")["spec"]["run"]["command"] == "python app.py"
    assert runtime.events == [("created", ACME, name)]


def test_redeploy_without_update_is_a_conflict_before_the_runnable_check(world: World,
                                                                       runtime: RecordingRuntime) -> None:
    name = fresh()
    world.ok("owner", "POST", "/runtime/servers", runnable(name))
    answer = world.call("owner", "POST", "/runtime/servers", deploy_body(name, ACME))
    assert answer.status_code == 409 and answer.json()["error"] == "already_exists"
    assert "--update" in answer.json()["message"]


def test_status_and_events_follow_what_the_runtime_reports(world: World, runtime: RecordingRuntime) -> None:
    name = fresh()
    world.ok("owner", "POST", "/runtime/servers", runnable(name))
    status = world.ok("member", "GET", f"/runtime/servers/{ACME}/{name}/status")
    assert status["phase"] == "Pending" and status["url"] == f"/{name}/mcp" and status["conditions"] == []

    world.live.platform.servers.set_status(ACME, name, MCPServerStatus(
        phase=ServerPhase.ready, message="answering on 127.0.0.1:40001", url=f"/{name}/mcp", ready_replicas=1,
        conditions=[Condition(type="Ready", status=ConditionStatus.true, reason="Initialized")]))
    # a second report with the same phase is not a new event
    world.live.platform.servers.set_status(ACME, name, MCPServerStatus(
        phase=ServerPhase.ready, message="still answering", url=f"/{name}/mcp", ready_replicas=1))
    status = world.ok("member", "GET", f"/runtime/servers/{ACME}/{name}/status")
    assert status["phase"] == "Ready" and status["readyReplicas"] == 1 and status["message"] == "still answering"

    world.ok("owner", "POST", "/runtime/servers", runnable(name, update=True, labels={"tier": "gold"}))
    events = world.ok("member", "GET", f"/runtime/servers/{ACME}/{name}/events")["items"]
    assert [e["action"] for e in events] == ["create", "status", "update"]
    assert events[0]["actor"] == "alice@acme.com"
    assert events[1]["actor"] == "runtime" and events[1]["phase"] == "Ready"
    assert events[1]["message"] == "phase Ready: answering on 127.0.0.1:40001"
    assert events[2]["message"].startswith("redeployed")


def test_a_crash_loop_is_one_error_event(world: World, runtime: RecordingRuntime) -> None:
    name = fresh()
    world.ok("owner", "POST", "/runtime/servers", runnable(name))
    servers = world.live.platform.servers
    for phase in ("Pending", "Error", "Pending", "Error", "Pending", "Error", "Pending", "Ready", "Error"):
        servers.set_status(ACME, name, MCPServerStatus(phase=ServerPhase(phase), message=f"now {phase}"))
    events = world.ok("owner", "GET", f"/runtime/servers/{ACME}/{name}/events")["items"]
    assert [(e["action"], e["phase"]) for e in events] == [
        ("create", "Pending"), ("status", "Error"), ("status", "Ready"), ("status", "Error")]


def test_logs_tail_and_follow(world: World, runtime: RecordingRuntime) -> None:
    name = fresh()
    world.ok("owner", "POST", "/runtime/servers", runnable(name))
    runtime.lines[(ACME, name)] = [f"line {i}" for i in range(10)]
    runtime.followed[(ACME, name)] = ["later 1", "later 2"]
    path = f"/runtime/servers/{ACME}/{name}/logs"

    for role in ("owner", "member", "admin", "apikey"):
        answer = world.ok(role, "GET", f"{path}?tail=3")
        assert answer["lines"] == ["line 7", "line 8", "line 9"], role
    streamed = world.call("member", "GET", f"{path}?tail=2&follow=true")
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/plain")
    assert streamed.text.splitlines() == ["line 8", "line 9", "later 1", "later 2"]

    # bob (Globex) may see the granted payments server but not its logs; anonymous callers get 401
    runtime.lines[(ACME, "payments")] = ["secret-ish output"]
    denied = world.call("other", "GET", f"/runtime/servers/{ACME}/payments/logs")
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    assert "secret-ish" not in denied.text
    assert world.call("anonymous", "GET", f"/runtime/servers/{ACME}/payments/logs").status_code == 401
    assert world.call("owner", "GET", f"{path}?tail=-1").status_code == 422


def test_logs_unavailable_without_a_runtime_that_keeps_them(world: World) -> None:
    answer = world.call("owner", "GET", f"/runtime/servers/{ACME}/payments/logs")
    assert answer.status_code == 501
    body = answer.json()
    assert body["error"] == "logs_unavailable"
    assert "no runtime runs servers" in body["message"] and "mcp-runtime up" in body["message"]


def test_platform_status(world: World, runtime: RecordingRuntime) -> None:
    anonymous = world.ok("anonymous", "GET", "/status")
    assert anonymous["status"] == "ok" and anonymous["version"]
    assert "servers" not in anonymous and "store" not in anonymous

    name = fresh()
    world.ok("owner", "POST", "/runtime/servers", runnable(name))
    world.live.platform.servers.set_status(ACME, name, MCPServerStatus(phase=ServerPhase.error, message="exit 1"))
    admin = world.ok("admin", "GET", "/status")
    assert admin["runtime"] == "recording"
    assert admin["store"] == ("sqlite" if world.live.settings.database_url.startswith("sqlite") else "postgresql")
    by_phase = admin["servers"]["byPhase"]
    assert by_phase["Error"] >= 1 and sum(by_phase.values()) == admin["servers"]["total"]

    # bob counts only what he can see: the granted payments server, not Acme's others
    other = world.ok("other", "GET", "/status")
    assert other["servers"]["total"] < admin["servers"]["total"]
    listed = world.ok("other", "GET", "/runtime/servers")["items"]
    assert other["servers"]["total"] == len(listed)
