"""The pure part of a virtual server: public tool names, capability intersection, id remapping tables.

No I/O and no clocks here, so every rule is unit-tested exhaustively (tests/unit/test_virtual_mapping.py):

- `ToolMap`: which member tool a public name stands for, and back. Built from what each member listed
  *after* the member's own policy filtered it, so nothing a member would deny can ever get a name here.
- `intersect_capabilities`: what `initialize` answers, from what the members answered.
- `IdTable`: request ids of one member session (the client's id <-> the id the member sees), and
  `ServerRequests`: requests a member sends the client (elicitation, sampling, roots) under a virtual id.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from mcp_runtime.resources.virtual import ConflictPolicy, VirtualMember

MemberKey = tuple[str, str]
"""(namespace, server) of a member."""


@dataclass(frozen=True)
class Conflict:
    """A public name two members would both use; the first member (in spec order) keeps it."""

    name: str
    kept: MemberKey
    dropped: MemberKey


@dataclass
class ToolMap:
    """Public tool name -> (member, member's tool name), and the tool list a client sees."""

    targets: dict[str, tuple[MemberKey, str]] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def target(self, public: str) -> tuple[MemberKey, str] | None:
        return self.targets.get(public)

    def public_name(self, member: MemberKey, tool: str) -> str | None:
        for name, (key, original) in self.targets.items():
            if key == member and original == tool:
                return name
        return None


def build_tool_map(members: Sequence[tuple[MemberKey, VirtualMember]], listed: Mapping[MemberKey, Sequence[Any]],
                   policy: ConflictPolicy, *, filtered: bool = True) -> ToolMap:
    """The tools a client sees, in member order. `listed[key]` holds the member's tool definitions as its
    own (policy-filtered) `tools/list` answered them; a member missing from `listed` is unavailable and
    contributes nothing. Include/exclude lists hide tools; a name clash keeps the first member's tool."""
    result = ToolMap()
    for key, member in members:
        for tool in listed.get(key, ()):
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str) or (filtered and not member.tools.offers(name)):
                continue
            public = member.public_name(name, policy)
            taken = result.targets.get(public)
            if taken is not None:
                result.conflicts.append(Conflict(public, taken[0], key))
                continue
            result.targets[public] = (key, name)
            result.tools.append({**tool, "name": public})
    return result


def rename_call(message: dict[str, Any], tool: str) -> dict[str, Any]:
    """A `tools/call` request with the member's own tool name in place of the public one."""
    params = message.get("params")
    params = dict(params) if isinstance(params, dict) else {}
    params["name"] = tool
    return {**message, "params": params}


_MERGED = {"resources": {"listChanged", "subscribe"}, "prompts": {"listChanged"}, "logging": set(),
           "completions": set()}
"""What the virtual server aggregates besides tools, and the sub-flags it can honour for them."""


