"""`runtime/servers/{namespace}/{name}/tools`: tool-definition review (drift and approval, pinning.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from mcp_runtime.platform.deps import CallerDep, PlatformDep
from mcp_runtime.resources import CamelModel
from mcp_runtime.resources.common import ToolName

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
