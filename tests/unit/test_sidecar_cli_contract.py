"""The sidecar command line the operator renders must be one `mcp-runtime gateway run` accepts, with the
server's route as its public path; otherwise every pod crash-loops (or 404s) on a real cluster, which
the fake API server cannot show."""

from __future__ import annotations

from typing import Any

import typer

from mcp_runtime.cli.app import app
from mcp_runtime.manifests import GATEWAY_CONTAINER, RenderOptions, render_server
from mcp_runtime.policy import compile_policy
from mcp_runtime.resources import MCPServer


def parse_gateway_args(args: list[str]) -> dict[str, Any]:
    root: Any = typer.main.get_command(app)
    with root.make_context("mcp-runtime", ["gateway", "run", "--help"], resilient_parsing=True) as ctx:
        command = root.get_command(ctx, args[0]).get_command(ctx, args[1])
        return dict(command.make_context("run", list(args[2:])).params)


def sidecar_args(gateway: dict[str, Any] | None = None, **options: Any) -> list[str]:
    server = MCPServer.model_validate({"metadata": {"name": "payments", "namespace": "mcp-team-acme", "uid": "u"},
                                       "spec": {"image": "acme/payments:v1", "gateway": gateway or {},
                                                "tools": [{"name": "echo", "sideEffect": "read"}]}})
    rendered = render_server(server, compile_policy(server, [], []), RenderOptions(**options))
    containers = rendered.deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == GATEWAY_CONTAINER)["args"]


def test_file_policy_sidecar_args_parse_with_the_route_as_path() -> None:
    params = parse_gateway_args(sidecar_args(watch_policy_via_api=False))
    assert params["path"] == "/payments/mcp"


def test_api_watch_sidecar_args_parse() -> None:
    params = parse_gateway_args(sidecar_args(watch_policy_via_api=True))
    assert params["policy_configmap"] == "mcp-team-acme/payments-policy"


def test_the_contract_check_parses_what_gateway_run_accepts() -> None:
    """The helper above really parses: a plain, valid command line goes through."""
    params = parse_gateway_args(["gateway", "run", "--upstream", "http://127.0.0.1:8088/mcp", "--policy-file", "p",
                                 "--jwks-file", "j", "--path", "/payments/mcp"])
    assert params["path"] == "/payments/mcp"


def test_the_server_timeouts_reach_the_sidecar() -> None:
    """`spec.gateway.timeouts` becomes the sidecar's --connect-timeout/--read-timeout (defaults: not rendered)."""
    params = parse_gateway_args(sidecar_args({"timeouts": {"connect": "3s", "read": "2m"}}))
    assert (params["connect_timeout"], params["read_timeout"]) == ("3s", "2m")
    defaults = parse_gateway_args(sidecar_args())
    assert (defaults["connect_timeout"], defaults["read_timeout"]) == ("10s", "300s")
    assert "--read-timeout" not in sidecar_args()


def test_a_remote_servers_gateway_args_parse_with_its_credential_ca_and_timeouts() -> None:
    server = MCPServer.model_validate({"metadata": {"name": "saas", "namespace": "mcp-team-acme", "uid": "u"},
                                       "spec": {"remote": {"url": "https://mcp.example.com/mcp",
                                                           "caBundle": "-----BEGIN CERTIFICATE-----\nx\n",
                                                           "headerSecret": {"name": "saas", "key": "token",
                                                                            "prefix": "Bearer "}},
                                                "gateway": {"timeouts": {"connect": "5s", "read": "1m"}}}})
    rendered = render_server(server, compile_policy(server, [], []), RenderOptions())
    (gateway,) = rendered.deployment["spec"]["template"]["spec"]["containers"]
    params = parse_gateway_args(gateway["args"])
    assert params["upstream"] == "https://mcp.example.com/mcp"
    assert (params["upstream_header"], params["upstream_header_prefix"]) == ("Authorization", "Bearer ")
    assert str(params["upstream_credential_file"]) == "/var/run/mcp-runtime/remote/credential"
    assert str(params["ca_file"]) == "/etc/mcp-runtime/policy/remote-ca.pem"
    assert (params["connect_timeout"], params["read_timeout"]) == ("5s", "1m")


ISSUER = "https://platform.example.com/api/v1/oauth"


def test_the_sidecar_is_an_oauth_resource_at_its_public_url() -> None:
    """With the platform's issuer and the servers' base URL, the sidecar is told its resource URI (the base
    plus its route) and the authorization server; `gateway run` accepts both."""
    params = parse_gateway_args(sidecar_args(public_url="https://mcp.example.com/", oauth_issuer=ISSUER))
    assert params["resource_url"] == "https://mcp.example.com/payments/mcp"
    assert params["authorization_server"] == [ISSUER]


def test_no_issuer_or_no_url_renders_no_oauth_flags() -> None:
    for options in ({}, {"public_url": "https://mcp.example.com"}, {"oauth_issuer": ISSUER}):
        args = sidecar_args(**options)
        assert "--resource-url" not in args and "--authorization-server" not in args, options


def test_a_server_with_its_own_host_is_a_resource_at_that_host() -> None:
    server = MCPServer.model_validate({"metadata": {"name": "payments", "namespace": "mcp-team-acme", "uid": "u"},
                                       "spec": {"image": "acme/payments:v1", "ingressHost": "pay.example.com",
                                                "tools": [{"name": "echo", "sideEffect": "read"}]}})
    for tls, scheme in ((True, "https"), (False, "http")):
        rendered = render_server(server, compile_policy(server, [], []),
                                 RenderOptions(oauth_issuer=ISSUER, public_url="https://mcp.example.com",
                                               tls_enabled=tls))
        gateway = next(c for c in rendered.deployment["spec"]["template"]["spec"]["containers"]
                       if c["name"] == GATEWAY_CONTAINER)
        assert parse_gateway_args(gateway["args"])["resource_url"] == f"{scheme}://pay.example.com/payments/mcp"
