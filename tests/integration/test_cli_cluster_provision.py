"""`mcp-runtime cluster provision --provider kind|k3d|eks` drives the provider's own tool.

FAKE tools: kind, k3d and eksctl would create real clusters (kind and k3d need a Docker engine, which this
machine has not; eksctl needs an AWS account), so each test puts a FAKE `kind` / `k3d` / `eksctl` on PATH: a
script that records its argv (and kind's config file) and exits with the code the test chose. What is
asserted is what the CLI hands the tool and how it reports the tool's outcome, and the missing-tool error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import run_cli
from mcp_runtime.kube.provision import ProvisionError, ProvisionRequest

FAKE_TOOL = """#!{python}
# FAKE {name} for tests/integration/test_cli_cluster_provision.py: records argv, exits with $FAKE_EXIT.
import json, os, sys
args = sys.argv[1:]
record = {{"tool": os.path.basename(sys.argv[0]), "args": args}}
if "--config" in args:
    with open(args[args.index("--config") + 1]) as handle:
        record["config"] = handle.read()
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
print("fake {name}: creating cluster")
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


def fake_tool(bin_dir: Path, name: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(FAKE_TOOL.format(python=sys.executable, name=name))
    path.chmod(0o755)


def provision(tmp_path: Path, *args: str, exit_code: int = 0) -> tuple[Any, list[dict[str, Any]]]:
    log = tmp_path / "argv.jsonl"
    env = {"PATH": str(tmp_path / "bin"), "FAKE_LOG": str(log), "FAKE_EXIT": str(exit_code)}
    done = run_cli(["cluster", "provision", *args], env=env)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def test_kind_gets_a_config_with_one_control_plane_and_the_workers(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "kind")
    done, calls = provision(tmp_path, "--provider", "kind", "--nodes", "3")
    assert done.returncode == 0, done.stderr
    assert len(calls) == 1
    args = calls[0]["args"]
    assert args[:4] == ["create", "cluster", "--name", "mcp-runtime"] and args[-2:] == ["--wait", "5m"]
    assert calls[0]["config"].splitlines() == ["kind: Cluster", "apiVersion: kind.x-k8s.io/v1alpha4", "nodes:",
                                               "- role: control-plane", "- role: worker", "- role: worker"]
    assert "fake kind: creating cluster" in done.stdout  # the tool's own output reaches the user
    assert done.stdout.rstrip().endswith("cluster mcp-runtime is up (kind); next: mcp-runtime bootstrap, then "
                                         "mcp-runtime cluster init")
    assert not Path(args[args.index("--config") + 1]).exists()  # the temporary config is removed


@pytest.mark.parametrize(("provider", "tool", "args", "expected"), [
    ("k3d", "k3d", ["--nodes", "2", "--name", "dev"], ["cluster", "create", "dev", "--servers", "1", "--agents", "1",
                                                       "--wait"]),
    ("eks", "eksctl", ["--name", "prod-mcp", "--region", "eu-west-1"],
     ["create", "cluster", "--name", "prod-mcp", "--nodes", "1", "--region", "eu-west-1"]),
], ids=["k3d", "eks"])
def test_k3d_and_eksctl_get_their_arguments(tmp_path: Path, provider: str, tool: str, args: list[str],
                                           expected: list[str]) -> None:
    fake_tool(tmp_path / "bin", tool)
    done, calls = provision(tmp_path, "--provider", provider, *args)
    assert done.returncode == 0, done.stderr
    assert [c["args"] for c in calls] == [expected] and calls[0]["tool"] == tool


@pytest.mark.parametrize(("provider", "tool"), [("kind", "kind"), ("k3d", "k3d"), ("eks", "eksctl")])
def test_a_missing_tool_is_one_line_naming_it_and_how_to_install_it(tmp_path: Path, provider: str,
                                                                     tool: str) -> None:
    fake_tool(tmp_path / "bin", "something-else")
    done, calls = provision(tmp_path, "--provider", provider)
    assert done.returncode == 1 and calls == []
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {tool} is not installed (not on PATH); --provider {provider} needs it "
                                  "(install it: ")


def test_tool_failure_bad_input_and_dry_run(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "kind")
    failed, calls = provision(tmp_path, "--provider", "kind", exit_code=3)
    assert failed.returncode == 1 and len(calls) == 1
    assert "error: kind failed (exit 3); its output is above" in failed.stderr
    for bad, message in [(["--provider", "gke"], "error: unknown provider 'gke' (one of: kind, k3d, eks)"),
                         (["--name", "Prod_MCP"], "error: cluster name 'Prod_MCP' is not valid")]:
        done, calls = provision(tmp_path, *bad)
        assert done.returncode == 1 and done.stderr.startswith(message), (bad, done.stderr)
    assert len(calls) == 1  # neither ran the tool
    dry, calls = provision(tmp_path, "--provider", "eks", "--name", "prod-mcp", "--dry-run")
    assert dry.returncode == 0 and len(calls) == 1
    assert dry.stdout.strip() == "would run: eksctl create cluster --name prod-mcp --nodes 1"


@pytest.mark.parametrize(("request_", "message"), [
    (ProvisionRequest("kind", nodes=0), "--nodes 0 is out of range"),
    (ProvisionRequest("kind", nodes=101), "--nodes 101 is out of range"),
    (ProvisionRequest("k3d", name="-dev"), "cluster name '-dev' is not valid"),
    (ProvisionRequest("kind", region="eu-west-1"), "--region is for --provider eks, not kind"),
])
def test_bad_requests_are_refused_before_any_tool_runs(request_: ProvisionRequest, message: str) -> None:
    with pytest.raises(ProvisionError) as refused:
        request_.validate()
    assert refused.value.message == message
