"""The adapter's small decisions: where it may listen, what it tells clients, when it renews."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from mcp_runtime.adapter import jsonrpc
from mcp_runtime.adapter.config import AdapterSettings, client_snippet, is_loopback, parse_listen
from mcp_runtime.adapter.session import IssuedSession, SessionManager, token_lifetime


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1:8099", ("127.0.0.1", 8099)),
    ("localhost:0", ("localhost", 0)),
    ("[::1]:9000", ("::1", 9000)),
])
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8099", "127.0.0.1", "host:port", "127.0.0.1:70000", ":8099"])
def test_bad_listen_addresses_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.com", False),
])
def test_only_loopback_counts_as_local(host: str, local: bool) -> None:
    assert is_loopback(host) is local


SETTINGS = AdapterSettings(runtime_url="http://127.0.0.1:8080/payments/mcp", server="payments", agent="cursor",
                           agent_id="cursor", auto_refresh=True)


def test_stdio_snippets_start_the_adapter() -> None:
    claude = client_snippet("claude-desktop", "payments", SETTINGS, mode="stdio")["mcpServers"]["payments"]
    assert claude == {"command": "mcp-runtime", "args": [
        "adapter", "stdio", "--runtime-url", "http://127.0.0.1:8080/payments/mcp", "--server", "payments",
        "--agent", "cursor", "--agent-id", "cursor", "--auto-refresh"]}
    vscode = client_snippet("vscode", "payments", SETTINGS, mode="stdio")["servers"]["payments"]
    assert vscode["type"] == "stdio" and vscode["args"] == claude["args"]


def test_http_snippets_carry_the_token_and_claude_desktop_has_none() -> None:
    cursor = client_snippet("cursor", "payments", SETTINGS, mode="http", token="tok")["mcpServers"]["payments"]
    assert cursor == {"url": SETTINGS.runtime_url, "headers": {"Authorization": "Bearer tok"}}
    with pytest.raises(ValueError, match="stdio"):
        client_snippet("claude-desktop", "payments", SETTINGS, mode="http", token="tok")


def test_session_request_names_the_agent_and_identity() -> None:
    settings = AdapterSettings(runtime_url="http://x/mcp", server="payments", agent="cursor", ttl_seconds=5)
    assert settings.session_request() == {"server": "payments", "agent": "cursor", "agentID": "cursor",
                                          "ttlSeconds": 5}
    assert settings.platform_url_guess == "http://x"


def _jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{body}.sig"


def test_renewal_is_timed_from_the_tokens_own_lifetime() -> None:
    assert token_lifetime(_jwt({"iat": 1000, "exp": 1005})) == (1005.0, 5.0)
    assert token_lifetime("not-a-jwt") == (None, None)
    issued = IssuedSession(token="t", lifetime=100.0, received=50.0)
    assert issued.refresh_due == 130.0 and issued.valid_until == 150.0
    assert IssuedSession(token="t").refresh_due is None


def test_gateway_refusals_become_actionable_errors() -> None:
    manager = SessionManager(SETTINGS)
    manager.current = IssuedSession(token="t", name="cursor-abc", namespace="mcp-team-acme", server="payments")
    expired = manager.runtime_refusal(401, "token_expired", "The token has expired.")
    assert expired.reason == "session_expired" and "--auto-refresh" in expired.message
    revoked = manager.runtime_refusal(401, "session_revoked", "revoked")
    assert "mcp-runtime access session unrevoke cursor-abc --namespace mcp-team-acme" in revoked.message


def test_errors_answer_every_request_in_a_batch() -> None:
    body = json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                       {"jsonrpc": "2.0", "method": "notifications/initialized"},
                       {"jsonrpc": "2.0", "id": "a", "result": {}}]).encode()
    assert jsonrpc.request_ids(jsonrpc.parse_messages(body)) == [1]
    error = jsonrpc.error_response(1, "session_revoked", "revoked", server="payments")
    assert error["error"]["data"] == {"reason": "session_revoked", "server": "payments"}
    assert jsonrpc.gateway_envelope(b'{"error": "session_expired", "message": "m"}') == ("session_expired", "m")
    assert jsonrpc.gateway_envelope(b'{"jsonrpc": "2.0", "id": 1, "error": {"code": 1}}') is None
    assert jsonrpc.is_jsonrpc_error(b'{"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}}')


@pytest.mark.parametrize(("args", "expected"), [
    (["stdio", "--runtime-url", "http://x/mcp", "--token-stdin"], "stdin carries the MCP messages"),
    (["proxy", "--runtime-url", "http://x/mcp"], "no session source"),
    (["proxy", "--runtime-url", "http://x/mcp", "--server", "payments"], "--agent is required with --server"),
    (["proxy", "--runtime-url", "x/mcp", "--server", "s", "--agent", "a"], "is not an http(s) URL"),
    (["proxy", "--runtime-url", "http://x/mcp", "--server", "s", "--agent", "a", "--ttl", "soon"], "not a duration"),
    (["proxy", "--runtime-url", "http://x/mcp", "--server", "s", "--agent", "a", "--trust", "total"], "low, medium"),
    (["proxy", "--runtime-url", "http://x/mcp", "--server", "s", "--agent", "a", "--listen", "8099"], "HOST:PORT"),
    (["proxy", "--runtime-url", "http://x/mcp", "--server", "s", "--agent", "a", "--listen", "0.0.0.0:8099"],
     "--allow-remote"),
    (["proxy", "--runtime-url", "http://x/mcp", "--server", "s", "--agent", "a",
      "--session-token-file", "t"], "are both given"),
    (["config", "--client", "zed", "--server", "s", "--runtime-url", "http://x/mcp"], "claude-desktop, cursor"),
    (["config", "--client", "claude-desktop", "--mode", "oauth", "--server", "s", "--runtime-url", "http://x/mcp"],
     "Settings > Connectors"),
])
def test_usage_errors_are_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mcp_runtime.cli.app import app

    result = CliRunner().invoke(app, ["adapter", *args], env={"MCP_RUNTIME_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.output


@pytest.mark.parametrize(("client", "entry"), [
    ("claude-code", {"mcpServers": {"payments": {"type": "http", "url": "http://127.0.0.1:8080/payments/mcp"}}}),
    ("cursor", {"mcpServers": {"payments": {"url": "http://127.0.0.1:8080/payments/mcp"}}}),
    ("vscode", {"servers": {"payments": {"type": "http", "url": "http://127.0.0.1:8080/payments/mcp"}}}),
])
def test_oauth_mode_prints_the_plain_url_and_no_token(client: str, entry: dict[str, object], tmp_path: Path) -> None:
    """Clients that do MCP authorization get the URL only: no platform call, no credential in the file."""
    from typer.testing import CliRunner

    from mcp_runtime.cli.app import app

    result = CliRunner().invoke(app, ["adapter", "config", "--client", client, "--mode", "oauth", "--server",
                                      "payments", "--runtime-url", "http://127.0.0.1:8080/payments/mcp"],
                                env={"MCP_RUNTIME_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == entry


def test_a_token_from_a_file_is_dated_from_its_issue_time(tmp_path: Path) -> None:
    now = time.time()
    token_file = tmp_path / "token"
    token_file.write_text(_jwt({"iat": now - 90, "exp": now + 10}) + "\n")
    manager = SessionManager(AdapterSettings(runtime_url="http://x/mcp", token_file=str(token_file)))
    issued = manager.issue_sync()
    assert issued.token == token_file.read_text().strip()
    assert issued.valid_until is not None and issued.refresh_due is not None
    left = issued.valid_until - time.monotonic()
    assert 0 < left <= 10  # ten seconds of its hundred are left, not a fresh hundred
    assert issued.refresh_due < time.monotonic()  # past 80% already: due for renewal
