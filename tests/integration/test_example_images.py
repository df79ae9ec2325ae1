"""The Go and Rust examples' container images, built as their READMEs say and run with podman.

The binary is built on the host with the machine's toolchain (no image registry is reachable, so no golang
or rust build image), `mcp-runtime server build image` builds the example's Containerfile FROM the
mmdebstrap Debian base (`mcp-runtime image base`, built only when missing), podman runs it with its port
published on loopback, and the official MCP Python SDK client lists and calls its tools.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from fixtures.cli import free_port, run_cli
from fixtures.examples import (
    GO_DIR,
    RUST_DIR,
    Toolchain,
    ToolchainError,
    build_go_example,
    build_rust_example,
    find_cargo,
    find_go,
)

pytestmark = pytest.mark.slow

BASE_IMAGE = "localhost/mcp-runtime-base:bookworm"
REGISTRY = "127.0.0.1:5000"  # only names the image: nothing is pushed here
CLI_ENV = {"MCP_RUNTIME_REGISTRY": REGISTRY, "MCP_RUNTIME_BUILDER": "podman"}


@dataclass(frozen=True)
class Example:
    name: str  # the server name the image is built under
    directory: Path
    find: Callable[[], Toolchain]
    build: Callable[[Toolchain], Path]
    tools: list[str]
    call: tuple[str, dict[str, Any], str]  # tool, arguments, the text it answers
    build_args: tuple[str, ...] = ()  # beyond BASE_IMAGE


EXAMPLES = {
    "go": Example("workspace-demo", GO_DIR, find_go, build_go_example,
                  ["add", "create_task", "draft_release_note", "echo", "lower", "slugify", "upper"],
                  ("slugify", {"text": "Hello Container!"}, "hello-container")),
    "rust": Example("text-analysis", RUST_DIR, find_cargo, build_rust_example,
                    ["extract_keywords", "repeat", "word_count"],
                    ("repeat", {"text": "ab", "times": 3}, "ababab"),
                    # the debug binary the tests build (a cold release build costs three times the CPU)
                    ("BINARY=target/debug/text-analysis-mcp",)),
}


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def base_image() -> str:
    """The Debian base from the Debian mirror (mmdebstrap + podman import); reused when it exists."""
    started = time.monotonic()
    result = run_cli(["image", "base"], env=CLI_ENV, timeout=900)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == BASE_IMAGE
    print(f"\n[example images] base image ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return BASE_IMAGE


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def image(request: pytest.FixtureRequest, base_image: str) -> Iterator[tuple[Example, str]]:
    """The example's binary built on the host, then its image built by `server build image`."""
    example = EXAMPLES[request.param]
    try:
        example.build(example.find())
    except ToolchainError as exc:
        pytest.fail(str(exc))
    started = time.monotonic()
    build_args = [arg for value in (f"BASE_IMAGE={base_image}", *example.build_args) for arg in ("--build-arg", value)]
    result = run_cli(["server", "build", "image", example.name, "--tag", "ci", "--scope", "org", *build_args],
                     cwd=example.directory, env=CLI_ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    reference = result.stdout.strip().splitlines()[-1]  # after podman's own output (streamed to stdout)
    assert reference == f"{REGISTRY}/org/{example.name}:ci"
    size = podman("image", "inspect", "--format", "{{.Size}}", reference).stdout.strip()
    print(f"\n[example images] {reference} built in {time.monotonic() - started:.1f}s, {int(size) / 1e6:.1f} MB",
          file=sys.stderr)
    try:
        yield example, reference
    finally:
        podman("rmi", "--force", reference)


@pytest.fixture
def container(image: tuple[Example, str]) -> Iterator[tuple[Example, str, str]]:
    """The image running with its port published on 127.0.0.1; removed afterwards."""
    example, reference = image
    port = free_port()
    name = f"example-{example.name}-{port}"
    started = podman("run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:8088", reference)
    assert started.returncode == 0, started.stderr
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/mcp", name)
        yield example, name, f"http://127.0.0.1:{port}/mcp"
    finally:
        podman("rm", "--force", "--time", "5", name)


def wait_until_answering(url: str, name: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            list_tools(url)
            return
        except Exception as exc:  # not listening yet, or still starting
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                logs = podman("logs", name)
                raise AssertionError(f"{name} ({state}) does not answer at {url}: {exc}\n"
                                     f"{logs.stdout}{logs.stderr}") from exc
            time.sleep(0.2)


def list_tools(url: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        with anyio.fail_after(10):
            async with streamable_http_client(url) as (read, write), \
                    ClientSession(read, write, read_timeout_seconds=10) as session:
                await session.initialize()
                listed = await session.list_tools()
        return [tool.model_dump(by_alias=True, exclude_none=True, mode="json") for tool in listed.tools]

    return anyio.run(run)


def call_tool(url: str, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
    async def run() -> tuple[str, bool]:
        with anyio.fail_after(10):
            async with streamable_http_client(url) as (read, write), \
                    ClientSession(read, write, read_timeout_seconds=10) as session:
                await session.initialize()
                result = await session.call_tool(tool, arguments)
        return " ".join(getattr(part, "text", "") for part in result.content), result.is_error

    return anyio.run(run)


def test_the_image_serves_its_tools_to_the_sdk_client(container: tuple[Example, str, str]) -> None:
    example, name, url = container
    tools = list_tools(url)
    print(f"\n[example images] tools/list from {name}: {json.dumps([t['name'] for t in tools])}", file=sys.stderr)
    assert sorted(tool["name"] for tool in tools) == example.tools
    assert all(tool["inputSchema"]["type"] == "object" for tool in tools)
    tool, arguments, expected = example.call
    assert call_tool(url, tool, arguments) == (expected, False)


def test_the_image_runs_as_a_non_root_user_with_the_platform_defaults(container: tuple[Example, str, str]) -> None:
    _, name, _ = container
    config = json.loads(podman("inspect", "--format", "{{json .Config}}", name).stdout)
    assert config["User"] == "65532:65532"
    assert {"HOST=0.0.0.0", "PORT=8088", "MCP_PATH=/mcp"} <= set(config["Env"])
    uid = podman("exec", name, "id", "-u")  # the Debian base has coreutils (distroless would not)
    assert uid.returncode == 0 and uid.stdout.strip() == "65532", uid.stderr
