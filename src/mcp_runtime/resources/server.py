"""MCPServer: a deployed MCP server, its tool inventory, and how its governed path behaves."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from mcp_runtime.resources.approval import DEFAULT_APPROVAL_TIMEOUT, Approver
from mcp_runtime.resources.common import (
    GROUP_VERSION,
    CamelModel,
    Condition,
    DnsLabel,
    Duration,
    EnvName,
    GroupVersion,
    ObjectMeta,
    PolicyMode,
    RiskLevel,
    RolloutStrategy,
    SecretKeyRef,
    SideEffect,
    ToolDecision,
    ToolName,
    Trust,
    parse_duration,
)
from mcp_runtime.resources.limits import RateLimit
from mcp_runtime.resources.pinning import Definition, PinningSpec, ToolPin
from mcp_runtime.resources.remote import REMOTE_CONFLICTS, RemoteSpec

DEFAULT_APP_PORT = 8088
DEFAULT_MCP_PATH = "/mcp"
"""Where an MCP server serves Streamable HTTP unless its `MCP_PATH` says otherwise."""
DEFAULT_SERVICE_PORT = 80
DEFAULT_GATEWAY_PORT = 8091
DEFAULT_INGRESS_CLASS = "traefik"

_TAG_OR_DIGEST = re.compile(r"(@sha256:[0-9a-f]{64}$)|(:[\w][\w.-]{0,127}$)")


def image_has_tag(image: str) -> bool:
    """True when `image` already pins a tag or digest (`repo:v1`, `repo@sha256:...`).

    A registry host with a port (`localhost:5000/repo`) is not a tag: only the last path segment counts.
    """
    last = image.rsplit("/", 1)[-1]
    return bool(_TAG_OR_DIGEST.search(last))


class ToolSpec(CamelModel):
    """One tool the server exposes, with what the policy needs to judge a call to it."""

    name: ToolName
    description: str | None = Field(default=None, max_length=4096)
    required_trust: Trust = Trust.low
    side_effect: SideEffect
    risk_level: RiskLevel | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    pin: ToolPin | None = None
    """The reviewed definition (resources/pinning.py); None: not reviewed, hidden once the server has pins."""
    requires_approval: bool | None = None
    """Whether each call waits for a person's approval (resources/approval.py); unset: destructive tools do."""
    approver: Approver | None = None
    """Who approves (default `caller`); `owners` makes the server's team owners approve, out of band."""


class PromptSpec(CamelModel):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None


class McpResourceSpec(CamelModel):
    uri: str = Field(min_length=1, max_length=2048)
    name: str | None = None
    description: str | None = None


class EnvVar(CamelModel):
    name: EnvName
    value: str = ""


class SecretEnvVar(CamelModel):
    name: EnvName
    secret_key_ref: SecretKeyRef


class ResourceRequirements(CamelModel):
    limits: dict[str, str] = Field(default_factory=dict)
    requests: dict[str, str] = Field(default_factory=dict)


class AuthSpec(CamelModel):
    """The identity headers the gateway sets for the upstream from the verified session token."""

    human_id_header: str = "X-MCP-Human-ID"
    agent_id_header: str = "X-MCP-Agent-ID"
    team_id_header: str = "X-MCP-Team-ID"
    session_header: str = "X-MCP-Agent-Session"


class PolicySpec(CamelModel):
    mode: PolicyMode = PolicyMode.allow_list
    default_decision: ToolDecision = ToolDecision.deny
    rate_limit: RateLimit | None = None
    """Every allowed tool call to the server, limited (on top of any grant's or tool rule's limit)."""
    approval_timeout: Duration = DEFAULT_APPROVAL_TIMEOUT
    """How long a call that needs a person's approval waits for it before it is refused (`approval_timeout`)."""


class SessionSpec(CamelModel):
    required: bool = True
    max_lifetime: Duration = "24h"
    idle_timeout: Duration = "1h"


DEFAULT_CONNECT_TIMEOUT = "10s"
DEFAULT_READ_TIMEOUT = "300s"


