"""Virtual servers in `mcp-runtime up`: each MCPVirtualServer mounted on the embedded gateway at
`/v/<name>/mcp`, kept in step with the store (docs/virtual-servers.md).

The gateway finds members among its own routes on every request, so a member that is redeployed,
stopped or deleted is picked up (or reported unavailable) without remounting the virtual server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from mcp_runtime.gateway.app import Gateway
from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
from mcp_runtime.platform.core import Platform
from mcp_runtime.resources import Condition, ConditionStatus, MCPVirtualServer, VirtualServerStatus, virtual_path

log = logging.getLogger("mcp_runtime.up")


class VirtualMounts:
    """Mounts and unmounts virtual servers as the platform stores and deletes them."""

    def __init__(self, platform: Platform, gateway: Gateway, public_url: str,
                 submit: Callable[[Awaitable[None]], None]) -> None:
        self.platform, self.gateway, self.public_url, self.submit = platform, gateway, public_url, submit

    async def start(self) -> None:
        self.platform.virtual.listeners.append(self._changed)
        for virtual in self.platform.repo.list(MCPVirtualServer):
            await self.mount(virtual)

    def _changed(self, virtual: MCPVirtualServer, deleted: bool) -> None:
        self.submit(self.unmount(virtual) if deleted else self.mount(virtual))

    async def mount(self, virtual: MCPVirtualServer) -> None:
        path = virtual_path(virtual.metadata.name)
        taken = self.gateway.virtual.get(path)
        namespace = virtual.metadata.namespace or ""
        if taken is not None and taken.route.namespace != namespace:
            await self._status(virtual, False, f"path {path} is served for namespace {taken.route.namespace}; "
                                               "give this virtual server another name")
            return
        await self.gateway.add_virtual(VirtualRoute(virtual, self.platform.keyring.public_keys()))
        members = ", ".join(f"{ns}/{name}" for ns, name in virtual.member_keys())
        await self._status(virtual, True, f"serving {path}: members {members}", f"{self.public_url}{path}")

    async def unmount(self, virtual: MCPVirtualServer) -> None:
        path = virtual_path(virtual.metadata.name)
        endpoint = self.gateway.virtual.get(path)
        if endpoint is not None and endpoint.route.namespace == (virtual.metadata.namespace or ""):
            await self.gateway.remove_virtual(path)

    async def _status(self, virtual: MCPVirtualServer, ok: bool, message: str, url: str | None = None) -> None:
        now = datetime.now(UTC)
        virtual.status = VirtualServerStatus(
            phase="Ready" if ok else "Error", message=message, url=url,
            observed_generation=virtual.metadata.generation,
            conditions=[Condition(type="Ready", status=ConditionStatus.true if ok else ConditionStatus.false,
                                  reason="Mounted" if ok else "PathTaken", message=message[:1000],
                                  last_transition_time=now)])

        def write() -> None:
            try:
                if self.platform.repo.get(MCPVirtualServer, virtual.metadata.namespace or "",
                                          virtual.metadata.name) is not None:
                    self.platform.repo.replace(virtual, "runtime", action="", spec=False)
            except Exception:
                log.exception("could not record the status of virtual server %s", virtual.metadata.name)

        await asyncio.get_running_loop().run_in_executor(None, write)
