"""`spec.remote`: a server someone else runs. What a user writes, and the errors a mistake gets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mcp_runtime.resources import (
    MCPServer,
    ServerMetadata,
    ServersFile,
    describe_validation_error,
    metadata_to_server,
)
from mcp_runtime.resources.crd import render_crds

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def server(spec: dict[str, Any]) -> MCPServer:
    return MCPServer.model_validate({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer",
                                     "metadata": {"name": "saas", "namespace": "mcp-team-acme"}, "spec": spec})


def error_of(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        server(spec)
    return describe_validation_error(caught.value)


def test_a_remote_server_needs_no_image_and_keeps_its_credential_reference() -> None:
    remote = {"url": "https://mcp.example.com/mcp", "caBundle": PEM,
              "headerSecret": {"name": "saas-key", "key": "token", "header": "X-API-Key"}}
    got = server({"remote": remote, "tools": [{"name": "search", "sideEffect": "read"}]})
    assert got.spec.image is None and got.spec.image_tag is None
    assert got.spec.remote is not None and got.spec.remote.host == "mcp.example.com"
    wire = got.to_wire()["spec"]["remote"]
    assert wire == {**remote, "headerSecret": {**remote["headerSecret"], "prefix": ""}}
    with pytest.raises(ValueError, match="remote"):
        _ = got.image_ref


@pytest.mark.parametrize(("extra", "named"), [
    ({"image": "acme/saas"}, "an image"),
    ({"run": {"command": "python app.py"}}, "a run command"),
    ({"envVars": [{"name": "A", "value": "b"}]}, "envVars"),
])
def test_remote_and_anything_that_deploys_are_mutually_exclusive(extra: dict[str, Any], named: str) -> None:
    message = error_of({"remote": {"url": "https://mcp.example.com/mcp"}, **extra})
    assert f"remote and {named} are mutually exclusive" in message
    assert "deploys nothing" in message


def test_an_mcpserver_without_image_or_remote_says_which_to_add() -> None:
    assert "spec.image is required" in error_of({}) and "spec.remote" in error_of({})


@pytest.mark.parametrize(("url", "says"), [
    ("http://mcp.example.com/mcp", "plain http to another machine"),
    ("ftp://mcp.example.com/mcp", "not an http(s) URL"),
    ("https://user:pw@mcp.example.com/mcp", "must not carry a user or password"),
    ("mcp.example.com/mcp", "not an http(s) URL"),
])
def test_bad_remote_urls_are_refused_with_the_fix(url: str, says: str) -> None:
    assert says in error_of({"remote": {"url": url}})


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/mcp", "http://localhost:9000/mcp", "http://[::1]:9/mcp"])
def test_plain_http_is_accepted_on_this_machine_only(url: str) -> None:
    assert server({"remote": {"url": url}}).spec.remote is not None


@pytest.mark.parametrize(("header", "says"), [
    ("Host", "managed by the gateway"),
    ("X-MCP-Human-ID", "managed by the gateway"),
    ("Bad Header", "not an HTTP header name"),
])
def test_the_credential_header_cannot_be_one_the_gateway_manages(header: str, says: str) -> None:
    spec = {"remote": {"url": "https://mcp.example.com/mcp", "headerSecret": {"name": "k", "key": "v",
                                                                              "header": header}}}
    assert says in error_of(spec)


def test_a_ca_bundle_must_be_pem() -> None:
    spec = {"remote": {"url": "https://mcp.example.com/mcp", "caBundle": "/etc/ssl/my-ca.pem"}}
    assert "PEM certificates" in error_of(spec)


def test_metadata_entry_becomes_a_remote_mcpserver_without_an_image() -> None:
    meta = ServerMetadata.model_validate({"name": "saas", "remote": {"url": "https://mcp.example.com/mcp"}})
    converted = metadata_to_server(meta, namespace="mcp-team-acme", team_slug="acme", registry="reg.local:5000")
    assert converted.spec.image is None and converted.spec.remote == meta.remote
    assert converted.spec.ingress_path == "/saas/mcp"
    with pytest.raises(ValidationError, match="mutually exclusive"):
        ServersFile.model_validate({"servers": [{"name": "saas", "image": "x",
                                                 "remote": {"url": "https://mcp.example.com/mcp"}}]})


def test_the_crd_schema_carries_remote_and_no_longer_requires_image() -> None:
    schema = render_crds()["mcpruntime.org_mcpservers.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert "image" not in spec.get("required", [])
    remote = spec["properties"]["remote"]
    assert remote["required"] == ["url"]
    assert set(remote["properties"]) == {"url", "headerSecret", "sessionToken", "caBundle"}
    assert set(remote["properties"]["headerSecret"]["required"]) == {"name", "key"}


def test_one_credential_per_call_same_for_everyone_or_each_callers_own() -> None:
    got = server({"remote": {"url": "https://mcp.example.com/mcp", "sessionToken": {}}})
    assert got.spec.remote is not None and got.spec.remote.session_token is not None
    assert (got.spec.remote.session_token.header, got.spec.remote.session_token.prefix) == ("Authorization", "Bearer ")
    both = {"url": "https://mcp.example.com/mcp", "sessionToken": {},
            "headerSecret": {"name": "k", "key": "v"}}
    assert "mutually exclusive" in error_of({"remote": both})
