"""One client session of a virtual server: its member links, its tool map, its stream to the client.

A session is bound to the caller's MCPAgentSession (the token's `sid`): a request carrying the
session's `Mcp-Session-Id` with another caller's token is answered as if the session did not exist.
Members that fail are marked down and retried in the background; their tools leave `tools/list`
and the client hears `notifications/tools/list_changed` when a member goes and when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from mcp_runtime.gateway.auth import Authenticated
from mcp_runtime.gateway.routes import BoundRoute
from mcp_runtime.gateway.virtual.mapping import MemberKey, ServerRequests, ToolMap, public_uri
from mcp_runtime.gateway.virtual.member import MemberLink
from mcp_runtime.policy import Identity

log = logging.getLogger("mcp_runtime.gateway.virtual")

RETRY_INTERVAL = 1.0
"""Seconds between two attempts to reach a member that is down (while the client session lasts)."""
OUTBOX_LIMIT = 1000
LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


class VirtualSession:
    """State of one client session (created by `initialize`, ended by DELETE or the gateway stopping)."""

    def __init__(self, caller: Authenticated, identity: Identity, init_params: dict[str, Any],
                 resolve: Callable[[MemberKey], BoundRoute | None]) -> None:
        self.id = secrets.token_urlsafe(24)
        self.caller = caller
        self.identity = identity
        self.init_params = init_params
        self._resolve = resolve
        self.links: dict[MemberKey, MemberLink] = {}
        self.down: dict[MemberKey, str] = {}
        self.tool_map: ToolMap | None = None
        self.prompt_map: ToolMap | None = None
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX_LIMIT)
        self.server_requests = ServerRequests()
        self.inflight: dict[str, tuple[MemberKey, int, asyncio.Task[Any]]] = {}
        self.streaming = False
        self.questions: dict[str, asyncio.Future[dict[str, Any]]] = {}
        """The gateway's own approval questions to the client in flight, by id (approve.py)."""
        self.cancels: dict[str, asyncio.Future[None]] = {}
        """Calls waiting for approval, by `jsonrpc.id_key` of their id: set by the client's cancellation."""
        self.waiting = 0
        """Calls waiting for a person's approval (the session is not idle meanwhile)."""
        self.last_used = time.monotonic()
        self._recovery: asyncio.Task[None] | None = None

    def idle_for(self, now: float) -> float:
        """Seconds since the client last sent anything (0 while its stream is open)."""
        return 0.0 if self.streaming or self.inflight or self.waiting else now - self.last_used

    @property
    def elicits(self) -> bool:
        """Whether the client declared the `elicitation` capability at `initialize` (it may be asked)."""
        caps = self.init_params.get("capabilities")
        return isinstance(caps, dict) and caps.get("elicitation") is not None

    def owned_by(self, caller: Authenticated) -> bool:
        return caller.claims.session_id == self.caller.claims.session_id and \
            caller.claims.namespace == self.caller.claims.namespace

    def push(self, message: dict[str, Any]) -> None:
        """Queue a message for the client's GET stream (dropped, with a log line, when it is full)."""
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("virtual session %s: the client's stream is full; dropped a %s", self.id[:8],
                        message.get("method", "message"))

    async def link(self, key: MemberKey) -> MemberLink | None:
        """The open backend session with a member, opened now if needed; None when the member is down."""
        opened = await self._open(key)
        if isinstance(opened, str):
            self.mark_down(key, opened)
            return None
        self.down.pop(key, None)
        return opened

    async def _open(self, key: MemberKey) -> MemberLink | str:
        route = self._resolve(key)
        if route is None:
            return "it is not deployed or has no gateway route"
        link = self.links.get(key)
        if link is None or link.upstream is not route.upstream:  # new, or the member was redeployed
            link = MemberLink(key, route.upstream, list(self.caller.headers), self.member_init_params(),
                              self._on_member_message)
            self.links[key] = link
        try:
            await link.open()
        except Exception as exc:  # down, refusing, or not MCP: the other members go on
            self.links.pop(key, None)
            return _describe(exc)
        return link

    def member_init_params(self) -> dict[str, Any]:
        """`initialize` params for members: the client's own (its capabilities decide whether a member may
        ask it for elicitation, sampling or roots), so nothing is promised the client cannot do."""
        return dict(self.init_params)

    def mark_down(self, key: MemberKey, reason: str) -> None:
        was_up = key not in self.down
        self.down[key] = reason
        self.links.pop(key, None)
        if was_up:
            log.warning("virtual session %s: member %s/%s is unavailable: %s", self.id[:8], key[0], key[1], reason)
            if self.tool_map is not None and any(k == key for k, _ in self.tool_map.targets.values()):
                self.tool_map = None
                self.push(LIST_CHANGED)
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        """Try the members that are down until each answers again; then the client hears list_changed."""
        while self.down:
            await asyncio.sleep(RETRY_INTERVAL)
            for key in list(self.down):
                if not isinstance(await self._open(key), str):
                    self.down.pop(key, None)
                    log.info("virtual session %s: member %s/%s is back", self.id[:8], key[0], key[1])
                    self.tool_map = None
                    self.push(LIST_CHANGED)

    def _on_member_message(self, link: MemberLink, message: dict[str, Any]) -> None:
        """A message from a member's own stream: list changes and requests for the client."""
        method = message.get("method")
        if method == "notifications/tools/list_changed":
            self.tool_map = None
            self.push(LIST_CHANGED)
        elif method == "notifications/resources/updated":
            self.push(updated_for_client(link.key, message))
        elif isinstance(method, str) and "id" in message:
            self.push({**message, "id": self.server_requests.out(link.key, message["id"])})
        elif isinstance(method, str) and method != "notifications/progress":
            self.push(message)

    async def close(self) -> None:
        for waiting in self.questions.values():  # a question the client can no longer answer: cancelled
            if not waiting.done():
                waiting.set_result({"result": {"action": "cancel"}})
        if self._recovery is not None:
            self._recovery.cancel()
        for _, _, task in list(self.inflight.values()):
            task.cancel()
        for link in list(self.links.values()):
            with contextlib.suppress(Exception):
                await link.close()
        self.links.clear()


def updated_for_client(key: MemberKey, message: dict[str, Any]) -> dict[str, Any]:
    """A member's `notifications/resources/updated` with the URI the client subscribed to (the public one)."""
    params = message.get("params")
    if isinstance(params, dict) and isinstance(params.get("uri"), str):
        return {**message, "params": {**params, "uri": public_uri(key, params["uri"])}}
    return message


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "it did not answer initialize in time"
    return str(exc) or type(exc).__name__
