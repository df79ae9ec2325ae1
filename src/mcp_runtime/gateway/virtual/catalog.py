"""Resources and prompts of a virtual server: the members' lists merged with a reversible mapping.

Resource URIs become `mcp-virtual://<namespace>/<server>/<the member's URI, encoded>` (mapping.py), so
two members' `file:///readme` never collide and a `resources/read` finds its member again; prompt names
get the member's prefix or rename, like tools. Whether the caller may use a member at all is decided
by that member's own document (`evaluate_access`, as its route decides every message that is not a
tool call). Resource templates are not aggregated (their URIs cannot be rewritten without breaking the
template), and subscriptions are not relayed: `initialize` promises neither.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from mcp_runtime.gateway import jsonrpc
from mcp_runtime.gateway.relay import denial_error
from mcp_runtime.gateway.virtual import govern
from mcp_runtime.gateway.virtual.fanout import MemberError, member_list, member_result
from mcp_runtime.gateway.virtual.mapping import (
    MemberKey,
    ToolMap,
    build_tool_map,
    map_resources,
    member_uri,
    public_uri,
    resolve_name,
)
from mcp_runtime.gateway.virtual.session import VirtualSession
from mcp_runtime.wire.jsonrpc import error_object


class VirtualEndpoint(Protocol):
    """What the catalog needs of the endpoint (endpoint.py), named here so the two do not import each other."""

    route: Any
    clock: Callable[[], datetime]

    @property
    def members(self) -> list[tuple[MemberKey, Any]]: ...

    def audit(self, session: VirtualSession, key: MemberKey, route: Any, method: str, tool: str | None,
              decision: Any, status: int, now: datetime, raw: dict[str, Any] | None = None) -> None: ...

    def unavailable_error(self, session: VirtualSession, msg_id: Any, key: MemberKey) -> dict[str, Any]: ...

METHODS = frozenset({"resources/list", "resources/read", "resources/templates/list", "prompts/list", "prompts/get",
                     "logging/setLevel", "completion/complete", "resources/subscribe", "resources/unsubscribe"})
INVALID_PARAMS = -32602


def _ok(msg: jsonrpc.RpcMessage, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg.id, "result": result}


async def answer(endpoint: VirtualEndpoint, session: VirtualSession, msg: jsonrpc.RpcMessage) -> dict[str, Any]:
    """The JSON-RPC answer to one of `METHODS`."""
    params = msg.raw.get("params") if isinstance(msg.raw.get("params"), dict) else {}
    assert isinstance(params, dict)
    if msg.method == "resources/templates/list":
        listed = await _lists(endpoint, session, "resources/templates/list", "resourceTemplates")
        return _ok(msg, {"resourceTemplates": map_resources(listed, "uriTemplate")})
    if msg.method == "completion/complete":
        return await _complete(endpoint, session, msg, params)
    if msg.method == "logging/setLevel":  # every member the caller may use logs at that level from now on
        for key in await _allowed_members(endpoint, session):
            try:
                await member_result(session, key, "logging/setLevel", params)
            except MemberError:
                continue  # a member without logging keeps quiet; the others still follow the level
        return _ok(msg, {})
    if msg.method == "resources/list":
        return _ok(msg, {"resources": map_resources(await _lists(endpoint, session, "resources/list", "resources"),
                                                    "uri")})
    if msg.method == "prompts/list":
        session.prompt_map = _prompt_map(endpoint, await _lists(endpoint, session, "prompts/list", "prompts"))
        return _ok(msg, {"prompts": session.prompt_map.tools})
    if msg.method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
        uri = params.get("uri")
        target = member_uri(uri) if isinstance(uri, str) else None
        if target is None or target[0] not in dict(endpoint.members):
            return error_object(msg.id, INVALID_PARAMS, f"Unknown resource: {uri!r} is not a resource of virtual "
                                f"server {endpoint.route.name}; resources/list shows them")
        key, original = target
        answer_ = await _forward(endpoint, session, msg, key, {**params, "uri": original})
        result = answer_.get("result")
        if isinstance(result, dict) and isinstance(result.get("contents"), list):
            result["contents"] = [{**c, "uri": public_uri(key, c["uri"])} if isinstance(c, dict) and
                                  isinstance(c.get("uri"), str) else c for c in result["contents"]]
        return answer_
    name = params.get("name")  # prompts/get
    found = _prompt_target(endpoint, session, name) if isinstance(name, str) else None
    if found is None:
        return error_object(msg.id, INVALID_PARAMS, f"Unknown prompt: {name!r} is not a prompt of virtual server "
                            f"{endpoint.route.name}; prompts/list shows them")
    return await _forward(endpoint, session, msg, found[0], {**params, "name": found[1]})


async def _complete(endpoint: VirtualEndpoint, session: VirtualSession, msg: jsonrpc.RpcMessage,
                    params: dict[str, Any]) -> dict[str, Any]:
    """Completion of a prompt's or a resource template's argument, asked of the member it belongs to."""
    ref = params.get("ref") if isinstance(params.get("ref"), dict) else {}
    assert isinstance(ref, dict)
    target: tuple[MemberKey, str] | None = None
    if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
        target = _prompt_target(endpoint, session, ref["name"])
        field = "name"
    elif ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
        target = member_uri(ref["uri"])
        field = "uri"
    if target is None or target[0] not in dict(endpoint.members):
        return error_object(msg.id, INVALID_PARAMS, f"Unknown reference {ref!r}: name a prompt or resource template "
                            f"of virtual server {endpoint.route.name} (prompts/list, resources/templates/list)")
    key, original = target
    return await _forward(endpoint, session, msg, key, {**params, "ref": {**ref, field: original}})


async def _allowed_members(endpoint: VirtualEndpoint, session: VirtualSession) -> list[MemberKey]:
    """The members whose own document lets the caller in (`evaluate_access`)."""
    now = endpoint.clock()
    allowed = []
    for key, _ in endpoint.members:
        route = endpoint.route.resolve(key)
        decision = govern.access(route, session.identity, now) if route is not None else None
        if decision is not None and decision.allowed:
            allowed.append(key)
    return allowed


async def _lists(endpoint: VirtualEndpoint, session: VirtualSession, method: str, field: str
                 ) -> dict[MemberKey, list[Any]]:
    listed: dict[MemberKey, list[Any]] = {}
    for key in await _allowed_members(endpoint, session):
        items = await member_list(session, key, method, field)
        if items is not None:
            listed[key] = items
    return listed


def _prompt_map(endpoint: VirtualEndpoint, listed: dict[MemberKey, list[Any]]) -> ToolMap:
    return build_tool_map(endpoint.members, listed, endpoint.route.server.spec.conflict_policy, filtered=False)


def _prompt_target(endpoint: VirtualEndpoint, session: VirtualSession, name: str) -> tuple[MemberKey, str] | None:
    if session.prompt_map is not None and (found := session.prompt_map.target(name)) is not None:
        return found
    members = [(k, m.model_copy(update={"tools": type(m.tools)()})) for k, m in endpoint.members]
    return resolve_name(members, endpoint.route.server.spec.conflict_policy, name)


async def _forward(endpoint: VirtualEndpoint, session: VirtualSession, msg: jsonrpc.RpcMessage, key: MemberKey,
                   params: dict[str, Any]) -> dict[str, Any]:
    """One read or get on its member, after the member's own access decision."""
    now = endpoint.clock()
    route = endpoint.route.resolve(key)
    decision = govern.access(route, session.identity, now) if route is not None else None
    if route is None or decision is None:
        return endpoint.unavailable_error(session, msg.id, key)
    if not decision.allowed:
        endpoint.audit(session, key, route, msg.method or "", None, decision, 200, now)
        return denial_error(msg, decision)
    try:
        result = await member_result(session, key, msg.method or "", params)
    except MemberError as exc:
        return {"jsonrpc": "2.0", "id": msg.id, "error": exc.error}
    endpoint.audit(session, key, route, msg.method or "", None, decision, 200 if result is not None else 502, now)
    if result is None:
        return endpoint.unavailable_error(session, msg.id, key)
    return _ok(msg, result)
