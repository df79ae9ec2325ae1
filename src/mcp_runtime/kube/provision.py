"""`cluster provision`: create a cluster with the provider's own tool (kind, k3d, eksctl).

The platform does not talk to cloud APIs itself: it builds the provider tool's command line (and, for kind,
its config file), runs it with the user's terminal attached so its progress shows, and bounds it with a
timeout. A provider whose tool is not on PATH fails before anything runs, naming the tool and how to get it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

PROVIDERS = ("kind", "k3d", "eks")
TOOLS = {"kind": "kind", "k3d": "k3d", "eks": "eksctl"}
INSTALL = {
    "kind": "go install sigs.k8s.io/kind@v0.33.0 (or https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
    "k3d": "curl -s https://raw.githubusercontent.com/k3d-io/k3d/main/install.sh | bash (or https://k3d.io)",
    "eksctl": "see https://eksctl.io/installation/ (and configure AWS credentials: aws configure)",
}
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_NODES = 100


class ProvisionError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class ProvisionRequest:
    provider: str
    name: str = "mcp-runtime"
    nodes: int = 1
    region: str | None = None

    def validate(self) -> None:
        if self.provider not in PROVIDERS:
            raise ProvisionError(f"unknown provider {self.provider!r}", hint="one of: " + ", ".join(PROVIDERS))
        if not _NAME.match(self.name):
            raise ProvisionError(f"cluster name {self.name!r} is not valid",
                                 hint="lowercase letters, digits and '-', at most 32 characters")
        if not 1 <= self.nodes <= MAX_NODES:
            raise ProvisionError(f"--nodes {self.nodes} is out of range", hint=f"1 to {MAX_NODES}")
        if self.region and self.provider != "eks":
            raise ProvisionError(f"--region is for --provider eks, not {self.provider}")

    @property
    def tool(self) -> str:
        return TOOLS[self.provider]


def kind_config(nodes: int) -> str:
    """One control-plane node and `nodes - 1` workers."""
    lines = ["kind: Cluster", "apiVersion: kind.x-k8s.io/v1alpha4", "nodes:", "- role: control-plane"]
    lines += ["- role: worker"] * (nodes - 1)
    return "\n".join(lines) + "\n"


def command(request: ProvisionRequest, config_path: str = "<kind-config.yaml>") -> list[str]:
    """The provider tool's argv (the tool name first, not yet resolved on PATH)."""
    if request.provider == "kind":
        return ["kind", "create", "cluster", "--name", request.name, "--config", config_path, "--wait", "5m"]
    if request.provider == "k3d":
        return ["k3d", "cluster", "create", request.name, "--servers", "1", "--agents", str(request.nodes - 1),
                "--wait"]
    args = ["eksctl", "create", "cluster", "--name", request.name, "--nodes", str(request.nodes)]
    return [*args, "--region", request.region] if request.region else args


def find_tool(request: ProvisionRequest) -> str:
    """The tool's path, or ProvisionError naming it and how to install it."""
    path = shutil.which(request.tool)
    if path is None:
        raise ProvisionError(f"{request.tool} is not installed (not on PATH); --provider {request.provider} "
                             f"needs it", hint=f"install it: {INSTALL[request.tool]}")
    return path


@contextmanager
def _argv(request: ProvisionRequest, tool: str) -> Iterator[list[str]]:
    if request.provider != "kind":
        yield [tool, *command(request)[1:]]
        return
    with tempfile.TemporaryDirectory(prefix="mcp-runtime-kind-") as tmp:
        config = os.path.join(tmp, "kind-config.yaml")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(kind_config(request.nodes))
        yield [tool, *command(request, config)[1:]]


def provision(request: ProvisionRequest, *, timeout: float) -> None:
    """Run the provider's tool (stdout/stderr are the caller's terminal); ProvisionError on failure."""
    request.validate()
    tool = find_tool(request)
    with _argv(request, tool) as argv:
        try:
            done = subprocess.run(argv, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"{request.tool} did not finish within {timeout:.0f}s",
                                 hint="raise --timeout, and check for a half-created cluster") from None
    if done.returncode != 0:
        raise ProvisionError(f"{request.tool} failed (exit {done.returncode}); its output is above",
                             hint=f"fix the cause it printed, then re-run (delete a half-created cluster "
                                  f"{request.name} first)")
