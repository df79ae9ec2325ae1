"""The podman runtime end to end, on real podman and the real distribution registry.

Build the Python example's image FROM the mmdebstrap base (`server build image`), push it to the bundled
registry (`registry push`, authorised by the platform), deploy it through the platform API with the podman
runtime (the Pod the operator renders, played by `podman kube play`), call a tool through the pod's
gateway sidecar with the official MCP SDK client, revoke the session (denied once the sidecar reloads its
policy file), delete the server (pod gone). A tenant push under another team's prefix is refused.

Images are cached in podman's storage: the base is built only when missing, the platform image only
when the package sources changed, the example image's layers are reused.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from platform_support import grant_doc
from podman_support import (
    EXAMPLE,
    Served,
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

from mcp_runtime.runtime.registry import BundledRegistry

SERVER = "data-utility"
TAG = "ci"
TOOLS = [{"name": t, "sideEffect": "read"} for t in ("echo", "add", "multiply", "upper", "lower", "ping")] + [
    {"name": "reverse", "sideEffect": "write"}]

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """The Debian + Python base (mmdebstrap, only when missing) and the platform image (sidecar)."""
    return ensure_images()


@pytest.fixture(scope="module")
def up(images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("up")) as served:
        yield served


@pytest.fixture(scope="module")
def registry(up: Served) -> BundledRegistry:
    return up.registry


@pytest.fixture(scope="module")
def people(up: Served) -> dict[str, Any]:
    """Teams acme (alice, owner) and globex (bob, member); their access tokens and CLI environments."""
    return make_people(up)


@pytest.fixture(scope="module")
def built_image(up: Served, people: dict[str, Any], images: dict[str, str], registry: BundledRegistry,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`server build image` in a copy of the example (offline: wheels built on the host)."""
    parent = tmp_path_factory.mktemp("example")
    result = build_example_image(parent, SERVER, TAG, images["base"], people["env"]["alice"])
    assert result.returncode == 0, result.stderr
    workdir = parent / EXAMPLE.name
    reference = result.stdout.strip().splitlines()[-1]
    yield {"reference": reference, "workdir": workdir, "stderr": result.stderr}
    # the registry's port is random per run: do not leave one image name per run in podman's storage
    subprocess.run(["podman", "rmi", "--force", reference], capture_output=True, check=False)


def test_build_tags_the_team_reference_and_rewrites_metadata(built_image: dict[str, Any],
                                                            registry: BundledRegistry) -> None:
    assert built_image["reference"] == f"{registry.address}/acme/{SERVER}:{TAG}"
    metadata = (built_image["workdir"] / ".mcp" / "servers.yaml").read_text()
    assert f"image: {registry.address}/acme/{SERVER}" in metadata
    assert f"imageTag: {TAG}" in metadata


def test_push_under_another_teams_prefix_is_refused(built_image: dict[str, Any], people: dict[str, Any],
                                                   registry: BundledRegistry) -> None:
    result = run_cli(["registry", "push", "--image", f"{registry.address}/globex/{SERVER}:{TAG}",
                      "--scope", "tenant"], env=people["env"]["alice"])
    assert result.returncode == 1
    assert "globex/" in result.stderr and "not one of your teams" in result.stderr
    catalog = httpx.get(f"{registry.url}/v2/_catalog").json()["repositories"] or []
    assert f"globex/{SERVER}" not in catalog


