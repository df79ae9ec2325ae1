"""`mcp-runtime access`: grants, sessions and policy explanations.

Minimal version holding only the local scaffolding commands (scaffold_access.py); the platform
commands (apply, list, get, ...) are added to the same three apps by the full version of this module.
"""

from __future__ import annotations

import typer

from mcp_runtime.cli import scaffold_access

app = typer.Typer(help="Grants and sessions for gateway policy.", no_args_is_help=True)
grant_app = typer.Typer(help="MCPAccessGrant: who may call which tools of a server.", no_args_is_help=True)
session_app = typer.Typer(help="MCPAgentSession: an agent's consented trust and lifetime.", no_args_is_help=True)
app.add_typer(grant_app, name="grant")
app.add_typer(session_app, name="session")
scaffold_access.register(app, grant_app, session_app)
