"""Human approval through a podman pod's gateway sidecar, end to end.

`up --runtime podman` deploys the data-utility example (built FROM the mmdebstrap base, pushed to the
bundled registry) with `reverse` declared destructive, so every call of it needs its caller's approval, and
`upper` reserved for the owners' approval by its metadata. Bob (team globex, granted them) calls them with
the official Python SDK client through `up`'s public route, which podman's runtime hands straight to the
pod's `mcp-gateway` sidecar (some calls go to the sidecar's own port): the sidecar has no platform in
process, so it holds a call at the platform API (`/api/v1/ingest/approvals`, with its ingest key,
long-polled) or asks the caller by MCP elicitation on the call's own stream.

- Without the elicitation capability the call waits; `access approvals list` (alice, acme's owner, with the
  CLI) shows it with its caller, tool and argument digest; `approve ID` lets it run (the server's real
  answer); a call with other arguments is not covered by that approval and waits again; `deny` ends it
  `approval_denied`.
- With the capability, bob (the approver: the caller) is asked in his client: accept runs it, decline is
  `approval_declined`; nothing waits in the platform. `upper` is not his to approve: it waits for alice.
- Redeployed with `approvalTimeout: 2s`, a call nobody decides ends `approval_timeout` (this caught the
  runtime dropping a policy published while the new pod was prepared: the sidecar kept the old timeout).
- Every outcome is an analytics event of the sidecar's (the platform's `/analytics/events`), and each
  out-of-band decision an `Approval` audit entry.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest
from mcp import types
from platform_support import grant_doc
from podman_support import (
    Served,
    api,
    build_example_image,
    call_tool,
    deploy_ready,
    ensure_images,
    make_people,
    ok,
    run_cli,
    timed,
    wait_for,
)

from fixtures.approvals import sdk_call
from mcp_runtime.resources.approval import arguments_digest

SERVER = "utility"
TAG = "approvals"
NAMESPACE = "mcp-team-acme"
# reverse: destructive, so its caller's approval (the default); upper: its metadata reserves it for the owners
TOOLS = [{"name": "echo", "sideEffect": "read"}, {"name": "reverse", "sideEffect": "destructive"},
         {"name": "upper", "sideEffect": "read", "requiresApproval": True, "approver": "owners"}]

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return ensure_images()


@pytest.fixture(scope="module")
def up(images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("up")) as served:
        yield served


@pytest.fixture(scope="module")
def world(up: Served, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The example built, pushed and deployed in acme's namespace; bob granted its tools (trust high),
    with a session token from `runtime/adapter/sessions`, as a client's adapter gets one."""
    people = make_people(up)
    built = build_example_image(tmp_path_factory.mktemp("example"), SERVER, TAG, images["base"],
                                people["env"]["alice"])
    assert built.returncode == 0, built.stderr
    reference = built.stdout.strip().splitlines()[-1]
    try:
        pushed = run_cli(["registry", "push", "--image", reference, "--scope", "tenant"], env=people["env"]["alice"])
        assert pushed.returncode == 0, pushed.stderr
        image, tag = reference.rsplit(":", 1)
        alice = people["tokens"]["alice"]
        deploy_ready(up, alice, NAMESPACE, SERVER, {"name": SERVER, "image": image, "imageTag": tag, "tools": TOOLS})
        ok(up, "POST", "/runtime/grants", alice, grant_doc(
            "utility-to-globex", NAMESPACE, SERVER, {"teamID": people["teams"]["globex"]["id"], "agentID": "cursor"},
            toolRules=[{"name": t["name"]} for t in TOOLS], maxTrust="high"))
        issued = ok(up, "POST", "/runtime/adapter/sessions", people["tokens"]["bob"],
                    {"server": SERVER, "agentID": "cursor"})
        url = f"{up.url}/{SERVER}/mcp"
        # the sidecar loads the policy with the grant and the session from its file: wait until it allows
        first = wait_for(lambda: call_tool(url, issued["token"], "echo", {"text": "hi"}), lambda r: r[0], timeout=20)
        assert first == (True, "hi"), first
        sidecar = up.runtime.upstream_url(NAMESPACE, SERVER)
        assert sidecar is not None
        yield {**people, "url": url, "sidecar": sidecar, "token": issued["token"], "image": image, "tag": tag,
               "session": issued["session"]["metadata"]["name"]}
    finally:
        subprocess.run(["podman", "rmi", "--force", reference], capture_output=True, check=False)


def call_in_background(pool: ThreadPoolExecutor, url: str, world: dict[str, Any], arguments: dict[str, Any],
                       answer: str | None = None, asked: list[types.ElicitRequestParams] | None = None,
                       tool: str = "reverse") -> Future[tuple[Any, float]]:
    """Bob calls `tool` at `url` (in a thread): (the text or the denial's reason, the wall-clock time the
    answer arrived)."""
    def run() -> tuple[Any, float]:
        outcome = anyio.run(sdk_call, url, world["token"], tool, arguments, answer, [] if asked is None else asked)
        return outcome, time.time()
    return pool.submit(run)


