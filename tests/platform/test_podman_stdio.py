"""A stdio package server in podman, governed by its pod's sidecar, which is an OAuth protected resource.

`server build image` turns `npm:@modelcontextprotocol/server-filesystem@...` into an image with the package
preinstalled on the platform image (Node and npm fetched on the host, `npx` offline in the image); the pod's
app container runs `mcp-runtime bridge stdio -- npx -y <pkg>` as its entrypoint; the official SDK client calls
a granted read tool through `up`'s public route and the sidecar, and a write tool is refused. The sidecar is
told `up`'s URL and the platform's issuer: it serves RFC 9728 metadata (reached through `up`'s URL, as a
client discovers it) and every 401 names it.

The package image is rebuilt only when missing or older than the platform image (podman's storage caches it).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS, grant_doc
from podman_support import Served, call_tool, ensure_images, ok, run_cli, timed, wait_for

from fixtures.package_images import TIME_PACKAGE, build_package_image
from mcp_runtime.manifests.options import DEFAULT_GATEWAY_IMAGE

pytestmark = [pytest.mark.slow]

SERVER = "files"
PACKAGE = "npm:@modelcontextprotocol/server-filesystem@2026.8.31"
IMAGE = "127.0.0.1:5999/acme/files"  # built locally; the pod takes it from podman's storage (IfNotPresent)
TAG = "ci"
NAMESPACE = "mcp-team-acme"
TOOLS = [{"name": "list_directory", "sideEffect": "read"}, {"name": "list_allowed_directories", "sideEffect": "read"},
         {"name": "write_file", "sideEffect": "write"}]


def _created(image: str) -> str | None:
    done = subprocess.run(["podman", "image", "inspect", "--format", "{{.Created}}", image], capture_output=True,
                          text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture(scope="module")
def package_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`server build image files` from `.mcp` metadata naming the package (only when the cached one is stale)."""
    ensure_images()
    reference = f"{IMAGE}:{TAG}"
    built, platform = _created(reference), _created(DEFAULT_GATEWAY_IMAGE)
    if built is not None and platform is not None and built > platform:
        return reference
    workdir = tmp_path_factory.mktemp("files")
    (workdir / ".mcp").mkdir()
    (workdir / ".mcp" / "servers.yaml").write_text(
        f"version: v1\nservers:\n  - name: {SERVER}\n    scope: tenant\n"
        f"    stdio:\n      package: \"{PACKAGE}\"\n      args: [/opt/mcp-stdio]\n")
    started = time.monotonic()
    result = run_cli(["server", "build", "image", SERVER, "--tag", TAG, "--team", "acme"], cwd=workdir,
                     env={"MCP_RUNTIME_REGISTRY": "127.0.0.1:5999"}, timeout=600)
    timed("package image build", started)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == reference
    assert "with npm:@modelcontextprotocol/server-filesystem" in result.stderr
    metadata = (workdir / ".mcp" / "servers.yaml").read_text()
    assert f"image: {IMAGE}" in metadata and f"imageTag: {TAG}" in metadata
    return reference


@pytest.fixture(scope="module")
def up(package_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("up")) as served:
        yield served


def _people(up: Served) -> dict[str, Any]:
    admin = ok(up, "POST", "/auth/login", body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})["accessToken"]
    teams = {slug: ok(up, "POST", "/teams", admin, {"slug": slug, "name": slug.title()}) for slug in ("acme", "globex")}
    for slug, email, role in (("acme", "alice@acme.com", "owner"), ("globex", "bob@globex.com", "member")):
        ok(up, "POST", f"/teams/{slug}/users", admin, {"email": email, "password": PASSWORDS[email], "role": role})
    tokens = {who: ok(up, "POST", "/auth/login", body={"email": email, "password": PASSWORDS[email]})["accessToken"]
              for who, email in (("alice", "alice@acme.com"), ("bob", "bob@globex.com"))}
    return {"teams": teams, "tokens": tokens}


