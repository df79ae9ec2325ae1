"""kopf handlers: thin adapters from watch events to `Reconciler` calls.

Import this module (`kopf run -m mcp_runtime.operator.handlers`, or `mcp-runtime operator run`) to
register them. Every handler is idempotent and level-triggered: it re-reads what it needs, so a missed
or repeated event does no harm.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import kopf

from mcp_runtime.kube import KubeClient, KubeError
from mcp_runtime.kube.connection import KubeConnection
from mcp_runtime.operator.reconcile import Reconciler
from mcp_runtime.operator.reconcile_virtual import (
    VIRTUAL_KIND,
    delete_virtual_objects,
    reconcile_members_of,
    reconcile_virtual,
    sweep_virtual_orphans,
    virtuals_of_member,
)
from mcp_runtime.operator.settings import OperatorSettings
from mcp_runtime.resources import API_GROUP, API_VERSION, GRANT_KIND, SERVER_KIND, SESSION_KIND

log = logging.getLogger("mcp_runtime.operator")

_state: dict[str, Reconciler] = {}
RETRY_DELAY = 5.0
SWEEP_INTERVAL = 30.0
STORAGE_PREFIX = "operator.mcpruntime.org"


def reconciler() -> Reconciler:
    if "reconciler" not in _state:
        _state["reconciler"] = Reconciler(KubeClient.from_environment(), OperatorSettings.from_env())
    return _state["reconciler"]


def use_reconciler(value: Reconciler | None) -> None:
    """Install (or clear) the reconciler the handlers use; tests and embedders call this."""
    if value is None:
        _state.pop("reconciler", None)
    else:
        _state["reconciler"] = value


def _retrying(what: str, call: Any) -> Any:
    try:
        return call()
    except KubeError as exc:
        raise kopf.TemporaryError(f"{what}: {exc.message}", delay=RETRY_DELAY) from exc


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """Credentials from the pod's service account, else `$KUBECONFIG` / `~/.kube/config`."""
    connection = KubeConnection.from_environment()
    return kopf.ConnectionInfo(
        server=connection.base_url,
        token=connection.headers().get("Authorization", "").removeprefix("Bearer ") or None,
        ca_path=connection.ca_file,
        certificate_path=connection.cert_file,
        private_key_path=connection.key_file,
        insecure=not connection.verify,
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress and diff-base in our own annotations; never in status, whose schema is ours.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=STORAGE_PREFIX)
    settings.persistence.finalizer = f"{STORAGE_PREFIX}/finalizer"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    reconciler()


def _namespaced(namespace: str | None) -> str:
    """Our kinds are namespaced (the CRDs say so): kopf always passes the namespace of their objects."""
    if namespace is None:
        raise kopf.PermanentError("an MCP Runtime resource without a namespace")
    return namespace


# MCPServer ------------------------------------------------------------------------------------------
@kopf.on.resume(API_GROUP, API_VERSION, "mcpservers")
@kopf.on.create(API_GROUP, API_VERSION, "mcpservers")
@kopf.on.update(API_GROUP, API_VERSION, "mcpservers")
def server_changed(namespace: str | None, name: str, **_: Any) -> None:
    ns = _namespaced(namespace)
    _retrying(f"reconcile MCPServer {ns}/{name}", lambda: reconciler().reconcile_server(ns, name))
    # Grants and sessions applied before their server said ServerFound=False; they say True now.
    _retrying(f"status of the access to MCPServer {ns}/{name}",
              lambda: reconciler().refresh_access_of_server(ns, name))
    _refresh_virtuals_of(ns, name)


def _refresh_virtuals_of(namespace: str, name: str) -> None:
    """A member appeared, changed (its port or path) or went: re-render the virtual servers naming it."""
    try:
        for virtual in virtuals_of_member(reconciler(), namespace, name):
            reconcile_virtual(reconciler(), virtual.metadata.namespace or "", virtual.metadata.name)
    except KubeError as exc:  # the next change, resume or deployment event catches up
        log.warning("virtual servers over MCPServer %s/%s not re-rendered: %s", namespace, name, exc)


