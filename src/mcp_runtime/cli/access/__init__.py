"""`mcp-runtime access`: grants and sessions (the gateway's policy inputs) and `explain`. The group is
assembled here, once, in `--help` order.

- `explain` (explain.py): asks the platform, or judges local files with the gateway's evaluator;
- `simulate` (simulate.py): replays a server's recorded calls under a proposed change;
- `grant ...` (grant.py) and `session ...` (session.py): `init` writes the YAML locally, the other
  commands work on the platform. What both share is in common.py;
- `approvals ...` (approvals.py): tool calls waiting for a person's approval.
"""

from __future__ import annotations

import typer

from mcp_runtime.cli.access import approvals, explain, grant, session, simulate

app = typer.Typer(help="Grants, sessions and approvals for gateway policy.", no_args_is_help=True)

app.command("explain")(explain.explain)
app.command("simulate")(simulate.simulate)
app.add_typer(grant.app, name="grant")
app.add_typer(session.app, name="session")
app.add_typer(approvals.app, name="approvals")