def test_build_push_deploy_call_revoke_delete(up: Served, built_image: dict[str, Any], people: dict[str, Any],
                                             registry: BundledRegistry) -> None:
    reference = built_image["reference"]
    alice, bob = people["tokens"]["alice"], people["tokens"]["bob"]
    pushed = run_cli(["registry", "push", "--image", reference, "--scope", "tenant"], env=people["env"]["alice"])
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == reference
    catalog = ok(up, "GET", "/registry/catalog", alice)["items"]
    assert {"repository": f"acme/{SERVER}", "scope": "tenant", "tags": [TAG],
            "image": f"{registry.address}/acme/{SERVER}"} in catalog
    assert all(item["repository"] != f"acme/{SERVER}" for item in ok(up, "GET", "/registry/catalog", bob)["items"])
    listed = run_cli(["registry", "catalog"], env=people["env"]["alice"])
    assert listed.returncode == 0 and f"acme/{SERVER}" in listed.stdout, listed.stderr
    status_cli = run_cli(["registry", "status", "-o", "json"], env=people["env"]["alice"])
    assert status_cli.returncode == 0 and '"reachable": true' in status_cli.stdout, status_cli.stderr
    # kube play must pull the app image from the registry, not find the local build
    subprocess.run(["podman", "rmi", "--force", reference], check=True, capture_output=True)

    image, tag = reference.rsplit(":", 1)
    namespace = "mcp-team-acme"
    status = deploy_ready(up, alice, namespace, SERVER, {"name": SERVER, "image": image, "imageTag": tag,
                                                         "tools": TOOLS})
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    # ToolsPinned: Unknown once a gateway listed the tools (nothing is pinned in this metadata), never False
    assert conditions.pop("ToolsPinned", "Unknown") == "Unknown", conditions
    assert conditions == {"DeploymentReady": "True", "GatewayReady": "True", "PolicyReady": "True", "Ready": "True"}
    sidecar = up.runtime.upstream_url(namespace, SERVER)
    assert sidecar is not None and sidecar.endswith(f"/{SERVER}/mcp")
    pod = up.runtime.pod_name(namespace, SERVER)
    app_logs = ok(up, "GET", f"/runtime/servers/{namespace}/{SERVER}/logs?tail=50", alice)["lines"]
    assert any("Uvicorn running" in line for line in app_logs), app_logs
    assert any("mcp-gateway for" in line for line in up.runtime.logs(namespace, SERVER, container="mcp-gateway"))
    inspect = subprocess.run(["podman", "pod", "inspect", pod], capture_output=True, text=True, check=True).stdout
    assert "mcp-gateway" in inspect and "mcp-server" in inspect

    globex = people["teams"]["globex"]["id"]
    ok(up, "POST", "/runtime/grants", alice, grant_doc(
        "data-utility-to-globex", namespace, SERVER, {"teamID": globex, "agentID": "cursor"},
        toolRules=[{"name": "add"}, {"name": "echo"}]))
    session = ok(up, "POST", "/runtime/adapter/sessions", bob, {"server": SERVER, "agentID": "cursor"})
    token, session_name = session["token"], session["session"]["metadata"]["name"]

    # allowed once the sidecar has loaded the policy with the grant and session (pushed as a file);
    # through up's public route (proxied to the sidecar, credentials intact) and at the sidecar itself
    public = f"{up.url}/{SERVER}/mcp"
    result = wait_for(lambda: call_tool(public, token, "add", {"a": 2, "b": 3}), lambda r: r[0], timeout=10)
    assert result == (True, "5")
    assert call_tool(sidecar, token, "echo", {"text": "hi"}) == (True, "hi")
    assert call_tool(public, token, "upper", {"text": "x"})[0] is False  # not granted
    assert call_tool(public, None, "add", {"a": 1, "b": 1})[0] is False  # no session token
    # the sidecar's decisions reach the platform's analytics (ingest with the platform's key)
    events = wait_for(lambda: ok(up, "GET", f"/analytics/events?server={SERVER}&tool=add", alice)["items"],
                      lambda items: any(e["decision"] == "allow" for e in items), timeout=20)
    allowed = [e for e in events if e["decision"] == "allow"]
    assert allowed and {"cursor", "bob@globex.com", "mcp-team-acme"} <= set(allowed[0].values()), allowed[0]

    _through_a_virtual_server(up, people, namespace)

    ok(up, "POST", f"/runtime/sessions/{namespace}/{session_name}/revoke", alice)
    revoked_at = time.monotonic()
    denied = wait_for(lambda: call_tool(public, token, "add", {"a": 2, "b": 3}), lambda r: not r[0], timeout=10)
    timed("revoke -> denied at the sidecar", revoked_at)
    assert denied[0] is False, denied
    raw = httpx.post(sidecar, headers={"Authorization": f"Bearer {token}", "Accept": "application/json, "
                                       "text/event-stream"},
                     json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "add", "arguments": {"a": 1, "b": 1}}})
    assert raw.status_code in (401, 403) and "revoked" in raw.text, raw.text

    # redeploy (update: true) replaces the pod in place (kube play --replace) with the new spec
    ok(up, "POST", "/runtime/servers", alice, {
        "name": SERVER, "scope": "tenant", "update": True,
        "metadata": {"name": SERVER, "image": image, "imageTag": tag, "tools": TOOLS,
                     "envVars": [{"name": "LOG_LEVEL", "value": "WARNING"}]}})
    status = wait_for(lambda: ok(up, "GET", f"/runtime/servers/{namespace}/{SERVER}", alice)["status"],
                      lambda s: s.get("phase") in ("Ready", "Error"), timeout=120)
    assert status["phase"] == "Ready", status
    env = subprocess.run(["podman", "inspect", f"{pod}-mcp-server", "--format", "{{json .Config.Env}}"],
                         capture_output=True, text=True, check=True).stdout
    assert "LOG_LEVEL=WARNING" in env
    assert "session_revoked" in httpx.post(up.runtime.upstream_url(namespace, SERVER) or "", headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).text

    ok(up, "DELETE", f"/runtime/servers/{namespace}/{SERVER}", alice)
    gone = wait_for(lambda: subprocess.run(["podman", "pod", "exists", pod]).returncode, lambda code: code != 0,
                    timeout=60)
    assert gone != 0




