"""Typed resources over the generic store: the `mcp_runtime.resources` models are the only schema.

Everything read back is validated by the same models that validated it on the way in, and each
write also writes its audit record (before/after) in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any, TypeVar

from mcp_runtime.platform.errors import ApiError, not_found
from mcp_runtime.resources import (
    BY_KIND,
    MCPAccessGrant,
    MCPAgentSession,
    MCPServer,
    MCPVirtualServer,
    Resource,
    ResourceError,
    dump_resource,
    load_resource,
)
from mcp_runtime.resources.common import utcnow
from mcp_runtime.store import AlreadyExists, AuditRecord, ControlPlaneStore, NotFound, StoredResource

R = TypeVar("R", MCPServer, MCPAccessGrant, MCPAgentSession, MCPVirtualServer)




def parse_resource(body: Any, model: type[R]) -> R:
    """Validate a request body as `model`; any problem is a 422 envelope naming the field."""
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_request", "the body must be a JSON object (a Kubernetes-style resource)")
    kind = model.model_fields["kind"].default
    body = {"apiVersion": model.model_fields["api_version"].default, **body} if "apiVersion" not in body else body
    if body.get("kind") not in (None, kind):
        raise ApiError(422, "invalid_request", f"kind {body.get('kind')!r} is not accepted here; send a {kind}")
    body = {**body, "kind": kind}
    try:
        resource = load_resource(body)
    except ResourceError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    assert isinstance(resource, model)
    return resource


def stored_from(resource: Resource) -> StoredResource:
    doc = dump_resource(resource)
    meta = resource.metadata
    return StoredResource(kind=resource.kind, namespace=meta.namespace or "", name=meta.name,
                          uid=meta.uid or "", generation=meta.generation or 0, spec=doc.get("spec", {}),
                          status=doc.get("status"), labels=dict(meta.labels), annotations=dict(meta.annotations),
                          api_version=resource.api_version)


def model_from(stored: StoredResource) -> Resource:
    return load_resource(stored.to_document())


class ResourceRepository:
    def __init__(self, store: ControlPlaneStore) -> None:
        self.store = store

    def get(self, model: type[R], namespace: str, name: str) -> R | None:
        stored = self.store.get_resource(model.model_fields["kind"].default, namespace, name)
        if stored is None:
            return None
        resource = model_from(stored)
        assert isinstance(resource, model)
        return resource

    def require(self, model: type[R], namespace: str, name: str) -> R:
        resource = self.get(model, namespace, name)
        if resource is None:
            kind = model.model_fields["kind"].default
            raise not_found(f"{BY_KIND[kind].word} {name} in namespace {namespace}")
        return resource

    def list(self, model: type[R], namespace: str | None = None) -> list[R]:
        kind = model.model_fields["kind"].default
        out = []
        for stored in self.store.list_resources(kind, namespace):
            resource = model_from(stored)
            assert isinstance(resource, model)
            out.append(resource)
        return out

    def create(self, resource: R, actor: str, action: str = "create") -> R:
        stored = replace(stored_from(resource), uid=str(uuid.uuid4()), generation=1, created_at=utcnow())
        try:
            created = self.store.create_resource(stored, audit=AuditRecord(
                actor=actor, action=action, kind=stored.kind, namespace=stored.namespace, name=stored.name,
                after=stored.to_document()))
        except AlreadyExists as exc:
            word = BY_KIND[stored.kind].word
            raise ApiError(409, "already_exists",
                           f"{word} {stored.name} already exists in namespace {stored.namespace}") from exc
        result = model_from(created)
        assert isinstance(result, type(resource))
        return result

    def replace(self, resource: R, actor: str, action: str = "update", *, before: R | None = None,
                spec: bool = True) -> R:
        """Write spec (when `spec`), status, labels and annotations of an existing resource."""
        stored = stored_from(resource)
        try:
            updated = self.store.update_resource(
                stored.kind, stored.namespace, stored.name, spec=stored.spec if spec else None,
                status=stored.status or {}, labels=stored.labels, annotations=stored.annotations,
                audit=AuditRecord(actor=actor, action=action, kind=stored.kind, namespace=stored.namespace,
                                  name=stored.name, before=dump_resource(before) if before else None,
                                  after=stored.to_document()) if action else None)
        except NotFound as exc:
            raise not_found(f"{BY_KIND[stored.kind].word} {stored.name} in namespace {stored.namespace}") from exc
        result = model_from(updated)
        assert isinstance(result, type(resource))
        return result

    def delete(self, resource: R, actor: str) -> None:
        meta = resource.metadata
        try:
            self.store.delete_resource(resource.kind, meta.namespace or "", meta.name, audit=AuditRecord(
                actor=actor, action="delete", kind=resource.kind, namespace=meta.namespace, name=meta.name,
                before=dump_resource(resource)))
        except NotFound as exc:
            raise not_found(f"{BY_KIND[resource.kind].word} {meta.name} in namespace {meta.namespace}") from exc
