"""A small, generic Kubernetes REST client on top of the official `kubernetes` library.

The library loads kubeconfig / in-cluster credentials and speaks HTTP; this module adds the few verbs
the platform needs on plain dicts (no generated model classes), clear errors, and an idempotent
`apply` that only writes when the desired object changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from mcp_runtime.kube.kinds import Kind, kind_of

Manifest = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]

ANNOTATION_APPLIED_HASH = "mcpruntime.org/applied-hash"
PLATFORM_ANNOTATION_PREFIXES = ("operator.mcpruntime.org/", "kopf.zalando.org/", ANNOTATION_APPLIED_HASH,
                                "kubectl.kubernetes.io/last-applied-configuration")
"""Annotations the operator, kopf and kubectl keep on our resources: not part of what a user wrote."""


def is_platform_annotation(key: str) -> bool:
    return key.startswith(PLATFORM_ANNOTATION_PREFIXES)
"""Hash of the desired object last written; `apply` skips the write when it is unchanged. Comparing a
hash (not the live object) avoids endless rewrites when the API server normalizes fields
(quantities, defaults)."""

_PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}

# Fields the API server allocates that a replace must carry over (they are immutable once set).
_PRESERVED = {"Service": [("spec", "clusterIP"), ("spec", "clusterIPs")]}


class KubeConfigError(Exception):
    """No usable cluster credentials; the message says what to set."""


class KubeError(Exception):
    """The API server refused or failed a request."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(KubeError):
    pass


class ConflictError(KubeError):
    """409: AlreadyExists on create, or a stale resourceVersion on replace."""


def _load_api_client(kubeconfig: str | None, context: str | None) -> Any:
    try:
        from kubernetes import client, config
    except ImportError:  # pragma: no cover - the `kube` extra is missing
        raise KubeConfigError("the Kubernetes client is not installed: pip install 'mcp-runtime[kube]'") from None
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    candidates = [p for p in (path or "").split(os.pathsep) if p] or [str(Path.home() / ".kube" / "config")]
    existing = [p for p in candidates if Path(p).is_file()]
    if existing:
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]  # the kubernetes package is untyped
                config_file=existing[0], context=context, client_configuration=configuration)
        except Exception as exc:  # the library raises ConfigException and plain errors
            raise KubeConfigError(f"cannot use kubeconfig {existing[0]}: {exc}") from None
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise KubeConfigError(f"in-cluster credentials are unusable: {exc}") from None
    else:
        shown = path or candidates[0]
        raise KubeConfigError(
            f"no kubeconfig found at {shown} and not running in a cluster: set KUBECONFIG to your "
            "cluster's kubeconfig (or pass --kubeconfig), or run inside a pod with a service account"
        )
    return client.ApiClient(configuration)


