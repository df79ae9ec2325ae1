"""The platform API fuzzed from its own OpenAPI document with schemathesis: no 5xx, no crash, no hang.

Every operation the document lists gets requests generated from its schema, valid ones and invalid ones
(schemathesis' positive and negative modes), sent to the real app under uvicorn, as the admin and as a
team member (carol, member of acme). Half of the cases that take `{namespace}/{name}` or `{slug}` are
aimed at objects that exist (a seeded team, servers, a grant, a session), so the generated bodies reach
the services rather than stopping at a 404; the world is seeded again every round.

What counts as a failure: any 5xx except the documented answer of an operation whose dependency is
down (`502 registry_unavailable` from the registry catalog: no registry runs here), a request that does
not answer within `REQUEST_TIMEOUT`, or a transport error (the server dropped the connection).

Bounded in time: rounds over every operation and both callers until `FUZZ_SECONDS` (default 75, set
MCP_RUNTIME_FUZZ_SECONDS for a longer run) are used up; the number of cases run is printed. Every
defect it found is fixed and kept as a named case in tests/platform/test_fuzz_regressions.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from platform_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORDS,
    LivePlatform,
    grant_doc,
    platform_settings,
    serve_platform,
    session_doc,
)
from schemathesis import GenerationMode

from mcp_runtime.store.sql import sqlite_url

pytestmark = pytest.mark.slow

FUZZ_SECONDS = float(os.environ.get("MCP_RUNTIME_FUZZ_SECONDS", "75"))
EXAMPLES_PER_ROUND = 15
REQUEST_TIMEOUT = 15.0
# 5xx answers the API documents: the registry down; logs on a platform that runs no servers (it only
# stores and governs them: routers/servers_ops.py), which the fuzzer reaches when it names the stored server
DOCUMENTED_5XX = {("GET", "/api/v1/registry/catalog"): {(502, "registry_unavailable")},
                  ("GET", "/api/v1/runtime/servers/{namespace}/{name}/logs"): {(501, "logs_unavailable")}}
LAST = ("PUT", "/api/v1/registry")  # switches the registry host: fuzzed last in a round, then undone
EXISTING = {"namespace": "mcp-team-acme", "slug": "acme"}
NAMES = ("payments", "payments-cursor", "carol-cursor")


@dataclass
class Findings:
    cases: int = 0
    by_mode: dict[str, int] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)

    def add(self, label: str, text: str) -> None:
        entries = self.failures.setdefault(label, [])
        if len(entries) < 3:
            entries.append(text)


def _seed(live: LivePlatform, admin: str, carol: str) -> None:
    """acme with carol as member, servers payments and ledger, a grant and a session: ignore 409s."""
    def call(token: str, method: str, path: str, body: Any) -> None:
        live.call(method, path, token=token, json=body)

    call(admin, "POST", "/teams", {"slug": "acme", "name": "Acme"})
    call(admin, "POST", "/teams/acme/users", {"username": "carol@acme.com", "password": PASSWORDS["carol@acme.com"],
                                              "role": "member"})
    team = live.call("GET", "/teams/acme", token=admin).json()
    for name in ("payments", "ledger"):
        call(carol, "POST", "/runtime/servers", {"metadata": {
            "name": name, "tools": [{"name": "echo", "sideEffect": "read"}], "run": {"command": "python app.py"}}})
    subject = {"teamID": team.get("id", "x"), "agentID": "cursor"}
    call(carol, "POST", "/runtime/grants", grant_doc("payments-cursor", "mcp-team-acme", "payments", subject))
    call(carol, "POST", "/runtime/sessions", session_doc("carol-cursor", "mcp-team-acme", "payments",
                                                          {**subject, "humanID": "carol@acme.com"}))


def _aim(case: Any, aimed: bool, name: str) -> Any:
    """Point the case's path at an existing object (when `aimed`)."""
    if aimed and case.path_parameters:
        for key in list(case.path_parameters):
            if key in EXISTING:
                case.path_parameters[key] = EXISTING[key]
            elif key == "name":
                case.path_parameters[key] = name
    return case


