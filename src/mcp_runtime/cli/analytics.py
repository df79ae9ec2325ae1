"""`mcp-runtime analytics`: who called what, from which team, allowed or denied (the platform's analytics API).

    mcp-runtime analytics tools [--server payments] [--team globex] [--since 24h]
    mcp-runtime analytics events [--server S] [--team T] [--decision deny] [--since 15m|ISO] [--follow]
    mcp-runtime analytics usage [--since 7d]
    mcp-runtime analytics verify [--store URL | --file events.jsonl]

What you see is scoped like the dashboard: your teams' servers and your teams' calls (admins: all).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, console, emit, emit_structured
from mcp_runtime.cli.common.verdict import report_verdict
from mcp_runtime.client import ApiClient, client
from mcp_runtime.platform.settings import DEFAULT_DATA_DIR
from mcp_runtime.sentinel.events import AnalyticsEvent

app = typer.Typer(help="Tool calls, callers and decisions seen by the gateways.", no_args_is_help=True)

TOOL_COLUMNS = [("SERVER", "server"), ("TOOL", "tool"), ("USER", "user"), ("TEAM", "team"), ("AGENT", "agent"),
                ("CALLS", "calls"), ("DENIED", "denied"), ("LAST CALL", "lastSeen")]
EVENT_COLUMNS = [("TIME", "timestamp"), ("SERVER", "server"), ("METHOD", "method"), ("TOOL", "tool"),
                 ("USER", "user"), ("TEAM", "team"), ("AGENT", "agent"), ("CLIENT", "client"),
                 ("DECISION", "decision"), ("REASON", "reason"), ("STATUS", "status"), ("MS", "latencyMs")]
SERVER_COLUMNS = [("SERVER", "server"), ("NAMESPACE", "namespace"), ("TEAM", "team"), ("CALLS", "calls"),
                  ("ALLOWED", "allowed"), ("DENIED", "denied"), ("TOOL CALLS", "toolCalls"),
                  ("AVG MS", "avgLatencyMs")]
DECISION_COLUMNS = [("DECISION", "decision"), ("REASON", "reason"), ("COUNT", "count")]
QUOTA_COLUMNS = [("SERVER", "server"), ("LIMIT", "limit"), ("PER", "per"), ("KEY", "key"),
                 ("CALLS TODAY", "callsToday"), ("QUOTA", "quota"), ("USED %", "usedPercent"),
                 ("RATE LIMITED", "rateLimitedToday")]

ServerOpt = typer.Option(None, "--server", help="Only this server.")
TeamOpt = typer.Option(None, "--team", help="Only calls made by this team (slug or UUID).")
SinceOpt = typer.Option(None, "--since", help="Since a duration ago (15m, 24h, 7d) or an ISO 8601 time.")


def _filters(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "")}


@app.command("tools")
def tools(server: str | None = ServerOpt, team: str | None = TeamOpt, since: str | None = SinceOpt,
          agent: str | None = typer.Option(None, "--agent", help="Only this agent id."),
          limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many rows."),
          output: OutputFormat = OutputOption) -> None:
    """The Tools table: server, tool, user, team, agent, calls, denied."""
    params = _filters(section="tools", server=server, team=team, since=since, agent=agent, limit=limit)
    rows = client().get("analytics/usage", params=params)["tools"]
    emit(rows, output, columns=TOOL_COLUMNS)


@app.command("usage")
def usage(server: str | None = ServerOpt, team: str | None = TeamOpt, since: str | None = SinceOpt,
          output: OutputFormat = OutputOption) -> None:
    """Totals, per-server traffic, the decisions with their reasons, and quota use today (calls per key
    against each daily quota, and calls refused rate_limited; counted over every gateway replica)."""
    params = _filters(section=["totals", "servers", "decisions", "quotas"], server=server, team=team, since=since)
    answer = client().get("analytics/usage", params=params)
    if emit_structured(answer, output):
        return
    t = answer["totals"]
    console.print(f"[bold]{t['events']}[/bold] requests: {t['allowed']} allowed, {t['denied']} denied; "
                  f"{t['humans']} users, {t['agents']} agents, {t['servers']} servers")
    console.print()
    emit(answer["servers"], output, columns=SERVER_COLUMNS)
    console.print()
    emit(answer["decisions"], output, columns=DECISION_COLUMNS)
    if answer.get("quotas"):
        console.print()
        emit(answer["quotas"], output, columns=QUOTA_COLUMNS, title="Daily quotas (UTC day)")


@app.command("events")
def events(server: str | None = ServerOpt, team: str | None = TeamOpt, since: str | None = SinceOpt,
           until: str | None = typer.Option(None, "--until", help="Before this time (duration ago or ISO 8601)."),
           agent: str | None = typer.Option(None, "--agent", help="Only this agent id."),
           decision: str | None = typer.Option(None, "--decision", help="allow or deny."),
           limit: int = typer.Option(50, "--limit", min=1, max=1000, help="How many of the latest events."),
           follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events (Ctrl-C stops)."),
           interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between polls with --follow."),
           output: OutputFormat = OutputOption) -> None:
    """The latest events, oldest first; `--follow` keeps printing new ones as they arrive."""
    api = client()
    filters = _filters(server=server, team=team, since=since, until=until, agent=agent, decision=decision)
    latest = api.get("analytics/usage", params={**filters, "section": "recent", "limit": limit})["recent"]
    latest.reverse()
    if not follow:
        emit(latest, output, columns=EVENT_COLUMNS)
        return
    cursor = max((e["eventID"] for e in latest), default=None)
    if cursor is None and "since" not in filters:  # nothing yet: follow from now on
        filters["since"] = datetime.now(UTC).isoformat()
    _print_stream(latest, output, header=True)
    try:
        while True:
            time.sleep(interval)
            cursor = _follow_once(api, filters, cursor, output)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _follow_once(api: ApiClient, filters: dict[str, Any], cursor: str | None, output: OutputFormat) -> str | None:
    while True:
        params = {key: value for key, value in filters.items() if key != "until"}
        page = api.get("analytics/events", params={**params, "after": cursor, "limit": 500})
        _print_stream(page["items"], output, header=False)
        if len(page["items"]) < 500:
            return page["next"] or cursor
        cursor = page["next"]


def _print_stream(rows: list[dict[str, Any]], output: OutputFormat, *, header: bool) -> None:
    """Events as they come: one line each (table), one JSON object per line, or one YAML document each."""
    if output == OutputFormat.json:
        for row in rows:
            typer.echo(json.dumps(row))
    elif output == OutputFormat.yaml:
        for row in rows:
            typer.echo("---\n" + yaml.safe_dump(row, sort_keys=False).rstrip())
    else:
        widths = (20, 14, 12, 16, 22, 10, 10, 12, 8, 22)
        if header:
            typer.echo(_line(["TIME", "SERVER", "METHOD", "TOOL", "USER", "TEAM", "AGENT", "CLIENT", "DECISION",
                              "REASON"], widths))
        for e in rows:
            typer.echo(_line([e["timestamp"][:19].replace("T", " "), e["server"], e["method"], e["tool"], e["user"],
                              e["team"], e["agent"], e.get("client"), e["decision"], e["reason"]], widths))


def _line(values: list[Any], widths: tuple[int, ...]) -> str:
    cells = ["-" if v is None else str(v) for v in values]
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()


# --- verify: the hash chain of the decision log -----------------------------------------------------
_VERIFY_PAGE = 5000


@app.command("verify")
def verify(
    store: str | None = typer.Option(None, "--store", metavar="URL",
                                     help="The event store: a SQLite path or sqlite:///, chdb:///, clickhouse:// "
                                          "URL (default: analytics.db in the data directory of 'up')."),
    file: Path | None = typer.Option(None, "--file", metavar="FILE",
                                     help="Verify an export instead: JSON Lines, one event per line, "
                                          "in stored order."),
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="Data directory of 'mcp-runtime up'."),
    output: OutputFormat = OutputOption,
) -> None:
    """Check the decision log's hash chains: every record unchanged, none removed, none reordered.

    Each gateway process links its events into a chain (a sequence number, the previous record's
    hash, its own SHA-256). Reads the store directly (it needs the store's file or URL, not the API).
    Exit code 0 when every chain is intact, 1 when a record was changed, removed or reordered (each
    named), or on bad input.
    """
    from mcp_runtime.sentinel.chain import verify as verify_chain

    events = _events_from_file(file) if file is not None else _events_from_store(store, data_dir)
    verdict = verify_chain(events)
    report_verdict(verdict, output, unchained_because="older gateways")


def _events_from_store(url: str | None, data_dir: Path) -> Iterator[AnalyticsEvent]:
    from mcp_runtime.sentinel.open_store import open_event_store
    from mcp_runtime.sentinel.store import UsageFilter

    if url is None:
        path = data_dir.expanduser() / "analytics.db"
        if not path.exists():
            raise CliError(f"no analytics store at {path}", hint="pass --store URL or --data-dir DIR")
        url = str(path)
    try:
        event_store = open_event_store(url)
    except (ValueError, OSError, RuntimeError) as exc:
        raise CliError(f"cannot open the analytics store {url}: {exc}", hint="check --store") from None
    try:
        after: str | None = None
        while True:
            page = event_store.events(UsageFilter(), limit=_VERIFY_PAGE, after_event_id=after)
            yield from page
            if len(page) < _VERIFY_PAGE:
                return
            after = page[-1].event_id
    finally:
        event_store.close()


def _events_from_file(path: Path) -> Iterator[AnalyticsEvent]:
    from pydantic import ValidationError

    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", hint="pass a JSON Lines export") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield AnalyticsEvent.model_validate_json(line)
        except ValidationError as exc:
            raise CliError(f"{path}:{number}: not an analytics event: {exc.errors()[0]['msg']}",
                           hint="one event per line, as the store holds them") from None
