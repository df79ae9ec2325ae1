"""Building blocks shared by every resource: enums, the camelCase base model, object metadata.

Kubernetes spells identifiers `teamID`, `humanID`, `upstreamURL`; a plain camelCase generator would
write `teamId`. `_alias` keeps those spellings so the YAML users write is the one the docs show.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

API_GROUP = "mcpruntime.org"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


def _check_group_version(value: str) -> str:
    if value != GROUP_VERSION:
        raise ValueError(f"apiVersion {value!r} is not supported; use {GROUP_VERSION}")
    return value


GroupVersion = Annotated[str, AfterValidator(_check_group_version),
                         WithJsonSchema({"type": "string", "enum": [GROUP_VERSION]})]
"""The `apiVersion` of every resource of ours: exactly `GROUP_VERSION`."""

_ACRONYMS = {"Id": "ID", "Url": "URL"}


def _alias(name: str) -> str:
    head, *rest = name.split("_")
    parts = [head] + [_ACRONYMS.get(p.capitalize(), p.capitalize()) for p in rest]
    return "".join(parts)


class CamelModel(BaseModel):
    """Base of every schema: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=_alias,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-compatible, camelCase form (what YAML files and the API carry)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class Trust(StrEnum):
    """How much an agent is trusted; ordered low < medium < high."""

    low = "low"
    medium = "medium"
    high = "high"

    @property
    def rank(self) -> int:
        return _TRUST_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Trust):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Trust):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Trust):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Trust):
            return NotImplemented
        return self.rank >= other.rank


_TRUST_RANK = {Trust.low: 0, Trust.medium: 1, Trust.high: 2}


class SideEffect(StrEnum):
    read = "read"
    write = "write"
    destructive = "destructive"


class RiskLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class ToolDecision(StrEnum):
    allow = "allow"
    deny = "deny"


class PolicyMode(StrEnum):
    allow_list = "allow-list"
    observe = "observe"


class RolloutStrategy(StrEnum):
    rolling_update = "RollingUpdate"
    recreate = "Recreate"
    canary = "Canary"


class Scope(StrEnum):
    """Where a server is published: a team's namespace, the org catalog, or the public catalog."""

    tenant = "tenant"
    org = "org"
    public = "public"


ORG_NAMESPACE = "mcp-servers-org"
PUBLIC_NAMESPACE = "mcp-servers-public"
DEFAULT_NAMESPACE = "mcp-servers"
TEAM_NAMESPACE_PREFIX = "mcp-team-"


def team_namespace(slug: str) -> str:
    """The namespace of a team: `mcp-team-<slug>`."""
    return f"{TEAM_NAMESPACE_PREFIX}{slug}"


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_dns_label(value: str) -> str:
    """Kubernetes object names: lowercase letters, digits and '-', at most 63, alphanumeric ends."""
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits and '-', "
            "start and end with a letter or digit, at most 63 characters"
        )
    return value


def check_tool_name(value: str) -> str:
    if not _TOOL_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid tool name: use letters, digits, '_', '-', '.', '/' (at most 128)"
        )
    return value


def check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid environment variable name")
    return value


DnsLabel = Annotated[str, AfterValidator(check_dns_label),
                     WithJsonSchema({"type": "string", "maxLength": 63, "pattern": _DNS_LABEL.pattern})]
ToolName = Annotated[str, AfterValidator(check_tool_name),
                     WithJsonSchema({"type": "string", "maxLength": 128, "pattern": _TOOL_NAME.pattern})]
EnvName = Annotated[str, AfterValidator(check_env_name),
                    WithJsonSchema({"type": "string", "pattern": _ENV_NAME.pattern})]

_DURATION_PART = re.compile(r"(\d{1,9})(d|h|m|s)")
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DURATION_DAYS = 3650  # ten years: longer is a typo, and beyond ~2.7 million years timedelta overflows


def parse_duration(value: str) -> timedelta:
    """Parse `90s`, `30m`, `4h`, `1h30m`, `7d` into a timedelta (positive, at least one part, at most
    `MAX_DURATION_DAYS`)."""
    text = value.strip()
    pos = 0
    seconds = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text or seconds <= 0:
        raise ValueError(f"{value[:40]!r} is not a duration: use a number with a unit, e.g. 30m, 4h, 1h30m, 7d")
    if seconds > MAX_DURATION_DAYS * 86400:
        raise ValueError(f"{value[:40]!r} is longer than {MAX_DURATION_DAYS}d, the longest duration accepted")
    return timedelta(seconds=seconds)


def check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(check_duration),
                     WithJsonSchema({"type": "string", "pattern": r"^(\d{1,9}[dhms])+$"})]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Timestamps without a zone are taken as UTC so comparisons never mix naive and aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    """The one expiry rule for grants, sessions and policy documents: expired at `expiresAt` itself."""
    return expires_at is not None and as_utc(expires_at) <= as_utc(now)


class ObjectMeta(CamelModel):
    """The subset of Kubernetes ObjectMeta the platform reads and writes."""

    model_config = ConfigDict(extra="ignore")  # the API server adds managedFields etc.

    name: DnsLabel
    namespace: DnsLabel | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None


class ServerRef(CamelModel):
    """Points at an MCPServer; a grant or session may only name a server in its own namespace."""

    name: DnsLabel
    namespace: DnsLabel | None = None


class Subject(CamelModel):
    """Who a grant or session is for. Every field that is set must match the caller's identity."""

    human_id: str | None = Field(default=None, max_length=256)
    agent_id: str | None = Field(default=None, max_length=256)
    team_id: str | None = Field(default=None, max_length=256)

    @field_validator("human_id", "agent_id", "team_id")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    def is_empty(self) -> bool:
        return not (self.human_id or self.agent_id or self.team_id)


class SecretKeyRef(CamelModel):
    name: DnsLabel
    key: str = Field(min_length=1, max_length=253)


class ConditionStatus(StrEnum):
    true = "True"
    false = "False"
    unknown = "Unknown"


class Condition(CamelModel):
    type: str
    status: ConditionStatus
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None
    observed_generation: int | None = None