def _runner(op: Any, mode: GenerationMode, headers: dict[str, str], base_url: str, session: requests.Session,
            findings: Findings) -> Callable[[], None]:
    strategy = st.tuples(op.as_strategy(generation_mode=mode), st.booleans(), st.sampled_from(NAMES))

    @settings(max_examples=EXAMPLES_PER_ROUND, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=[c for c in HealthCheck if c != HealthCheck.filter_too_much])
    @given(drawn=strategy)
    def run(drawn: tuple[Any, bool, str]) -> None:
        case = _aim(*drawn)
        findings.cases += 1
        findings.by_mode[mode.value] = findings.by_mode.get(mode.value, 0) + 1
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            findings.add(op.label, f"{type(exc).__name__}: {exc} <- {_describe(case)}")
            return
        if response.status_code >= 500:
            try:
                code = response.json().get("error")
            except ValueError:
                code = None
            if (response.status_code, code) not in DOCUMENTED_5XX.get((op.method.upper(), op.path), set()):
                findings.add(op.label, f"{response.status_code} {response.text[:300]} <- {_describe(case)}")

    return run


def _describe(case: Any) -> str:
    return (f"path={case.path_parameters} query={case.query} headers={case.headers} "
            f"body={str(case.body)[:400]}")


def test_the_platform_api_survives_fuzzing_from_its_openapi_document(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings_ = platform_settings(data_dir, sqlite_url(data_dir), registry_host="127.0.0.1:9")
    with serve_platform(settings_) as live:
        schema = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")
        operations = sorted((result.ok() for result in schema.get_all_operations()),
                            key=lambda op: (op.method.upper(), op.path) == LAST)
        admin = live.login(ADMIN_EMAIL, ADMIN_PASSWORD)["accessToken"]
        _seed(live, admin, admin)
        carol = live.login("carol@acme.com", PASSWORDS["carol@acme.com"])["accessToken"]
        callers = {"admin": {"Authorization": f"Bearer {admin}"}, "member": {"Authorization": f"Bearer {carol}"}}
        findings = Findings()
        session = requests.Session()
        started, rounds = time.monotonic(), 0
        ungeneratable: set[tuple[str, GenerationMode]] = set()
        runners = {(op.label, who, mode): _runner(op, mode, headers, live.url, session, findings)
                   for op in operations for who, headers in callers.items()
                   for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)}
        spent: dict[str, float] = {}
        while time.monotonic() - started < FUZZ_SECONDS:
            rounds += 1
            _seed(live, admin, carol)
            for op in operations:
                op_started = time.monotonic()
                for who in callers:
                    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                        if (op.label, mode) in ungeneratable:
                            continue
                        try:
                            runners[(op.label, who, mode)]()
                        except (Unsatisfiable, FailedHealthCheck):  # no invalid input exists (e.g. no inputs)
                            ungeneratable.add((op.label, mode))
                        except Exception as exc:  # schemathesis could not generate or serialize a case
                            findings.add(f"{op.label} as {who}", f"generation: {type(exc).__name__}: {exc}"[:400])
                spent[op.label] = spent.get(op.label, 0.0) + time.monotonic() - op_started
                if (op.method.upper(), op.path) == LAST:
                    (data_dir / "registry.json").unlink(missing_ok=True)
                if time.monotonic() - started > FUZZ_SECONDS:
                    break
        elapsed = time.monotonic() - started
        print(f"\nfuzzed {len(operations)} operations: {findings.cases} cases ({findings.by_mode}) in {rounds} "
              f"rounds, {elapsed:.0f}s, {findings.cases / elapsed:.0f} cases/s; no invalid input exists for "
              f"{sum(1 for _, m in ungeneratable if m == GenerationMode.NEGATIVE)} operations")
        print("slowest operations:", ", ".join(f"{label} {seconds:.1f}s" for label, seconds in
                                               sorted(spent.items(), key=lambda item: -item[1])[:5]))
        assert findings.cases > 0
        assert not findings.failures, "\n".join(f"{label}:\n  " + "\n  ".join(items)
                                                for label, items in findings.failures.items())

