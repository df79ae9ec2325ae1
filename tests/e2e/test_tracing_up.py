"""One trace across the agent, the adapter proxy, the gateway and the server, collected by a real OTLP receiver.

`mcp-runtime up` runs with `OTEL_EXPORTER_OTLP_ENDPOINT` set (the gateway and the platform API export),
the data-utility server runs with the OpenTelemetry SDK installed (tests/fixtures/otel_server.py), the
adapter proxy with `--otlp-endpoint`, and an agent on the MCP Python SDK (tests/fixtures/otel_client.py)
calls a granted tool and a denied one. The receiver decodes what each sends (OTLP/HTTP protobuf).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from fixtures.otlp_receiver import ReceivedSpan, otlp_receiver
from fixtures.platform_up import AGENT, SERVER, PlatformWorld, cli_env, running_platform, stop_process_group
from fixtures.servers import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SERVER_SPAN, CLIENT_SPAN = 2, 3
ERROR = 2


@contextlib.contextmanager
def traced_proxy(world: PlatformWorld, endpoint: str) -> Iterator[str]:
    port = free_port()
    log_path = world.data_dir.parent / "proxy.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_runtime", "adapter", "proxy", "--runtime-url", world.runtime_url,
             "--server", SERVER, "--agent", AGENT, "--agent-id", AGENT, "--listen", f"127.0.0.1:{port}",
             "--otlp-endpoint", endpoint],
            env=cli_env(world.config_dir), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process_group(process, grace=5)  # SIGTERM: the proxy flushes its spans on the way out


def _one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, (service, name, [(s.service, s.name) for s in spans])
    return found[0]


def test_one_trace_from_the_agent_through_adapter_gateway_and_server(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        run = f"{sys.executable} {FIXTURES / 'otel_server.py'}"
        with running_platform(tmp_path, run_command=run, up_env=env) as world, \
                traced_proxy(world, receiver.url) as url:
            agent = subprocess.run([sys.executable, str(FIXTURES / "otel_client.py"), url], capture_output=True,
                                   text=True, env=cli_env(world.config_dir, env), timeout=120)
            assert agent.returncode == 0, agent.stderr
            trace_id = agent.stdout.strip().splitlines()[-1]

            def complete(spans: list[ReceivedSpan]) -> bool:
                names = {(s.service, s.name) for s in spans if s.trace_id == trace_id}
                return {("mcp-gateway", "tools/call add"), ("mcp-gateway", "tools/call upper"),
                        ("data-utility", "tools/call add"), ("mcp-runtime-adapter", "tools/call upper")} <= names

            spans = receiver.wait_for(complete, timeout=60)
            platform_spans = [s for s in spans if s.service == "mcp-runtime-platform"]
            # the analytics events of both calls name the trace (the dashboard's rows lead to it)
            deadline = time.monotonic() + 30
            while True:
                items = world.api("GET", f"analytics/events?server={SERVER}&limit=100").json()["items"]
                traced = {e["tool"]: e["traceID"] for e in items if e["tool"] in ("add", "upper")}
                if len(traced) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert traced == {"add": trace_id, "upper": trace_id}, traced
    in_trace = [s for s in spans if s.trace_id == trace_id]

    root = _one(in_trace, "agent", "agent task")
    sdk_call = _one(in_trace, "agent", "MCP send tools/call add")
    adapter = _one(in_trace, "mcp-runtime-adapter", "tools/call add")
    gateway = _one(in_trace, "mcp-gateway", "tools/call add")
    server = _one(in_trace, "data-utility", "tools/call add")
    # parent -> child, hop by hop: agent -> adapter (header from _meta) -> gateway (header) -> server (_meta)
    assert sdk_call.parent_span_id == root.span_id
    assert adapter.parent_span_id == sdk_call.span_id and adapter.kind == CLIENT_SPAN
    assert gateway.parent_span_id == adapter.span_id and gateway.kind == SERVER_SPAN
    assert server.parent_span_id == gateway.span_id
    assert gateway.attributes["mcp.method.name"] == "tools/call"
    assert gateway.attributes["gen_ai.tool.name"] == "add"
    assert gateway.attributes["jsonrpc.request.id"] == sdk_call.attributes["jsonrpc.request.id"]
    assert gateway.attributes["mcp.session.id"]  # the MCP session the SDK opened
    assert gateway.attributes["mcp_runtime.decision"] == "allow"
    assert gateway.attributes["mcp_runtime.decision.reason"] == "allowed"
    assert gateway.attributes["mcp_runtime.agent.id"] == AGENT
    assert gateway.status_code != ERROR

    denied = _one(in_trace, "mcp-gateway", "tools/call upper")
    assert denied.parent_span_id == _one(in_trace, "mcp-runtime-adapter", "tools/call upper").span_id
    assert denied.attributes["mcp_runtime.decision"] == "deny"
    assert denied.attributes["mcp_runtime.decision.reason"] == "tool_not_granted"
    assert denied.attributes["error.type"] == "tool_not_granted"
    assert denied.status_code == ERROR and denied.status_message == "tool_not_granted"
    assert not [s for s in in_trace if s.service == "data-utility" and s.name == "tools/call upper"]

    # the platform API's own spans (FastAPI instrumentation): the adapter's session was issued through it
    routes = {s.attributes.get("http.route") for s in platform_spans}
    assert any(str(r).startswith("/api/v1/") for r in routes), routes
