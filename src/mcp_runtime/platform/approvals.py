"""Pending approvals: tool calls a gateway holds until a person approves or denies them.

A gateway opens one per call that needs an out-of-band approval (`open`), bound to the server, the tool,
the SHA-256 of the exact arguments, the caller and their session; the call itself waits in that gateway,
so approving one can only ever let *that* call run (nothing is remembered that a later call could reuse).
`decide` is the CLI's and the dashboard's `access approvals approve|deny`; the first decision wins and a
second gets 409 `already_decided`. The gateway ends the rest (`finish`: timed out, or the caller went
away). Every outcome is written to the audit log. Held in memory, bounded: a restart forgets them, and
the calls they held are gone with the connections anyway.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from mcp_runtime.platform.errors import ApiError
from mcp_runtime.platform.principal import Principal
from mcp_runtime.resources.approval import Approver
from mcp_runtime.resources.common import utcnow
from mcp_runtime.store import AuditRecord, ControlPlaneStore

log = logging.getLogger("mcp_runtime.platform")

KIND = "Approval"
MAX_PENDING = 500
"""Calls waiting at once, over every server: a gateway asking for more gets `approval_unavailable`."""
MAX_PENDING_PER_SESSION = 20
MAX_DECIDED = 500
"""Decided approvals kept to list (`--all`) and to answer a late second approver with who decided."""
MAX_ARGUMENTS_SHOWN = 4096


class ApprovalStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    denied = "denied"
    timeout = "timeout"
    cancelled = "cancelled"


class ApprovalsFull(Exception):
    """Too many calls wait already: the new one is refused (fail closed), never queued unbounded."""


@dataclass(frozen=True)
class ApprovalCall:
    """What a gateway holds: the call as the approver sees it and as the approval is bound to it."""

    namespace: str
    server: str
    tool: str
    arguments_digest: str
    arguments: str  # canonical JSON, cut to MAX_ARGUMENTS_SHOWN (the digest covers all of it)
    human_id: str | None
    agent_id: str | None
    team_id: str | None
    session_id: str | None
    approver: Approver
    timeout_seconds: float


@dataclass(frozen=True)
class Approval:
    id: str
    call: ApprovalCall
    created_at: datetime
    expires_at: datetime
    status: ApprovalStatus = ApprovalStatus.pending
    decided_by: str | None = None
    decided_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        c = self.call
        return {"id": self.id, "namespace": c.namespace, "server": c.server, "tool": c.tool,
                "argumentsDigest": c.arguments_digest, "arguments": c.arguments,
                "caller": {"humanID": c.human_id, "agentID": c.agent_id, "teamID": c.team_id,
                           "sessionID": c.session_id},
                "approver": str(c.approver), "status": str(self.status), "createdAt": self.created_at.isoformat(),
                "expiresAt": self.expires_at.isoformat(), "decidedBy": self.decided_by,
                "decidedAt": self.decided_at.isoformat() if self.decided_at else None}


Listener = Callable[[Approval], None]


@dataclass
class _Entry:
    approval: Approval
    listener: Listener | None
    done: threading.Event = field(default_factory=threading.Event)


class ApprovalService:
    """The pending approvals of this platform process (thread-safe: API workers and the gateway share it)."""

    def __init__(self, store: ControlPlaneStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self._pending: OrderedDict[str, _Entry] = OrderedDict()
        self._decided: deque[Approval] = deque(maxlen=MAX_DECIDED)
        self._lock = threading.Lock()

    # -- the gateway's side ------------------------------------------------------------------------
    def open(self, call: ApprovalCall, listener: Listener | None = None) -> Approval:
        """Hold `call` for a decision; `listener` hears it (from the deciding thread). Raises ApprovalsFull."""
        now = self.clock()
        approval = Approval(id="apr_" + secrets.token_urlsafe(12), call=call, created_at=now,
                            expires_at=now + timedelta(seconds=call.timeout_seconds))
        with self._lock:
            self._expire_locked(now)
            same = sum(1 for e in self._pending.values() if e.approval.call.session_id == call.session_id)
            if len(self._pending) >= MAX_PENDING or same >= MAX_PENDING_PER_SESSION:
                raise ApprovalsFull(f"{len(self._pending)} calls wait for approval already")
            self._pending[approval.id] = _Entry(approval, listener)
        return approval

    def wait(self, approval_id: str, seconds: float) -> Approval | None:
        """Block up to `seconds` for a decision (a sidecar gateway's long poll); the approval as it stands."""
        with self._lock:
            entry = self._pending.get(approval_id)
        if entry is not None:
            entry.done.wait(seconds)
        return self.get(approval_id)

    def finish(self, approval_id: str, status: ApprovalStatus) -> Approval | None:
        """The gateway ends a call it stopped waiting for (timeout, the caller went away). If a person
        decided first, their decision stands and is returned."""
        return self._settle(approval_id, status, "gateway")[0]

    # -- the approvers' side -----------------------------------------------------------------------
    def visible(self, caller: Principal, *, include_decided: bool = False) -> list[Approval]:
        """The approvals `caller` may decide (the pending ones, and with `include_decided` the recent rest)."""
        with self._lock:
            self._expire_locked(self.clock())
            rows = [e.approval for e in self._pending.values()]
            if include_decided:
                rows += list(self._decided)
        return [a for a in rows if may_approve(caller, a)]

    def pending(self) -> list[Approval]:
        """Every call waiting now (no visibility filter: the platform's own view)."""
        with self._lock:
            return [e.approval for e in self._pending.values()]

    def decided(self) -> list[Approval]:
        """The recently decided ones, oldest first (bounded by MAX_DECIDED)."""
        with self._lock:
            return list(self._decided)

    def get(self, approval_id: str) -> Approval | None:
        with self._lock:
            entry = self._pending.get(approval_id)
            if entry is not None:
                return entry.approval
            return next((a for a in self._decided if a.id == approval_id), None)

    def decide(self, caller: Principal, approval_id: str, approve: bool) -> Approval:
        """Approve or deny one pending call. 404 unknown, 403 not yours to decide, 409 already decided."""
        approval = self.get(approval_id)
        if approval is None or not may_see(caller, approval):
            raise ApiError(404, "approval_not_found", f"no approval {approval_id!r}: list them with "
                           "'mcp-runtime access approvals list --all'")
        if not may_approve(caller, approval):
            raise ApiError(403, "forbidden", f"approval {approval_id} is for the owners of {approval.call.server}: "
                           "only its team's owners (or a platform admin) can decide it")
        status = ApprovalStatus.approved if approve else ApprovalStatus.denied
        settled, won = self._settle(approval_id, status, caller.email)
        if not won:
            raise _already_decided(settled or approval)
        assert settled is not None
        return settled

    # -- internals ---------------------------------------------------------------------------------
    def _settle(self, approval_id: str, status: ApprovalStatus, actor: str) -> tuple[Approval | None, bool]:
        """Decide a pending approval under the lock: (the approval as it stands, whether this call decided it)."""
        now = self.clock()
        with self._lock:
            self._expire_locked(now)
            entry = self._pending.pop(approval_id, None)
            if entry is None:
                return next((a for a in self._decided if a.id == approval_id), None), False
            settled = replace(entry.approval, status=status, decided_by=actor, decided_at=now)
            self._decided.append(settled)
        self._audit(settled, actor)
        entry.done.set()
        if entry.listener is not None:
            entry.listener(settled)
        return settled, True

    def _expire_locked(self, now: datetime) -> None:
        """Pending calls past their deadline (their gateway is gone or late) become `timeout`."""
        late = [k for k, e in self._pending.items() if e.approval.expires_at + _GRACE <= now]
        for key in late:
            entry = self._pending.pop(key)
            settled = replace(entry.approval, status=ApprovalStatus.timeout, decided_by="platform", decided_at=now)
            self._decided.append(settled)
            entry.done.set()

    def _audit(self, approval: Approval, actor: str) -> None:
        c = approval.call
        try:
            self.store.append_audit(AuditRecord(
                actor=actor, action=f"approval_{approval.status}", kind=KIND, namespace=c.namespace, name=c.server,
                after={"id": approval.id, "tool": c.tool, "argumentsDigest": c.arguments_digest,
                       "caller": {"humanID": c.human_id, "agentID": c.agent_id, "sessionID": c.session_id},
                       "approver": str(c.approver), "status": str(approval.status)}))
        except Exception:  # the decision stands even when the audit log cannot be written this moment
            log.exception("could not audit approval %s", approval.id)


_GRACE = timedelta(seconds=5)


def may_approve(caller: Principal, approval: Approval) -> bool:
    """Owners of the server's namespace and admins always; the calling person too when the approver is the caller."""
    call = approval.call
    if caller.can_manage(call.namespace):
        return True
    return call.approver == Approver.caller and call.human_id is not None and call.human_id in (
        caller.email, caller.user.id)


def may_see(caller: Principal, approval: Approval) -> bool:
    return may_approve(caller, approval) or caller.can_write(approval.call.namespace)


def _already_decided(approval: Approval) -> ApiError:
    when = approval.decided_at.isoformat(timespec="seconds") if approval.decided_at else "earlier"
    return ApiError(409, "already_decided", f"approval {approval.id} was already decided: {approval.status} by "
                    f"{approval.decided_by or 'the platform'} at {when}")
