"""The pure part of virtual servers: public names, conflicts, capability intersection, id tables, and
the property that the mapping never reaches a tool the member's own evaluator denies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_runtime.gateway.virtual.mapping import (
    IdTable,
    ServerRequests,
    build_tool_map,
    cancelled_for,
    intersect_capabilities,
    map_resources,
    member_uri,
    public_template,
    public_uri,
    rename_call,
    resolve_name,
)
from mcp_runtime.policy import Identity, allowed_tools, compile_policy, evaluate
from mcp_runtime.resources import (
    ConflictPolicy,
    MCPAccessGrant,
    MCPAgentSession,
    MCPServer,
    MCPVirtualServer,
    ResourceError,
    VirtualMember,
    load_resource,
)

A, B = ("ns-a", "alpha"), ("ns-b", "beta")


def member(name: str, namespace: str | None = None, **fields: Any) -> VirtualMember:
    return VirtualMember.model_validate({"serverRef": {"name": name, "namespace": namespace}, **fields})


def tools(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "description": f"the {n} tool", "inputSchema": {"type": "object"}} for n in names]


def test_default_prefix_is_the_server_name_and_definitions_are_kept() -> None:
    mapped = build_tool_map([(A, member("alpha")), (B, member("beta"))],
                            {A: tools("echo", "add"), B: tools("echo")}, ConflictPolicy.prefix)
    assert [t["name"] for t in mapped.tools] == ["alpha_echo", "alpha_add", "beta_echo"]
    assert mapped.tools[0]["description"] == "the echo tool"
    assert mapped.target("beta_echo") == (B, "echo") and mapped.target("echo") is None
    assert mapped.public_name(A, "add") == "alpha_add" and mapped.conflicts == []


def test_explicit_prefix_empty_prefix_renames_and_filters() -> None:
    a = member("alpha", prefix="", tools={"exclude": ["secret"]})
    b = member("beta", prefix="b.", rename={"echo": "shout"}, tools={"include": ["echo", "add"]})
    mapped = build_tool_map([(A, a), (B, b)], {A: tools("echo", "secret"), B: tools("echo", "add", "drop")},
                            ConflictPolicy.prefix)
    assert sorted(mapped.targets) == ["b.add", "echo", "shout"]
    assert mapped.target("shout") == (B, "echo")


def test_rename_policy_keeps_names_and_the_first_member_wins_a_clash() -> None:
    mapped = build_tool_map([(A, member("alpha")), (B, member("beta", rename={"add": "beta_add"}))],
                            {A: tools("echo", "add"), B: tools("echo", "add")}, ConflictPolicy.rename)
    assert mapped.targets == {"echo": (A, "echo"), "add": (A, "add"), "beta_add": (B, "add")}
    assert [(c.name, c.kept, c.dropped) for c in mapped.conflicts] == [("echo", A, B)]


def test_an_unavailable_member_contributes_nothing_and_bad_entries_are_skipped() -> None:
    mapped = build_tool_map([(A, member("alpha")), (B, member("beta"))], {A: [{"nope": 1}, "x", *tools("ok")]},
                            ConflictPolicy.prefix)
    assert list(mapped.targets) == ["alpha_ok"]


def test_resolve_name_by_configuration() -> None:
    members = [(A, member("alpha", rename={"x": "special"})), (B, member("beta", tools={"exclude": ["hidden"]}))]
    assert resolve_name(members, ConflictPolicy.prefix, "beta_anything") == (B, "anything")
    assert resolve_name(members, ConflictPolicy.prefix, "special") == (A, "x")
    assert resolve_name(members, ConflictPolicy.prefix, "alpha_x") is None  # renamed away
    assert resolve_name(members, ConflictPolicy.prefix, "beta_hidden") is None
    assert resolve_name(members, ConflictPolicy.prefix, "beta_") is None
    assert resolve_name(members, ConflictPolicy.prefix, "gamma_x") is None


def test_rename_call_maps_the_name_back_and_keeps_everything_else() -> None:
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "alpha_add", "arguments": {"a": 1}, "_meta": {"progressToken": "p"}}}
    assert rename_call(call, "add") == {**call, "params": {**call["params"], "name": "add"}}
    assert call["params"]["name"] == "alpha_add"  # not changed in place


def test_capabilities_are_the_intersection_and_tools_always_announce_changes() -> None:
    one = {"tools": {"listChanged": False}, "resources": {"subscribe": True, "listChanged": True},
           "prompts": {"listChanged": True}, "logging": {}}
    two = {"tools": {}, "resources": {"listChanged": True, "subscribe": True}, "logging": {}}
    # prompts: only one member has them; logging: both
    assert intersect_capabilities([one, two]) == {"tools": {"listChanged": True},
                                                  "resources": {"listChanged": True, "subscribe": True},
                                                  "logging": {}}
    assert intersect_capabilities([]) == {"tools": {"listChanged": True}}


@settings(max_examples=100, deadline=None)
@given(namespace=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True),
       server=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True), uri=st.text(max_size=60))
def test_resource_uris_map_back_to_their_member_exactly(namespace: str, server: str, uri: str) -> None:
    assert member_uri(public_uri((namespace, server), uri)) == ((namespace, server), uri)


def test_resource_lists_get_public_uris_and_foreign_uris_are_not_ours() -> None:
    mapped = map_resources({A: [{"uri": "file:///readme", "name": "r"}, {"nouri": 1}], B: [{"uri": "file:///readme"}]},
                           "uri")
    assert [r["uri"] for r in mapped] == ["mcp-virtual://ns-a/alpha/file%3A%2F%2F%2Freadme",
                                          "mcp-virtual://ns-b/beta/file%3A%2F%2F%2Freadme"]
    assert mapped[0]["name"] == "r"
    for foreign in ("file:///readme", "mcp-virtual://", "mcp-virtual://ns/only", "mcp-virtual://ns//x",
                    "mcp-virtual:///srv/x"):
        assert member_uri(foreign) is None


def test_a_template_expanded_by_the_client_maps_back_to_the_members_uri() -> None:
    from urllib.parse import quote

    template = public_template(A, "file:///{path}/raw")
    assert template == "mcp-virtual://ns-a/alpha/file%3A%2F%2F%2F{path}%2Fraw"
    expanded = template.replace("{path}", quote("docs/a b.md", safe=""))  # RFC 6570 simple expansion
    assert member_uri(expanded) == (A, "file:///docs/a b.md/raw")
    assert map_resources({A: [{"uriTemplate": "x://{id}"}]}, "uriTemplate") == [
        {"uriTemplate": "mcp-virtual://ns-a/alpha/x%3A%2F%2F{id}"}]


def test_a_members_resource_update_names_the_public_uri() -> None:
    from mcp_runtime.gateway.virtual.session import updated_for_client

    note = {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "file:///x"}}
    assert updated_for_client(A, note)["params"]["uri"] == "mcp-virtual://ns-a/alpha/file%3A%2F%2F%2Fx"
    assert updated_for_client(A, {"method": "notifications/resources/updated"}) == {
        "method": "notifications/resources/updated"}


def test_id_table_gives_fresh_ids_and_maps_back_once() -> None:
    table = IdTable()
    first, second = table.out(1), table.out("1")
    assert first != second and len(table) == 2
    assert table.member_id_of("1") == second and table.member_id_of(1) == first
    assert table.back(first) == (True, 1) and table.back(first) == (False, None)
    assert table.back("nope") == (False, None) and table.member_id_of(3) is None


def test_server_requests_get_virtual_ids_routed_back_and_are_bounded() -> None:
    pending = ServerRequests(limit=2)
    v1, v2 = pending.out(A, 1), pending.out(B, 1)
    assert v1 != v2
    assert pending.back(v2) == (B, 1) and pending.back(v2) is None
    v3, v4 = pending.out(A, 2), pending.out(A, 3)
    assert pending.back(v1) is None  # the oldest made room
    assert pending.back(v3) == (A, 2) and pending.back(v4) == (A, 3) and pending.back(5) is None


def test_cancellation_names_the_members_id() -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4, "reason": "x"}}
    assert cancelled_for(note, {4: 99}.get)["params"] == {"requestId": 99, "reason": "x"}  # type: ignore[index]
    assert cancelled_for(note, {}.get) is None
    assert cancelled_for({"method": "notifications/cancelled"}, {4: 1}.get) is None


@pytest.mark.parametrize(("members", "policy", "message"), [
    ([{"serverRef": {"name": "a"}, "prefix": "x_"}, {"serverRef": {"name": "b"}, "prefix": "x_y"}], "prefix",
     "prefix collision"),
    ([{"serverRef": {"name": "a"}, "prefix": ""}, {"serverRef": {"name": "b"}}], "prefix", "prefix collision"),
    ([{"serverRef": {"name": "a"}, "rename": {"t": "same"}}, {"serverRef": {"name": "b"}, "rename": {"u": "same"}}],
     "rename", "rename target 'same'"),
    ([{"serverRef": {"name": "a"}}, {"serverRef": {"name": "a"}}], "prefix", "twice"),
    ([{"serverRef": {"name": "a"}, "tools": {"include": ["t"], "exclude": ["t"]}}], "prefix",
     "both included and excluded"),
    ([{"serverRef": {"name": "a"}, "prefix": "bad prefix"}], "prefix", "not a valid tool name"),
    ([], "prefix", "members"),
])
def test_bad_virtual_servers_are_refused_with_the_cause(members: list[Any], policy: str, message: str) -> None:
    with pytest.raises(ResourceError) as refused:
        load_resource({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPVirtualServer",
                       "metadata": {"name": "vs", "namespace": "ns"},
                       "spec": {"conflictPolicy": policy, "members": members}})
    assert message in str(refused.value)


def test_rename_policy_allows_members_without_prefixes() -> None:
    virtual = load_resource({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPVirtualServer",
                             "metadata": {"name": "vs", "namespace": "ns"},
                             "spec": {"conflictPolicy": "rename", "members": [{"serverRef": {"name": "a"}},
                                                                              {"serverRef": {"name": "b"}}]}})
    assert isinstance(virtual, MCPVirtualServer) and virtual.member_keys() == [("ns", "a"), ("ns", "b")]


# --- the property: the mapping never reaches what the member's evaluator denies ----------------------
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TOOL_NAMES = ["echo", "add", "wipe", "read_file", "x"]


def member_document(name: str, namespace: str, granted: list[str], denied: list[str], effects: list[str],
                    trust: str) -> Any:
    server = MCPServer.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": {
        "image": "x/y", "tools": [{"name": t, "sideEffect": e} for t, e in zip(TOOL_NAMES, effects, strict=True)]}})
    grant = MCPAccessGrant.model_validate({"metadata": {"name": "g", "namespace": namespace}, "spec": {
        "serverRef": {"name": name}, "subject": {"agentID": "agent"}, "maxTrust": trust,
        "allowedSideEffects": ["read"], "toolRules": [{"name": t} for t in granted] + [
            {"name": t, "decision": "deny"} for t in denied if t not in granted]}})
    session = MCPAgentSession.model_validate({"metadata": {"name": "s", "namespace": "home"}, "spec": {
        "serverRef": {"name": "vs"}, "subject": {"agentID": "agent"}, "consentedTrust": "high",
        "expiresAt": (NOW + timedelta(hours=1)).isoformat()}})
    return compile_policy(server, [grant], [], [session])


names = st.lists(st.sampled_from(TOOL_NAMES), unique=True)
effects = st.lists(st.sampled_from(["read", "write", "destructive"]), min_size=5, max_size=5)


@settings(max_examples=80, deadline=None)
@given(granted_a=names, denied_a=names, granted_b=names, denied_b=names, effects_a=effects, effects_b=effects,
       trust=st.sampled_from(["low", "medium", "high"]), policy=st.sampled_from(list(ConflictPolicy)),
       exclude=names, probe=st.text(alphabet="abcdehilmnoprstwx_", max_size=14))
def test_nothing_is_reachable_that_the_member_evaluator_denies(
        granted_a: list[str], denied_a: list[str], granted_b: list[str], denied_b: list[str],
        effects_a: list[str], effects_b: list[str], trust: str, policy: ConflictPolicy, exclude: list[str],
        probe: str) -> None:
    docs = {A: member_document("alpha", "ns-a", granted_a, denied_a, effects_a, trust),
            B: member_document("beta", "ns-b", granted_b, denied_b, effects_b, trust)}
    members = [(A, member("alpha", "ns-a", tools={"exclude": exclude})),
               (B, member("beta", "ns-b", prefix="b_" if policy == ConflictPolicy.rename else None))]
    identity = Identity(agent_id="agent", session_id="home/s")
    # what each member's own tools/list filter lets through (every tool the server has, then filtered)
    listed = {key: tools(*allowed_tools(doc, identity, NOW)) for key, doc in docs.items()}
    mapped = build_tool_map(members, listed, policy)
    for public, (key, tool) in mapped.targets.items():
        assert evaluate(docs[key], identity, tool, NOW).allowed, (public, key, tool)
        assert tool not in exclude or key != A
    # any name a client may send resolves (by the map or by configuration) to a member tool that is
    # then judged by that member: when the member denies it, the virtual server must not list it
    for public in [probe, *(f"alpha_{t}" for t in TOOL_NAMES), *(f"b_{t}" for t in TOOL_NAMES), *TOOL_NAMES]:
        target = mapped.target(public) or resolve_name(members, policy, public)
        if target is not None and not evaluate(docs[target[0]], identity, target[1], NOW).allowed:
            assert public not in mapped.targets


def test_the_mcp_metadata_form_turns_into_the_resource() -> None:
    from mcp_runtime.resources import ServersFile, parse_yaml, validate_model

    text = """
version: v1
servers: []
virtualServers:
  - name: toolbox
    conflictPolicy: rename
    members:
      - serverRef: {name: payments}
        rename: {echo: pay_echo}
      - serverRef: {name: helper, namespace: mcp-team-tools}
        prefix: h_
"""
    entry = validate_model(ServersFile, parse_yaml(text)).virtual_servers[0]
    virtual = entry.to_resource("mcp-team-acme")
    assert (virtual.metadata.name, virtual.metadata.namespace) == ("toolbox", "mcp-team-acme")
    assert virtual.member_keys() == [("mcp-team-acme", "payments"), ("mcp-team-tools", "helper")]
    assert virtual.spec.conflict_policy == ConflictPolicy.rename and virtual.spec.members[0].rename == {
        "echo": "pay_echo"}
    with pytest.raises(ValueError, match="names no namespace"):
        entry.to_resource(None)
