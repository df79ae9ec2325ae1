"""A policy pushed by the Kubernetes API: the sidecar watches its policy ConfigMap.

A mounted ConfigMap file changes only after the kubelet's sync (a minute or more); a watch through the
API delivers the new document as soon as the API server stores it, so a revocation applies in well
under a second. The mounted file, when given, is read once at start so the gateway is ready before the
first watch event; after that the API is authoritative (a lagging file never overrides it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mcp_runtime.gateway.policy_source import InProcessPolicySource

log = logging.getLogger("mcp_runtime.gateway.policy")


def parse_ref(ref: str) -> tuple[str, str]:
    """`<namespace>/<name>` -> (namespace, name); ValueError otherwise."""
    namespace, _, name = ref.partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(f"{ref!r} is not <namespace>/<name> of a ConfigMap")
    return namespace, name


class ConfigMapPolicySource(InProcessPolicySource):
    """The policy of one server from `<namespace>/<name>` (key `policy.json`), watched through the API."""

    kind = "configmap"

    def __init__(self, ref: str, *, initial_file: Path | None = None,
                 connection: Any = None) -> None:
        """`connection`: a `mcp_runtime.kube.connection.KubeConnection`; default from the environment
        (the pod's service account, else $KUBECONFIG)."""
        super().__init__()
        self.namespace, self.name = parse_ref(ref)
        self._connection = connection
        self._watcher: Any = None  # operator.policy_watch.KubeConfigMapPolicyWatcher, imported on start
        if initial_file is not None:
            try:
                self.push(initial_file.read_bytes())
            except OSError as exc:
                self._reject(f"cannot read {initial_file}: {exc.strerror or exc}")

    def describe(self) -> str:
        return f"configmap:{self.namespace}/{self.name}"

    def status(self) -> dict[str, Any]:
        status = super().status()
        if self._watcher is not None and self._watcher.last_error and not status["last_error"]:
            status["last_error"] = self._watcher.last_error
        return status

    async def start(self) -> None:
        if self._watcher is None:
            from mcp_runtime.operator.policy_watch import KubeConfigMapPolicyWatcher

            self._watcher = KubeConfigMapPolicyWatcher(self.namespace, self.name, self.push,
                                                       connection=self._connection)
            await self._watcher.start()

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await watcher.stop()