def waiting(up: Served, world: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """The pending approval of bob's call with `arguments`, as alice (the owner) sees it through the API."""
    shown = json.dumps(arguments, separators=(",", ":"))
    rows = wait_for(lambda: ok(up, "GET", "/runtime/approvals", world["tokens"]["alice"])["items"],
                    lambda items: any(r["arguments"] == shown for r in items), timeout=20)
    mine = [r for r in rows if r["arguments"] == shown]
    assert len(mine) == 1, rows
    return mine[0]


def cli(world: dict[str, Any], *args: str, who: str = "alice") -> subprocess.CompletedProcess[str]:
    done = run_cli(["access", "approvals", *args], env=world["env"][who])
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def events_after(up: Served, world: dict[str, Any], cursor: str | None,
                 done: Callable[[list[dict[str, Any]]], bool], tool: str = "reverse") -> list[dict[str, Any]]:
    """The sidecar's events of `tool` after `cursor`, as the owner reads them, once `done` holds (20 s)."""
    query = f"/analytics/events?server={SERVER}&tool={tool}&limit=500" + (f"&after={cursor}" if cursor else "")
    items: list[dict[str, Any]] = wait_for(lambda: ok(up, "GET", query, world["tokens"]["alice"])["items"], done,
                                           timeout=20)
    return items


def cursor_now(up: Served, world: dict[str, Any]) -> str | None:
    answer = ok(up, "GET", f"/analytics/events?server={SERVER}&limit=1000", world["tokens"]["alice"])
    return answer["next"]  # type: ignore[no-any-return]


def reasons(items: list[dict[str, Any]]) -> list[str | None]:
    return sorted((e["reason"] for e in items), key=str)


def test_out_of_band_the_owner_approves_that_call_and_denies_another(up: Served, world: dict[str, Any]) -> None:
    cursor = cursor_now(up, world)
    with ThreadPoolExecutor(2) as pool:
        first = call_in_background(pool, world["url"], world, {"text": "stressed"})  # up's public route
        row = waiting(up, world, {"text": "stressed"})
        listed = cli(world, "list").stdout
        assert row["id"] in listed and "reverse" in listed and "bob@globex.com" in listed, listed
        assert '{"text":"stressed"}' in listed and SERVER in listed, listed
        [shown] = [a for a in json.loads(cli(world, "list", "-o", "json").stdout) if a["id"] == row["id"]]
        assert shown["argumentsDigest"] == arguments_digest({"text": "stressed"})
        assert shown["tool"] == "reverse" and shown["namespace"] == NAMESPACE and shown["approver"] == "caller"
        assert shown["caller"]["humanID"] == "bob@globex.com" and shown["caller"]["agentID"] == "cursor"
        assert shown["caller"]["sessionID"] == world["session"]
        assert not first.done()  # it waits for the decision

        approving = time.monotonic()
        assert "approved: the call runs now" in cli(world, "approve", row["id"]).stdout
        timed("`access approvals approve` (the CLI process)", approving)
        outcome, answered = first.result(timeout=30)
        assert outcome == "desserts"  # the server's own answer, run once approved
        [decided] = [a for a in ok(up, "GET", "/runtime/approvals?all=true", world["tokens"]["alice"])["items"]
                     if a["id"] == row["id"]]
        assert decided["status"] == "approved" and decided["decidedBy"] == "alice@acme.com", decided
        lag = answered - datetime.fromisoformat(decided["decidedAt"]).timestamp()
        print(f"[podman tests] approved -> the call's result through the sidecar: {lag * 1000:.0f} ms")
        assert lag < 5  # the sidecar's long poll answers at once, it does not wait out its 20 s

        # the same caller, other arguments, straight at the pod's sidecar (its published port)
        second = call_in_background(pool, world["sidecar"], world, {"text": "drawer"})
        other = waiting(up, world, {"text": "drawer"})
        assert other["id"] != row["id"] and other["argumentsDigest"] == arguments_digest({"text": "drawer"})
        time.sleep(1.0)
        assert not second.done()  # the approval of "stressed" does not cover it
        assert "denied: the caller gets approval_denied" in cli(world, "deny", other["id"]).stdout
        assert second.result(timeout=30)[0] == "approval_denied"
    assert "no calls are waiting" in cli(world, "list").stdout

    events = events_after(up, world, cursor, lambda items: len(items) >= 2)
    assert reasons(events) == ["approval_denied", "approved"], events
    by_reason = {e["reason"]: e for e in events}
    assert by_reason["approved"]["decision"] == "allow" and by_reason["approval_denied"]["decision"] == "deny"
    assert {e["user"] for e in events} == {"bob@globex.com"} and {e["source"] for e in events} == {"gateway"}
    audit = ok(up, "GET", "/audit?kind=Approval&limit=100", world["tokens"]["admin"])["items"]
    decided_by = {e["after"]["id"]: (e["action"], e["actor"]) for e in audit}
    assert decided_by[row["id"]] == ("approval_approved", "alice@acme.com"), audit
    assert decided_by[other["id"]] == ("approval_denied", "alice@acme.com"), audit


def test_by_elicitation_the_caller_accepts_or_declines_in_their_client(up: Served, world: dict[str, Any]) -> None:
    cursor = cursor_now(up, world)
    asked: list[types.ElicitRequestParams] = []
    with ThreadPoolExecutor(1) as pool:
        accepted = call_in_background(pool, world["url"], world, {"text": "live"}, "accept", asked).result(60)[0]
        declined = call_in_background(pool, world["sidecar"], world, {"text": "star"}, "decline", asked).result(60)[0]
    assert (accepted, declined) == ("evil", "approval_declined")
    assert len(asked) == 2, asked
    assert all("reverse" in q.message and SERVER in q.message and NAMESPACE in q.message for q in asked)
    assert '{"text":"live"}' in asked[0].message and '{"text":"star"}' in asked[1].message
    # asked in the client: nothing waited at the platform
    all_approvals = ok(up, "GET", "/runtime/approvals?all=true", world["tokens"]["alice"])["items"]
    assert not [a for a in all_approvals if a["arguments"] in ('{"text":"live"}', '{"text":"star"}')]

    events = events_after(up, world, cursor, lambda items: len(items) >= 2)
    assert reasons(events) == ["approval_declined", "approved"], events
    assert {(e["reason"], e["decision"]) for e in events} == {("approved", "allow"), ("approval_declined", "deny")}


def test_what_the_metadata_reserves_for_the_owners_waits_for_them_though_the_client_elicits(
        up: Served, world: dict[str, Any]) -> None:
    """The caller is not the approver: their client is not asked, the call waits for acme's owners."""
    cursor = cursor_now(up, world)
    asked: list[types.ElicitRequestParams] = []
    with ThreadPoolExecutor(1) as pool:
        result = call_in_background(pool, world["url"], world, {"text": "abc"}, "accept", asked, tool="upper")
        row = waiting(up, world, {"text": "abc"})
        assert row["approver"] == "owners" and row["tool"] == "upper", row
        assert "no calls are waiting" in cli(world, "list", who="bob").stdout  # not bob's to decide
        cli(world, "approve", row["id"])
        assert result.result(timeout=30)[0] == "ABC"
    assert asked == []
    events = events_after(up, world, cursor, lambda items: len(items) >= 1, tool="upper")
    assert [(e["reason"], e["decision"], e["user"]) for e in events] == [("approved", "allow", "bob@globex.com")]


def test_nobody_deciding_is_a_timeout_at_the_sidecar(up: Served, world: dict[str, Any]) -> None:
    """The server redeployed with `approvalTimeout: 2s`: the sidecar's wait ends, the platform records it."""
    pod = up.runtime.pod_name(NAMESPACE, SERVER)
    created = podman_created(pod)
    deploy_ready(up, world["tokens"]["alice"], NAMESPACE, SERVER, {
        "name": SERVER, "image": world["image"], "imageTag": world["tag"], "tools": TOOLS,
        "policy": {"approvalTimeout": "2s"}}, update=True)
    assert wait_for(lambda: podman_created(pod), lambda c: c not in (created, None), timeout=60) != created
    policy = api(up, "GET", f"/runtime/servers/{NAMESPACE}/{SERVER}/policy", world["tokens"]["alice"])
    assert policy.json()["approvalTimeout"] == 2.0, policy.text
    # the new pod's sidecar enforces that policy (its revision, read from the file the runtime wrote)
    sidecar_status = world["sidecar"].removesuffix(f"/{SERVER}/mcp") + "/config/status"
    loaded = wait_for(lambda: httpx.get(sidecar_status, timeout=5).json() if reachable(sidecar_status) else {},
                      lambda s: s.get("revision") == policy.headers["etag"].strip('"'), timeout=60)
    assert loaded.get("revision") == policy.headers["etag"].strip('"'), loaded
    cursor = cursor_now(up, world)
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        outcome = call_in_background(pool, world["url"], world, {"text": "late"}).result(timeout=60)[0]
    logs = "\n".join(up.runtime.logs(NAMESPACE, SERVER, 40, "mcp-gateway"))
    assert outcome == "approval_timeout", logs
    assert time.monotonic() - started < 15  # the policy's 2 s (and the round trips), not the default 2 min
    [row] = [a for a in ok(up, "GET", "/runtime/approvals?all=true", world["tokens"]["alice"])["items"]
             if a["arguments"] == '{"text":"late"}']
    assert row["status"] == "timeout", row
    events = events_after(up, world, cursor, lambda items: len(items) >= 1)
    assert [(e["reason"], e["decision"]) for e in events] == [("approval_timeout", "deny")], events
    audit = ok(up, "GET", "/audit?kind=Approval&limit=100", world["tokens"]["admin"])["items"]
    assert any(e["action"] == "approval_timeout" and e["after"]["id"] == row["id"] for e in audit), audit


def reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def podman_created(pod: str | None) -> str | None:
    done = subprocess.run(["podman", "pod", "inspect", "--format", "{{.Created}}", pod or "-"], capture_output=True,
                          text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None