def _through_a_virtual_server(up: Served, people: dict[str, Any], namespace: str) -> None:
    """A virtual server over the pod: `up` reaches the app in the pod by the pod's address and decides
    each call by the member's policy (bob's grant: add and echo), as the sidecar does."""
    admin, alice = people["tokens"]["admin"], people["tokens"]["alice"]
    app = up.runtime.app_url(namespace, SERVER)
    assert app is not None and not app.startswith("http://127.0.0.1"), app  # the pod's own address
    ok(up, "POST", "/runtime/virtualservers", alice, {
        "apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPVirtualServer",
        "metadata": {"name": "toolbox", "namespace": namespace},
        "spec": {"members": [{"serverRef": {"name": SERVER}, "prefix": "du_"}]}})
    status = wait_for(lambda: ok(up, "GET", f"/runtime/virtualservers/{namespace}/toolbox", alice).get("status") or {},
                      lambda s: s.get("phase") == "Ready", timeout=20)
    assert status["url"] == f"{up.url}/v/toolbox/mcp", status
    globex = people["teams"]["globex"]["id"]
    issued = ok(up, "POST", "/runtime/sessions", admin, {
        "apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
        "metadata": {"name": "toolbox-cursor", "namespace": namespace},
        "spec": {"serverRef": {"name": "toolbox"}, "consentedTrust": "high",
                 "subject": {"teamID": globex, "agentID": "cursor"}}})
    virtual = f"{up.url}/v/toolbox/mcp"
    assert call_tool(virtual, issued["token"], "du_add", {"a": 40, "b": 2}) == (True, "42")
    denied = call_tool(virtual, issued["token"], "du_upper", {"text": "x"})
    assert denied[0] is False and "is not in grant" in denied[1], denied
    def through_toolbox(items: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(e["tool"], e["decision"]) for e in items if e.get("virtualServer") == f"{namespace}/toolbox"}

    events = wait_for(lambda: ok(up, "GET", f"/analytics/events?server={SERVER}&limit=500", alice)["items"],
                      lambda items: through_toolbox(items) >= {("add", "allow"), ("upper", "deny")}, timeout=20)
    assert through_toolbox(events) >= {("add", "allow"), ("upper", "deny")}, events
    ok(up, "DELETE", f"/runtime/virtualservers/{namespace}/toolbox", alice)
