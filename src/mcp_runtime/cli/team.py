"""`mcp-runtime team`: create teams and their password users (platform admins; owners add members)."""

from __future__ import annotations

import typer

from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, emit_structured
from mcp_runtime.client import client

app = typer.Typer(help="Create teams and add password users.", no_args_is_help=True)
users = typer.Typer(help="Users of a team.", no_args_is_help=True)
app.add_typer(users, name="user")

TEAM_COLUMNS = [("NAME", "slug"), ("DISPLAY NAME", "name"), ("NAMESPACE", "namespace"), ("ID", "id")]
USER_COLUMNS = [("EMAIL", "email"), ("ROLE", "role"), ("PLATFORM ROLE", "platformRole"), ("ID", "id")]


@app.command("create")
def create(slug: str = typer.Argument(..., help="Team slug: lowercase letters, digits, '-'."),
           name: str = typer.Option("", "--name", help="Display name, e.g. \"Acme Corp\"."),
           output: OutputFormat = OutputOption) -> None:
    """Create a team (namespace mcp-team-<slug>)."""
    team = client().post("teams", {"slug": slug, "name": name or slug})
    if emit_structured(team, output):
        return
    typer.echo(f"Created team {team['slug']} ({team['name']}) namespace {team['namespace']} id {team['id']}")


@app.command("init", help="Deprecated: use `team create` (same arguments); this prints a note, then creates the "
                          "team.")
def init(slug: str = typer.Argument(..., help="Team slug: lowercase letters, digits, '-'."),
         name: str = typer.Option("", "--name", help="Display name, e.g. \"Acme Corp\"."),
         output: OutputFormat = OutputOption) -> None:
    typer.echo("Note: team init is deprecated. Use team create.", err=True)
    create(slug=slug, name=name, output=output)


@app.command("list")
def list_teams(output: OutputFormat = OutputOption) -> None:
    """List teams with their namespace and UUID (cross-team grants need the UUID)."""
    emit(client().get("teams")["items"], output, columns=TEAM_COLUMNS)


@users.command("create")
def create_user(team: str = typer.Argument(..., help="Team slug."),
                username: str = typer.Option(..., "--username", "--email", help="The user's email."),
                password: str | None = typer.Option(None, "--password", help="Password (prompted when missing)."),
                role: str = typer.Option("member", "--role", help="owner or member."),
                output: OutputFormat = OutputOption) -> None:
    """Create a password user in a team (or add an existing user to it)."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    member = client().post(f"teams/{team}/users", {"email": username, "password": password, "role": role})
    if emit_structured(member, output):
        return
    verb = "Created user" if member.get("created") else "Added existing user"
    typer.echo(f"{verb} {member['email']} to team {team} as {member['role']}")


@users.command("list")
def list_users(team: str = typer.Argument(..., help="Team slug."), output: OutputFormat = OutputOption) -> None:
    """List a team's users and their roles."""
    emit(client().get(f"teams/{team}/users")["items"], output, columns=USER_COLUMNS)
