"""What `--from-server` accepts as a server address."""

from __future__ import annotations

import pytest

from mcp_runtime.runtime.discovery import DiscoveryError, discover_tools_sync, normalize_server_url


@pytest.mark.parametrize(
    ("given", "endpoint"),
    [
        ("http://localhost:8088", "http://localhost:8088/mcp"),
        ("http://localhost:8088/", "http://localhost:8088/mcp"),
        ("  http://127.0.0.1:9000  ", "http://127.0.0.1:9000/mcp"),
        ("HTTPS://mcp.example.com", "https://mcp.example.com/mcp"),
        ("http://localhost:8088/mcp", "http://localhost:8088/mcp"),
        ("http://localhost:8088/custom/mcp", "http://localhost:8088/custom/mcp"),
        ("http://localhost:8088/mcp/", "http://localhost:8088/mcp/"),
        ("http://[::1]:8088", "http://[::1]:8088/mcp"),
        ("http://localhost:8088?tenant=a", "http://localhost:8088/mcp?tenant=a"),
    ],
)
def test_normalize_appends_mcp_only_when_there_is_no_path(given: str, endpoint: str) -> None:
    assert normalize_server_url(given) == endpoint


@pytest.mark.parametrize("given", ["ftp://localhost:8088", "localhost:8088", "", "http://", "file:///tmp/x"])
def test_normalize_rejects_what_is_not_an_http_url_and_says_what_to_pass(given: str) -> None:
    with pytest.raises(ValueError, match=r"not an http\(s\) URL; pass .*http://"):
        normalize_server_url(given)


def test_a_bare_host_and_port_gets_a_suggestion_with_the_scheme() -> None:
    with pytest.raises(ValueError, match=r"for example http://localhost:8088$"):
        normalize_server_url("localhost:8088")


def test_discovery_reports_an_invalid_url_as_a_discovery_error() -> None:
    with pytest.raises(DiscoveryError) as caught:
        discover_tools_sync("localhost:8088")
    assert caught.value.reason == "invalid_url"
    assert "http://localhost:8088" in str(caught.value)