class GatewayTimeouts(CamelModel):
    """How long the gateway waits on the server before it answers the client with an error itself.

    `connect`: to open a connection. `read`: for the server to start answering a request, and between
    two parts of a streamed answer to a POST (a tool call that reports no progress for this long is
    given up on). The server-to-client GET stream has no read timeout: it may be quiet for hours."""

    connect: Duration = DEFAULT_CONNECT_TIMEOUT
    read: Duration = DEFAULT_READ_TIMEOUT

    @property
    def connect_seconds(self) -> float:
        return parse_duration(self.connect).total_seconds()

    @property
    def read_seconds(self) -> float:
        return parse_duration(self.read).total_seconds()


class GatewaySpec(CamelModel):
    enabled: bool = True
    port: int = Field(default=DEFAULT_GATEWAY_PORT, ge=1, le=65535)
    upstream_url: str | None = None
    timeouts: GatewayTimeouts = Field(default_factory=GatewayTimeouts)


class AnalyticsSpec(CamelModel):
    disabled: bool = False
    ingest_url: str | None = None
    api_key_secret_ref: SecretKeyRef | None = None


class RolloutSpec(CamelModel):
    strategy: RolloutStrategy = RolloutStrategy.rolling_update
    max_unavailable: int | str | None = None
    max_surge: int | str | None = None
    canary_replicas: int | None = Field(default=None, ge=0)


class RunSpec(CamelModel):
    """How the process runtime starts the server locally (ignored by container runtimes)."""

    command: str = Field(min_length=1, max_length=4096)
    working_dir: str | None = None


DEFAULT_STDIO_MAX_SESSIONS = 16
DEFAULT_STDIO_IDLE_TIMEOUT = "15m"
_NPM_PACKAGE = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*@[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}$")
_PYPI_PACKAGE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(\[[A-Za-z0-9_,.-]+\])?==[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}$")


def package_command(package: str) -> list[str]:
    """The command a package shorthand runs: `npm:<pkg>@<version>` -> `npx -y <pkg>@<version>`,
    `pypi:<pkg>==<version>` -> `uvx <pkg>==<version>`.

    The version is required: a stdio server that changes under a deployed name would change the tools
    the grants were written for."""
    kind, _, spec = package.partition(":")
    if kind == "npm":
        if not _NPM_PACKAGE.match(spec):
            raise ValueError(
                f"{package!r} is not an npm package spec: write npm:<package>@<version>, "
                "e.g. npm:@modelcontextprotocol/server-everything@2025.11.25 (the version is required)"
            )
        return ["npx", "-y", spec]
    if kind == "pypi":
        if not _PYPI_PACKAGE.match(spec):
            raise ValueError(
                f"{package!r} is not a PyPI package spec: write pypi:<package>==<version>, "
                "e.g. pypi:mcp-server-time==2025.9.25 (the exact version is required)"
            )
        return ["uvx", spec]
    raise ValueError(
        f"{package!r} is not a package spec: write npm:<package>@<version> or pypi:<package>==<version>"
    )


