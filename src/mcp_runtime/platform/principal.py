"""Who is calling: a user (by access token or API key) with their platform role and team memberships."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_runtime.store import Membership, PlatformRole, Team, TeamRole, User


@dataclass(frozen=True)
class Principal:
    user: User
    memberships: tuple[Membership, ...]
    via_api_key: bool = False

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def is_admin(self) -> bool:
        return self.user.role == PlatformRole.admin

    @property
    def teams(self) -> list[Team]:
        return [m.team for m in self.memberships]

    def team_role(self, namespace: str) -> TeamRole | None:
        """The caller's role in the team that owns `namespace`, if any."""
        for membership in self.memberships:
            if membership.team.namespace == namespace:
                return membership.role
        return None

    def in_team(self, team_id: str) -> bool:
        return any(m.team.id == team_id for m in self.memberships)

    def can_write(self, namespace: str) -> bool:
        """Admins everywhere; owners and members in their own team's namespace; nobody else."""
        return self.is_admin or self.team_role(namespace) is not None

    def can_manage(self, namespace: str) -> bool:
        """Admins everywhere; team owners in their team's namespace (delete, revoke, issue tokens)."""
        return self.is_admin or self.team_role(namespace) == TeamRole.owner
