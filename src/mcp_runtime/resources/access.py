"""MCPAccessGrant and MCPAgentSession: who may call which tools of a server, and for how long."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mcp_runtime.resources.approval import Approver
from mcp_runtime.resources.common import (
    GROUP_VERSION,
    CamelModel,
    Condition,
    GroupVersion,
    ObjectMeta,
    SecretKeyRef,
    ServerRef,
    SideEffect,
    Subject,
    ToolDecision,
    ToolName,
    Trust,
    as_utc,
    is_expired,
)
from mcp_runtime.resources.conditions import MAX_CONDITION, ConditionError, compile_condition
from mcp_runtime.resources.limits import RateLimit


class ToolRule(CamelModel):
    """A per-tool decision inside a grant. `requiredTrust` raises the bar above the tool's own; `condition`
    (CEL over `args` and `caller`, resources/conditions.py) must also hold for an allow rule to allow."""

    name: ToolName
    decision: ToolDecision = ToolDecision.allow
    required_trust: Trust | None = None
    condition: str | None = Field(default=None, max_length=MAX_CONDITION)
    rate_limit: RateLimit | None = None
    approval: Approver | None = None
    """This grant's calls of the tool wait for that person's approval (on top of the tool's own)."""

    @model_validator(mode="after")
    def _condition(self) -> ToolRule:
        if self.condition is None:
            return self
        if self.decision == ToolDecision.deny:
            raise ValueError(f"toolRule {self.name!r}: a condition only narrows an allow rule; remove it "
                             "from this deny rule (or make the rule 'allow')")
        try:
            compile_condition(self.condition)
        except ConditionError as exc:
            raise ValueError(f"toolRule {self.name!r}: condition {self.condition!r}: {exc}") from None
        return self


def _check_subject(subject: Subject) -> Subject:
    if subject.is_empty():
        raise ValueError("subject needs at least one of humanID, agentID, teamID")
    return subject


class AccessGrantSpec(CamelModel):
    server_ref: ServerRef
    subject: Subject
    max_trust: Trust = Trust.low
    allowed_side_effects: list[SideEffect] = Field(default_factory=list)
    tool_rules: list[ToolRule] = Field(default_factory=list)
    disabled: bool = False
    expires_at: datetime | None = None
    rate_limit: RateLimit | None = None
    """Calls this grant allows, limited (every tool together; a tool rule's own limit applies too)."""

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: Subject) -> Subject:
        return _check_subject(value)

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value else None

    @model_validator(mode="after")
    def _unique_rules(self) -> AccessGrantSpec:
        seen: set[str] = set()
        for rule in self.tool_rules:
            if rule.name in seen:
                raise ValueError(f"toolRules names {rule.name!r} twice: one rule per tool")
            seen.add(rule.name)
        self.allowed_side_effects = sorted(set(self.allowed_side_effects), key=list(SideEffect).index)
        return self


class GrantPhase(StrEnum):
    active = "Active"
    disabled = "Disabled"
    expired = "Expired"


class SessionPhase(StrEnum):
    active = "Active"
    expired = "Expired"
    revoked = "Revoked"


class AccessStatus(CamelModel):
    phase: str | None = None
    message: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class MCPAccessGrant(CamelModel):
    api_version: GroupVersion = GROUP_VERSION
    kind: Literal["MCPAccessGrant"] = "MCPAccessGrant"
    metadata: ObjectMeta
    spec: AccessGrantSpec
    status: AccessStatus | None = None

    @model_validator(mode="after")
    def _same_namespace(self) -> MCPAccessGrant:
        _check_ref_namespace(self.metadata, self.spec.server_ref, "grant")
        return self

    def phase_at(self, now: datetime) -> GrantPhase:
        if self.spec.disabled:
            return GrantPhase.disabled
        if is_expired(self.spec.expires_at, now):
            return GrantPhase.expired
        return GrantPhase.active


class AgentSessionSpec(CamelModel):
    server_ref: ServerRef
    subject: Subject
    consented_trust: Trust = Trust.low
    expires_at: datetime | None = None
    revoked: bool = False
    upstream_token_secret_ref: SecretKeyRef | None = None

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: Subject) -> Subject:
        return _check_subject(value)

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value else None


class MCPAgentSession(CamelModel):
    api_version: GroupVersion = GROUP_VERSION
    kind: Literal["MCPAgentSession"] = "MCPAgentSession"
    metadata: ObjectMeta
    spec: AgentSessionSpec
    status: AccessStatus | None = None

    @model_validator(mode="after")
    def _same_namespace(self) -> MCPAgentSession:
        _check_ref_namespace(self.metadata, self.spec.server_ref, "session")
        return self

    def phase_at(self, now: datetime) -> SessionPhase:
        if self.spec.revoked:
            return SessionPhase.revoked
        if is_expired(self.spec.expires_at, now):
            return SessionPhase.expired
        return SessionPhase.active


def phase_message(obj: MCPAccessGrant | MCPAgentSession, now: datetime) -> tuple[str, str]:
    """The phase a grant or session is in at `now` and the sentence its status says about it.

    The platform API and the operator both write grant and session status with this."""
    phase = obj.phase_at(now).value
    server = f"MCPServer {obj.spec.server_ref.name}"
    if phase == "Active":
        return phase, f"in effect for {server}"
    if phase == "Disabled":
        return phase, f"disabled: spec.disabled is true; {server} ignores it"
    if phase == "Expired":
        return phase, f"expired at {obj.spec.expires_at}; {server} refuses it"
    return phase, f"revoked: calls with this session to {server} get 401 session_revoked; an admin can unrevoke it"


def _check_ref_namespace(meta: ObjectMeta, ref: ServerRef, what: str) -> None:
    """A grant or session lives in its server's namespace; a cross-namespace reference is refused."""
    if ref.namespace and meta.namespace and ref.namespace != meta.namespace:
        raise ValueError(
            f"the {what} is in namespace {meta.namespace!r} but serverRef names namespace "
            f"{ref.namespace!r}: a {what} must live in its server's namespace"
        )
