"""Printing a hash-chain verdict (`analytics verify`, `audit verify`): one line per problem, a summary,
exit code 1 when anything broke."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from mcp_runtime.cli.common.output import OutputFormat, emit_structured

if TYPE_CHECKING:
    from mcp_runtime.sentinel.chain import Problem, Verdict


def report_verdict(verdict: Verdict, output: OutputFormat, *, problems: list[Problem] | None = None,
                   unchained_because: str) -> None:
    """Print `verdict` (its `problems` in the order given, by default as found); exit 1 unless intact.
    `unchained_because` says why records without a chain exist (they cannot be verified)."""
    shown = verdict.problems if problems is None else problems
    answer: dict[str, Any] = {"ok": verdict.ok, "records": verdict.records, "chains": verdict.chains,
                              "unchained": verdict.unchained, "problems": [p.as_dict() for p in shown]}
    if not emit_structured(answer, output):
        for p in shown:
            typer.echo(f"{p.kind.upper():<10} chain {p.chain_id} record {p.seq if p.seq is not None else '-'} "
                       f"{p.event_id or '-'}: {p.detail}")
        state = "intact" if verdict.ok else f"BROKEN ({len(shown)} problem(s))"
        typer.echo(f"{verdict.records} record(s) in {verdict.chains} chain(s): {state}"
                   + (f"; {verdict.unchained} record(s) carry no chain ({unchained_because}), not verifiable"
                      if verdict.unchained else ""))
    if not verdict.ok:
        raise typer.Exit(1)
