"""The compiled per-server policy document: everything the gateway needs, in one canonical JSON.

The control plane compiles it from a server, its grants and its sessions; the gateway loads it from
a file, a ConfigMap or an in-process push and never talks to the control plane per request.
`revision` is the SHA-256 of the canonical JSON without the revision itself, so two compilers that
see the same inputs agree byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, model_validator

from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    MCPServer,
    PolicyMode,
    SideEffect,
    Subject,
    ToolDecision,
    Trust,
)
from mcp_runtime.resources.approval import (
    DEFAULT_APPROVAL_TIMEOUT,
    MAX_APPROVAL_TIMEOUT_SECONDS,
    Approver,
    tool_approver,
)
from mcp_runtime.resources.common import CamelModel, RiskLevel, parse_duration
from mcp_runtime.resources.conditions import CompiledCondition, ConditionError, compile_condition
from mcp_runtime.resources.io import describe_validation_error
from mcp_runtime.resources.limits import LimitKey, RateLimit
from mcp_runtime.resources.pinning import PinMode
from mcp_runtime.resources.virtual import qualified_session

SCHEMA_VERSION = 1


class PolicyDocumentError(ValueError):
    """A policy document that cannot be used; the gateway keeps its last good one."""


class _Frozen(CamelModel):
    model_config = ConfigDict(frozen=True)


def _unset(value: object) -> bool:
    return value is None


def _default_timeout(value: object) -> bool:
    return value == DEFAULT_TIMEOUT_SECONDS


DEFAULT_TIMEOUT_SECONDS = parse_duration(DEFAULT_APPROVAL_TIMEOUT).total_seconds()


class PolicyServer(_Frozen):
    name: str
    namespace: str
    team_id: str | None = None


class PolicyTool(_Frozen):
    name: str
    required_trust: Trust = Trust.low
    side_effect: SideEffect | None = None
    risk_level: RiskLevel | None = None
    pin: str | None = None
    """The digest of the reviewed definition (resources/pinning.py); None: not pinned."""
    approval: Approver | None = Field(default=None, exclude_if=_unset)
    """Who must approve each call (resources/approval.py: destructive tools by default); None: nobody."""


class PolicyRateLimit(_Frozen):
    """A rate limit and/or daily quota (resources/limits.py); the gateway keeps its counters."""

    requests_per_second: float | None = None
    burst: int = 1
    calls_per_day: int | None = None
    per: tuple[LimitKey, ...] = ()

    @cached_property
    def params(self) -> tuple[float | None, int, int | None]:
        """What makes two limits count alike: part of a bucket's key (cheaper to hash than the model)."""
        return (self.requests_per_second, self.burst, self.calls_per_day)

    @classmethod
    def of(cls, limit: RateLimit | None) -> PolicyRateLimit | None:
        if limit is None:
            return None
        return cls(requests_per_second=limit.requests_per_second,
                   burst=limit.capacity if limit.requests_per_second is not None else 1,
                   calls_per_day=limit.calls_per_day, per=tuple(limit.per))


class PolicyToolRule(_Frozen):
    name: str
    decision: ToolDecision = ToolDecision.allow
    required_trust: Trust | None = None
    # Left out of the JSON when unset, so documents without conditions keep their revision.
    condition: str | None = Field(default=None, exclude_if=_unset)
    rate_limit: PolicyRateLimit | None = Field(default=None, exclude_if=_unset)
    approval: Approver | None = Field(default=None, exclude_if=_unset)

    @cached_property
    def program(self) -> CompiledCondition | None:
        """The compiled condition (compiled when the document is built, see `PolicyDocument`)."""
        return compile_condition(self.condition) if self.condition is not None else None


class PolicySubject(_Frozen):
    human_id: str | None = None
    agent_id: str | None = None
    team_id: str | None = None


