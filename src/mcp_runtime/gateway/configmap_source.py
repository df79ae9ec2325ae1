"""The gateway sidecar's policy source in Kubernetes: watch one ConfigMap through the API.

`ConfigMapPolicySource` is the policy source `gateway run --policy-configmap <namespace>/<name>` uses;
`KubeConfigMapPolicyWatcher` is its watch loop.

A ConfigMap mounted as a file reaches the pod only after the kubelet's sync (up to a minute or more);
a watch delivers the change as soon as the API server stores it, so a revocation applies in well under
a second. The watcher lists the ConfigMap once (by `fieldSelector=metadata.name=<name>`, which the
rendered Role allows for that one name), then streams watch events from the list's resourceVersion,
re-listing after `410 Gone` and reconnecting with backoff after errors. It calls `on_policy(bytes)`
with the `policy.json` value whenever it differs from the last one delivered; the consumer (the
gateway's `InProcessPolicySource.push`) validates it and keeps its last good document on bad input.

Wiring in the gateway (`gateway run --policy-configmap <namespace>/<name>`):

    source = InProcessPolicySource()
    watcher = KubeConfigMapPolicyWatcher(namespace, name, source.push)
    await watcher.start()      # on app startup
    await watcher.stop()       # on shutdown
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from mcp_runtime.gateway.policy_source import InProcessPolicySource
from mcp_runtime.kube.connection import KubeConnection

log = logging.getLogger("mcp_runtime.gateway.configmap_source")

PolicyCallback = Callable[[bytes], Any]


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


def parse_configmap_ref(ref: str) -> tuple[str, str]:
    """`<namespace>/<name>` -> (namespace, name)."""
    namespace, _, name = ref.partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(f"{ref!r} is not <namespace>/<name> of a ConfigMap")
    return namespace, name


class KubeConfigMapPolicyWatcher:
    """Streams one ConfigMap's `policy.json` to a callback."""

    def __init__(self, namespace: str, name: str, on_policy: PolicyCallback, *, key: str = "policy.json",
                 connection: KubeConnection | None = None, watch_timeout: int = 290,
                 min_backoff: float = 0.2, max_backoff: float = 10.0) -> None:
        self.namespace = namespace
        self.name = name
        self.key = key
        self._on_policy = on_policy
        self._connection = connection
        self._watch_timeout = watch_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._last: bytes | None = None
        self._delivered = asyncio.Event()
        self.resource_version: str | None = None
        self.last_error: str | None = None
        self.deliveries = 0
        self.lists = 0

    @property
    def _path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps"

    async def start(self) -> None:
        if self._task is None:
            if self._connection is None:
                self._connection = KubeConnection.from_environment()
            self._task = asyncio.create_task(self._run(), name=f"policy-watch {self.namespace}/{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait_delivered(self, timeout: float) -> bool:
        """Wait until a first policy was delivered (for readiness); False on timeout."""
        try:
            await asyncio.wait_for(self._delivered.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        assert self._connection is not None
        backoff = self._min_backoff
        while True:
            try:
                async with self._connection.async_client(read_timeout=self._watch_timeout + 30) as client:
                    rv = await self._list(client)
                    backoff = self._min_backoff
                    while True:
                        rv = await self._watch(client, rv)
            except asyncio.CancelledError:
                raise
            except _Gone:
                continue
            except Exception as exc:  # network errors, 5xx, 403: keep the last policy, retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("policy watch on %s/%s failed (%s); retrying in %.1fs", self.namespace, self.name,
                            self.last_error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def _params(self) -> dict[str, str]:
        return {"fieldSelector": f"metadata.name={self.name}"}

    async def _list(self, client: httpx.AsyncClient) -> str:
        assert self._connection is not None
        self.lists += 1
        response = await client.get(self._path, params=self._params(), headers=self._connection.headers())
        if response.status_code >= 400:
            raise RuntimeError(f"list ConfigMap {self.namespace}/{self.name}: HTTP {response.status_code} "
                               f"{response.text[:200]}")
        body = response.json()
        for item in body.get("items") or []:
            await self._deliver(item)
        if not body.get("items"):
            self.last_error = f"ConfigMap {self.namespace}/{self.name} does not exist yet"
        rv = str(body.get("metadata", {}).get("resourceVersion") or "")
        self.resource_version = rv
        return rv

    async def _watch(self, client: httpx.AsyncClient, rv: str) -> str:
        assert self._connection is not None
        params = {**self._params(), "watch": "true", "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(self._watch_timeout)}
        if rv:
            params["resourceVersion"] = rv
        async with client.stream("GET", self._path, params=params, headers=self._connection.headers()) as response:
            if response.status_code == 410:
                raise _Gone()
            if response.status_code >= 400:
                text = (await response.aread()).decode("utf-8", "replace")[:200]
                raise RuntimeError(f"watch ConfigMap {self.namespace}/{self.name}: HTTP {response.status_code} {text}")
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                new_rv = obj.get("metadata", {}).get("resourceVersion")
                if new_rv:
                    rv = str(new_rv)
                    self.resource_version = rv
                if kind in ("ADDED", "MODIFIED"):
                    await self._deliver(obj)
                elif kind == "DELETED":
                    # Keep enforcing the last policy: the server is being deleted or recreated.
                    self.last_error = f"ConfigMap {self.namespace}/{self.name} was deleted; keeping the last policy"
        return rv

    async def _deliver(self, obj: dict[str, Any]) -> None:
        value = (obj.get("data") or {}).get(self.key)
        if value is None:
            self.last_error = f"ConfigMap {self.namespace}/{self.name} has no key {self.key!r}"
            return
        data = value.encode("utf-8")
        if data == self._last:
            return
        self._last = data
        result = self._on_policy(data)
        if inspect.isawaitable(result):
            await result
        self.deliveries += 1
        self.last_error = None
        self._delivered.set()


class ConfigMapPolicySource(InProcessPolicySource):
    """The policy of one server from `<namespace>/<name>` (key `policy.json`), watched through the API."""

    kind = "configmap"

    def __init__(self, ref: str, *, initial_file: Path | None = None,
                 connection: KubeConnection | None = None) -> None:
        """`connection`: default from the environment (the pod's service account, else $KUBECONFIG)."""
        super().__init__()
        self.namespace, self.name = parse_configmap_ref(ref)
        self._connection = connection
        self._watcher: KubeConfigMapPolicyWatcher | None = None
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
            from mcp_runtime.gateway.configmap_source import KubeConfigMapPolicyWatcher

            self._watcher = KubeConfigMapPolicyWatcher(self.namespace, self.name, self.push,
                                                       connection=self._connection)
            await self._watcher.start()

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await watcher.stop()
