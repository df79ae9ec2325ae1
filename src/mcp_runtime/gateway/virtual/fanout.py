"""Asking members: one request to one member's backend session, its answer's result (or its error).

Shared by `tools/list` (endpoint.py) and the resource and prompt catalog (catalog.py).
"""

from __future__ import annotations

from typing import Any

from mcp_runtime.gateway.virtual.mapping import MemberKey
from mcp_runtime.gateway.virtual.session import VirtualSession

MAX_PAGES = 20
"""Pages of a member's list followed (`nextCursor`) before the rest is left out."""


class MemberError(Exception):
    """The member answered the request with a JSON-RPC error (passed on to the client as it is)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message")))
        self.error = error


async def member_result(session: VirtualSession, key: MemberKey, method: str,
                        params: dict[str, Any]) -> dict[str, Any] | None:
    """The result of `method` on the member; None when it is down (marked so). Raises MemberError."""
    link = await session.link(key)
    if link is None:
        return None
    member_id = link.ids.out(None)
    answer: dict[str, Any] | None = None
    try:
        async for message in link.request({"jsonrpc": "2.0", "id": member_id, "method": method, "params": params}):
            if message.get("id") == member_id and "method" not in message:
                answer = message
    except Exception as exc:
        session.mark_down(key, str(exc) or type(exc).__name__)
        return None
    finally:
        link.ids.back(member_id)
    if answer is not None and isinstance(answer.get("error"), dict):
        raise MemberError(answer["error"])
    result = answer.get("result") if answer is not None else None
    return result if isinstance(result, dict) else {}


async def member_list(session: VirtualSession, key: MemberKey, method: str, field: str) -> list[Any] | None:
    """A member's whole list (`tools`, `resources`, `prompts`), following `nextCursor`; None when it is
    down. A member that answers the list with an error contributes nothing."""
    items: list[Any] = []
    cursor: Any = None
    for _ in range(MAX_PAGES):
        try:
            result = await member_result(session, key, method, {"cursor": cursor} if cursor else {})
        except MemberError:
            return items
        if result is None:
            return items or None
        page = result.get(field)
        items += page if isinstance(page, list) else []
        cursor = result.get("nextCursor")
        if not cursor:
            break
    return items