class StdioSpec(CamelModel):
    """A server that speaks MCP over stdin/stdout: the platform hosts it behind Streamable HTTP with the
    stdio bridge (`mcp-runtime bridge stdio`), one process per MCP session.

    Give either `command` (plus `args`) or `package` (`npm:<pkg>@<version>` / `pypi:<pkg>==<version>`);
    with `package`, `args` are appended to the package's command."""

    command: str | None = Field(default=None, min_length=1, max_length=4096)
    package: str | None = Field(default=None, min_length=5, max_length=300)
    args: list[str] = Field(default_factory=list, max_length=256)
    env_vars: list[EnvVar] = Field(default_factory=list)
    secret_env_vars: list[SecretEnvVar] = Field(default_factory=list)
    working_dir: str | None = Field(default=None, max_length=4096)
    max_sessions: int = Field(default=DEFAULT_STDIO_MAX_SESSIONS, ge=1, le=1000)
    idle_timeout: Duration = DEFAULT_STDIO_IDLE_TIMEOUT

    @field_validator("args")
    @classmethod
    def _bounded_args(cls, args: list[str]) -> list[str]:
        for arg in args:
            if len(arg) > 4096 or "\x00" in arg:
                raise ValueError(f"stdio argument {arg[:40]!r}... is longer than 4096 characters or holds a NUL")
        return args

    @model_validator(mode="after")
    def _one_source(self) -> StdioSpec:
        if (self.command is None) == (self.package is None):
            raise ValueError(
                "stdio needs exactly one of `command` (an executable, with `args`) or `package` "
                "(npm:<pkg>@<version> or pypi:<pkg>==<version>)"
            )
        if self.package is not None:
            package_command(self.package)
        elif self.command is not None and "\x00" in self.command:
            raise ValueError("stdio.command holds a NUL character")
        return self

    def argv(self) -> list[str]:
        """The full command line the bridge starts for each MCP session."""
        if self.package is not None:
            return [*package_command(self.package), *self.args]
        assert self.command is not None
        return [self.command, *self.args]

    @property
    def idle_timeout_seconds(self) -> float:
        return parse_duration(self.idle_timeout).total_seconds()


class ServerDefinition(CamelModel):
    """What a server is and how it runs: the fields an `.mcp/servers.yaml` entry and `MCPServer.spec` share.

    Declared once here; `MCPServerSpec` and `ServerMetadata` each add their own fields."""

    team_id: str | None = None
    description: str | None = Field(default=None, max_length=2048)
    image: str | None = Field(default=None, max_length=512)
    image_tag: str | None = Field(default=None, max_length=128)
    replicas: int = Field(default=1, ge=0, le=1000)
    port: int = Field(default=DEFAULT_APP_PORT, ge=1, le=65535)
    ingress_host: str | None = None
    resources: ResourceRequirements | None = None
    env_vars: list[EnvVar] = Field(default_factory=list)
    secret_env_vars: list[SecretEnvVar] = Field(default_factory=list)
    tools: list[ToolSpec] = Field(default_factory=list)
    prompts: list[PromptSpec] = Field(default_factory=list)
    mcp_resources: list[McpResourceSpec] = Field(default_factory=list)
    auth: AuthSpec | None = None
    policy: PolicySpec = Field(default_factory=PolicySpec)
    session: SessionSpec = Field(default_factory=SessionSpec)
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    analytics: AnalyticsSpec | None = None
    rollout: RolloutSpec | None = None
    run: RunSpec | None = None
    stdio: StdioSpec | None = None
    pinning: PinningSpec = Field(default_factory=PinningSpec)
    remote: RemoteSpec | None = None

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, tools: list[ToolSpec]) -> list[ToolSpec]:
        seen: set[str] = set()
        for tool in tools:
            if tool.name in seen:
                raise ValueError(f"tool {tool.name!r} is listed twice: tool names must be unique")
            seen.add(tool.name)
        return tools

    @model_validator(mode="after")
    def _default_tag(self) -> ServerDefinition:
        if self.remote is not None:
            _check_remote_alone(self)
            return self
        if self.run is not None and self.stdio is not None:
            raise ValueError(
                "give either `run` (a command serving Streamable HTTP on $PORT) or `stdio` (a command speaking "
                "MCP on stdin/stdout), not both"
            )
        if self.image_tag is None and not (self.image and image_has_tag(self.image)):
            self.image_tag = "latest"
        return self

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)


def _check_remote_alone(definition: ServerDefinition) -> None:
    """A remote server runs elsewhere: anything that would deploy or configure a process here is a mistake."""
    for field, what in (*REMOTE_CONFLICTS, ("image_tag", "an image tag"), ("env_vars", "envVars"),
                        ("secret_env_vars", "secretEnvVars")):
        if getattr(definition, field, None):
            raise ValueError(
                f"remote and {what} are mutually exclusive: a remote server runs elsewhere and the platform "
                f"deploys nothing for it; remove {field.replace('_', ' ')} (or remote, to deploy it here)"
            )