def test_a_stdio_package_server_runs_in_podman_behind_an_oauth_protected_sidecar(up: Served,
                                                                                package_image: str) -> None:
    people = _people(up)
    alice, bob = people["tokens"]["alice"], people["tokens"]["bob"]
    image, tag = package_image.rsplit(":", 1)
    started = time.monotonic()
    ok(up, "POST", "/runtime/servers", alice, {"name": SERVER, "scope": "tenant", "metadata": {
        "name": SERVER, "image": image, "imageTag": tag, "tools": TOOLS,
        "stdio": {"package": PACKAGE, "args": ["/opt/mcp-stdio"]}}})
    status = wait_for(lambda: ok(up, "GET", f"/runtime/servers/{NAMESPACE}/{SERVER}", alice)["status"],
                      lambda s: s.get("phase") in ("Ready", "Error"), timeout=180)
    timed("stdio pod deploy to ready", started)
    assert status["phase"] == "Ready", f"{status}\n{up.runtime.logs(NAMESPACE, SERVER, 30, 'mcp-gateway')}"
    pod = up.runtime.pod_name(NAMESPACE, SERVER)
    app = json.loads(subprocess.run(["podman", "inspect", f"{pod}-mcp-server"], capture_output=True, text=True,
                                    check=True).stdout)[0]
    command = [app["Path"], *app["Args"]]
    assert command[:3] == ["mcp-runtime", "bridge", "stdio"], command  # the bridge is the entrypoint
    assert command[-4:] == ["npx", "-y", PACKAGE.removeprefix("npm:"), "/opt/mcp-stdio"], command
    assert "NPM_CONFIG_OFFLINE=true" in app["Config"]["Env"]  # npx may not fetch anything at start

    # the sidecar is an OAuth protected resource at up's public URL; discovery goes through up's URL
    resource = f"{up.url}/{SERVER}/mcp"
    metadata_url = f"{up.url}/.well-known/oauth-protected-resource/{SERVER}/mcp"
    metadata = httpx.get(metadata_url, timeout=10)
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["resource"] == resource
    assert metadata.json()["authorization_servers"] == [f"{up.url}/api/v1/oauth"]
    sidecar = up.runtime.upstream_url(NAMESPACE, SERVER) or ""
    for url in (resource, sidecar):
        refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                             headers={"Accept": "application/json, text/event-stream"}, timeout=10)
        assert refused.status_code == 401, refused.text
        assert f'resource_metadata="{metadata_url}"' in refused.headers["www-authenticate"]

    # a grant for the read tools; bob's adapter session calls them through up's route (and the bridge)
    ok(up, "POST", "/runtime/grants", alice, grant_doc(
        "files-to-globex", NAMESPACE, SERVER, {"teamID": people["teams"]["globex"]["id"], "agentID": "cursor"},
        toolRules=[{"name": "list_directory"}, {"name": "list_allowed_directories"}], allowedSideEffects=["read"]))
    token = ok(up, "POST", "/runtime/adapter/sessions", bob, {"server": SERVER, "agentID": "cursor"})["token"]
    listed = wait_for(lambda: call_tool(resource, token, "list_directory", {"path": "/opt/mcp-stdio"}),
                      lambda r: r[0], timeout=20)
    assert listed[0] and "node_modules" in listed[1] and "package.json" in listed[1], listed
    written = call_tool(resource, token, "write_file", {"path": "/tmp/x", "content": "no"})
    assert written[0] is False, written
    logs = wait_for(lambda: ok(up, "GET", f"/runtime/servers/{NAMESPACE}/{SERVER}/logs?tail=50", alice)["lines"],
                    lambda lines: any("Secure MCP Filesystem Server" in line for line in lines), timeout=10)
    assert any("Secure MCP Filesystem Server" in line for line in logs), logs  # the server's stderr

    ok(up, "DELETE", f"/runtime/servers/{NAMESPACE}/{SERVER}", alice)
    gone = wait_for(lambda: httpx.get(metadata_url, timeout=10).status_code, lambda code: code == 404, timeout=30)
    assert gone == 404  # no route, no metadata


def test_a_pypi_package_image_runs_its_server_without_network(tmp_path: Path) -> None:
    """`server build image` for `pypi:mcp-server-time==...`: in the image, `uvx` installs the server from the
    wheels it carries, with no network and a read-only root (as in a pod), and the server answers."""
    ensure_images()
    package = TIME_PACKAGE
    reference = build_package_image(tmp_path, "time", package, registry="127.0.0.1:5999", tag="ci",
                                    reuse_newer_than=DEFAULT_GATEWAY_IMAGE).reference
    initialize = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    answer = subprocess.run(["podman", "run", "--rm", "-i", "--network", "none", "--read-only", "--tmpfs", "/tmp",
                             "--entrypoint", "uvx", reference, package.removeprefix("pypi:")],
                            input=initialize + "\n", capture_output=True, text=True, timeout=120, check=False)
    first = next((line for line in answer.stdout.splitlines() if line.startswith("{")), "")
    assert first and json.loads(first)["result"]["serverInfo"]["name"] == "mcp-time", answer.stderr
