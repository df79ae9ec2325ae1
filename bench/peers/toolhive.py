"""ToolHive's `thv proxy` (Go, Stacklok) as a native peer in the gateway benchmark.

    .venv/bin/python bench/peers/toolhive.py install     # once; builds thv with `go install`
    .venv/bin/python bench/gateway_overhead.py --scenarios gateway toolhive toolhive-oidc

Why this one: it is a standalone MCP proxy written in Go that the Go module proxy serves and that
builds here with `go install github.com/stacklok/toolhive/cmd/thv@<version>`; `thv proxy` runs in
front of any Streamable HTTP server without containers. Other Go MCP gateways that were tried are not
served by the module proxy this machine reaches (see bench/README.md). Newer toolhive releases need
modules the proxy does not serve either; `VERSION` is the newest that builds here.

The binary goes to `~/.cache/mcp-runtime-bench/peers/toolhive-<version>/thv` (or under
$BENCH_PEERS_CACHE), outside the repository; nothing of it is committed. Two scenarios:

- `toolhive`: `thv proxy` with no incoming authentication: what a native reverse proxy in front of an
  MCP server costs (its middlewares: body limit, Origin check, anonymous identity, MCP parsing);
- `toolhive-oidc`: the same with OIDC token validation on every call (`--oidc-issuer/-audience/
  -jwks-url`): an RS256 JWT with a `kid`, verified against a JWKS served on loopback by a separate
  `python -m http.server` process. `thv proxy` has no per-tool authorization (ToolHive's Cedar
  policies come with `thv run`, which runs the server in a container), so this row is authenticated
  forwarding, not governance.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
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


def _thv_env(home: Path) -> dict[str, str]:
    """thv keeps config and state under XDG directories: point them at the run's scratch directory."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"), "XDG_STATE_HOME": str(home / "state"),
            "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache")}


@contextlib.contextmanager
def _jwks_server(directory: Path) -> Iterator[tuple[str, str]]:
    """An RSA key, its JWKS and OIDC discovery document on loopback; yields (issuer, signed token)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "bench", "use": "sig", "alg": "RS256"})
    (directory / ".well-known").mkdir(parents=True, exist_ok=True)
    (directory / "jwks.json").write_text(json.dumps({"keys": [public]}))
    (directory / ".well-known" / "openid-configuration").write_text(json.dumps({
        "issuer": issuer, "jwks_uri": f"{issuer}/jwks.json", "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token", "response_types_supported": ["code"],
        "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}))
    now = int(time.time())
    token = jwt.encode({"iss": issuer, "aud": "bench", "sub": "bench-agent", "iat": now, "exp": now + 7200},
                       key, algorithm="RS256", headers={"kid": "bench"})
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)]
    with process(argv, f"{issuer}/jwks.json", ready_status=200, log=directory.parent / "jwks-server.log"):
        yield issuer, token


@contextlib.contextmanager
def _toolhive(up: RunningUpstream, ctx: Context, *, oidc: bool) -> Iterator[Target]:
    binary = install()
    home = ctx.workdir / f"toolhive-{up.upstream.name}-{'oidc' if oidc else 'anon'}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port = free_port()
    target_uri = up.url.removesuffix("/mcp")
    argv = [str(binary), "proxy", f"bench-{up.upstream.name}", "--host", "127.0.0.1", "--port", str(port),
            "--target-uri", target_uri]
    with contextlib.ExitStack() as stack:
        headers: dict[str, str] = {}
        if oidc:
            issuer, token = stack.enter_context(_jwks_server(home / "jwks"))
            argv += ["--oidc-issuer", issuer, "--oidc-audience", "bench", "--oidc-jwks-url", f"{issuer}/jwks.json"]
            headers["Authorization"] = f"Bearer {token}"
        proc = stack.enter_context(process(argv, f"http://127.0.0.1:{port}/health", env=_thv_env(home),
                                           timeout=60, log=home / "thv.log"))
        yield Target(url=f"http://127.0.0.1:{port}/mcp", headers=headers, pid=proc.pid)


@contextlib.contextmanager
def toolhive(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    with _toolhive(up, ctx, oidc=False) as target:
        yield target


@contextlib.contextmanager
def toolhive_oidc(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    with _toolhive(up, ctx, oidc=True) as target:
        yield target


SCENARIOS = {
    "toolhive": Scenario("toolhive", f"ToolHive {VERSION} `thv proxy` (Go), no incoming auth", toolhive),
    "toolhive-oidc": Scenario("toolhive-oidc", f"ToolHive {VERSION} `thv proxy` with OIDC JWT validation",
                              toolhive_oidc),
}


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit(__doc__)
    print(install())
