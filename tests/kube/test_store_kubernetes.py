"""The Kubernetes store (resources on CRDs, identity and audit in SQL) through the real `kubernetes`
client against the REAL API server with our CRDs, and a real SQLite SqlStore for identity and audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.kube_cluster import KubeCluster
from mcp_runtime.kube import KubeClient
from mcp_runtime.store.kubernetes import KubernetesBackedStore
from mcp_runtime.store.records import AlreadyExists, AuditRecord, NotFound, PlatformRole, StoredResource, StoreError
from mcp_runtime.store.sql.store import SqlStore


@pytest.fixture
def store(kube_cluster: KubeCluster, platform_crds: list[str], tmp_path: Path) -> Iterator[KubernetesBackedStore]:
    backed = KubernetesBackedStore(SqlStore.open(f"sqlite:///{tmp_path / 'identity.db'}"),
                                   KubeClient.from_environment(str(kube_cluster.kubeconfig)))
    yield backed
    backed.close()


def server(ns: str, name: str = "payments") -> StoredResource:
    return StoredResource(kind="MCPServer", namespace=ns, name=name, uid="", generation=1,
                          spec={"image": "acme/payments:v1", "tools": [{"name": "echo", "sideEffect": "read"}]},
                          status=None, labels={"team": "acme"})


def test_resources_live_in_the_cluster_and_audit_in_sql(store: KubernetesBackedStore, kube_cluster: KubeCluster,
                                                        kube_namespace: str) -> None:
    ns = kube_namespace
    created = store.create_resource(server(ns), AuditRecord(actor="alice", action="create", kind="MCPServer",
                                                          namespace=ns, name="payments"))
    assert created.uid and created.generation == 1
    assert (kube_cluster.get("mcpserver", "payments", ns) or {})["spec"]["image"] == "acme/payments:v1"
    with pytest.raises(AlreadyExists):
        store.create_resource(server(ns))

    doc = store.get_resource("MCPServer", ns, "payments").to_document()
    assert doc["apiVersion"] == "mcpruntime.org/v1alpha1" and doc["metadata"]["labels"] == {"team": "acme"}

    updated = store.update_resource("MCPServer", ns, "payments", spec={**created.spec, "imageTag": "v2"},
                                    audit=AuditRecord(actor="alice", action="update", kind="MCPServer"))
    assert updated.generation == 2
    with_status = store.update_resource("MCPServer", ns, "payments", status={"phase": "Ready"})
    assert with_status.status == {"phase": "Ready"} and with_status.generation == 2

    store.create_resource(server(ns, "ledger"))
    assert [r.name for r in store.list_resources("MCPServer", ns)] == ["ledger", "payments"]
    assert store.list_resources("MCPAccessGrant", ns) == []

    gone = store.delete_resource("MCPServer", ns, "ledger")
    assert gone.name == "ledger" and store.get_resource("MCPServer", ns, "ledger") is None
    with pytest.raises(NotFound):
        store.delete_resource("MCPServer", ns, "ledger")
    with pytest.raises(NotFound):
        store.update_resource("MCPServer", ns, "ledger", spec={})

    # identity and audit are the SQL store's
    user = store.create_user("alice@acme.com", "hash", PlatformRole.user)
    assert store.get_user(user.id).email == "alice@acme.com"
    assert [a.action for a in store.list_audit()] == ["update", "create"]


def test_missing_namespace_is_a_clear_store_error(store: KubernetesBackedStore) -> None:
    orphan = StoredResource(kind="MCPServer", namespace="mcp-team-nobody", name="x", uid="", generation=1,
                            spec={"image": "x"}, status=None)
    with pytest.raises(StoreError, match="mcp-team-nobody"):
        store.create_resource(orphan)