class PolicyGrant(_Frozen):
    name: str
    subject: PolicySubject
    max_trust: Trust = Trust.low
    allowed_side_effects: tuple[SideEffect, ...] = ()
    tool_rules: tuple[PolicyToolRule, ...] = ()
    disabled: bool = False
    expires_at: datetime | None = None
    rate_limit: PolicyRateLimit | None = Field(default=None, exclude_if=_unset)

    def rule_for(self, tool: str) -> PolicyToolRule | None:
        return next((r for r in self.tool_rules if r.name == tool), None)


class PolicySession(_Frozen):
    name: str
    subject: PolicySubject
    consented_trust: Trust = Trust.low
    expires_at: datetime | None = None
    revoked: bool = False


class PolicyDocument(_Frozen):
    """One server's policy. Build it with `compile_policy`; load it with `from_json`."""

    schema_version: int = SCHEMA_VERSION
    server: PolicyServer
    mode: PolicyMode = PolicyMode.allow_list
    default_decision: ToolDecision = ToolDecision.deny
    session_required: bool = True
    tools: tuple[PolicyTool, ...] = ()
    grants: tuple[PolicyGrant, ...] = ()
    sessions: tuple[PolicySession, ...] = ()
    pin_mode: PinMode = PinMode.enforce
    rate_limit: PolicyRateLimit | None = Field(default=None, exclude_if=_unset)
    approval_timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=MAX_APPROVAL_TIMEOUT_SECONDS,
                                    exclude_if=_default_timeout)
    """Seconds a call waits for a person's approval before it is refused `approval_timeout`."""
    revision: str = ""

    @model_validator(mode="after")
    def _compile_conditions(self) -> PolicyDocument:
        """Compile every argument condition once, when the document is built or loaded: a bad one makes
        the whole document invalid (the gateway keeps its last good one) instead of failing per call."""
        for grant in self.grants:
            for rule in grant.tool_rules:
                try:
                    rule.program  # noqa: B018 - fills the cached property
                except ConditionError as exc:
                    raise ValueError(f"grant {grant.name!r} toolRule {rule.name!r}: {exc}") from None
        return self

    # Indexes built once per document (cached in the instance dict: plain lookups on the hot path).
    @cached_property
    def tools_by_name(self) -> dict[str, PolicyTool]:
        return {t.name: t for t in self.tools}

    @cached_property
    def sessions_by_name(self) -> dict[str, PolicySession]:
        return {s.name: s for s in self.sessions}

    @cached_property
    def grants_by_name(self) -> tuple[PolicyGrant, ...]:
        """Grants in name order: step 7 of the evaluation takes the first passing grant by name."""
        return tuple(sorted(self.grants, key=lambda g: g.name))

    @cached_property
    def has_pins(self) -> bool:
        """Whether any tool is pinned: definitions are checked from the first review on."""
        return any(t.pin is not None for t in self.tools)

    def tool(self, name: str) -> PolicyTool | None:
        return self.tools_by_name.get(name)

    def session(self, name: str) -> PolicySession | None:
        return self.sessions_by_name.get(name)

    def body(self) -> dict[str, Any]:
        """The document without its revision, in the JSON form the revision is computed over."""
        return self.model_dump(by_alias=True, mode="json", exclude={"revision"})

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, UTF-8) including the revision."""
        return canonical_json({**self.body(), "revision": self.revision})

    @classmethod
    def from_json(cls, data: bytes | str) -> PolicyDocument:
        """Load and check a document; a wrong revision or schema is a PolicyDocumentError."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PolicyDocumentError(f"policy document is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise PolicyDocumentError("policy document must be a JSON object")
        if raw.get("schemaVersion") != SCHEMA_VERSION:
            raise PolicyDocumentError(
                f"policy schemaVersion {raw.get('schemaVersion')!r} is not supported (expected {SCHEMA_VERSION})"
            )
        try:
            doc = cls.model_validate(raw)
        except ValidationError as exc:
            raise PolicyDocumentError(f"invalid policy document: {describe_validation_error(exc)}") from None
        expected = revision_of(doc.body())
        if doc.revision and doc.revision != expected:
            raise PolicyDocumentError(
                f"policy revision {doc.revision[:12]} does not match its content ({expected[:12]}): "
                "the document was edited or truncated"
            )
        return doc.model_copy(update={"revision": expected})


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def revision_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _subject(subject: Subject) -> PolicySubject:
    return PolicySubject(human_id=subject.human_id, agent_id=subject.agent_id, team_id=subject.team_id)


