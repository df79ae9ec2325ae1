"""FAKE Kubernetes API server for tests. Not Kubernetes: a small real HTTP server (Starlette on uvicorn,
127.0.0.1, a free port) that implements the subset of the Kubernetes REST API the platform uses, so the
real `kubernetes` client library, kopf and our watcher can be pointed at it through a generated
kubeconfig.

What it implements (and only that):
- `/version`, discovery (`/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`) for the kinds in
  `mcp_runtime.kube.kinds.KINDS`;
- get / list / create / replace (PUT) / patch (JSON merge patch; strategic merge patch treated as a
  JSON merge patch; JSON patch) / delete, for namespaced and cluster-scoped paths;
- `metadata.resourceVersion` (one global counter), `uid`, `creationTimestamp`, `generation` (bumped
  when `spec` changes), optimistic concurrency on PUT (409 on a stale resourceVersion), 409
  AlreadyExists, 404 for a namespaced create in a namespace that does not exist;
- the status subresource (`/status`) for kinds that have one: the main endpoint keeps the stored status,
  `/status` changes only the status;
- `?watch=true` streaming (newline-delimited JSON events) with `resourceVersion`, `timeoutSeconds`,
  `labelSelector` (=, ==, !=, exists, !exists) and `fieldSelector` (metadata.name, metadata.namespace);
- `compact()`: older watch resourceVersions then get a 410 Gone ERROR event, as after etcd compaction;
- finalizers (delete sets `deletionTimestamp`; removing the last finalizer deletes), and an emulation
  of the garbage collector: deleting an object deletes objects whose ownerReferences name its uid,
  deleting a Namespace deletes everything in it;
- pod logs (`/pods/<name>/log`, from `set_pod_log`), the service proxy (`/services/<name>:<port>/proxy/...`,
  answering with what a backend would have received), Bearer-token authentication.

What it does not do: no controllers (Deployments never become ready by themselves: tests call
`set_status` to play the deployment controller), no admission, no schema validation, no RBAC, no
server-side apply, no field managers.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from mcp_runtime.kube.kinds import KINDS, Kind

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # api_version, plural, namespace ("" for cluster-scoped), name


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code}, status_code=code)


def _label_match(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            k, v = (p.strip() for p in term.split("!=", 1))
            if labels.get(k) == v:
                return False
        elif "==" in term or "=" in term:
            k, v = (p.strip() for p in term.replace("==", "=").split("=", 1))
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field_match(obj: Obj, selector: str | None) -> bool:
    if not selector:
        return True
    meta = obj.get("metadata", {})
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        k, v = (p.strip() for p in term.replace("==", "=").split("=", 1))
        if k == "metadata.name" and meta.get("name") != v:
            return False
        if k == "metadata.namespace" and meta.get("namespace") != v:
            return False
    return True


@dataclass
class _Watcher:
    kind: Kind
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    queue: asyncio.Queue[Obj | None]
    loop: asyncio.AbstractEventLoop

    def matches(self, key: Key, obj: Obj) -> bool:
        return (key[0] == self.kind.api_version and key[1] == self.kind.plural
                and (self.namespace is None or key[2] == self.namespace)
                and _label_match(obj.get("metadata", {}).get("labels") or {}, self.label_selector)
                and _field_match(obj, self.field_selector))


@dataclass
class _Parsed:
    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass
class FakeKubeApiServer:
    """The fake server. `start()` runs it in a thread; use as a context manager in fixtures."""

    token: str = "fake-token"
    host: str = "127.0.0.1"
    port: int = 0
    objects: dict[Key, Obj] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    pod_logs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    version_info: Obj = field(default_factory=lambda: {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake",
                                                       "platform": "linux/amd64"})

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._rv = 0
        self._compacted = 0
        self._log: list[tuple[int, Key, str, Obj]] = []
        self._watchers: list[_Watcher] = []
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle,
                                           methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])

    # lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeKubeApiServer:
        import socket
        if not self.port:
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-kube-apiserver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Kubernetes API server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        with self._lock:
            for watcher in self._watchers:
                watcher.loop.call_soon_threadsafe(watcher.queue.put_nowait, None)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeKubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # direct access for tests (thread-safe; they emit watch events like API writes) -------------------
    def seed(self, obj: Obj) -> Obj:
        """Create an object as if through the API (the namespace must exist unless cluster-scoped)."""
        kind = KINDS[obj["kind"]]
        with self._lock:
            return self._create(kind, obj.get("metadata", {}).get("namespace"), copy.deepcopy(obj))

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        k = KINDS[kind]
        with self._lock:
            obj = self.objects.get(self._key(k, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        k = KINDS[kind]
        with self._lock:
            return [copy.deepcopy(o) for key, o in sorted(self.objects.items())
                    if key[0] == k.api_version and key[1] == k.plural and (namespace is None or key[2] == namespace)]

    def set_status(self, kind: str, name: str, namespace: str | None, status: Obj) -> Obj:
        """Play a controller: merge `status` into the object's status (a watch MODIFIED event)."""
        k = KINDS[kind]
        with self._lock:
            key = (k.api_version, k.plural, namespace or "", name)
            obj = copy.deepcopy(self.objects[key])
            obj["status"] = merge_patch(obj.get("status") or {}, status)
            return self._store(key, obj, "MODIFIED")

    def compact(self) -> None:
        """Compact the history and end open watches (as etcd compaction plus an API server restart do):
        a watch resumed from an older resourceVersion then gets a 410 Gone ERROR event."""
        with self._lock:
            self._rv += 1
            self._compacted = self._rv
            self._log.clear()
            for watcher in self._watchers:
                watcher.loop.call_soon_threadsafe(watcher.queue.put_nowait, None)

    def set_pod_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        self.pod_logs[(namespace, pod, container)] = text

    # storage --------------------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _store(self, key: Key, obj: Obj, event: str) -> Obj:
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[key] = obj
        self._emit(key, event, obj)
        return copy.deepcopy(obj)

    def _emit(self, key: Key, event: str, obj: Obj) -> None:
        snapshot = copy.deepcopy(obj)
        self._log.append((int(obj["metadata"]["resourceVersion"]), key, event, snapshot))
        for watcher in self._watchers:
            if watcher.matches(key, snapshot):
                item = {"type": event, "object": snapshot}
                watcher.loop.call_soon_threadsafe(watcher.queue.put_nowait, item)

    def _key(self, kind: Kind, namespace: str | None, name: str) -> Key:
        return (kind.api_version, kind.plural, (namespace or "") if kind.namespaced else "", name)

    def _create(self, kind: Kind, namespace: str | None, body: Obj) -> Obj:
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name:
            raise _ApiError(422, "Invalid", f"{kind.kind} has no metadata.name")
        if kind.namespaced:
            namespace = namespace or meta.get("namespace")
            if not namespace:
                raise _ApiError(400, "BadRequest", "namespace is required")
            if meta.get("namespace") not in (None, namespace):
                raise _ApiError(400, "BadRequest", "the namespace of the object does not match the request")
            if self.objects.get(("v1", "namespaces", "", namespace)) is None:
                raise _ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key = self._key(kind, namespace, name)
        if key in self.objects:
            raise _ApiError(409, "AlreadyExists", f'{kind.plural}.{kind.group or "core"} "{name}" already exists')
        body["apiVersion"] = kind.api_version
        body["kind"] = kind.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        if kind.kind == "Namespace":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            body["status"] = {"phase": "Active"}
        return self._store(key, body, "ADDED")

    def _update(self, kind: Kind, key: Key, body: Obj, *, status_only: bool, check_rv: bool) -> Obj:
        current = self.objects.get(key)
        if current is None:
            raise _ApiError(404, "NotFound", f'{kind.plural} "{key[3]}" not found')
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if check_rv and wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise _ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.plural} "{key[3]}": the '
                            "object has been modified; please apply your changes to the latest version and try again")
        if status_only:
            new = copy.deepcopy(current)
            new["status"] = body.get("status")
        else:
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            for field_name in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "name", "namespace"):
                if field_name in current["metadata"]:
                    meta[field_name] = current["metadata"][field_name]
            new["apiVersion"], new["kind"] = kind.api_version, kind.kind
            if kind.has_status:
                if "status" in current:
                    new["status"] = current["status"]
                else:
                    new.pop("status", None)
            if new.get("spec") != current.get("spec"):
                meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if new == {**current, "metadata": {**current["metadata"]}}:
            return copy.deepcopy(current)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(key)
            return copy.deepcopy(new)
        return self._store(key, new, "MODIFIED")

    def _delete(self, kind: Kind, key: Key) -> Obj:
        current = self.objects.get(key)
        if current is None:
            raise _ApiError(404, "NotFound", f'{kind.plural} "{key[3]}" not found')
        if current["metadata"].get("finalizers"):
            if not current["metadata"].get("deletionTimestamp"):
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = _now()
                return self._store(key, new, "MODIFIED")
            return copy.deepcopy(current)
        return self._remove(key)

    def _remove(self, key: Key) -> Obj:
        gone = self.objects.pop(key)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._emit(key, "DELETED", gone)
        uid = gone["metadata"].get("uid")
        # Emulated garbage collector: dependents by ownerReference, and a namespace's contents.
        for other_key, other in list(self.objects.items()):
            if other_key not in self.objects:
                continue
            owners = other["metadata"].get("ownerReferences") or []
            in_namespace = key[1] == "namespaces" and key[0] == "v1" and other_key[2] == key[3]
            if in_namespace or any(o.get("uid") == uid for o in owners):
                self._remove(other_key)
        return gone

    # HTTP ------------------------------------------------------------------------------------------
    def _parse(self, path: str) -> _Parsed | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            api_version, rest = "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        by_plural = {k.plural: k for k in KINDS.values() if k.api_version == api_version}
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in by_plural:
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in by_plural:
            return None
        kind = by_plural[rest[0]]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return _Parsed(kind, namespace, name, sub)

    async def _handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        self.requests.append((request.method, path))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        try:
            discovery = self._discovery(path)
            if discovery is not None:
                return JSONResponse(discovery)
            parsed = self._parse(path)
            if parsed is None:
                return _status(404, "NotFound", f"the server could not find the requested resource ({path})")
            return await self._dispatch(request, parsed)
        except _ApiError as exc:
            return _status(exc.code, exc.reason, exc.message)

    async def _dispatch(self, request: Request, p: _Parsed) -> Response:
        kind, method, query = p.kind, request.method, request.query_params
        if p.name is None:
            if method == "GET" and query.get("watch") in ("true", "1"):
                return self._watch(kind, p.namespace, query)
            if method == "GET":
                return JSONResponse(self._list(kind, p.namespace, query))
            if method == "POST":
                body = await request.json()
                if kind.kind == "Event":
                    return JSONResponse(body, status_code=201)
                with self._lock:
                    return JSONResponse(self._create(kind, p.namespace, body), status_code=201)
            raise _ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        key = self._key(kind, p.namespace, p.name)
        if p.subresource == "log" and kind.kind == "Pod":
            return self._log_response(p, query)
        if p.subresource == "proxy" and kind.kind == "Service":
            return await self._proxy_response(request, p)
        if p.subresource not in (None, "status"):
            raise _ApiError(404, "NotFound", f"subresource {p.subresource} is not supported by the fake")
        status_only = p.subresource == "status"
        if status_only and not kind.has_status:
            raise _ApiError(404, "NotFound", f"{kind.plural} has no status subresource")
        with self._lock:
            if method == "GET":
                obj = self.objects.get(key)
                if obj is None:
                    raise _ApiError(404, "NotFound", f'{kind.plural} "{p.name}" not found')
                return JSONResponse(obj)
            if method == "DELETE":
                return JSONResponse(self._delete(kind, key))
        body = await request.json()
        with self._lock:
            if method == "PUT":
                return JSONResponse(self._update(kind, key, body, status_only=status_only, check_rv=True))
            if method == "PATCH":
                current = self.objects.get(key)
                if current is None:
                    raise _ApiError(404, "NotFound", f'{kind.plural} "{p.name}" not found')
                content_type = request.headers.get("content-type", "").split(";")[0]
                if content_type == "application/json-patch+json":
                    import jsonpatch
                    patched = jsonpatch.apply_patch(current, body)
                elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                    patched = merge_patch(current, body)
                else:
                    raise _ApiError(415, "UnsupportedMediaType", f"patch content type {content_type!r}")
                if status_only:
                    patched = {**current, "status": patched.get("status")}
                return JSONResponse(self._update(kind, key, patched, status_only=status_only, check_rv=False))
        raise _ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def _list(self, kind: Kind, namespace: str | None, query: Any) -> Obj:
        with self._lock:
            items = [copy.deepcopy(o) for key, o in sorted(self.objects.items())
                     if key[0] == kind.api_version and key[1] == kind.plural
                     and (namespace is None or key[2] == namespace)
                     and _label_match(o["metadata"].get("labels") or {}, query.get("labelSelector"))
                     and _field_match(o, query.get("fieldSelector"))]
            for item in items:  # like a real API server: list items carry no apiVersion/kind
                item.pop("apiVersion", None)
                item.pop("kind", None)
            return {"apiVersion": kind.api_version, "kind": f"{kind.kind}List",
                    "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _watch(self, kind: Kind, namespace: str | None, query: Any) -> Response:
        loop = asyncio.get_running_loop()
        watcher = _Watcher(kind, namespace, query.get("labelSelector"), query.get("fieldSelector"),
                           asyncio.Queue(), loop)
        since = query.get("resourceVersion")
        timeout = float(query.get("timeoutSeconds") or 1800)
        with self._lock:
            if since and since != "0" and int(since) < self._compacted:
                gone = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                    "reason": "Expired", "code": 410,
                                                    "message": f"too old resource version: {since}"}}
                return Response(json.dumps(gone) + "\n", media_type="application/json")
            if since and since != "0":
                backlog = [{"type": event, "object": copy.deepcopy(obj)} for rv, key, event, obj in self._log
                           if rv > int(since) and watcher.matches(key, obj)]
            else:
                backlog = [{"type": "ADDED", "object": copy.deepcopy(obj)} for key, obj in sorted(self.objects.items())
                           if watcher.matches(key, obj)]
            self._watchers.append(watcher)

        async def events() -> AsyncIterator[bytes]:
            try:
                for item in backlog:
                    yield json.dumps(item).encode() + b"\n"
                deadline = loop.time() + timeout
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return
                    try:
                        item = await asyncio.wait_for(watcher.queue.get(), remaining)
                    except TimeoutError:
                        return
                    if item is None:
                        return
                    yield json.dumps(item).encode() + b"\n"
            finally:
                with self._lock:
                    if watcher in self._watchers:
                        self._watchers.remove(watcher)

        return StreamingResponse(events(), media_type="application/json")

    async def _proxy_response(self, request: Request, p: _Parsed) -> Response:
        """The service proxy: no backend pods here, so it answers with what a backend would have seen."""
        service, _, port = (p.name or "").partition(":")
        if self.objects.get(self._key(p.kind, p.namespace, service)) is None:
            raise _ApiError(404, "NotFound", f'services "{service}" not found')
        prefix = f"/api/v1/namespaces/{p.namespace}/services/{p.name}/proxy"
        return JSONResponse({"service": service, "port": port, "method": request.method,
                             "path": request.url.path.removeprefix(prefix) or "/",
                             "query": str(request.url.query), "body": (await request.body()).decode()})

    def _log_response(self, p: _Parsed, query: Any) -> Response:
        container = query.get("container") or ""
        text = self.pod_logs.get((p.namespace or "", p.name or "", container))
        if text is None:
            matches = [t for (ns, pod, _), t in self.pod_logs.items() if ns == p.namespace and pod == p.name]
            if not matches:
                raise _ApiError(404, "NotFound", f'pods "{p.name}" not found')
            text = matches[0]
        tail = query.get("tailLines")
        if tail:
            text = "\n".join(text.splitlines()[-int(tail):]) + "\n"
        return PlainTextResponse(text)

    def _discovery(self, path: str) -> Obj | None:
        path = path.rstrip("/")
        if path == "/version":
            return self.version_info
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"]}
        versions = sorted({k.api_version for k in KINDS.values() if k.api_version != "v1"})
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for v in versions:
                groups.setdefault(v.split("/")[0], []).append(v)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": v, "version": v.split("/")[1]} for v in vs],
                 "preferredVersion": {"groupVersion": vs[0], "version": vs[0].split("/")[1]}}
                for g, vs in groups.items()]}
        for api_version in ["v1", *versions]:
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            if path == prefix:
                resources: list[Obj] = []
                for k in KINDS.values():
                    if k.api_version != api_version:
                        continue
                    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
                    resources.append({"name": k.plural, "singularName": k.kind.lower(), "namespaced": k.namespaced,
                                      "kind": k.kind, "verbs": verbs})
                    if k.has_status:
                        resources.append({"name": f"{k.plural}/status", "singularName": "",
                                          "namespaced": k.namespaced, "kind": k.kind,
                                          "verbs": ["get", "patch", "update"]})
                return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version,
                        "resources": resources}
        return None


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
