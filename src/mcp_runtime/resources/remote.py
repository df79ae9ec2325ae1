"""A remote MCP server: one someone else runs, that the platform governs but does not deploy.

`spec.remote` (and the same key in `.mcp/servers.yaml`) names the server's Streamable HTTP endpoint and
the credential the gateway sends it. The gateway governs every call exactly as for a deployed server and
forwards the allowed ones to `url`, with the remote's own Host and TLS name, TLS verified against the
system CAs or `caBundle`, `spec.gateway.timeouts` bounding every wait, and one credential (never the
client's token): the same for everyone (`headerSecret`), or each caller's own (`sessionToken`: the
Secret their MCPAgentSession's `upstreamTokenSecretRef` names).
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, HttpUrl, TypeAdapter, ValidationError, field_validator, model_validator

from mcp_runtime.resources.common import CamelModel, DnsLabel

MAX_CA_BUNDLE = 256 * 1024
"""Largest `caBundle` accepted (256 KiB of PEM: hundreds of certificates)."""

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
    "trailer", "proxy-connection", "expect", "accept", "mcp-session-id", "mcp-protocol-version",
})
_LOOPBACK = re.compile(r"^(localhost|127(\.\d{1,3}){3}|\[::1\])$", re.IGNORECASE)
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses: the only hosts plain `http://` is accepted for."""
    return bool(_LOOPBACK.match(host))


def parse_remote_url(value: str) -> HttpUrl:
    """The URL parsed (pydantic's, so this module stays free of I/O libraries)."""
    try:
        return _HTTP_URL.validate_python(value.strip())
    except ValidationError:
        raise ValueError(f"remote.url {value[:200]!r} is not an http(s) URL: write the server's MCP endpoint, "
                         "e.g. https://mcp.example.com/mcp") from None


def check_remote_url(value: str) -> str:
    """An `https://` URL with a host (plain `http://` only on this machine: a credential must not cross a
    network in the clear)."""
    text = value.strip()
    parts = parse_remote_url(text)
    if parts.username or parts.password:
        raise ValueError("remote.url must not carry a user or password: put the credential in a Secret and "
                         "name it in remote.headerSecret")
    if parts.fragment:
        raise ValueError("remote.url must not have a #fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.host or ""):
        raise ValueError(f"remote.url {text!r} is plain http to another machine: use https (TLS is verified; "
                         "set remote.caBundle for a private CA)")
    return text


def check_header_name(value: str) -> str:
    """An HTTP header name the gateway may set toward the remote (not one the protocol itself manages)."""
    if not _TOKEN.match(value):
        raise ValueError(f"{value[:60]!r} is not an HTTP header name: use letters, digits and '-'")
    lower = value.lower()
    if lower in _RESERVED_HEADERS or lower.startswith("x-mcp-"):
        raise ValueError(f"header {value!r} is managed by the gateway or the protocol and cannot carry the "
                         "remote's credential: use Authorization or a header of the remote's own (X-API-Key)")
    return value


class _CredentialHeader(CamelModel):
    """What both credential forms share: a header name and a printable prefix put before the value."""

    _field: ClassVar[str]
    """The field's name in `remote`, for error messages."""

    @field_validator("header", check_fields=False)
    @classmethod
    def _header(cls, value: str) -> str:
        return check_header_name(value)

    @field_validator("prefix", check_fields=False)
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and not all(c.isprintable() for c in value):
            raise ValueError(f"{cls._field}.prefix must be printable text (no line breaks)")
        return value


class HeaderSecret(_CredentialHeader):
    """A header the gateway sends on every request to the remote, its value read from a Secret's key:
    `<header>: <prefix><value>`. The value is never logged and never returned by the platform API."""

    name: DnsLabel
    """The Secret, in the server's namespace."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    header: str = "Authorization"
    prefix: str = Field(default="", max_length=64)
    """Put before the value, e.g. `Bearer ` (with its space)."""

    _field: ClassVar[str] = "headerSecret"


class SessionToken(_CredentialHeader):
    """Each caller's own credential for the remote: the value of the Secret their MCPAgentSession's
    `upstreamTokenSecretRef` names, sent as `<header>: <prefix><value>`. A session without one gets an
    error instead of the call (`upstream_credential_missing`)."""

    header: str = "Authorization"
    prefix: str = Field(default="Bearer ", max_length=64)

    _field: ClassVar[str] = "sessionToken"


class RemoteSpec(CamelModel):
    """Where a remote server answers and how the gateway reaches it (see the module docstring)."""

    url: str = Field(min_length=8, max_length=2048)
    header_secret: HeaderSecret | None = None
    session_token: SessionToken | None = None
    ca_bundle: str | None = Field(default=None, max_length=MAX_CA_BUNDLE)
    """PEM certificates the remote's TLS certificate must chain to, instead of the system CAs."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_remote_url(value)

    @field_validator("ca_bundle")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("remote.caBundle must hold PEM certificates (-----BEGIN CERTIFICATE-----): "
                             "paste the CA file's contents, or pass --ca-file to `server init`")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> RemoteSpec:
        if self.header_secret is not None and self.session_token is not None:
            raise ValueError("remote.headerSecret and remote.sessionToken are mutually exclusive: the remote gets "
                             "one credential per call, the same for everyone or each caller's own")
        return self

    @property
    def host(self) -> str:
        return (parse_remote_url(self.url).host or "").strip("[]")


REMOTE_CONFLICTS = (
    ("image", "an image"),
    ("run", "a run command"),
    ("stdio", "a stdio command"),
)
"""Fields that deploy something: a remote server has none of them (it runs elsewhere)."""
