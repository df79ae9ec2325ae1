"""`runtime/servers/{namespace}/{name}/tools`: tool-definition review (drift and approval, pinning.py), and
`ingest/tools`, where a sidecar gateway reports the tool definitions it saw (with an ingest key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mcp_runtime.platform.deps import CallerDep, PlatformDep, bearer_token
from mcp_runtime.platform.errors import ApiError, invalid
from mcp_runtime.resources import CamelModel
from mcp_runtime.resources.common import DnsLabel, ToolName
from mcp_runtime.resources.pinning import DIGEST_PATTERN, Definition

MAX_REPORTED_TOOLS = 2000

router = APIRouter(tags=["runtime"])


class ApproveRequest(CamelModel):
    """Which tools to pin as the gateway last saw them; empty: every tool that differs from its pin."""

    tools: list[ToolName] = Field(default_factory=list, max_length=1000)


@router.get("/runtime/servers/{namespace}/{name}/tools")
def server_tools(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Each tool's pinned and seen definition and where it stands: pinned, changed, not_pinned, unverified."""
    return platform.tools.rows(caller, namespace, name)


@router.post("/runtime/servers/{namespace}/{name}/tools/approve")
def approve_tools(namespace: str, name: str, body: ApproveRequest, caller: CallerDep,
                  platform: PlatformDep) -> dict[str, Any]:
    """Team owners and admins: pin the definitions the gateway saw; the new policy is pushed at once."""
    return platform.tools.approve(caller, namespace, name, body.tools or None)


class SeenTool(CamelModel):
    digest: str = Field(pattern=DIGEST_PATTERN)
    definition: Definition = Field(default_factory=dict)


class ToolsSeenReport(CamelModel):
    """What a gateway saw of a server's tools (`gateway/pinning.py` `DriftReport`, without the drift: the
    platform judges that itself against the stored pins)."""

    namespace: DnsLabel
    server: DnsLabel
    tools: dict[ToolName, SeenTool] = Field(max_length=MAX_REPORTED_TOOLS)


@router.post("/ingest/tools", status_code=202)
async def ingest_tools(request: Request, platform: PlatformDep) -> dict[str, Any]:
    """A sidecar gateway's report of the tool definitions it saw (an ingest API key, like `ingest/events`).
    The platform records them in the server's status (`observedTools`, `ToolsPinned`); approving them
    stays an owner's act."""
    token = bearer_token(request)
    keys = platform.ingest_keys
    if not keys.known(token) and not await run_in_threadpool(keys.verify, token):
        raise ApiError(401, "invalid_ingest_key", "send Authorization: Bearer <ingest API key>",
                       headers={"WWW-Authenticate": "Bearer"})
    try:
        report = ToolsSeenReport.model_validate_json(await request.body())
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
        raise invalid(exc) from None
    tools = {name: t.model_dump() for name, t in report.tools.items()}
    recorded = await run_in_threadpool(platform.tools.record, report.namespace, report.server, tools)
    return {"recorded": recorded is not None}
