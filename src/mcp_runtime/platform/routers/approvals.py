"""`runtime/approvals`: calls held for a person's approval (`access approvals list|approve|deny`, the
dashboard), and `ingest/approvals`, where a sidecar gateway opens one and waits for its decision (with an
ingest key, like `ingest/events`). `mcp-runtime up`'s gateway uses the service in process instead."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mcp_runtime.platform.approvals import ApprovalCall, ApprovalsFull, ApprovalStatus
from mcp_runtime.platform.deps import CallerDep, PlatformDep, bearer_token
from mcp_runtime.platform.errors import ApiError, invalid
from mcp_runtime.resources import CamelModel
from mcp_runtime.resources.approval import MAX_APPROVAL_TIMEOUT_SECONDS, Approver
from mcp_runtime.resources.common import DnsLabel, ToolName

router = APIRouter(tags=["runtime"])
MAX_WAIT = 25.0
"""Longest a sidecar's long poll is held (the gateway polls again until its own deadline)."""


@router.get("/runtime/approvals")
def list_approvals(caller: CallerDep, platform: PlatformDep,
                   all: bool = Query(False, description="include decided ones")) -> dict[str, Any]:
    """Calls waiting for the caller's approval (those they may decide), oldest first."""
    return {"items": [a.to_json() for a in platform.approvals.visible(caller, include_decided=all)]}


@router.post("/runtime/approvals/{approval_id}/approve")
def approve(approval_id: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Let exactly that call run (its arguments, its caller); 409 when someone decided first."""
    return platform.approvals.decide(caller, approval_id, True).to_json()


@router.post("/runtime/approvals/{approval_id}/deny")
def deny(approval_id: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Refuse the call: the caller gets `approval_denied`; 409 when someone decided first."""
    return platform.approvals.decide(caller, approval_id, False).to_json()


class OpenApproval(CamelModel):
    namespace: DnsLabel
    server: DnsLabel
    tool: ToolName
    arguments_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    arguments: str = Field(default="", max_length=4096)
    human_id: str | None = Field(default=None, max_length=256)
    agent_id: str | None = Field(default=None, max_length=256)
    team_id: str | None = Field(default=None, max_length=256)
    session_id: str | None = Field(default=None, max_length=256)
    approver: Approver = Approver.caller
    timeout_seconds: float = Field(gt=0, le=MAX_APPROVAL_TIMEOUT_SECONDS)


class FinishApproval(CamelModel):
    status: Literal["timeout", "cancelled"]


async def _ingest_key(request: Request, platform: Any) -> None:
    token = bearer_token(request)
    keys = platform.ingest_keys
    if not keys.known(token) and not await run_in_threadpool(keys.verify, token):
        raise ApiError(401, "invalid_ingest_key", "send Authorization: Bearer <ingest API key>",
                       headers={"WWW-Authenticate": "Bearer"})


async def _body(request: Request, model: type[Any]) -> Any:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise invalid(exc) from None


@router.post("/ingest/approvals", status_code=201)
async def open_approval(request: Request, platform: PlatformDep) -> dict[str, Any]:
    """A sidecar gateway holds a call for approval; 503 `approvals_full` when too many wait already."""
    await _ingest_key(request, platform)
    body: OpenApproval = await _body(request, OpenApproval)
    try:
        approval = platform.approvals.open(ApprovalCall(**body.model_dump()))
    except ApprovalsFull as exc:
        raise ApiError(503, "approvals_full", str(exc)) from None
    return approval.to_json()


@router.get("/ingest/approvals/{approval_id}")
async def wait_approval(approval_id: str, request: Request, platform: PlatformDep,
                        wait: float = Query(0.0, ge=0.0, le=MAX_WAIT)) -> dict[str, Any]:
    """The approval as it stands, after waiting up to `wait` seconds for a decision (a long poll)."""
    await _ingest_key(request, platform)
    approval = await run_in_threadpool(platform.approvals.wait, approval_id, wait)
    if approval is None:
        raise ApiError(404, "approval_not_found", f"no approval {approval_id!r}")
    return approval.to_json()


@router.post("/ingest/approvals/{approval_id}/finish")
async def finish_approval(approval_id: str, request: Request, platform: PlatformDep) -> dict[str, Any]:
    """The gateway stopped waiting (timeout, the caller went away); a decision made first stands."""
    await _ingest_key(request, platform)
    body: FinishApproval = await _body(request, FinishApproval)
    approval = platform.approvals.finish(approval_id, ApprovalStatus(body.status))
    if approval is None:
        raise ApiError(404, "approval_not_found", f"no approval {approval_id!r}")
    return approval.to_json()