def compile_policy(
    server: MCPServer,
    grants: list[MCPAccessGrant],
    sessions: list[MCPAgentSession],
    virtual_sessions: Sequence[MCPAgentSession] = (),
) -> PolicyDocument:
    """Compile one server's document from its resources.

    Only grants and sessions that reference this server (same name, same namespace) are kept; they are
    sorted by name so the document, and therefore its revision, does not depend on input order.
    `virtual_sessions` are sessions of virtual servers this server is a member of: they are kept under
    their qualified name (`<namespace>/<name>`, resources/virtual.py), so a call through the virtual
    server is judged here with that session's consented trust, expiry and revocation.
    """
    namespace = server.metadata.namespace or ""

    def ours(ref_name: str, ref_ns: str | None, obj_ns: str | None) -> bool:
        return ref_name == server.metadata.name and (ref_ns or obj_ns or namespace) == namespace

    policy_grants = [_policy_grant(g) for g in sorted(grants, key=lambda g: g.metadata.name)
                     if ours(g.spec.server_ref.name, g.spec.server_ref.namespace, g.metadata.namespace)]
    policy_sessions = [_policy_session(s, s.metadata.name) for s in sorted(sessions, key=lambda s: s.metadata.name)
                       if ours(s.spec.server_ref.name, s.spec.server_ref.namespace, s.metadata.namespace)]
    policy_sessions += sorted((_policy_session(s, qualified_session(s.metadata.namespace or "", s.metadata.name))
                               for s in virtual_sessions), key=lambda s: s.name)
    doc = PolicyDocument(
        server=PolicyServer(name=server.metadata.name, namespace=namespace, team_id=server.spec.team_id),
        mode=server.spec.policy.mode,
        default_decision=server.spec.policy.default_decision,
        session_required=server.spec.session.required,
        tools=tuple(
            PolicyTool(name=t.name, required_trust=t.required_trust, side_effect=t.side_effect,
                       risk_level=t.risk_level, pin=t.pin.digest if t.pin else None,
                       approval=tool_approver(t.side_effect, t.requires_approval, t.approver))
            for t in sorted(server.spec.tools, key=lambda t: t.name)
        ),
        grants=tuple(policy_grants),
        sessions=tuple(policy_sessions),
        pin_mode=server.spec.pinning.mode,
        rate_limit=PolicyRateLimit.of(server.spec.policy.rate_limit),
        approval_timeout=max(1.0, min(parse_duration(server.spec.policy.approval_timeout).total_seconds(),
                                      MAX_APPROVAL_TIMEOUT_SECONDS)),
    )
    return doc.model_copy(update={"revision": revision_of(doc.body())})


def _policy_grant(g: MCPAccessGrant) -> PolicyGrant:
    return PolicyGrant(
        name=g.metadata.name,
        subject=_subject(g.spec.subject),
        max_trust=g.spec.max_trust,
        allowed_side_effects=tuple(g.spec.allowed_side_effects),
        tool_rules=tuple(
            PolicyToolRule(name=r.name, decision=r.decision, required_trust=r.required_trust,
                           condition=r.condition, rate_limit=PolicyRateLimit.of(r.rate_limit),
                           approval=r.approval)
            for r in g.spec.tool_rules
        ),
        disabled=g.spec.disabled,
        expires_at=g.spec.expires_at,
        rate_limit=PolicyRateLimit.of(g.spec.rate_limit),
    )


def _policy_session(s: MCPAgentSession, name: str) -> PolicySession:
    """A session under `name`: its own for this server's sessions, qualified for a virtual server's."""
    return PolicySession(name=name, subject=_subject(s.spec.subject), consented_trust=s.spec.consented_trust,
                         expires_at=s.spec.expires_at, revoked=s.spec.revoked)

