"""The Kubernetes store (resources on CRDs, identity and audit in SQL) through the real `kubernetes`
client against the FAKE API server, with a real SQLite SqlStore for identity and audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
from mcp_runtime.kube import KubeClient
from mcp_runtime.store.kubernetes import KubernetesBackedStore
from mcp_runtime.store.records import AlreadyExists, AuditRecord, NotFound, PlatformRole, StoredResource, StoreError
from mcp_runtime.store.sql.store import SqlStore

NS = "mcp-team-acme"


@pytest.fixture
def store(fake_kube: FakeKubeApiServer, tmp_path: Path) -> Iterator[KubernetesBackedStore]:  # noqa: F811
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    backed = KubernetesBackedStore(SqlStore.open(f"sqlite:///{tmp_path / 'identity.db'}"),
                                   KubeClient.from_environment())
    yield backed
    backed.close()


def server(name: str = "payments") -> StoredResource:
    return StoredResource(kind="MCPServer", namespace=NS, name=name, uid="", generation=1,
                          spec={"image": "acme/payments:v1", "tools": [{"name": "echo", "sideEffect": "read"}]},
                          status=None, labels={"team": "acme"})


def test_resources_live_in_the_cluster_and_audit_in_sql(store: KubernetesBackedStore,
                                                        fake_kube: FakeKubeApiServer) -> None:  # noqa: F811
    created = store.create_resource(server(), AuditRecord(actor="alice", action="create", kind="MCPServer",
                                                          namespace=NS, name="payments"))
    assert created.uid and created.generation == 1
    assert fake_kube.get("MCPServer", "payments", NS)["spec"]["image"] == "acme/payments:v1"
    with pytest.raises(AlreadyExists):
        store.create_resource(server())

    doc = store.get_resource("MCPServer", NS, "payments").to_document()
    assert doc["apiVersion"] == "mcpruntime.org/v1alpha1" and doc["metadata"]["labels"] == {"team": "acme"}

    updated = store.update_resource("MCPServer", NS, "payments", spec={**created.spec, "imageTag": "v2"},
                                    audit=AuditRecord(actor="alice", action="update", kind="MCPServer"))
    assert updated.generation == 2
    with_status = store.update_resource("MCPServer", NS, "payments", status={"phase": "Ready"})
    assert with_status.status == {"phase": "Ready"} and with_status.generation == 2

    store.create_resource(server("ledger"))
    assert [r.name for r in store.list_resources("MCPServer", NS)] == ["ledger", "payments"]
    assert store.list_resources("MCPAccessGrant") == []

    gone = store.delete_resource("MCPServer", NS, "ledger")
    assert gone.name == "ledger" and store.get_resource("MCPServer", NS, "ledger") is None
    with pytest.raises(NotFound):
        store.delete_resource("MCPServer", NS, "ledger")
    with pytest.raises(NotFound):
        store.update_resource("MCPServer", NS, "ledger", spec={})

    # identity and audit are the SQL store's
    user = store.create_user("alice@acme.com", "hash", PlatformRole.user)
    assert store.get_user(user.id).email == "alice@acme.com"
    assert [a.action for a in store.list_audit()] == ["update", "create"]


def test_missing_namespace_is_a_clear_store_error(store: KubernetesBackedStore) -> None:
    orphan = StoredResource(kind="MCPServer", namespace="mcp-team-nobody", name="x", uid="", generation=1,
                            spec={"image": "x"}, status=None)
    with pytest.raises(StoreError, match="mcp-team-nobody"):
        store.create_resource(orphan)
