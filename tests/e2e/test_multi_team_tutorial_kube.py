"""The multi-team tutorial (docs/multi-team.md) on the REAL test cluster (tests/kube/cluster.sh, tier 2).

What runs where:
- `mcp-runtime setup --test-mode --platform-mode none --registry-mode external --image <platform image>`
  installs the CRDs, namespaces, RBAC and the operator, which runs in a pod with its ServiceAccount; the
  platform image is built from this checkout and pulled by containerd from a loopback registry;
- the platform API: `mcp-runtime platform serve --runtime kubernetes` on this machine (the node), listening
  on the node's address; servers, grants and sessions are CRDs, users and teams in SQLite; it publishes its
  JWKS into `mcp-runtime` and applies each team's namespace. The operator's gateways send analytics to its
  ingest by address (`kubectl set env`: the in-cluster default is a Service DNS name, and the test cluster
  has no DNS);
- payments: the data-utility example's image built by the project, pushed to that registry, pulled by the node.

Steps, each as the tutorial types them: the admin creates teams acme and globex (namespaces appear on the
cluster) with alice and bob; alice deploys payments through the platform API (`server deploy --image`) and
its pod runs 2/2 with the sidecar; alice grants Globex's cursor agent echo and add, the admin applies a
session; bob runs `adapter proxy` against the Service (kube-proxy: no Ingress controller is built here) and
the official SDK client sees only echo and add, reverse denied; `access grant delete` denies his next call,
re-applying restores it; `analytics tools` shows his rows.
Team slugs get a random suffix: team namespaces are cluster-wide and other tests share the cluster.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from test_multi_team_tutorial import Background, answers, call, list_tools, wait_for

from fixtures.cli import cli_env, free_port, run_cli
from fixtures.kube_cluster import KubeCluster
from fixtures.kube_images import EXAMPLE_DIR
from fixtures.servers import run_data_utility_server

pytestmark = pytest.mark.slow

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-tutorial-pass"
TOOLS = "add, echo, lower, multiply, ping, reverse, upper"


@pytest.fixture
def team_slugs(kube_pods_cluster: KubeCluster) -> Iterator[dict[str, str]]:
    """acme-<x> and globex-<x>; their namespaces (made by the platform API) are deleted afterwards."""
    suffix = uuid.uuid4().hex[:6]
    slugs = {"acme": f"acme-{suffix}", "globex": f"globex-{suffix}"}
    yield slugs
    for slug in slugs.values():
        kube_pods_cluster.kubectl("delete", "namespace", f"mcp-team-{slug}", "--ignore-not-found", "--wait=false")


PLATFORM_NAMESPACES = ("mcp-runtime", "mcp-servers-org", "mcp-servers-public")


def remove_platform(cluster: KubeCluster) -> None:
    """What `setup` applied, except the CRDs (other tests share them)."""
    cluster.kubectl("delete", "namespace", *PLATFORM_NAMESPACES, "--ignore-not-found", "--timeout=120s", timeout=150)
    cluster.kubectl("delete", "clusterrole", "mcp-runtime-team-owner", "mcp-runtime-team-member",
                    "mcp-runtime-operator", "--ignore-not-found")
    cluster.kubectl("delete", "clusterrolebinding", "mcp-runtime-operator", "--ignore-not-found")


@pytest.fixture
def fresh_cluster(kube_pods_cluster: KubeCluster, platform_crds: list[str]) -> Iterator[KubeCluster]:
    """The cluster without the platform installed, before and after."""
    remove_platform(kube_pods_cluster)
    yield kube_pods_cluster
    remove_platform(kube_pods_cluster)


def test_multi_team_tutorial_on_kubernetes(
        fresh_cluster: KubeCluster, team_slugs: dict[str, str], kube_platform_image: str, kube_example_image: str,
        tmp_path: Path) -> None:
    cluster = fresh_cluster
    acme, globex = team_slugs["acme"], team_slugs["globex"]
    acme_ns = f"mcp-team-{acme}"
    node_ip = urlparse(cluster.api_url).hostname or ""
    port = free_port()
    url = f"http://{node_ip}:{port}"
    ingest_key = secrets.token_urlsafe(24)
    config = tmp_path / "config"
    base_env = {"MCP_RUNTIME_CONFIG_DIR": str(config), "MCP_PLATFORM_API_PROFILE": "", "MCP_PLATFORM_API_TOKEN": ""}
    kube_env = {"KUBECONFIG": str(cluster.kubeconfig)}
    started = time.monotonic()

    # Step 0: the platform team runs setup: CRDs, namespaces, RBAC and the operator in a pod, pulling the
    # platform image from the registry. The platform API runs on the node (below), outside the cluster: the
    # gateways send analytics to it by address (this cluster has no DNS), and the operator watches only the
    # tutorial's namespaces (other tests share the cluster).
    env_file = tmp_path / "mcpruntime.env"
    env_file.write_text(f"MCP_SETUP_EXTERNAL_REGISTRY={kube_platform_image.split('/')[0]}\n")
    setup = run_cli(["setup", "--env-file", str(env_file), "--test-mode", "--ingress", "none", "--platform-mode",
                     "none", "--registry-mode", "external", "--image", kube_platform_image], env=kube_env, timeout=180)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "MCP Runtime is installed in namespace mcp-runtime." in setup.stdout
    operator = (cluster.get("deployment", "mcp-runtime-operator", "mcp-runtime") or {})["spec"]["template"]
    # No ingest runs with --platform-mode none, so setup points the gateways at none.
    assert "MCP_SENTINEL_INGEST_URL" not in {e["name"] for e in operator["spec"]["containers"][0]["env"]}
    cluster.kubectl("-n", "mcp-runtime", "set", "env", "deployment/mcp-runtime-operator",
                    f"MCP_SENTINEL_INGEST_URL={url}/api/v1/ingest/events",
                    "MCP_SENTINEL_INGEST_KEY_SECRET=mcp-sentinel-ingest-key:api-key",
                    f"MCP_OPERATOR_NAMESPACES=mcp-runtime,{acme_ns},mcp-team-{globex}")
    cluster.kubectl("-n", "mcp-runtime", "rollout", "status", "deployment/mcp-runtime-operator",
                    "--timeout=300s", timeout=320)
    print(f"\n[tutorial kube] setup done, operator pod Ready {time.monotonic() - started:.1f}s into the test")

    api = Background(["platform", "serve", "--runtime", "kubernetes", "--host", node_ip, "--port", str(port),
                      "--data-dir", str(tmp_path / "data"), "--log-level", "warning", "--no-dashboard"],
                     cli_env({**base_env, **kube_env, "MCP_RUNTIME_ADMIN_EMAIL": ADMIN_EMAIL,
                              "MCP_RUNTIME_ADMIN_PASSWORD": ADMIN_PASSWORD, "MCP_RUNTIME_INGEST_API_KEY": ingest_key,
                              "MCP_RUNTIME_DATABASE_URL": "", "MCP_RUNTIME_ANALYTICS_URL": "",
                              "MCP_SENTINEL_NATS_URL": "", "MCP_SENTINEL_CLICKHOUSE_URL": ""}),
                     tmp_path / "api.log", tmp_path)
    adapter: Background | None = None

    def operator_log() -> str:
        return cluster.kubectl("-n", "mcp-runtime", "logs", "deployment/mcp-runtime-operator", "--tail=60",
                               check=False).stdout
    try:
        def healthy() -> bool:
            api.check_alive()
            try:
                return httpx.get(f"{url}/api/v1/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False
        wait_for(healthy, f"platform serve --runtime kubernetes on {url}", api.output)
        jwks = cluster.get("configmap", "mcp-runtime-jwks", "mcp-runtime") or {}
        assert json.loads(jwks["data"]["jwks.json"])["keys"], jwks

        def cli(*args: str, admin: bool = False, cwd: Path = tmp_path, ok: bool = True
                ) -> subprocess.CompletedProcess[str]:
            profile = {"MCP_PLATFORM_API_PROFILE": "admin"} if admin else {}
            result = run_cli(args, cwd=cwd, env={**base_env, **profile})
            if ok:
                assert result.returncode == 0, (f"mcp-runtime {shlex.join(args)}: exit {result.returncode}\n"
                                                f"{result.stdout}{result.stderr}\n--- api:\n{api.output()[-3000:]}")
            return result

        # Step 1: the admin creates the teams; the platform API applies their namespaces -----------
        cli("auth", "login", "--api-url", url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD,
            "--profile", "admin")
        for slug, name, email, password, role in ((acme, "Acme Corp", "alice@acme.com", "alice123", "owner"),
                                                  (globex, "Globex Corp", "bob@globex.com", "bob456", "member")):
            assert f"Created team {slug} ({name}) namespace mcp-team-{slug}" in cli(
                "team", "create", slug, "--name", name, admin=True).stdout
            cli("team", "user", "create", slug, "--username", email, "--password", password, "--role", role,
                admin=True)
            namespace = cluster.get("namespace", f"mcp-team-{slug}") or {}
            assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
            kinds = cluster.kubectl("-n", f"mcp-team-{slug}", "get",
                                    "resourcequota,limitrange,networkpolicy,rolebinding",
                                    "-o", "jsonpath={.items[*].kind}").stdout.split()
            assert {"ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding"} <= set(kinds), kinds
        teams = {t["slug"]: t for t in json.loads(cli("team", "list", "-o", "json", admin=True).stdout)}
        globex_id = teams[globex]["id"]
        # The gateways' ingest key, where the operator's sidecars read it (a platform admin's step here).
        cluster.kubectl("-n", acme_ns, "create", "secret", "generic", "mcp-sentinel-ingest-key",
                        f"--from-literal=api-key={ingest_key}")

        # Step 2: Alice deploys payments through the platform API ------------------------------
        cli("auth", "login", "--api-url", url, "--email", "alice@acme.com", "--password", "alice123",
            "--profile", "alice")
        cli("auth", "use", "alice")
        app = tmp_path / "data-utility-mcp"
        shutil.copytree(EXAMPLE_DIR, app, ignore=shutil.ignore_patterns("__pycache__", ".mcp", "wheels"))
        with run_data_utility_server() as example:
            init = cli("server", "init", "payments", "--from-server", example.base_url, cwd=app)
        assert f"Discovered: {TOOLS}" in init.stdout
        image, _, tag = kube_example_image.rpartition(":")
        deployed = cli("server", "deploy", "payments", "--scope", "tenant", "--metadata-dir", ".mcp",
                       "--image", image, "--tag", tag, cwd=app).stdout
        assert f"to namespace {acme_ns}" in deployed, deployed
        assert cluster.get("mcpserver", "payments", acme_ns) is not None  # a CRD, not a SQL row

        def listed_ready() -> str | None:
            table = cli("server", "list").stdout
            return table if re.search(rf"^payments\s+{acme_ns}\s+1/1\s+Ready\b", table, re.M) else None
        wait_for(listed_ready, "payments 1/1 Ready in `server list`",
                 lambda: operator_log()[-3000:] + cluster.kubectl(
                     "-n", acme_ns, "get", "pods,events", check=False).stdout)
        def one_pod_2_of_2() -> list[list[str]] | None:
            # `server list` may say Ready while a rollout still ends (the old pod terminating or the new one
            # starting): wait for the one pod the Deployment keeps, both containers ready
            pods = json.loads(cluster.kubectl("-n", acme_ns, "get", "pods", "-l", "mcpruntime.org/server=payments",
                                              "-o", "json").stdout)["items"]
            ready = [sorted(s["name"] for s in p["status"].get("containerStatuses", []) if s["ready"])
                     for p in pods if not p["metadata"].get("deletionTimestamp")]
            return ready if ready == [["mcp-gateway", "mcp-server"]] else None
        wait_for(one_pod_2_of_2, "one payments pod with mcp-gateway and mcp-server ready",
                 lambda: cluster.kubectl("-n", acme_ns, "get", "pods,replicasets,events", check=False).stdout)
        print(f"\n[tutorial kube] payments 2/2 Ready {time.monotonic() - started:.1f}s into the test")

        # Steps 4-5: Alice grants Globex's cursor agent echo and add; the admin applies a session --
        cli("access", "grant", "init", "payments-to-globex", "--server", "payments", "--namespace", acme_ns,
            "--team-id", globex_id, "--agent-id", "cursor", "--tool", "echo", "--tool", "add",
            "--output", "grant-cross.yaml", cwd=app)
        assert f"grant payments-to-globex created in {acme_ns} (Active)" in cli(
            "access", "grant", "apply", "--file", "grant-cross.yaml", cwd=app).stdout
        assert cluster.get("mcpaccessgrant", "payments-to-globex", acme_ns) is not None
        cli("access", "session", "init", "globex-payments-session", "--server", "payments", "--namespace",
            acme_ns, "--team-id", globex_id, "--agent-id", "cursor", "--trust", "low", "--expires-in", "4h",
            "--output", "session-cross.yaml", cwd=app)
        cli("access", "session", "apply", "--file", "session-cross.yaml", admin=True, cwd=app)

        # Step 6: Bob connects through the adapter, to the Service (kube-proxy) ------------------
        service = cluster.get("service", "payments", acme_ns) or {}
        runtime_url = f"http://{service['spec']['clusterIP']}/payments/mcp"
        cli("auth", "login", "--api-url", url, "--email", "bob@globex.com", "--password", "bob456",
            "--profile", "bob")
        cli("auth", "use", "bob")
        listen = free_port()
        adapter = Background(["adapter", "proxy", "--runtime-url", runtime_url, "--server", "payments",
                              "--agent", "cursor", "--agent-id", "cursor", "--auto-refresh",
                              "--listen", f"127.0.0.1:{listen}"], cli_env(base_env), tmp_path / "adapter.log",
                             tmp_path)
        bob_url = f"http://127.0.0.1:{listen}/mcp"

        def adapter_up() -> bool:
            assert adapter is not None
            adapter.check_alive()
            return answers(bob_url)
        wait_for(adapter_up, "the adapter listening", adapter.output)
        log: list[str] = []
        assert list_tools(bob_url) == ["add", "echo"]
        assert call(bob_url, "echo", {"text": "hello from globex"}, log) == ("ok", "hello from globex")
        assert call(bob_url, "add", {"a": 2, "b": 3}, log) == ("ok", "5")
        assert call(bob_url, "reverse", {"text": "abc"}, log) == ("denied", "tool_not_granted")

        # Step 7: no grant, no access; re-applied, access is back ----------------------------
        cli("auth", "use", "alice")
        assert f"grant payments-to-globex deleted in {acme_ns}" in cli(
            "access", "grant", "delete", "payments-to-globex", "--namespace", acme_ns).stdout
        wait_for(lambda: call(bob_url, "echo", {"text": "again"}, log) == ("denied", "no_matching_grant"),
                 "the deleted grant to deny bob's next call", adapter.output)
        cli("access", "grant", "apply", "--file", "grant-cross.yaml", cwd=app)
        wait_for(lambda: call(bob_url, "echo", {"text": "back"}, log) == ("ok", "back"),
                 "the re-applied grant to allow echo again", adapter.output)

        # Step 8: bob's traffic in analytics (the sidecar -> the API's ingest) -----------------
        def bob_rows() -> list[dict[str, Any]] | None:
            rows = json.loads(cli("analytics", "tools", "--server", "payments", "-o", "json").stdout)
            mine = [r for r in rows if r["user"] == "bob@globex.com"]
            tools = {r["tool"] for r in mine}
            return mine if {"echo", "add", "reverse"} <= tools else None
        rows = wait_for(bob_rows, "bob's calls in `analytics tools`", lambda: "\n".join(log))
        by_tool = {r["tool"]: r for r in rows}
        assert (by_tool["add"]["calls"], by_tool["add"]["denied"]) == (1, 0)
        assert (by_tool["reverse"]["calls"], by_tool["reverse"]["denied"]) == (1, 1)
        assert by_tool["echo"]["denied"] >= 1 and by_tool["echo"]["calls"] >= 3
        for row in rows:
            assert (row["server"], row["team"], row["agent"]) == ("payments", globex, "cursor"), row
        print(f"[tutorial kube] done {time.monotonic() - started:.1f}s into the test")
        cluster.kubectl("-n", acme_ns, "delete", "mcpservers", "--all", "--timeout=60s", timeout=90)
    finally:
        if adapter is not None:
            adapter.stop()
        api.stop()
