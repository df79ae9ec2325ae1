"""`teams`: admins create teams; owners add members; members see their own team."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import AliasChoices, Field

from mcp_runtime.platform.deps import AdminDep, CallerDep, PlatformDep, RequestModel
from mcp_runtime.platform.errors import forbidden, not_found
from mcp_runtime.platform.identity import team_json
from mcp_runtime.store import AuditRecord, Membership, TeamRole

router = APIRouter(tags=["teams"])


class TeamRequest(RequestModel):
    slug: str = Field(min_length=1, max_length=63)
    name: str = Field(default="", max_length=200)


class TeamUpdate(RequestModel):
    name: str = Field(min_length=1, max_length=200)


class TeamUserRequest(RequestModel):
    email: str = Field(min_length=3, max_length=320, validation_alias=AliasChoices("email", "username"))
    password: str | None = Field(default=None, max_length=1024)
    role: TeamRole = TeamRole.member


def _member_json(m: Membership) -> dict[str, Any]:
    return {"id": m.user.id, "email": m.user.email, "role": str(m.role), "platformRole": str(m.user.role),
            "team": m.team.slug}


@router.post("/teams", status_code=201)
def create_team(body: TeamRequest, caller: AdminDep, platform: PlatformDep) -> dict[str, Any]:
    return team_json(platform.identity.create_team(caller, body.slug, body.name))


@router.get("/teams")
def list_teams(caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Admins see every team; others see the teams they belong to."""
    teams = platform.store.list_teams() if caller.is_admin else caller.teams
    return {"items": [team_json(t) for t in teams]}


@router.get("/teams/{slug}")
def get_team(slug: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    team = platform.identity.team(slug)
    if not caller.is_admin and not caller.in_team(team.id):
        raise forbidden(f"you are not a member of team {slug}")
    return team_json(team)


@router.patch("/teams/{slug}")
def rename_team(slug: str, body: TeamUpdate, caller: AdminDep, platform: PlatformDep) -> dict[str, Any]:
    """Change a team's display name (slug, namespace and UUID never change)."""
    before = platform.identity.team(slug)
    team = platform.store.rename_team(slug, body.name, audit=AuditRecord(
        actor=caller.email, action="update", kind="Team", name=slug, before=team_json(before),
        after={**team_json(before), "name": body.name}))
    return team_json(team)


@router.delete("/teams/{slug}", status_code=204)
def delete_team(slug: str, caller: AdminDep, platform: PlatformDep) -> Response:
    team = platform.identity.team(slug)
    platform.store.delete_team(slug, audit=AuditRecord(actor=caller.email, action="delete", kind="Team",
                                                       name=slug, before=team_json(team)))
    return Response(status_code=204)


@router.post("/teams/{slug}/users", status_code=201)
def add_team_user(slug: str, body: TeamUserRequest, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Create a password user in the team (admins, or the team's owners)."""
    team = platform.identity.team(slug)
    if not caller.can_manage(team.namespace):
        raise forbidden(f"only an admin or an owner of team {slug} can add its users")
    membership, created = platform.identity.add_team_user(caller, team, body.email, body.password, body.role)
    return {**_member_json(membership), "created": created}


@router.get("/teams/{slug}/users")
def list_team_users(slug: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    team = platform.identity.team(slug)
    if not caller.is_admin and not caller.in_team(team.id):
        raise forbidden(f"you are not a member of team {slug}")
    return {"items": [_member_json(m) for m in platform.store.list_members(team.id)]}


@router.delete("/teams/{slug}/users/{email}", status_code=204)
def remove_team_user(slug: str, email: str, caller: CallerDep, platform: PlatformDep) -> Response:
    """Take a user out of a team (admins, or the team's owners); the user account stays."""
    team = platform.identity.team(slug)
    if not caller.can_manage(team.namespace):
        raise forbidden(f"only an admin or an owner of team {slug} can remove its users")
    user = platform.store.get_user_by_email(email)
    if user is None or not any(m.user.id == user.id for m in platform.store.list_members(team.id)):
        raise not_found(f"user {email} in team {slug}")
    platform.store.remove_member(team.id, user.id, audit=AuditRecord(
        actor=caller.email, action="remove_member", kind="Team", name=slug, before={"user": user.email}))
    return Response(status_code=204)
