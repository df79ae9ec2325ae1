"""The gateway's `ApprovalBroker` in `mcp-runtime up`: the platform's pending approvals, in process.

How the gateway learns of a decision: the same way it learns of a revocation in `up`, pushed in process.
The platform calls the listener from the API worker thread that decided; it hands the decision to the
gateway's event loop with `call_soon_threadsafe`, so the waiting call goes on within milliseconds of the
`approve` (no polling). A sidecar gateway long-polls the API instead (gateway/approval_client.py).
"""

from __future__ import annotations

import asyncio
import contextlib

from mcp_runtime.gateway.approval import PendingCall, Verdict
from mcp_runtime.platform.approvals import Approval, ApprovalCall, ApprovalService, ApprovalsFull, ApprovalStatus
from mcp_runtime.policy import Reason

_REASONS = {ApprovalStatus.approved: Reason.approved, ApprovalStatus.denied: Reason.approval_denied,
            ApprovalStatus.timeout: Reason.approval_timeout, ApprovalStatus.cancelled: Reason.approval_cancelled}


def approval_call(call: PendingCall) -> ApprovalCall:
    who = call.identity
    return ApprovalCall(namespace=call.namespace, server=call.server, tool=call.tool,
                        arguments_digest=call.digest, arguments=call.arguments[:4096], human_id=who.human_id,
                        agent_id=who.agent_id, team_id=who.team_id, session_id=who.session_id,
                        approver=call.approver, timeout_seconds=call.timeout)


def verdict_of(approval: Approval | None) -> Verdict:
    if approval is None:
        return Verdict(Reason.approval_timeout)
    return Verdict(_REASONS.get(approval.status, Reason.approval_timeout), approval.decided_by)


class InProcessApprovals:
    """Opens a pending approval per call and waits for the push of its decision (or the timeout)."""

    def __init__(self, service: ApprovalService) -> None:
        self.service = service

    async def decide(self, call: PendingCall) -> Verdict:
        loop = asyncio.get_running_loop()
        decided: asyncio.Future[Approval] = loop.create_future()

        def heard(approval: Approval) -> None:
            loop.call_soon_threadsafe(_settle, decided, approval)

        opening = asyncio.ensure_future(asyncio.to_thread(self.service.open, approval_call(call), heard))
        try:
            approval = await asyncio.shield(opening)
        except ApprovalsFull:
            return Verdict(Reason.approval_unavailable)
        except asyncio.CancelledError:  # withdrawn while it opened (a quick cancel): it must not stay pending
            with contextlib.suppress(Exception):
                self.service.finish((await opening).id, ApprovalStatus.cancelled)
            raise
        try:
            return verdict_of(await asyncio.wait_for(asyncio.shield(decided), call.timeout))
        except TimeoutError:
            return verdict_of(await asyncio.to_thread(self.service.finish, approval.id, ApprovalStatus.timeout))
        except asyncio.CancelledError:  # the caller went away: nobody may approve it any more
            self.service.finish(approval.id, ApprovalStatus.cancelled)
            raise


def _settle(future: asyncio.Future[Approval], approval: Approval) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):
        future.set_result(approval)
