"""`mcp-runtime gateway run`, the sidecar entrypoint, as a user (or a Pod) runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.cli import cli_env, run_cli
from fixtures.gateway import IngestReceiver, serve_app, standard_kit
from fixtures.servers import free_port, run_data_utility_server, stop_process


def test_help_describes_the_sidecar() -> None:
    result = run_cli(["gateway", "run", "--help"])
    assert result.returncode == 0
    for flag in ("--upstream", "--policy-file", "--jwks-file", "--listen", "--ingest-url", "--spool-dir"):
        assert flag in result.stdout


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Any]:
    kit = standard_kit()
    (tmp_path / "policy.json").write_bytes(kit.document().to_json())
    (tmp_path / "jwks.json").write_text(json.dumps(kit.keyring.jwks()))
    (tmp_path / "bad.json").write_text("{not json")
    return {"policy": tmp_path / "policy.json", "jwks": tmp_path / "jwks.json", "bad": tmp_path / "bad.json",
            "dir": tmp_path, "kit": kit}


@pytest.mark.parametrize("case", ["missing_policy", "missing_jwks", "bad_policy", "bad_jwks", "policy_is_dir",
                                  "bad_listen", "ingest_without_key"])
def test_bad_arguments_fail_with_one_clear_line(case: str, files: dict[str, Any]) -> None:
    args = {"--upstream": "http://127.0.0.1:9/mcp", "--policy-file": str(files["policy"]),
            "--jwks-file": str(files["jwks"])}
    expected = {
        "missing_policy": ("--policy-file", "/nope/policy.json", "does not exist"),
        "missing_jwks": ("--jwks-file", "/nope/jwks.json", "does not exist"),
        "bad_policy": ("--policy-file", str(files["bad"]), "not JSON"),
        "bad_jwks": ("--jwks-file", str(files["bad"]), "not usable"),
        "policy_is_dir": ("--policy-file", str(files["dir"]), "is a directory"),
        "bad_listen": ("--listen", "nowhere", "HOST:PORT"),
        "ingest_without_key": ("--ingest-url", "http://127.0.0.1:9/api/v1/ingest/events", "--ingest-key-file"),
    }[case]
    args[expected[0]] = expected[1]
    result = run_cli(["gateway", "run", *[x for kv in args.items() for x in kv]])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert expected[2] in result.stderr


@pytest.fixture
def ingest() -> Iterator[tuple[IngestReceiver, str]]:
    receiver = IngestReceiver()
    with serve_app(receiver) as base:
        yield receiver, base + "/api/v1/ingest/events"


@pytest.fixture
def sidecar(files: dict[str, Any], ingest: tuple[IngestReceiver, str]) -> Iterator[str]:
    key_file = files["dir"] / "ingest.key"
    key_file.write_text("mcpr_sidecar-key\n")
    with run_data_utility_server() as upstream:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream", upstream.url,
             "--policy-file", str(files["policy"]), "--jwks-file", str(files["jwks"]),
             "--listen", f"127.0.0.1:{port}", "--log-level", "warning",
             "--ingest-url", ingest[1], "--ingest-key-file", str(key_file),
             "--spool-dir", str(files["dir"] / "spool")],
            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gateway did not start: {process.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
            yield base
        finally:
            stop_process(process)


def test_run_serves_the_policy_from_the_file(sidecar: str, files: dict[str, Any],
                                             ingest: tuple[IngestReceiver, str]) -> None:
    kit_doc = json.loads(files["policy"].read_text())
    status = httpx.get(sidecar + "/config/status").json()
    assert status["server"] == "data-utility" and status["namespace"] == "team-data"
    assert status["revision"] == kit_doc["revision"]
    response = httpx.post(sidecar + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                          headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 401
    token = files["kit"].token("s-cursor", "cursor")
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    init = httpx.post(sidecar + "/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    assert init.status_code == 200
    assert "data-utility-mcp" in init.text
    receiver, _ = ingest
    deadline = time.monotonic() + 10
    while len(receiver.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted((e["rpc_method"], e["decision"]) for e in receiver.events) == [("initialize", "allow"),
                                                                                ("tools/list", "deny")]
    assert receiver.auth[0] == "Bearer mcpr_sidecar-key"


def test_a_policy_source_is_required_and_a_configmap_ref_is_checked(files: dict[str, Any]) -> None:
    base = ["gateway", "run", "--upstream", "http://127.0.0.1:9/mcp", "--jwks-file", str(files["jwks"])]
    result = run_cli(base)
    assert result.returncode == 1 and "--policy-configmap" in result.stderr and "Traceback" not in result.stderr
    result = run_cli([*base, "--policy-configmap", "just-a-name"])
    assert result.returncode == 1 and "NAMESPACE/NAME" in result.stderr and "Traceback" not in result.stderr


def _serve_sidecar(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mcp_runtime", "gateway", "run", *args,
                                "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
                               env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"gateway did not start: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.05)


def test_a_remote_servers_sidecar_sends_the_secret_header_over_verified_tls(files: dict[str, Any]) -> None:
    """The command a remote server's gateway-only pod runs (see manifests/pod.py), against a real TLS remote."""
    from fixtures.remote_mcp import RemoteMcp, make_ca

    pki, other = make_ca(files["dir"] / "pki"), make_ca(files["dir"] / "other", "other")
    credential = files["dir"] / "credential"
    credential.write_text("k-remote-1\n")  # as a mounted Secret holds it, newline and all
    token = files["kit"].token("s-cursor", "cursor")
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    client = {"name": "t", "version": "1"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}}
    with RemoteMcp(pki, "k-remote-1") as remote:
        for ca, expected in ((pki.ca_pem, 200), (other.ca_pem, 502)):
            process, base = _serve_sidecar([
                "--upstream", remote.url, "--policy-file", str(files["policy"]), "--jwks-file", str(files["jwks"]),
                "--upstream-header", "X-API-Key", "--upstream-credential-file", str(credential),
                "--ca-file", str(ca), "--connect-timeout", "3s", "--read-timeout", "5s"])
            try:
                remote.seen.clear()
                answer = httpx.post(base + "/mcp", json=init, headers=headers, timeout=20)
            finally:
                stop_process(process)
            assert answer.status_code == expected, answer.text
            if expected == 200:
                assert "remote-saas" in answer.text
                assert remote.seen[0]["x-api-key"] == "k-remote-1" and "authorization" not in remote.seen[0]
            else:  # a CA the remote's certificate does not chain to: nothing was sent to it
                assert "not trusted" in answer.json()["error"]["message"] and not remote.seen