def intersect_capabilities(members: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The server capabilities of the virtual server: a capability only when every member has it (a
    client must not be promised something a member cannot do), each sub-flag likewise. `tools` is always
    offered with `listChanged`: the virtual server itself announces members going and coming back."""
    result: dict[str, Any] = {"tools": {"listChanged": True}}
    if not members:
        return result
    for name, honoured in _MERGED.items():
        values = [m.get(name) for m in members]
        if any(not isinstance(v, dict) for v in values):
            continue
        flags = set.intersection(honoured, *(set(k for k, f in v.items() if f is True) for v in values
                                             if isinstance(v, dict)))
        result[name] = {flag: True for flag in sorted(flags)}
    return result


_SCHEME = "mcp-virtual://"


def public_uri(member: MemberKey, uri: str) -> str:
    """A member's resource URI as the client sees it: reversible, and never the same for two members
    (`mcp-virtual://<namespace>/<server>/<the member's URI, percent-encoded>`)."""
    namespace, server = member
    return f"{_SCHEME}{namespace}/{server}/{quote(uri.encode('utf-8', 'surrogatepass'), safe='')}"


def member_uri(public: str) -> tuple[MemberKey, str] | None:
    """The member and its own URI for a public resource URI; None for a URI the virtual server did not
    hand out."""
    if not public.startswith(_SCHEME):
        return None
    parts = public[len(_SCHEME):].split("/", 2)
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    return (parts[0], parts[1]), unquote(parts[2], errors="surrogatepass")


_EXPRESSION = re.compile(r"(\{[^{}]*\})")


def public_template(member: MemberKey, template: str) -> str:
    """A member's URI template as the client sees it: the literal parts encoded like `public_uri`, the
    `{...}` expressions kept, so that a client's expansion is a public URI `member_uri` maps back."""
    namespace, server = member
    parts = _EXPRESSION.split(template)
    encoded = "".join(p if _EXPRESSION.fullmatch(p) else quote(p.encode("utf-8", "surrogatepass"), safe="")
                      for p in parts)
    return f"{_SCHEME}{namespace}/{server}/{encoded}"


def map_resources(listed: Mapping[MemberKey, Sequence[Any]], field_name: str) -> list[dict[str, Any]]:
    """Resources (`uri`) or resource templates (`uriTemplate`) of every member, with public URIs."""
    out: list[dict[str, Any]] = []
    for key, items in listed.items():
        for item in items:
            value = item.get(field_name) if isinstance(item, dict) else None
            if isinstance(value, str):
                mapped = public_template(key, value) if field_name == "uriTemplate" else public_uri(key, value)
                out.append({**item, field_name: mapped})
    return out


class IdTable:
    """Ids of the requests in flight on one member session: the member sees fresh integers, so ids that
    two clients' requests (or a client and the virtual server itself) share can never collide."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._back: dict[int, Any] = {}

    def out(self, client_id: Any) -> int:
        member_id = next(self._next)
        self._back[member_id] = client_id
        return member_id

    def back(self, member_id: Any) -> tuple[bool, Any]:
        """(known, the client's id) for an answer from the member; the entry is forgotten."""
        if isinstance(member_id, int) and member_id in self._back:
            return True, self._back.pop(member_id)
        return False, None

    def member_id_of(self, client_id: Any) -> int | None:
        """The id the member knows a client request by (to forward its cancellation)."""
        for member_id, known in self._back.items():
            if known == client_id and type(known) is type(client_id):
                return member_id
        return None

    def __len__(self) -> int:
        return len(self._back)


class ServerRequests:
    """Requests members send the client, under virtual ids (`v-<n>`) so that two members' ids never
    collide on the client's side; the client's answer is routed back to the member with its own id."""

    def __init__(self, limit: int = 1024) -> None:
        self._next = itertools.count(1)
        self._pending: dict[str, tuple[MemberKey, Any]] = {}
        self._limit = limit

    def out(self, member: MemberKey, member_id: Any) -> str:
        if len(self._pending) >= self._limit:  # bounded: a member that never gets answers cannot grow it
            self._pending.pop(next(iter(self._pending)))
        virtual_id = f"v-{next(self._next)}"
        self._pending[virtual_id] = (member, member_id)
        return virtual_id

    def back(self, virtual_id: Any) -> tuple[MemberKey, Any] | None:
        if not isinstance(virtual_id, str):
            return None
        return self._pending.pop(virtual_id, None)


def with_id(message: Mapping[str, Any], new_id: Any) -> dict[str, Any]:
    return {**message, "id": new_id}


def cancelled_for(message: Mapping[str, Any], lookup: Callable[[Any], Any]) -> dict[str, Any] | None:
    """A `notifications/cancelled` with the member's id of the request, or None when it is not in flight."""
    params = message.get("params")
    if not isinstance(params, dict) or "requestId" not in params:
        return None
    member_id = lookup(params["requestId"])
    if member_id is None:
        return None
    return {**message, "params": {**params, "requestId": member_id}}


def resolve_name(members: Sequence[tuple[MemberKey, VirtualMember]], policy: ConflictPolicy,
                 public: str) -> tuple[MemberKey, str] | None:
    """Which member tool a public name stands for by configuration alone (renames, then prefixes, in
    member order), whether or not the member listed it: a call the member's policy would deny is then
    judged (and denied, with the member's reason) by that member rather than reported as unknown."""
    for key, member in members:
        for source, target in member.rename.items():
            if target == public and member.tools.offers(source):
                return key, source
    for key, member in members:
        prefix = member.effective_prefix(policy)
        if public.startswith(prefix) and len(public) > len(prefix):
            tool = public[len(prefix):]
            if tool not in member.rename and member.tools.offers(tool):
                return key, tool
    return None
