"""The operator's I/O layer: read the inputs of a plan from the API, apply the plan, write status.

Thin on purpose; decisions live in `plan.py`. One lock per server serializes the reconciliations that
grant, session, deployment and server events trigger for the same server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, TypeVar

from mcp_runtime.kube import ConflictError, KubeClient, NotFoundError
from mcp_runtime.operator.plan import (
    OWNED_KINDS,
    Observed,
    ServerPlan,
    owned_by,
    plan_access_status,
    plan_server,
    server_selector,
    status_changed,
)
from mcp_runtime.operator.plan import (
    known_status as _known_status,
)
from mcp_runtime.operator.reconcile_virtual import (
    VIRTUAL_KIND,
    list_virtuals,
    reconcile_members_of,
    reconcile_virtual,
    virtual_sessions,
)
from mcp_runtime.operator.settings import OperatorSettings
from mcp_runtime.resources import (
    GRANT_KIND,
    SERVER_KIND,
    SESSION_KIND,
    MCPAccessGrant,
    MCPAgentSession,
    MCPServer,
    ResourceError,
    load_resource,
)

log = logging.getLogger("mcp_runtime.operator")
AccessT = TypeVar("AccessT", MCPAccessGrant, MCPAgentSession)


class Reconciler:
    """Applies plans for servers, grants and sessions through a `KubeClient`."""

    def __init__(self, client: KubeClient, settings: OperatorSettings | None = None) -> None:
        self.client = client
        self.settings = settings or OperatorSettings()
        self._locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._copied_jwks: str | None = None  # digest of the JWKS source every server was last reconciled with

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[(namespace, name)]

    def sync_jwks(self) -> int | None:
        """Reconcile every server when the JWKS source differs from what was last copied; None if it did not.

        The watch event on the source calls this; so does the periodic sweep, which makes a missed or
        failed event (the operator restarting, an API error) heal within one sweep interval.
        """
        digest = hashlib.sha256(json.dumps(self._jwks(), sort_keys=True).encode()).hexdigest()
        if digest == self._copied_jwks:
            return None
        count = self.reconcile_all()
        self._copied_jwks = digest
        return count

    def _jwks(self) -> dict[str, object] | None:
        if self.settings.jwks_source is None:
            return None
        ns, name = self.settings.jwks_source
        cm = self.client.get("ConfigMap", name, ns)
        text = ((cm or {}).get("data") or {}).get(self.settings.render.jwks_key)
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            log.warning("ConfigMap %s/%s does not hold JSON under %s", ns, name, self.settings.render.jwks_key)
            return None
        return data if isinstance(data, dict) else None

    def reconcile_server(self, namespace: str, name: str, now: datetime | None = None) -> ServerPlan | None:
        """Bring one server's objects and status in line with its spec, grants and sessions.

        Returns the plan, or None when the server is gone (its objects go by garbage collection).
        A spec that cannot be parsed or rendered gets an Error status instead of an exception.
        """
        now = now or datetime.now(UTC)
        with self._lock(namespace, name):
            raw = self.client.get(SERVER_KIND, name, namespace)
            if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
                return None
            try:
                server = MCPServer.model_validate(_known_status(raw))
            except Exception as exc:
                message = f"invalid MCPServer: {exc}"
                self._write_status(SERVER_KIND, namespace, name, raw.get("status"), {
                    "phase": "Error", "message": message[:1000],
                    "observedGeneration": raw.get("metadata", {}).get("generation")})
                return None
            grants = self._load_all(GRANT_KIND, namespace, MCPAccessGrant)
            sessions = self._load_all(SESSION_KIND, namespace, MCPAgentSession)
            uid = server.metadata.uid
            owned = {kind: [o for o in self.client.list(kind, namespace, label_selector=server_selector(name))
                            if owned_by(o, uid)] for kind in OWNED_KINDS}
            plan = plan_server(server, grants, sessions, Observed(owned=owned, jwks=self._jwks()),
                               self.settings.render, now, virtual_sessions(self, namespace, name))
            for obj in plan.apply:
                action, _ = self.client.apply(obj)
                if action != "unchanged":
                    log.info("%s %s %s/%s", action, obj["kind"], namespace, obj["metadata"]["name"])
            for ref in plan.delete:
                if self.client.delete(ref.kind, ref.name, ref.namespace):
                    log.info("deleted %s %s/%s (no longer rendered)", ref.kind, ref.namespace, ref.name)
            self._write_status(SERVER_KIND, namespace, name, raw.get("status"), plan.status)
            return plan

    def reconcile_all(self, now: datetime | None = None) -> int:
        """Reconcile every server and virtual server in the watched namespaces (after the JWKS source
        changed: each copies it into its namespace; a namespace may hold only a virtual server)."""
        count = 0
        namespaces: list[str | None] = [*self.settings.namespaces] or [None]  # None: every namespace
        for namespace in namespaces:
            for raw in self.client.list(SERVER_KIND, namespace):
                meta = raw.get("metadata", {})
                if self.reconcile_server(meta["namespace"], meta["name"], now) is not None:
                    count += 1
        for virtual in list_virtuals(self):
            if reconcile_virtual(self, virtual.metadata.namespace or "", virtual.metadata.name, now) is not None:
                count += 1
        return count

    def reconcile_access(self, kind: str, namespace: str, name: str, *, previous_server: str | None = None,
                         now: datetime | None = None) -> None:
        """Re-render the policy of the server(s) a grant or session names, then write its status (so a
        status that says Disabled or Revoked is already in the policy)."""
        now = now or datetime.now(UTC)
        raw = self.client.get(kind, name, namespace)
        servers = {previous_server} if previous_server else set()
        status: dict[str, Any] | None = None
        if raw is not None:
            model = MCPAccessGrant if kind == GRANT_KIND else MCPAgentSession
            try:
                obj = model.model_validate(_known_status(raw))
            except Exception as exc:
                self._write_status(kind, namespace, name, raw.get("status"), {
                    "phase": "Invalid", "message": f"invalid {kind}: {exc}"[:1000],
                    "observedGeneration": raw.get("metadata", {}).get("generation")})
            else:
                server_name = obj.spec.server_ref.name
                servers.add(server_name)
                status = plan_access_status(obj, self._target_exists(namespace, server_name), now)
        for server_name in sorted(s for s in servers if s):
            self.reconcile_target(namespace, server_name, now)
        if raw is not None and status is not None:
            self._write_status(kind, namespace, name, raw.get("status"), status)

    def _target_exists(self, namespace: str, name: str) -> bool:
        """A grant's or session's server: an MCPServer, or (sessions) an MCPVirtualServer."""
        return (self.client.get(SERVER_KIND, name, namespace) is not None
                or self.client.get(VIRTUAL_KIND, name, namespace) is not None)

    def reconcile_target(self, namespace: str, name: str, now: datetime | None = None) -> None:
        """Re-render what a grant or session names: the server, or every member of a virtual server
        (their policies hold its sessions)."""
        if self.reconcile_server(namespace, name, now) is None and \
                self.client.get(VIRTUAL_KIND, name, namespace) is not None:
            reconcile_members_of(self, namespace, name)

    def refresh_access_status(self, kind: str, namespace: str, name: str, now: datetime | None = None) -> bool:
        """Timer path: rewrite the phase when it moved (e.g. to Expired). True when it changed."""
        now = now or datetime.now(UTC)
        raw = self.client.get(kind, name, namespace)
        if raw is None:
            return False
        model = MCPAccessGrant if kind == GRANT_KIND else MCPAgentSession
        try:
            obj = model.model_validate(_known_status(raw))
        except Exception:
            return False
        exists = self._target_exists(namespace, obj.spec.server_ref.name)
        return self._write_status(kind, namespace, name, raw.get("status"), plan_access_status(obj, exists, now))

    def refresh_access_of_server(self, namespace: str, server: str, now: datetime | None = None) -> int:
        """A server appeared or went: the grants and sessions naming it get their status (ServerFound,
        Ready) now rather than at the next sweep. Returns how many changed."""
        changed = 0
        for kind in (GRANT_KIND, SESSION_KIND):
            for raw in self.client.list(kind, namespace):
                if ((raw.get("spec") or {}).get("serverRef") or {}).get("name") != server:
                    continue
                if self.refresh_access_status(kind, namespace, raw["metadata"]["name"], now):
                    changed += 1
        return changed

    def refresh_access_phases(self, now: datetime | None = None) -> int:
        """Refresh the phase of every grant and session (in the watched namespaces); returns how many moved."""
        now = now or datetime.now(UTC)
        namespaces: list[str | None] = list(self.settings.namespaces) or [None]
        changed = 0
        for kind in (GRANT_KIND, SESSION_KIND):
            for namespace in namespaces:
                for raw in self.client.list(kind, namespace):
                    meta = raw.get("metadata", {})
                    if self.refresh_access_status(kind, meta["namespace"], meta["name"], now):
                        changed += 1
        return changed

    def _load_all(self, kind: str, namespace: str, model: type[AccessT]) -> list[AccessT]:
        items: list[object] = []
        for raw in self.client.list(kind, namespace):
            if raw.get("metadata", {}).get("deletionTimestamp"):
                continue  # being deleted (waiting on a finalizer): it grants nothing any more
            try:
                items.append(load_resource(_known_status(raw)))
            except (ResourceError, ValueError) as exc:
                # An invalid grant or session grants nothing; its own status says why.
                log.warning("skipping invalid %s %s/%s: %s", kind, namespace,
                            raw.get("metadata", {}).get("name"), exc)
        return [i for i in items if isinstance(i, model)]

    def _write_status(self, kind: str, namespace: str, name: str, current: object, desired: dict[str, Any]) -> bool:
        if not status_changed(current, desired):
            return False
        try:
            self.client.patch_status(kind, name, namespace, desired)
        except NotFoundError:
            return False
        except ConflictError:  # pragma: no cover - merge patches do not conflict
            raise
        return True