def test_a_sidecar_told_its_public_url_is_an_oauth_protected_resource(files: dict[str, Any]) -> None:
    """What the renderer passes a sidecar (`--resource-url`, `--authorization-server`): it serves RFC 9728
    metadata at the well-known path of its public URL (and the root, having one route), names it in every
    401, and refuses a token for another server (audience, RFC 8707)."""
    resource = "https://mcp.example.com/data-utility/mcp"
    issuer = "https://platform.example.com/api/v1/oauth"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    with run_data_utility_server() as upstream:
        process, base = _serve_sidecar([
            "--upstream", upstream.url, "--policy-file", str(files["policy"]), "--jwks-file", str(files["jwks"]),
            "--path", "/data-utility/mcp", "--resource-url", resource, "--authorization-server", issuer])
        try:
            metadata = httpx.get(base + "/.well-known/oauth-protected-resource/data-utility/mcp", timeout=10)
            root = httpx.get(base + "/.well-known/oauth-protected-resource", timeout=10)
            anonymous = httpx.post(base + "/data-utility/mcp", json=init, headers=accept, timeout=10)
            elsewhere = files["kit"].token("s-cursor", "cursor", server="ledger")
            wrong = httpx.post(base + "/data-utility/mcp", json=init, timeout=10,
                               headers={**accept, "Authorization": f"Bearer {elsewhere}"})
            right = httpx.post(base + "/data-utility/mcp", json=init, timeout=10, headers={
                **accept, "Authorization": f"Bearer {files['kit'].token('s-cursor', 'cursor')}"})
        finally:
            stop_process(process)
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["resource"] == resource and metadata.json()["authorization_servers"] == [issuer]
    assert root.json() == metadata.json()
    challenge = 'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/data-utility/mcp"'
    assert anonymous.status_code == 401 and challenge in anonymous.headers["www-authenticate"]
    assert wrong.status_code == 401 and challenge in wrong.headers["www-authenticate"]
    assert "wrong_audience" in wrong.text or "invalid_token" in wrong.headers["www-authenticate"]
    assert right.status_code == 200, right.text


def test_oauth_flags_go_together_and_must_be_urls(files: dict[str, Any]) -> None:
    base = ["gateway", "run", "--upstream", "http://127.0.0.1:9/mcp", "--policy-file", str(files["policy"]),
            "--jwks-file", str(files["jwks"])]
    for extra, message in ((["--resource-url", "https://mcp.example.com/x/mcp"], "go together"),
                           (["--resource-url", "mcp.example.com/x", "--authorization-server", "https://p/api"],
                            "absolute http(s) URL"),
                           (["--allowed-origin", "https://app.example.com/path"], "scheme://host")):
        result = run_cli([*base, *extra])
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
