"""`server init --remote-url`: the `remote` section of a metadata entry, and the discovery that fills its tools.

The credential is used here only to ask the remote for its tools (`--credential-file`); the entry records
where the platform finds it (`headerSecret`: a Secret's name and key), never the value. `--ca-file` is read
once and inlined as `caBundle`, so the entry is complete wherever it is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.secret import read_value
from mcp_runtime.cli.server.common import discover
from mcp_runtime.resources import RemoteSpec, describe_validation_error

MAX_CA_FILE = 256 * 1024

RemoteUrlOption = typer.Option(
    None, "--remote-url", help="A remote server's MCP endpoint (https://...): nothing is deployed, the gateway "
    "governs and forwards to it. Its tools are discovered with the credential.")
HeaderSecretOption = typer.Option(
    None, "--header-secret", metavar="SECRET/KEY", help="Where the platform finds the remote's credential: a "
    "Secret in the server's namespace and its key (set it with `mcp-runtime secret set`).")
SessionTokenOption = typer.Option(
    False, "--session-token", help="Send each caller's own token (the Secret their session's "
    "upstreamTokenSecretRef names) instead of one shared credential; not with --header-secret.")
HeaderNameOption = typer.Option("Authorization", "--header-name", help="The header that carries the credential.")
HeaderPrefixOption = typer.Option(
    None, "--header-prefix", help='Put before the value (default "Bearer " for Authorization, else none).')
CredentialFileOption = typer.Option(
    None, "--credential-file", help="The credential's value, to discover the tools now (not written anywhere).")
CaFileOption = typer.Option(None, "--ca-file", help="PEM CA file the remote's certificate chains to (private CA).")


@dataclass
class RemoteFlags:
    """What `server init` was told about a remote server."""

    url: str
    header_secret: str | None
    header_name: str
    header_prefix: str | None
    credential_file: Path | None
    ca_file: Path | None
    session_token: bool = False


def remote_section(flags: RemoteFlags) -> dict[str, Any]:
    """The entry's `remote` (camelCase, as written to servers.yaml), checked by the model."""
    from mcp_runtime.runtime.discovery import normalize_server_url

    try:
        url = normalize_server_url(flags.url)
    except ValueError as exc:
        raise CliError(f"--remote-url: {exc}") from None
    section: dict[str, Any] = {"url": url}
    prefix = flags.header_prefix
    if prefix is None:
        prefix = "Bearer " if flags.header_name.lower() == "authorization" else ""
    if flags.session_token:
        if flags.header_secret is not None:
            raise CliError("--session-token and --header-secret are mutually exclusive: one credential per call",
                           hint="drop one of them")
        section["sessionToken"] = {"header": flags.header_name, "prefix": prefix}
    elif flags.header_secret is not None:
        name, sep, key = flags.header_secret.partition("/")
        if not sep or not name or not key:
            raise CliError(f"--header-secret {flags.header_secret!r} is not SECRET/KEY",
                           hint="e.g. --header-secret saas-credentials/api-key")
        section["headerSecret"] = {"name": name, "key": key, "header": flags.header_name, "prefix": prefix}
    elif flags.credential_file is not None:
        raise CliError("--credential-file without --header-secret or --session-token: the platform would not "
                       "know where to find the credential", hint="add --header-secret SECRET/KEY")
    if flags.ca_file is not None:
        try:
            section["caBundle"] = flags.ca_file.read_bytes()[:MAX_CA_FILE + 1].decode("utf-8", errors="replace")
        except OSError as exc:
            raise CliError(f"cannot read --ca-file {flags.ca_file}: {exc.strerror}") from None
    try:
        RemoteSpec.model_validate(section)
    except ValueError as exc:
        detail = describe_validation_error(exc) if hasattr(exc, "errors") else str(exc)  # type: ignore[arg-type]
        raise CliError(f"--remote-url: {detail}", hint="fix the flag and re-run") from None
    return section


def discover_remote(section: dict[str, Any], flags: RemoteFlags, timeout: float) -> list[Any]:
    """The remote's tools, asked with its credential and CA as the gateway will."""
    from mcp_runtime.gateway.upstream import tls_context

    headers = None
    secret = section.get("headerSecret") or section.get("sessionToken")
    if secret is not None and flags.credential_file is not None:
        value = read_value(flags.credential_file, False, "--credential-file")
        headers = {secret["header"]: secret["prefix"] + value}
    try:
        verify: Any = tls_context(section.get("caBundle")) if section["url"].startswith("https:") else True
    except ValueError as exc:
        raise CliError(f"--ca-file: {exc}") from None
    tools = discover(section["url"], timeout, headers=headers, verify=verify, flag="--remote-url")
    if headers is None and secret is not None:
        typer.echo("note: discovered without a credential (no --credential-file)", err=True)
    return tools