class MCPServerSpec(ServerDefinition):
    """The desired state of a deployed server (the CRD's `spec`)."""

    # The API server enforces what the model validator below does: an image unless the server is remote.
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.image) || has(self.remote)", "fieldPath": ".image", "reason": "FieldValueRequired",
         "message": "spec.image is required (unless spec.remote names a server someone else runs)"}]})

    image: str | None = Field(default=None, min_length=1, max_length=512)
    """Required unless `remote` is set (a remote server has nothing to run); optional in `.mcp` metadata."""
    image_pull_secrets: list[str] = Field(default_factory=list)
    service_port: int = Field(default=DEFAULT_SERVICE_PORT, ge=1, le=65535)
    public_path_prefix: str | None = None
    ingress_path: str | None = None
    ingress_class: str = DEFAULT_INGRESS_CLASS

    @field_validator("public_path_prefix")
    @classmethod
    def _strip_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        stripped = value.strip("/")
        if not stripped or not re.fullmatch(r"[A-Za-z0-9._~\-/]+", stripped):
            raise ValueError(f"{value!r} is not a valid path prefix: use letters, digits, '-', '_', '.', '/'")
        return stripped

    @field_validator("ingress_path")
    @classmethod
    def _leading_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value if value.startswith("/") else "/" + value

    @model_validator(mode="after")
    def _check(self) -> MCPServerSpec:
        if self.remote is None and not self.image:
            raise ValueError("spec.image is required: the image to run (or spec.remote {url} for a server "
                             "someone else runs)")
        if self.remote is not None and not self.gateway.enabled:
            raise ValueError("a remote server is reached only through the gateway: spec.gateway.enabled must be "
                             "true (without it nothing would govern the calls)")
        if self.gateway.enabled and self.gateway.port == self.port:
            raise ValueError(
                f"gateway.port {self.gateway.port} equals the app port: the gateway sidecar needs its own port"
            )
        if self.rollout and self.rollout.canary_replicas is not None:
            if self.rollout.strategy != RolloutStrategy.canary:
                raise ValueError("rollout.canaryReplicas is only valid with rollout.strategy Canary")
            if self.rollout.canary_replicas > self.replicas:
                raise ValueError(
                    f"rollout.canaryReplicas {self.rollout.canary_replicas} must be between 0 and "
                    f"replicas ({self.replicas})"
                )
        return self


class ServerPhase(StrEnum):
    pending = "Pending"
    ready = "Ready"
    partially_ready = "PartiallyReady"
    error = "Error"


class ObservedTool(CamelModel):
    """A tool as the gateway last saw it in the server's `tools/list` answer (what `approve` pins)."""

    name: ToolName
    digest: str
    definition: Definition = Field(default_factory=dict)


class MCPServerStatus(CamelModel):
    phase: ServerPhase = ServerPhase.pending
    message: str | None = None
    url: str | None = None
    ready_replicas: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    observed_tools: list[ObservedTool] | None = None
    """The server's tools as the gateway last listed them (None: never listed)."""


class MCPServer(CamelModel):
    api_version: GroupVersion = GROUP_VERSION
    kind: Literal["MCPServer"] = "MCPServer"
    metadata: ObjectMeta
    spec: MCPServerSpec
    status: MCPServerStatus | None = None

    @model_validator(mode="after")
    def _route_defaults(self) -> MCPServer:
        if self.spec.public_path_prefix is None:
            self.spec.public_path_prefix = self.metadata.name
        if self.spec.ingress_path is None:
            self.spec.ingress_path = f"/{self.spec.public_path_prefix}/mcp"
        return self

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace

    @property
    def image_ref(self) -> str:
        """The full image reference to run: image plus tag unless the image pins one already."""
        spec = self.spec
        if not spec.image:
            raise ValueError(f"server {self.name} is remote ({spec.remote.url if spec.remote else '?'}): it has "
                             "no image to run")
        if image_has_tag(spec.image) or not spec.image_tag:
            return spec.image
        return f"{spec.image}:{spec.image_tag}"


ServerName = DnsLabel
