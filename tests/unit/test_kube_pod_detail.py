"""What `server status --use-kube` and `sentinel events` make of pod and event shapes the real test cluster
cannot easily produce on demand (a crash loop, a terminating pod, events.k8s.io times with microseconds)."""

from __future__ import annotations

from typing import Any

from mcp_runtime.kube.events import event_row
from mcp_runtime.kube.pods import pod_row


def pod(statuses: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "payments-7d9f", "namespace": "mcp-team-acme", **meta},
            "spec": {"nodeName": "node-1", "containers": [{"name": "mcp-server", "image": "acme/payments:v1"},
                                                          {"name": "mcp-gateway", "image": "platform:0.1"}]},
            "status": {"phase": "Running", "containerStatuses": statuses}}


RUNNING = {"name": "mcp-gateway", "ready": True, "restartCount": 0, "state": {"running": {}}}


def test_a_crash_loop_is_the_pods_status_with_its_restarts() -> None:
    crashing = {"name": "mcp-server", "ready": False, "restartCount": 7,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting"}}}
    row = pod_row(pod([crashing, RUNNING]))
    assert (row["ready"], row["status"], row["restarts"], row["node"]) == ("1/2", "CrashLoopBackOff", 7, "node-1")
    app = row["containers"][0]
    assert (app["state"], app["reason"]) == ("waiting", "CrashLoopBackOff: back-off 5m0s restarting")


def test_terminated_not_started_and_terminating() -> None:
    done = {"name": "mcp-server", "ready": False, "restartCount": 1, "state": {"terminated": {"reason": "Error"}}}
    assert pod_row(pod([done, RUNNING]))["status"] == "Error"
    unstarted = pod_row(pod([]))
    assert unstarted["ready"] == "0/2" and {c["state"] for c in unstarted["containers"]} == {"not started"}
    assert pod_row(pod([RUNNING], deletionTimestamp="2026-12-06T08:00:00Z"))["status"] == "Terminating"


def test_event_times_share_one_format_so_they_sort() -> None:
    core = {"metadata": {"namespace": "mcp-runtime"}, "lastTimestamp": "2026-12-06T08:39:14Z", "count": 3,
            "involvedObject": {"kind": "Deployment", "name": "mcp-sentinel-ingest"}, "reason": "ScalingReplicaSet"}
    modern = {"metadata": {"namespace": "mcp-runtime"}, "eventTime": "2026-12-06T08:39:14.136476Z",
              "involvedObject": {"kind": "Pod", "name": "mcp-sentinel-ingest-1"}, "type": "Warning"}
    assert event_row(core)["lastSeen"] == event_row(modern)["lastSeen"] == "2026-12-06T08:39:14Z"
    assert event_row(core)["object"] == "deployment/mcp-sentinel-ingest" and event_row(core)["count"] == 3
    assert (event_row(modern)["type"], event_row(core)["type"]) == ("Warning", "Normal")
