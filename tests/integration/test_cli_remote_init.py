"""`server init --remote-url` against a real remote (official SDK server on TLS, API key required), and the
errors a mistyped command gets. No platform needed: it writes `.mcp/servers.yaml`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fixtures.cli import run_cli
from fixtures.remote_mcp import Pki, RemoteMcp, make_ca

KEY = "k-remote-42"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RemoteMcp, Pki, Path]]:
    base = tmp_path_factory.mktemp("remote")
    pki = make_ca(base / "pki")
    key = base / "key"
    key.write_text(KEY + "\n")
    with RemoteMcp(pki, KEY) as server:
        yield server, pki, key


def entry(directory: Path) -> dict[str, object]:
    return yaml.safe_load((directory / ".mcp" / "servers.yaml").read_text())["servers"][0]  # type: ignore[no-any-return]


def test_per_caller_token_entry_discovers_with_the_credential_and_ca(remote: tuple[RemoteMcp, Pki, Path],
                                                                      tmp_path: Path) -> None:
    server, pki, key = remote
    done = run_cli(["server", "init", "saas", "--remote-url", server.url, "--session-token", "--header-name",
                    "X-API-Key", "--credential-file", str(key), "--ca-file", str(pki.ca_pem)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Discovered: delete_record, search, slow" in done.stdout
    written = entry(tmp_path)
    assert written["remote"] == {"url": server.url, "sessionToken": {"header": "X-API-Key", "prefix": ""},
                                 "caBundle": pki.ca_pem.read_text()}
    assert "port" not in written and "replicas" not in written
    assert KEY not in (tmp_path / ".mcp" / "servers.yaml").read_text()
    assert server.seen[-1]["x-api-key"] == KEY


@pytest.mark.parametrize(("extra", "says"), [
    ([], "wants credentials"),                                  # no credential: the remote's 401, explained
    (["--ca-file", "OTHER_CA"], "not trusted"),                 # a CA it does not chain to
    (["--header-secret", "saas/key", "--credential-file", "WRONG"], "401"),
])
def test_discovery_failures_name_the_cause(remote: tuple[RemoteMcp, Pki, Path], tmp_path: Path,
                                           extra: list[str], says: str) -> None:
    server, pki, _ = remote
    other = make_ca(tmp_path / "other", "other")
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    args = [{"OTHER_CA": str(other.ca_pem), "WRONG": str(wrong)}.get(a, a) for a in extra]
    if "--ca-file" not in args:
        args += ["--ca-file", str(pki.ca_pem)]
    done = run_cli(["server", "init", "saas", "--remote-url", server.url, "--header-name", "X-API-Key", *args],
                   cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert says in done.stderr, done.stderr
    assert not (tmp_path / ".mcp" / "servers.yaml").exists()


@pytest.mark.parametrize(("args", "says"), [
    (["--remote-url", "http://mcp.example.com/mcp"], "plain http to another machine"),
    (["--header-secret", "a/b"], "are for a remote server"),
    (["--remote-url", "https://x.example/mcp", "--run", "python app.py"], "neither --run nor --from-server"),
    (["--remote-url", "https://x.example/mcp", "--header-secret", "nokey"], "is not SECRET/KEY"),
    (["--remote-url", "https://x.example/mcp", "--session-token", "--header-secret", "a/b"], "mutually exclusive"),
    (["--remote-url", "https://x.example/mcp", "--header-secret", "a/b", "--header-name", "Host"],
     "managed by the gateway"),
])
def test_bad_remote_flags_fail_before_anything_is_asked_or_written(tmp_path: Path, args: list[str],
                                                                    says: str) -> None:
    done = run_cli(["server", "init", "saas", *args], cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert says in done.stderr, done.stderr
    assert not (tmp_path / ".mcp").exists()
