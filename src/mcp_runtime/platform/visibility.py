"""Who may see and change what: the rules of docs/architecture.md ("Who may see and change what") in one place.

- admins: everything;
- team owners: their team's namespace (servers, grants, members, session revocation);
- team members: deploy and grant in their team's namespace;
- everyone signed in: the org and public catalogs (read), and grants/sessions that name them
  (their team or their email), plus the servers those grants are for.
"""

from __future__ import annotations

from mcp_runtime.platform.errors import forbidden
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.settings import ORG_NAMESPACE, PUBLIC_NAMESPACE
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, Subject

CATALOG_NAMESPACES = (ORG_NAMESPACE, PUBLIC_NAMESPACE)


def names_caller(subject: Subject, caller: Principal) -> bool:
    """True when the subject points at the caller: their email or one of their teams."""
    if subject.human_id and subject.human_id.lower() == caller.email:
        return True
    return bool(subject.team_id and caller.in_team(subject.team_id))


def can_read_namespace(caller: Principal, namespace: str) -> bool:
    return caller.is_admin or namespace in CATALOG_NAMESPACES or caller.team_role(namespace) is not None


def can_read_access(caller: Principal, resource: MCPAccessGrant | MCPAgentSession) -> bool:
    return (can_read_namespace(caller, resource.metadata.namespace or "")
            or names_caller(resource.spec.subject, caller))


def require_write(caller: Principal, namespace: str, what: str) -> None:
    if not caller.can_write(namespace):
        raise forbidden(f"you cannot {what} in namespace {namespace}: "
                        "only its team's members (or a platform admin) can")


def require_manage(caller: Principal, namespace: str, what: str) -> None:
    if not caller.can_manage(namespace):
        raise forbidden(f"you cannot {what} in namespace {namespace}: "
                        "only its team's owners (or a platform admin) can")


def require_admin(caller: Principal, what: str) -> None:
    if not caller.is_admin:
        raise forbidden(f"only a platform admin can {what}")
