"""The control-plane store on Kubernetes: MCPServer, MCPAccessGrant and MCPAgentSession are CRD objects;
identity (users, teams, keys, tokens), settings and the audit log stay in SQL.

`KubernetesResourceStore` implements the resource methods of `ControlPlaneStore` against the API server.
`KubernetesBackedStore` combines it with a SQL store into one `ControlPlaneStore`. The audit record of a
resource change is appended to the SQL audit log after the API server accepted the change (two systems,
so not one transaction: a crash between the two loses the audit line, never the change).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mcp_runtime.kube import ConflictError, KubeClient, KubeError, NotFoundError
from mcp_runtime.kube.client import is_platform_annotation
from mcp_runtime.resources import GROUP_VERSION, KINDS
from mcp_runtime.store.interface import ControlPlaneStore
from mcp_runtime.store.records import AlreadyExists, AuditRecord, NotFound, StoredResource, StoreError

RESOURCE_KINDS = tuple(KINDS)
_CONFLICT_RETRIES = 5


def _check_kind(kind: str) -> None:
    if kind not in RESOURCE_KINDS:
        raise StoreError(f"kind {kind!r} is not stored in Kubernetes; use one of {', '.join(RESOURCE_KINDS)}")


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def from_document(doc: dict[str, Any]) -> StoredResource:
    """A StoredResource from an object read from the API server."""
    meta = doc.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if not is_platform_annotation(k)}
    return StoredResource(
        kind=str(doc.get("kind")),
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 1),
        spec=doc.get("spec") or {},
        status=doc.get("status") or None,
        labels=dict(meta.get("labels") or {}),
        annotations=annotations,
        api_version=str(doc.get("apiVersion") or GROUP_VERSION),
        created_at=_timestamp(meta.get("creationTimestamp")),
        updated_at=None,
    )


class KubernetesResourceStore:
    """The resource part of `ControlPlaneStore` on CRDs."""

    def __init__(self, client: KubeClient, audit_sink: ControlPlaneStore | None = None) -> None:
        self.client = client
        self._audit_sink = audit_sink

    def _audit(self, audit: AuditRecord | None) -> None:
        if audit is not None and self._audit_sink is not None:
            self._audit_sink.append_audit(audit)

    def create_resource(self, resource: StoredResource, audit: AuditRecord | None = None) -> StoredResource:
        _check_kind(resource.kind)
        metadata: dict[str, Any] = {"name": resource.name, "namespace": resource.namespace}
        if resource.labels:
            metadata["labels"] = dict(resource.labels)
        if resource.annotations:
            metadata["annotations"] = dict(resource.annotations)
        doc = {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": metadata,
               "spec": resource.spec}
        what = f"{resource.kind} {resource.namespace}/{resource.name}"
        try:
            created = self.client.create(doc)
            if resource.status:
                created = self.client.patch_status(resource.kind, resource.name, resource.namespace, resource.status)
        except ConflictError:
            raise AlreadyExists(f"{what} already exists") from None
        except NotFoundError as exc:
            raise StoreError(f"cannot create {what}: {exc.message} (create the team or run setup first)") from None
        except KubeError as exc:
            raise StoreError(f"cannot create {what}: {exc.message}") from None
        self._audit(audit)
        return from_document(created)

    def get_resource(self, kind: str, namespace: str, name: str) -> StoredResource | None:
        _check_kind(kind)
        try:
            doc = self.client.get(kind, name, namespace)
        except KubeError as exc:
            raise StoreError(f"cannot read {kind} {namespace}/{name}: {exc.message}") from None
        return from_document(doc) if doc else None

    def list_resources(self, kind: str, namespace: str | None = None) -> list[StoredResource]:
        _check_kind(kind)
        try:
            docs = self.client.list(kind, namespace)
        except KubeError as exc:
            raise StoreError(f"cannot list {kind}: {exc.message}") from None
        items = [from_document(d) for d in docs]
        return sorted(items, key=lambda r: (r.namespace, r.name))

    def update_resource(self, kind: str, namespace: str, name: str, *, spec: dict[str, Any] | None = None,
                        status: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
                        annotations: dict[str, str] | None = None,
                        audit: AuditRecord | None = None) -> StoredResource:
        """Change what is given; the API server raises the generation when the spec changes."""
        _check_kind(kind)
        what = f"{kind} {namespace}/{name}"
        try:
            doc = None
            if spec is not None or labels is not None or annotations is not None:
                for attempt in range(_CONFLICT_RETRIES):
                    live = self.client.get(kind, name, namespace)
                    if live is None:
                        raise NotFound(f"{what} not found")
                    meta = live["metadata"]
                    if spec is not None:
                        live["spec"] = spec
                    if labels is not None:
                        meta["labels"] = dict(labels)
                    if annotations is not None:
                        hidden = {k: v for k, v in (meta.get("annotations") or {}).items()
                                  if is_platform_annotation(k)}
                        meta["annotations"] = {**hidden, **annotations}
                    try:
                        doc = self.client.replace(live)
                        break
                    except ConflictError:
                        if attempt == _CONFLICT_RETRIES - 1:
                            raise StoreError(f"{what} keeps changing under us; try again") from None
            if status is not None:
                doc = self.client.patch_status(kind, name, namespace, status)
            if doc is None:
                doc = self.client.get(kind, name, namespace)
                if doc is None:
                    raise NotFound(f"{what} not found")
        except NotFoundError:
            raise NotFound(f"{what} not found") from None
        except KubeError as exc:
            raise StoreError(f"cannot update {what}: {exc.message}") from None
        self._audit(audit)
        return from_document(doc)

    def delete_resource(self, kind: str, namespace: str, name: str,
                        audit: AuditRecord | None = None) -> StoredResource:
        _check_kind(kind)
        what = f"{kind} {namespace}/{name}"
        try:
            doc = self.client.get(kind, name, namespace)
            if doc is None or not self.client.delete(kind, name, namespace):
                raise NotFound(f"{what} not found")
        except KubeError as exc:
            raise StoreError(f"cannot delete {what}: {exc.message}") from None
        self._audit(audit)
        return from_document(doc)


class KubernetesBackedStore:
    """A `ControlPlaneStore`: resources on CRDs, everything else in `identity` (a SqlStore)."""

    def __init__(self, identity: ControlPlaneStore, client: KubeClient) -> None:
        self.identity = identity
        self.resources = KubernetesResourceStore(client, audit_sink=identity)

    def __getattr__(self, name: str) -> Any:
        # Users, teams, keys, refresh tokens, settings and audit: the SQL store.
        return getattr(self.identity, name)

    def close(self) -> None:
        self.identity.close()
        self.resources.client.close()

    def create_resource(self, resource: StoredResource, audit: AuditRecord | None = None) -> StoredResource:
        return self.resources.create_resource(resource, audit)

    def get_resource(self, kind: str, namespace: str, name: str) -> StoredResource | None:
        return self.resources.get_resource(kind, namespace, name)

    def list_resources(self, kind: str, namespace: str | None = None) -> list[StoredResource]:
        return self.resources.list_resources(kind, namespace)

    def update_resource(self, kind: str, namespace: str, name: str, *, spec: dict[str, Any] | None = None,
                        status: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
                        annotations: dict[str, str] | None = None,
                        audit: AuditRecord | None = None) -> StoredResource:
        return self.resources.update_resource(kind, namespace, name, spec=spec, status=status, labels=labels,
                                              annotations=annotations, audit=audit)

    def delete_resource(self, kind: str, namespace: str, name: str,
                        audit: AuditRecord | None = None) -> StoredResource:
        return self.resources.delete_resource(kind, namespace, name, audit)
