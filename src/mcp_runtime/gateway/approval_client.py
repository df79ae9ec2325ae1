"""The `ApprovalBroker` of a sidecar gateway (podman, Kubernetes): the platform's pending approvals over
HTTP, with the gateway's ingest key (`POST .../ingest/approvals`, then a long poll on it).

Why a long poll rather than a push: a sidecar already reaches the platform's ingest with that key and
nothing else; the platform holds each poll up to 25 s and answers the moment someone decides, so a
decision reaches the call within one round trip, and an idle wait costs one request per 25 s.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from mcp_runtime.gateway.approval import PendingCall, Verdict
from mcp_runtime.policy import Reason

log = logging.getLogger("mcp_runtime.gateway.approval")

POLL = 20.0
_REASONS = {"approved": Reason.approved, "denied": Reason.approval_denied, "timeout": Reason.approval_timeout,
            "cancelled": Reason.approval_cancelled}


def approvals_url(ingest_url: str) -> str | None:
    """`.../ingest/events` -> `.../ingest/approvals` (None for an ingest URL of another shape)."""
    base = ingest_url.rstrip("/")
    return base[: -len("/events")] + "/approvals" if base.endswith("/ingest/events") else None


class HttpApprovals:
    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def decide(self, call: PendingCall) -> Verdict:
        who = call.identity
        body = {"namespace": call.namespace, "server": call.server, "tool": call.tool,
                "argumentsDigest": call.digest, "arguments": call.arguments[:4096], "humanID": who.human_id,
                "agentID": who.agent_id, "teamID": who.team_id, "sessionID": who.session_id,
                "approver": str(call.approver), "timeoutSeconds": call.timeout}
        deadline = time.monotonic() + call.timeout
        async with httpx.AsyncClient(timeout=POLL + 10.0, headers=self._headers) as client:
            try:
                opened = await client.post(self.url, json=body)
            except httpx.HTTPError as exc:
                log.warning("could not open an approval at %s: %s", self.url, exc)
                return Verdict(Reason.approval_unavailable)
            if opened.status_code != 201:
                log.warning("the platform refused an approval (%s): %s", opened.status_code, opened.text[:300])
                return Verdict(Reason.approval_unavailable)
            approval_id = opened.json()["id"]
            try:
                return await self._wait(client, approval_id, deadline)
            except asyncio.CancelledError:
                await asyncio.shield(self._finish(client, approval_id, "cancelled"))
                raise

    async def _wait(self, client: httpx.AsyncClient, approval_id: str, deadline: float) -> Verdict:
        while (left := deadline - time.monotonic()) > 0:
            try:
                answer = await client.get(f"{self.url}/{approval_id}", params={"wait": min(POLL, left)})
            except httpx.HTTPError as exc:
                log.warning("approval %s: %s", approval_id, exc)
                await asyncio.sleep(min(1.0, max(left, 0.0)))
                continue
            state = answer.json() if answer.status_code == 200 else {}
            if state.get("status") in _REASONS:
                return Verdict(_REASONS[state["status"]], state.get("decidedBy"))
        return await self._finish(client, approval_id, "timeout")

    async def _finish(self, client: httpx.AsyncClient, approval_id: str, status: str) -> Verdict:
        try:
            answer = await client.post(f"{self.url}/{approval_id}/finish", json={"status": status})
            state = answer.json() if answer.status_code == 200 else {}
        except httpx.HTTPError:
            state = {}
        return Verdict(_REASONS.get(state.get("status", status), Reason.approval_timeout), state.get("decidedBy"))
