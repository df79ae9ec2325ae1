"""A server's pods as an admin reads them (`server status --use-kube`): readiness, the reason a container is
not running (CrashLoopBackOff, ErrImagePull, ...), restarts and where it runs, plus the server's events."""

from __future__ import annotations

from typing import Any

from mcp_runtime.kube.client import KubeClient
from mcp_runtime.kube.events import list_events
from mcp_runtime.manifests.common import LABEL_SERVER
from mcp_runtime.manifests.names import label_value
from mcp_runtime.resources import SERVER_KIND

Manifest = dict[str, Any]


def _state(status: Manifest) -> tuple[str, str]:
    """(state, reason) of one container status: `running`, `waiting: ErrImagePull`, `terminated: Error`."""
    state = status.get("state") or {}
    for key in ("waiting", "terminated"):
        if key in state:
            detail = state[key] or {}
            return key, str(detail.get("reason") or "") + (f": {detail['message']}" if detail.get("message") else "")
    return ("running", "") if "running" in state else ("unknown", "")


def container_rows(pod: Manifest) -> list[dict[str, Any]]:
    statuses = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
    rows = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        status = statuses.get(container["name"], {})
        state, reason = _state(status) if status else ("not started", "")
        rows.append({"pod": pod["metadata"]["name"], "container": container["name"], "image": container.get("image"),
                     "ready": bool(status.get("ready")), "state": state, "reason": reason,
                     "restarts": int(status.get("restartCount") or 0)})
    return rows


def pod_row(pod: Manifest) -> dict[str, Any]:
    """kubectl's columns: READY `2/2`, STATUS (the first container's waiting/terminated reason, else the
    phase; `Terminating` while deleted), RESTARTS, NODE, and each container."""
    containers = container_rows(pod)
    status = pod.get("status") or {}
    shown = str(status.get("phase") or "Pending")
    for row in containers:
        if row["state"] in ("waiting", "terminated") and row["reason"]:
            shown = row["reason"].split(":", 1)[0]
            break
    if pod["metadata"].get("deletionTimestamp"):
        shown = "Terminating"
    return {"pod": pod["metadata"]["name"], "namespace": pod["metadata"].get("namespace"),
            "ready": f"{sum(1 for c in containers if c['ready'])}/{len(containers)}", "status": shown,
            "restarts": sum(c["restarts"] for c in containers), "node": (pod.get("spec") or {}).get("nodeName"),
            "started": status.get("startTime"), "containers": containers}


def server_pods(client: KubeClient, name: str, namespace: str) -> list[dict[str, Any]]:
    pods = client.list("Pod", namespace, label_selector=f"{LABEL_SERVER}={label_value(name)}")
    return [pod_row(p) for p in sorted(pods, key=lambda p: p["metadata"]["name"])]


def server_detail(client: KubeClient, server: Manifest, *, events: int = 10) -> dict[str, Any]:
    """The MCPServer's status with its pods and its (and its pods') recent events."""
    meta, status = server["metadata"], server.get("status") or {}
    name, namespace = meta["name"], meta["namespace"]
    wanted = int((server.get("spec") or {}).get("replicas") or 1)
    return {"name": name, "namespace": namespace, "phase": status.get("phase") or "Pending",
            "message": status.get("message"), "url": status.get("url"),
            "ready": f"{int(status.get('readyReplicas') or 0)}/{wanted}",
            "conditions": status.get("conditions") or [], "pods": server_pods(client, name, namespace),
            "events": list_events(client, namespace, name_prefixes=[name], limit=events) if events else []}


def servers(client: KubeClient, namespace: str | None) -> list[Manifest]:
    return sorted(client.list(SERVER_KIND, namespace),
                  key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"]))
