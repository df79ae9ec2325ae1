"""The secret files of the process runtime: 0600 in 0700, keys merged, bad input refused, values kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_runtime.store.secrets import MAX_VALUE, SecretError, SecretFiles


def test_values_are_stored_0600_in_a_0700_directory_and_keys_merge(tmp_path: Path) -> None:
    store = SecretFiles(tmp_path / "secrets")
    store.put("mcp-team-acme", "saas", {"api-key": "k1"})
    info = store.put("mcp-team-acme", "saas", {"other": "k2"})
    assert info.keys == ("api-key", "other")
    path = tmp_path / "secrets" / "mcp-team-acme" / "saas.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert store.get("mcp-team-acme", "saas", "api-key") == "k1"
    assert store.get("mcp-team-acme", "saas", "missing") is None
    assert [i.name for i in store.list("mcp-team-acme")] == ["saas"]
    assert not list(path.parent.glob(".tmp-*"))  # nothing half-written left behind
    assert store.delete("mcp-team-acme", "saas") and store.get("mcp-team-acme", "saas", "api-key") is None


@pytest.mark.parametrize(("namespace", "name", "data", "says"), [
    ("mcp-team-acme", "../etc", {"k": "v"}, "not a valid secret name"),
    ("Bad_NS", "saas", {"k": "v"}, "not a valid namespace"),
    ("mcp-team-acme", "saas", {"bad key": "v"}, "not a valid secret key"),
    ("mcp-team-acme", "saas", {"k": "line\nbreak"}, "printable text"),
    ("mcp-team-acme", "saas", {"k": "x" * (MAX_VALUE + 1)}, "larger than"),
])
def test_bad_input_is_refused_and_nothing_is_written(tmp_path: Path, namespace: str, name: str,
                                                     data: dict[str, str], says: str) -> None:
    store = SecretFiles(tmp_path / "secrets")
    with pytest.raises(SecretError, match=says):
        store.put(namespace, name, data)
    assert not list(tmp_path.rglob("*.json"))
