"""`mcp-runtime auth`: log in to the platform, switch profiles, show and remove credentials."""

from __future__ import annotations

import os
import sys
import time

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured
from mcp_runtime.client import (
    DEFAULT_PROFILE,
    URL_ENV,
    ApiCallError,
    ApiClient,
    ClientError,
    Config,
    Profile,
    config_path,
    login_hint,
    normalize_url,
)

app = typer.Typer(help="Save and switch platform credentials.", no_args_is_help=True)

ProfileOption = typer.Option(None, "--profile", help="Profile name (default: the active one, or 'default').")


@app.command()
def login(
    api_url: str | None = typer.Option(None, "--api-url", help="Platform URL, e.g. https://platform.example.com"),
    email: str | None = typer.Option(None, "--email", help="Email of a password user (prompted when missing)."),
    password: str | None = typer.Option(None, "--password", help="Password (prompted when missing)."),
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Read an API key (mcpr_...) from stdin."),
    profile: str | None = typer.Option(None, "--profile", help="Save under this profile name."),
) -> None:
    """Log in with email + password (or an API key) and save the credentials as a profile."""
    config = Config.load()
    name = profile or DEFAULT_PROFILE
    known = config.profiles.get(name)
    url = api_url or os.environ.get(URL_ENV) or (known.api_url if known else None)
    if not url:
        raise CliError("the platform URL is required", hint="pass --api-url https://platform.example.com")
    target = Profile(name=name, api_url=normalize_url(url))
    api = ApiClient(target, config)
    if token_stdin:
        key = sys.stdin.read().strip()
        if not key:
            raise CliError("no API key on stdin", hint="mcp-runtime auth login --token-stdin < token.txt")
        target.api_key = key
        me = api.get("auth/me")
        target.email = me.get("email")
    else:
        if not email:
            email = typer.prompt("Email")
        if password is None:
            password = typer.prompt("Password", hide_input=True)
        answer = api.post("auth/login", {"email": email, "password": password}, auth=False)
        api.store_tokens(answer)
    config.profiles[name] = target
    if config.current is None or config.current not in config.profiles:
        config.current = name
    config.save()
    role = "API key" if target.api_key else "password"
    typer.echo(f"Logged in to {target.api_url} as {target.email} ({role}); saved as profile '{name}'"
               + ("" if config.current == name else f" (switch with: mcp-runtime auth use {name})"))


@app.command()
def use(profile: str = typer.Argument(..., help="Profile to make active.")) -> None:
    """Make a saved profile the active one."""
    config = Config.load()
    if profile not in config.profiles:
        known = ", ".join(sorted(config.profiles)) or "none"
        raise CliError(f"no profile named {profile!r} (saved: {known})", hint=login_hint())
    config.current = profile
    config.save()
    typer.echo(f"Active profile: {profile} ({config.profiles[profile].email} at {config.profiles[profile].api_url})")


@app.command()
def status(profile: str | None = ProfileOption, output: OutputFormat = OutputOption) -> None:
    """Show the active profile and who it is logged in as."""
    config = Config.load()
    name = config.active_name(profile)
    if not name or name not in config.profiles:
        raise CliError("not logged in", hint=login_hint(os.environ.get(URL_ENV)))
    saved = config.profiles[name]
    info: dict[str, object] = {"profile": name, "apiUrl": saved.api_url, "email": saved.email,
                               "credential": "apiKey" if saved.api_key else "password",
                               "active": name == config.current, "profiles": sorted(config.profiles)}
    try:
        me = ApiClient(saved, config).get("auth/me")
        info.update({"role": me.get("role"), "teams": [t["slug"] for t in me.get("teams", [])], "valid": True})
    except ApiCallError as exc:
        info.update({"valid": False, "error": exc.message})
    if saved.access_expires_at:
        info["accessTokenExpiresIn"] = max(0, int(saved.access_expires_at - time.time()))
    if emit_structured(info, output):
        return
    for key in ("profile", "apiUrl", "email", "role", "teams", "credential", "valid", "error"):
        if key in info:
            value = info[key]
            typer.echo(f"{key:<11} {', '.join(value) if isinstance(value, list) else value}")
    if not info.get("valid"):
        raise typer.Exit(1)


@app.command()
def logout(profile: str | None = ProfileOption,
           all_profiles: bool = typer.Option(False, "--all", help="Remove every saved profile.")) -> None:
    """Revoke the refresh token on the platform (best effort) and remove the saved credentials."""
    config = Config.load()
    names = sorted(config.profiles) if all_profiles else [config.active_name(profile)]
    removed = []
    for name in names:
        if not name or name not in config.profiles:
            continue
        saved = config.profiles.pop(name)
        if saved.refresh_token:
            try:
                ApiClient(saved).post("auth/logout", {"refreshToken": saved.refresh_token}, auth=False)
            except ClientError:
                pass  # the local credentials go anyway
        removed.append(name)
    if not removed:
        raise CliError("not logged in", hint=f"nothing to remove in {config_path()}")
    if config.current in removed:
        config.current = next(iter(sorted(config.profiles)), None)
    config.save()
    typer.echo(f"Logged out: removed profile {', '.join(removed)}")
