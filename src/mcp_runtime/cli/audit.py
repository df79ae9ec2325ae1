"""`mcp-runtime audit`: export the platform's audit trail for a SIEM, and verify an export.

    mcp-runtime audit export --since 24h -o jsonl --file audit.jsonl
    mcp-runtime audit verify audit.jsonl [--jwks-file jwks.json]

An export holds the platform audit log (every mutation: grants, sessions, servers, teams, ...), the
gateways' decision log, and the signed checkpoints of their hash chains (docs/audit.md).
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.output import OutputFormat, OutputOption
from mcp_runtime.cli.common.verdict import report_verdict
from mcp_runtime.client import client

app = typer.Typer(help="Export the audit trail (mutations, decisions, signed checkpoints) and verify an export.",
                  no_args_is_help=True)

PROBLEM_ORDER = ("modified", "missing", "reordered", "duplicate", "truncated", "rewritten", "forged", "unsealed")


class ExportFormat(StrEnum):
    jsonl = "jsonl"


@app.command("export")
def export(
    since: str | None = typer.Option(None, "--since", help="Since a duration ago (15m, 24h, 7d) or an ISO 8601 "
                                     "time (default: everything)."),
    output: ExportFormat = typer.Option(ExportFormat.jsonl, "--output", "-o", help="Output format: jsonl."),
    file: Path | None = typer.Option(None, "--file", "-f", metavar="FILE",
                                     help="Write here (created 0600) instead of standard output."),
    profile: str | None = typer.Option(None, "--profile", help="Platform profile (default: the active one)."),
) -> None:
    """Stream the audit trail as JSON Lines, for a SIEM: the platform's mutations, the gateways'
    decisions and the signed checkpoints, ending with a checkpoint over the whole export. Admins only."""
    api = client(profile)
    params = {"since": since} if since else None
    target: IO[str] = sys.stdout if file is None else _private_file(file)
    counts: dict[str, int] = {}
    try:
        for line in api.stream_lines("audit/export", params=params):
            if not line.strip():
                continue
            target.write(line + "\n")
            kind = str(json.loads(line).get("type"))
            counts[kind] = counts.get(kind, 0) + 1
    finally:
        if file is not None:
            target.close()
    if file is not None:
        typer.echo(f"wrote {counts.get('platform', 0)} platform record(s), {counts.get('decision', 0)} decision(s) "
                   f"and the closing checkpoint to {file}", err=True)


def _private_file(path: Path) -> IO[str]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}", hint="pass a writable --file") from None
    return os.fdopen(fd, "w", encoding="utf-8")


@app.command("verify")
def verify(
    file: Path = typer.Argument(..., metavar="FILE", help="An `audit export` file (JSON Lines)."),
    jwks_file: Path | None = typer.Option(None, "--jwks-file", metavar="FILE",
                                          help="The platform's public keys (JWKS) to check checkpoints with "
                                               "(default: fetched from the platform, GET /api/v1/auth/jwks)."),
    profile: str | None = typer.Option(None, "--profile", help="Platform profile the keys are fetched from."),
    output: OutputFormat = OutputOption,
) -> None:
    """Check an export: every chain unbroken (no record changed, removed or reordered) and every signed
    checkpoint honoured (no chain truncated or rewritten). Exit code 0 when intact, 1 when not (each
    problem named: kind, chain, record), 2 on bad input."""
    from mcp_runtime.platform.audit_verify import verify_export

    keys = _keys(jwks_file, profile)
    try:
        with open(file, encoding="utf-8") as handle:
            verdict = verify_export(handle, keys)
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}", hint="pass an `audit export` file") from None
    except ValueError as exc:
        raise CliError(f"{file}: {exc}", hint="pass a file written by `mcp-runtime audit export`") from None
    problems = sorted(verdict.problems, key=lambda p: (PROBLEM_ORDER.index(p.kind), p.chain_id, p.seq or 0))
    report_verdict(verdict, output, problems=problems, unchained_because="older than the chain")


def _keys(jwks_file: Path | None, profile: str | None) -> Any:
    from mcp_runtime.security import KeyRingError, PublicKeySet

    try:
        if jwks_file is not None:
            return PublicKeySet.load_jwks_file(jwks_file)
        return PublicKeySet.from_jwks(client(profile).get("auth/jwks"))
    except (KeyRingError, OSError) as exc:
        raise CliError(f"the platform's public keys are not usable: {exc}", hint="check --jwks-file") from None
