"""What the podman tests share: `up --runtime podman` in a thread, the CLI as a user runs it, API and MCP calls."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS, free_port

from mcp_runtime.compose.embedded import EmbeddedPlatform
from mcp_runtime.compose.podman_stack import PodmanStack
from mcp_runtime.platform.settings import PlatformSettings
from mcp_runtime.runtime.base_image import (
    PYTHON_BASE_IMAGE,
    BaseImageSpec,
    build_base_image,
    build_platform_image,
    image_exists,
)
from mcp_runtime.runtime.podman import PodmanRuntime
from mcp_runtime.runtime.registry import BundledRegistry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "data-utility-mcp"


def run_cli(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`mcp-runtime ARGS` as a user's shell runs it, with this checkout's code."""
    full = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1", "COLUMNS": "200",
            "MCP_RUNTIME_BUILDER": "podman", **(env or {})}  # the base image is in podman's storage
    return subprocess.run([sys.executable, "-m", "mcp_runtime", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout)


def timed(label: str, started: float) -> None:
    print(f"[podman tests] {label}: {time.monotonic() - started:.1f}s")


def ensure_images() -> dict[str, str]:
    """The Debian + Python base (mmdebstrap, only when missing) and the platform image (sidecar)."""
    started = time.monotonic()
    if not image_exists(PYTHON_BASE_IMAGE):
        build_base_image(BaseImageSpec(name=PYTHON_BASE_IMAGE, python=True))
        timed("base image build", started)
    started = time.monotonic()
    built = build_platform_image(base=PYTHON_BASE_IMAGE)
    timed(f"platform image ({'built' if built else 'cached'})", started)
    return {"base": PYTHON_BASE_IMAGE}


class Served:
    """`up --runtime podman` in a thread: PodmanStack (bundled registry, images, runtime) + the embedded
    platform under uvicorn, wired the way `up` wires them."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the sidecars send analytics to the platform on the host, reached from pods through podman's
        # host.containers.internal (the bridge address), so the platform listens beyond loopback here
        ingest_key = "ingest-key-podman-test"
        self.stack = PodmanStack(data_dir, registry_address=f"127.0.0.1:{free_port()}",
                                 ingest_url=f"http://host.containers.internal:{self.port}/api/v1/ingest/events",
                                 ingest_api_key=ingest_key)
        self.stack.prepare()
        settings = PlatformSettings(data_dir=data_dir, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD,
                                    registry_host=self.stack.registry_host, ingest_api_key=ingest_key)
        self.embedded = EmbeddedPlatform(settings, public_url=self.url, runtime_factory=self.stack.runtime_factory)
        self.stack.attach(self.embedded.platform)
        assert self.stack.runtime is not None and self.stack.registry is not None
        self.runtime: PodmanRuntime = self.stack.runtime
        self.registry: BundledRegistry = self.stack.registry
        self.server = uvicorn.Server(uvicorn.Config(self.embedded.asgi, host="0.0.0.0", port=self.port,
                                                    lifespan="on", log_level="warning", interface="asgi3"))
        self.thread = threading.Thread(target=self.server.run, name="podman-up", daemon=True)

    def __enter__(self) -> Served:
        self.stack.start()
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the platform did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.stack.stop()


def make_people(up: Served) -> dict[str, Any]:
    """Teams acme (alice, owner) and globex (bob, member); their access tokens and CLI environments."""
    admin = ok(up, "POST", "/auth/login", body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})["accessToken"]
    teams = {slug: ok(up, "POST", "/teams", admin, {"slug": slug, "name": slug.title()})
             for slug in ("acme", "globex")}
    for slug, email, role in (("acme", "alice@acme.com", "owner"), ("globex", "bob@globex.com", "member")):
        ok(up, "POST", f"/teams/{slug}/users", admin, {"email": email, "password": PASSWORDS[email], "role": role})
    tokens = {"admin": admin}
    for who, email in (("alice", "alice@acme.com"), ("bob", "bob@globex.com")):
        tokens[who] = ok(up, "POST", "/auth/login", body={"email": email, "password": PASSWORDS[email]})[
            "accessToken"]
    keys = {who: ok(up, "POST", "/user/api-keys", tokens[who], {"name": "ci"})["key"] for who in ("alice", "bob")}
    envs = {who: {"MCP_PLATFORM_API_TOKEN": key, "MCP_PLATFORM_API_URL": up.url} for who, key in keys.items()}
    return {"teams": teams, "tokens": tokens, "env": envs}


def build_example_image(parent: Path, server: str, tag: str, base: str, env: dict[str, str]
                        ) -> subprocess.CompletedProcess[str]:
    """`server build image SERVER` in a copy of the data-utility example under `parent` (offline: wheels
    built on the host), as acme's owner (`env`); the image is tagged with the team's registry reference."""
    workdir = parent / EXAMPLE.name
    shutil.copytree(EXAMPLE, workdir, ignore=shutil.ignore_patterns("__pycache__", "*.whl"))
    (workdir / ".mcp").mkdir()
    (workdir / ".mcp" / "servers.yaml").write_text(f"version: v1\nservers:\n  - name: {server}\n    scope: tenant\n")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                    "-r", "requirements.txt", "-w", "wheels"], cwd=workdir, check=True)
    result = run_cli(["server", "build", "image", server, "--tag", tag,
                      "--build-arg", f"BASE_IMAGE={base}", "--build-arg", "PIP_OFFLINE=1"],
                     cwd=workdir, env=env, timeout=600)
    timed("example image build", started)
    return result


def deploy_ready(up: Served, token: str, namespace: str, server: str, metadata: dict[str, Any],
                 timeout: float = 180, update: bool = False) -> dict[str, Any]:
    """Deploy (or update: the pod is replaced) `server` through the platform API and wait for its phase."""
    started = time.monotonic()
    body = {"name": server, "scope": "tenant", "metadata": metadata, **({"update": True} if update else {})}
    ok(up, "POST", "/runtime/servers", token, body)
    status: dict[str, Any] = wait_for(lambda: ok(up, "GET", f"/runtime/servers/{namespace}/{server}", token)["status"],
                                      lambda s: s.get("phase") in ("Ready", "Error"), timeout=timeout)
    timed("deploy to ready", started)
    assert status["phase"] == "Ready", f"{status}\n{up.runtime.logs(namespace, server, 30, 'mcp-gateway')}"
    return status


def api(up: Served, method: str, path: str, token: str | None = None, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{up.url}/api/v1{path}", json=body, headers=headers, timeout=30)


def ok(up: Served, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
    answer = api(up, method, path, token, body)
    assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
    return answer.json() if answer.content else None


def wait_for(probe: Any, done: Any, timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def call_tool(url: str, token: str | None, tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    """(allowed, text): one MCP session with the official SDK client through the sidecar."""
    return asyncio.run(_call_tool(url, token, tool, arguments))


async def _call_tool(url: str, token: str | None, tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"} if token else {},
                                 timeout=httpx.Timeout(30, read=30)) as http:
        try:
            async with streamable_http_client(url, http_client=http) as (read, write), \
                    ClientSession(read, write, read_timeout_seconds=30) as session:
                await session.initialize()
                result = await session.call_tool(tool, arguments)
        except Exception as exc:  # a denied initialize or call surfaces as an error from the SDK
            return False, describe(exc)
    text = " ".join(getattr(part, "text", "") for part in result.content)
    return (not result.is_error), text


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return " | ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
