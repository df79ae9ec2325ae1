"""A sidecar gateway tells the platform what its server's tools look like (`POST .../ingest/tools`, with
the gateway's ingest key), so `ToolsPinned`, `server tools diff` and `approve` work for servers that run
in podman or Kubernetes as they do in `mcp-runtime up` (where the report is handed over in process).

A report is sent when what the gateway saw changes; one that fails is logged and the next change
sends the whole picture again (every report carries every tool).
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from mcp_runtime.gateway.pinning import DriftReport

log = logging.getLogger("mcp_runtime.gateway.pinning")

REPORT_TIMEOUT = 10.0


def tools_url(ingest_url: str) -> str | None:
    """`.../ingest/events` -> `.../ingest/tools` (None for an ingest URL of another shape)."""
    base = ingest_url.rstrip("/")
    return base[: -len("/events")] + "/tools" if base.endswith("/ingest/events") else None


class ToolReporter:
    """The gateway's `drift_listener` for a sidecar: posts each report off the request path."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, report: DriftReport) -> None:
        task = asyncio.ensure_future(self._send(report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, report: DriftReport) -> None:
        body = {"namespace": report.namespace, "server": report.server, "tools": report.tools}
        try:
            async with httpx.AsyncClient(timeout=REPORT_TIMEOUT) as client:
                answer = await client.post(self.url, json=body, headers=self._headers)
            if answer.status_code >= 300:
                log.warning("the platform refused the tools report of %s (%s): %s", report.server,
                            answer.status_code, answer.text[:300])
        except httpx.HTTPError as exc:
            log.warning("could not report the tools of %s to %s: %s", report.server, self.url, exc)