class KubeClient:
    """Verbs on dict manifests for the kinds in `mcp_runtime.kube.kinds`."""

    def __init__(self, api_client: Any, *, timeout: float = 30.0) -> None:
        self._api = api_client
        self.timeout = timeout

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
        """Kubeconfig (`kubeconfig`, `$KUBECONFIG`, `~/.kube/config`) or in-cluster credentials."""
        return cls(_load_api_client(kubeconfig, context))

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def close(self) -> None:
        self._api.close()

    # transport -------------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None,
              content_type: str | None = None, timeout: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        query_params = [(k, str(v).lower() if isinstance(v, bool) else str(v))
                        for k, v in (query or {}).items() if v is not None]
        method, url, headers, body, _ = self._api.param_serialize(
            method=method, resource_path=path, query_params=query_params, header_params=headers, body=body,
            auth_settings=["BearerToken"])
        try:
            return self._api.call_api(method, url, header_params=headers, body=body,
                                      _request_timeout=timeout or self.timeout)
        except Exception as exc:
            if isinstance(exc, KubeError):
                raise
            raise KubeError(0, f"cannot reach the Kubernetes API at {self.host}: {_short(exc)}") from None

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None,
                content_type: str | None = None) -> Any:
        """One request; the JSON answer, or KubeError (NotFoundError / ConflictError) on failure."""
        response = self._send(method, path, query=query, body=body, content_type=content_type)
        data = response.read()
        status = int(response.status)
        if status >= 400:
            raise _error(status, data, method, path)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", "replace")

    def stream_lines(self, path: str, *, query: Mapping[str, Any] | None = None,
                     timeout: Any = None) -> Iterator[str]:
        """Lines of a streamed answer (pod logs with follow, watches)."""
        response = self._send("GET", path, query=query, timeout=timeout or (10, None))
        raw = response.response
        try:
            if int(response.status) >= 400:
                raise _error(int(response.status), raw.read(), "GET", path)
            buffer = b""
            for chunk in raw.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    yield line.decode("utf-8", "replace")
            if buffer:
                yield buffer.decode("utf-8", "replace")
        finally:
            raw.release_conn()

    # verbs -------------------------------------------------------------------------------------
    def version(self) -> Manifest:
        result: Manifest = self.request("GET", "/version")
        return result

    def get(self, kind: str, name: str, namespace: str | None = None) -> Manifest | None:
        try:
            result: Manifest = self.request("GET", kind_of(kind).item_path(name, namespace))
        except NotFoundError:
            return None
        return result

    def list(self, kind: str, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> list[Manifest]:
        k = kind_of(kind)
        data = self.request("GET", k.collection_path(namespace),
                            query={"labelSelector": label_selector, "fieldSelector": field_selector})
        items: list[Manifest] = data.get("items") or []
        for item in items:  # list items carry no apiVersion/kind on a real API server
            item.setdefault("apiVersion", k.api_version)
            item.setdefault("kind", k.kind)
        return items

    def create(self, obj: Manifest) -> Manifest:
        k, namespace, _ = _locate(obj)
        result: Manifest = self.request("POST", k.collection_path(namespace), body=obj)
        return result

    def replace(self, obj: Manifest) -> Manifest:
        k, namespace, name = _locate(obj)
        result: Manifest = self.request("PUT", k.item_path(name, namespace), body=obj)
        return result

    def patch(self, kind: str, name: str, namespace: str | None, patch: Any, *,
              patch_type: PatchType = "merge") -> Manifest:
        result: Manifest = self.request("PATCH", kind_of(kind).item_path(name, namespace), body=patch,
                                        content_type=_PATCH_CONTENT_TYPES[patch_type])
        return result

    def patch_status(self, kind: str, name: str, namespace: str | None, status: Manifest) -> Manifest:
        """Merge-patch the status subresource (the only way to write status of a CRD with one)."""
        result: Manifest = self.request("PATCH", kind_of(kind).item_path(name, namespace) + "/status",
                                        body={"status": status},
                                        content_type=_PATCH_CONTENT_TYPES["merge"])
        return result

    def delete(self, kind: str, name: str, namespace: str | None = None, *,
               propagation: str = "Background") -> bool:
        """Delete; False when it was already gone. Owned objects go by garbage collection."""
        try:
            self.request("DELETE", kind_of(kind).item_path(name, namespace),
                         body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation})
        except NotFoundError:
            return False
        return True

    def apply(self, obj: Manifest) -> tuple[str, Manifest]:
        """Create or replace `obj`; skip the write when its hash matches the live object's.

        Returns ("created" | "updated" | "unchanged", live object). Only the fields `obj` sets are
        owned: a replace sends `obj` plus the live resourceVersion and allocated immutable fields.
        """
        desired = json.loads(json.dumps(obj))
        digest = manifest_hash(desired)
        desired.setdefault("metadata", {}).setdefault("annotations", {})[ANNOTATION_APPLIED_HASH] = digest
        k, namespace, name = _locate(desired)
        live = self.get(k.kind, name, namespace)
        if live is None:
            try:
                return "created", self.create(desired)
            except ConflictError:
                live = self.get(k.kind, name, namespace)
                if live is None:
                    raise
        if (live.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_APPLIED_HASH) == digest:
            return "unchanged", live
        desired["metadata"]["resourceVersion"] = live["metadata"].get("resourceVersion")
        for path in _PRESERVED.get(k.kind, []):
            _carry(live, desired, path)
        return "updated", self.replace(desired)


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a manifest, without the hash annotation itself."""
    clean = json.loads(json.dumps(obj))
    (clean.get("metadata", {}).get("annotations") or {}).pop(ANNOTATION_APPLIED_HASH, None)
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _carry(live: Manifest, desired: Manifest, path: tuple[str, ...]) -> None:
    source: Any = live
    for part in path:
        if not isinstance(source, dict) or part not in source:
            return
        source = source[part]
    target = desired
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target.setdefault(path[-1], source)


def _locate(obj: Mapping[str, Any]) -> tuple[Kind, str | None, str]:
    k = kind_of(str(obj.get("kind")))
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ValueError(f"{k.kind} has no metadata.name")
    namespace = meta.get("namespace") if k.namespaced else None
    if k.namespaced and not namespace:
        raise ValueError(f"{k.kind} {name} has no metadata.namespace")
    return k, namespace, str(name)


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _error(status: int, data: bytes | None, method: str, path: str) -> KubeError:
    message = ""
    reason = ""
    try:
        body = json.loads(data or b"{}")
        message = str(body.get("message") or "")
        reason = str(body.get("reason") or "")
    except ValueError:
        message = (data or b"").decode("utf-8", "replace")[:200]
    message = message or f"{method} {path} failed with HTTP {status}"
    if status == 404:
        return NotFoundError(status, message, reason or "NotFound")
    if status == 409:
        return ConflictError(status, message, reason or "Conflict")
    if status in (401, 403):
        message += " (check that your kubeconfig user may do this: kubectl auth can-i)"
    return KubeError(status, message, reason)