@kopf.on.event(API_GROUP, API_VERSION, "mcpservers")
def server_event(type: str, namespace: str | None, name: str, **_: Any) -> None:
    """A deleted server: the grants and sessions naming it say ServerFound=False (no finalizer needed)."""
    if type == "DELETED" and namespace is not None:
        try:
            reconciler().refresh_access_of_server(namespace, name)
        except KubeError as exc:  # events are not retried; the sweep catches up
            log.warning("access status for deleted MCPServer %s/%s not refreshed: %s", namespace, name, exc)
        _refresh_virtuals_of(namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": "mcp-runtime"})
def deployment_event(body: Any, namespace: str | None, **_: Any) -> None:
    """A Deployment's readiness moved: refresh the owning server's status."""
    if namespace is None:
        return
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == VIRTUAL_KIND and owner.get("controller"):
            try:
                reconcile_virtual(reconciler(), namespace, owner["name"])
            except KubeError as exc:
                log.warning("status of MCPVirtualServer %s/%s not refreshed: %s", namespace, owner["name"], exc)
        if owner.get("kind") == SERVER_KIND and owner.get("controller"):
            try:
                reconciler().reconcile_server(namespace, owner["name"])
            except KubeError as exc:  # events are not retried; the next event or resume catches up
                log.warning("status of MCPServer %s/%s not refreshed: %s", namespace, owner["name"], exc)


def _is_jwks_source(name: str, namespace: str | None, **_: Any) -> bool:
    return reconciler().settings.jwks_source == (namespace, name)


@kopf.on.event("configmaps", when=_is_jwks_source)
def jwks_changed(type: str, **_: Any) -> None:
    """The platform rotated its signing keys: copy them to every server namespace."""
    if type in ("ADDED", "MODIFIED", None):
        try:
            count = reconciler().sync_jwks()
        except KubeError as exc:  # events are not retried; the sweep tries again
            log.warning("JWKS changed but not copied yet (the sweep retries): %s", exc)
            return
        if count is not None:
            log.info("JWKS changed; reconciled %d server(s)", count)


# MCPAccessGrant / MCPAgentSession -------------------------------------------------------------------
def _server_of(body: Any) -> str | None:
    if not body:
        return None
    name = (body.get("spec") or {}).get("serverRef", {}).get("name")
    return str(name) if name else None


def _access_changed(kind: str, namespace: str, name: str, old: Any) -> None:
    _retrying(f"reconcile {kind} {namespace}/{name}",
              lambda: reconciler().reconcile_access(kind, namespace, name, previous_server=_server_of(old)))


def _access_deleted(kind: str, namespace: str, body: Any) -> None:
    server = _server_of(body)
    if server:
        try:
            reconciler().reconcile_target(namespace, server)
        except KubeError as exc:  # events are not retried; the next change or a restart (resume) catches up
            log.warning("policy of MCPServer %s/%s not re-rendered after a %s was deleted: %s",
                        namespace, server, kind, exc)


@kopf.on.resume(API_GROUP, API_VERSION, "mcpaccessgrants")
@kopf.on.create(API_GROUP, API_VERSION, "mcpaccessgrants")
@kopf.on.update(API_GROUP, API_VERSION, "mcpaccessgrants")
def grant_changed(namespace: str | None, name: str, old: Any = None, **_: Any) -> None:
    _access_changed(GRANT_KIND, _namespaced(namespace), name, old)


@kopf.on.event(API_GROUP, API_VERSION, "mcpaccessgrants")
def grant_event(type: str, namespace: str | None, body: Any, **_: Any) -> None:
    # Deletion through the watch event, not @kopf.on.delete: that needs a finalizer on every grant.
    if type == "DELETED":
        _access_deleted(GRANT_KIND, _namespaced(namespace), body)


@kopf.on.resume(API_GROUP, API_VERSION, "mcpagentsessions")
@kopf.on.create(API_GROUP, API_VERSION, "mcpagentsessions")
@kopf.on.update(API_GROUP, API_VERSION, "mcpagentsessions")
def session_changed(namespace: str | None, name: str, old: Any = None, **_: Any) -> None:
    _access_changed(SESSION_KIND, _namespaced(namespace), name, old)


@kopf.on.event(API_GROUP, API_VERSION, "mcpagentsessions")
def session_event(type: str, namespace: str | None, body: Any, **_: Any) -> None:
    if type == "DELETED":
        _access_deleted(SESSION_KIND, _namespaced(namespace), body)


# MCPVirtualServer ------------------------------------------------------------------------------------
def _member_keys(body: Any) -> list[tuple[str, str]]:
    """The member keys an old or deleted body named (its policies held V's sessions)."""
    if not body:
        return []
    namespace = (body.get("metadata") or {}).get("namespace") or ""
    keys = []
    for member in (body.get("spec") or {}).get("members") or []:
        ref = member.get("serverRef") or {}
        if ref.get("name"):
            keys.append((str(ref.get("namespace") or namespace), str(ref["name"])))
    return keys


@kopf.on.resume(API_GROUP, API_VERSION, "mcpvirtualservers")
@kopf.on.create(API_GROUP, API_VERSION, "mcpvirtualservers")
@kopf.on.update(API_GROUP, API_VERSION, "mcpvirtualservers")
def virtual_changed(namespace: str | None, name: str, old: Any = None, **_: Any) -> None:
    ns = _namespaced(namespace)
    _retrying(f"reconcile MCPVirtualServer {ns}/{name}", lambda: reconcile_virtual(reconciler(), ns, name))
    # Its sessions are compiled into every member's policy (members added or removed included).
    _retrying(f"policies of the members of MCPVirtualServer {ns}/{name}",
              lambda: reconcile_members_of(reconciler(), ns, name, _member_keys(old)))


@kopf.on.event(API_GROUP, API_VERSION, "mcpvirtualservers")
def virtual_event(type: str, namespace: str | None, name: str, body: Any, **_: Any) -> None:
    """A deleted virtual server: what it rendered in member namespaces goes by label (no finalizer), and
    its sessions leave the members' policies. Missed events are caught by the sweep."""
    if type != "DELETED" or namespace is None:
        return
    try:
        delete_virtual_objects(reconciler(), namespace, name)
        reconcile_members_of(reconciler(), namespace, name, _member_keys(body))
    except KubeError as exc:
        log.warning("cleanup of deleted MCPVirtualServer %s/%s incomplete (the sweep retries): %s",
                    namespace, name, exc)


@kopf.on.startup()
async def start_phase_sweeper(memo: kopf.Memo, **_: Any) -> None:
    """Every SWEEP_INTERVAL, move grants and sessions whose expiry passed to phase Expired, and copy the
    JWKS again if its source changed without an event reaching `jwks_changed` (or its copy failed).

    A sweep, not kopf timers: timers make kopf put a finalizer on every grant and session, and deletes
    would then hang whenever the operator is down. Expiry itself is enforced by the gateway from the
    policy document; this only keeps the status honest.
    """
    memo["phase_sweeper"] = asyncio.create_task(_sweep_forever())


@kopf.on.cleanup()
async def stop_phase_sweeper(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("phase_sweeper")
    if task is not None:
        task.cancel()


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        try:
            changed = await asyncio.to_thread(reconciler().refresh_access_phases)
            if changed:
                log.info("moved %d grant(s)/session(s) to a new phase", changed)
            copied = await asyncio.to_thread(reconciler().sync_jwks)
            orphans = await asyncio.to_thread(sweep_virtual_orphans, reconciler())
            if orphans:
                log.info("deleted %d object(s) of virtual servers that are gone", orphans)
            if copied is not None:
                log.info("JWKS source changed since the last copy; reconciled %d server(s)", copied)
        except Exception as exc:  # keep sweeping; the next round retries
            log.warning("sweep failed: %s", exc)


def run(namespaces: list[str] | None = None, *, standalone: bool = True, liveness: str | None = None) -> None:
    """Run the operator until interrupted (what `mcp-runtime operator run` calls)."""
    settings = OperatorSettings.from_env()
    chosen = namespaces or list(settings.namespaces)
    # An explicit identity: kopf's default asks getpass.getuser(), which fails for a uid without a passwd
    # entry (the platform image runs as 65532).
    kopf.run(standalone=standalone, namespaces=chosen, clusterwide=not chosen,
             liveness_endpoint=liveness,
             identity=f"mcp-runtime-operator@{socket.gethostname()}")  # type: ignore[arg-type]  # a NewType of str
