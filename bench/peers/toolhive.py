"""ToolHive's `thv proxy` (Go, Stacklok) as a native peer in the gateway benchmark.

    .venv/bin/python bench/peers/toolhive.py install     # once; builds thv with `go install`
    .venv/bin/python bench/gateway_overhead.py --scenarios gateway toolhive

Why this one: it is a standalone MCP proxy written in Go that the Go module proxy serves and that
builds here with `go install github.com/stacklok/toolhive/cmd/thv@<version>`; `thv proxy` runs in
front of any Streamable HTTP server without containers. Other Go MCP gateways that were tried are not
served by the module proxy this machine reaches (see bench/README.md). toolhive v0.63.0 and v0.66.0
need modules that proxy does not serve (toolhive-core v0.0.60, json-canonicalization); v0.47.0 builds.

The binary goes to `~/.cache/mcp-runtime-bench/peers/toolhive-<version>/thv` (or under
$BENCH_PEERS_CACHE), outside the repository; nothing of it is committed.

`thv` refuses to start any command but a few informational ones without a container runtime it can
ping, although `thv proxy` runs no container: the scenario starts a real Podman API service
(`podman system service`, Debian's podman) on a socket in the run's scratch directory, with its own
storage there, and points `TOOLHIVE_PODMAN_SOCKET` at it. It is idle during the load and its CPU is
not counted.

`thv proxy` runs with no incoming authentication: it measures what a native reverse proxy in front
of an MCP server costs, with the middlewares `thv proxy` always installs (request body limit, Origin
check, anonymous identity). Its OIDC
mode could not be exercised here: the JWKS fetcher of `thv proxy` refuses loopback and private
addresses (only `thv run`, which needs a container, has `--jwks-allow-private-ip`), and this machine
has no other address to serve a JWKS from. It has no per-tool authorization either (ToolHive's Cedar
policies come with `thv run`), so this row is forwarding, not governance.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import free_port, process
from scenarios import Context, RunningUpstream, Scenario, Target

MODULE = "github.com/stacklok/toolhive/cmd/thv"
VERSION = os.environ.get("TOOLHIVE_VERSION", "v0.47.0")
CACHE = Path(os.environ.get("BENCH_PEERS_CACHE", Path.home() / ".cache" / "mcp-runtime-bench" / "peers"))


def go() -> str:
    """The machine's own Go (/usr/local/go), not Debian's older golang-go."""
    for candidate in ("/usr/local/go/bin/go", shutil.which("go") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("building thv needs Go: /usr/local/go/bin/go was not found")


def install() -> Path:
    """`thv` at `VERSION`, built with `go install` into the cache on first use."""
    directory = CACHE / f"toolhive-{VERSION}"
    binary = directory / "thv"
    if binary.exists():
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    print(f"building {MODULE}@{VERSION} into {directory} (several minutes on 2 cores) ...", flush=True)
    env = {**os.environ, "GOBIN": str(directory), "GOFLAGS": "-mod=mod"}
    subprocess.run([go(), "install", f"{MODULE}@{VERSION}"], env=env, check=True)
    return binary


@contextlib.contextmanager
def _podman_service() -> Iterator[Path]:
    """A Podman API service (Docker-compatible) on a unix socket, with its own throwaway storage.

    Under a short /tmp directory: podman refuses a runroot longer than 50 characters.
    """
    podman = shutil.which("podman")
    if podman is None:
        raise SystemExit("thv needs a container runtime to start: apt-get install podman")
    directory = Path(tempfile.mkdtemp(prefix="thv-"))
    socket_path = directory / "podman.sock"
    argv = [podman, "--root", str(directory / "root"), "--runroot", str(directory / "run"), "--storage-driver", "vfs",
            "system", "service", "--time=0", f"unix://{socket_path}"]
    try:
        with process(argv, "http://d/_ping", env=dict(os.environ), ready_status=200, uds=socket_path,
                     log=directory / "podman.log"):
            yield socket_path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _thv_env(home: Path) -> dict[str, str]:
    """thv keeps config and state under XDG directories (the run's scratch directory) and asks a Stacklok
    host for updates unless told not to (this machine reaches no such host)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TOOLHIVE_SKIP_UPDATE_CHECK": "true",
            "XDG_CONFIG_HOME": str(home / "config"), "XDG_STATE_HOME": str(home / "state"),
            "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache")}


@contextlib.contextmanager
def toolhive(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    binary = install()
    home = ctx.workdir / f"toolhive-{up.upstream.name}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port = free_port()
    target_uri = up.url.removesuffix("/mcp")
    argv = [str(binary), "proxy", f"bench-{up.upstream.name}", "--host", "127.0.0.1", "--port", str(port),
            "--target-uri", target_uri]
    with contextlib.ExitStack() as stack:
        env = {**_thv_env(home), "TOOLHIVE_PODMAN_SOCKET": str(stack.enter_context(_podman_service()))}
        proc = stack.enter_context(process(argv, f"http://127.0.0.1:{port}/health", env=env,
                                           timeout=60, log=home / "thv.log"))
        yield Target(url=f"http://127.0.0.1:{port}/mcp", headers={}, pid=proc.pid)


SCENARIOS = {
    "toolhive": Scenario("toolhive", f"ToolHive {VERSION} `thv proxy` (Go), no incoming auth", toolhive),
}


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit(__doc__)
    print(install())
