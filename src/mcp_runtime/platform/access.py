"""Grants and sessions: create, list, enable/disable, revoke; adapter sessions; session tokens; explain."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from mcp_runtime.platform.errors import ApiError, not_found
from mcp_runtime.platform.policies import PolicyCompiler
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.repository import ResourceRepository, parse_resource
from mcp_runtime.platform.servers import ServerService
from mcp_runtime.platform.settings import PlatformSettings
from mcp_runtime.platform.visibility import (
    can_read_access,
    names_caller,
    require_admin,
    require_manage,
    require_write,
)
from mcp_runtime.policy import ARGUMENTS_UNKNOWN, Identity, evaluate
from mcp_runtime.resources import (
    SESSION_KIND,
    AccessStatus,
    AgentSessionSpec,
    CamelModel,
    MCPAccessGrant,
    MCPAgentSession,
    MCPServer,
    MCPVirtualServer,
    ObjectMeta,
    ServerRef,
    Subject,
    Trust,
    dump_resource,
)
from mcp_runtime.resources.access import phase_message
from mcp_runtime.resources.common import utcnow
from mcp_runtime.security.keys import KeyRing
from mcp_runtime.security.tokens import SessionClaims, issue_session_token
from mcp_runtime.store import ControlPlaneStore


class AdapterSessionRequest(CamelModel):
    """`POST runtime/adapter/sessions`: a session for the caller on `server` as agent `agentID`."""

    server: str = Field(min_length=1, max_length=63)
    namespace: str | None = Field(default=None, max_length=63)
    agent: str | None = Field(default=None, max_length=63, description="session name hint (adapter --agent)")
    agent_id: str | None = Field(default=None, max_length=256)
    trust: Trust = Trust.low
    ttl_seconds: int | None = Field(default=None, ge=1)


class ExplainRequest(CamelModel):
    server: str = Field(min_length=1, max_length=63)
    namespace: str | None = Field(default=None, max_length=63)
    tool: str = Field(min_length=1, max_length=128)
    human_id: str | None = Field(default=None, max_length=256)
    agent_id: str | None = Field(default=None, max_length=256)
    team_id: str | None = Field(default=None, max_length=256)
    session: str | None = Field(default=None, max_length=63)
    # The call's arguments, to judge argument conditions; None: unknown (a condition then allows "if").
    arguments: dict[str, Any] | None = Field(default=None, max_length=256)


def _with_status(resource: MCPAccessGrant | MCPAgentSession, now: datetime) -> bool:
    """Write the phase the resource is in now; True when it changed."""
    phase, message = phase_message(resource, now)
    status = resource.status or AccessStatus()
    changed = status.phase != phase or status.observed_generation != resource.metadata.generation
    resource.status = status.model_copy(update={"phase": phase, "message": message,
                                                "observed_generation": resource.metadata.generation})
    return changed


def _namespace_of(resource: MCPAccessGrant | MCPAgentSession) -> str:
    """Namespace from metadata or serverRef (the model already refused a mismatch); both end up set."""
    namespace = resource.metadata.namespace or resource.spec.server_ref.namespace
    if not namespace:
        raise ApiError(422, "invalid_request",
                       "metadata.namespace is required (the namespace of the server the resource is for)")
    resource.metadata.namespace = namespace
    resource.spec.server_ref.namespace = namespace
    return namespace


_NAME_CLEAN = re.compile(r"[^a-z0-9-]+")


def adapter_session_name(agent: str, human_id: str, agent_id: str | None, team_id: str | None,
                         server: str) -> str:
    """Stable per (human, agent, team, server): the adapter gets the same session back each time."""
    base = _NAME_CLEAN.sub("-", agent.lower()).strip("-")[:40] or "agent"
    digest = hashlib.sha256("\0".join([human_id, agent_id or "", team_id or "", server]).encode()).hexdigest()
    return f"{base}-{digest[:10]}"


class AccessService:
    def __init__(self, store: ControlPlaneStore, repo: ResourceRepository, servers: ServerService,
                 policies: PolicyCompiler, keyring: KeyRing, settings: PlatformSettings) -> None:
        self.store, self.repo, self.servers, self.policies = store, repo, servers, policies
        self.keyring, self.settings = keyring, settings

    # shared -------------------------------------------------------------------------------------
    def _check_server_and_subject(self, resource: MCPAccessGrant | MCPAgentSession, namespace: str) -> None:
        ref = resource.spec.server_ref
        virtual = isinstance(resource, MCPAgentSession) and \
            self.repo.get(MCPVirtualServer, namespace, ref.name) is not None
        if not virtual and self.repo.get(MCPServer, namespace, ref.name) is None:
            raise ApiError(404, "server_not_found",
                           f"server {ref.name} does not exist in namespace {namespace}; deploy it first "
                           "(a grant or session lives in its server's namespace)")
        team_id = resource.spec.subject.team_id
        if team_id and self.store.get_team_by_id(team_id) is None:
            by_slug = self.store.get_team(team_id)
            hint = f" (team {by_slug.slug} has UUID {by_slug.id})" if by_slug else ""
            raise ApiError(422, "invalid_request",
                           f"subject.teamID {team_id!r} is not a team UUID{hint}; 'mcp-runtime team list' shows them")

    def _visible(self, caller: Principal, resource: MCPAccessGrant | MCPAgentSession) -> bool:
        return can_read_access(caller, resource)

    def _refresh_status(self, resource: Any, actor: str = "system") -> Any:
        if _with_status(resource, utcnow()):
            return self.repo.replace(resource, actor, action="", spec=False)
        return resource

    # grants -------------------------------------------------------------------------------------
    def checked_grant(self, caller: Principal, body: Any, what: str = "create grants") -> MCPAccessGrant:
        """A grant body as `apply` takes it: valid, in a namespace the caller may write, for an existing
        server, naming a real team. `create_grant` and `access simulate` both start here."""
        grant = parse_resource(body, MCPAccessGrant)
        namespace = _namespace_of(grant)
        require_write(caller, namespace, what)
        self._check_server_and_subject(grant, namespace)
        return grant

    def create_grant(self, caller: Principal, body: Any) -> MCPAccessGrant:
        grant = self.checked_grant(caller, body)
        namespace = grant.metadata.namespace or ""
        _with_status(grant, utcnow())
        saved = self.repo.create(grant, caller.email)
        self.policies.recompile(namespace, grant.spec.server_ref.name)
        return self._refresh_status(saved)  # type: ignore[no-any-return]

    def replace_grant(self, caller: Principal, namespace: str, name: str, body: Any) -> MCPAccessGrant:
        grant = parse_resource(body, MCPAccessGrant)
        grant.metadata.namespace = grant.metadata.namespace or namespace
        if (_namespace_of(grant), grant.metadata.name) != (namespace, name):
            raise ApiError(422, "invalid_request", "the body's metadata.name/namespace differ from the URL")
        require_write(caller, namespace, "change grants")
        existing = self.repo.require(MCPAccessGrant, namespace, name)
        self._check_server_and_subject(grant, namespace)
        grant.metadata.generation = existing.metadata.generation
        _with_status(grant, utcnow())
        saved = self.repo.replace(grant, caller.email, "update", before=existing)
        self._recompile_refs(namespace, existing.spec.server_ref.name, grant.spec.server_ref.name)
        return self._refresh_status(saved)  # type: ignore[no-any-return]

    def list_grants(self, caller: Principal, namespace: str | None = None) -> list[MCPAccessGrant]:
        return [self._refresh_status(g) for g in self.repo.list(MCPAccessGrant, namespace)
                if self._visible(caller, g)]

    def get_grant(self, caller: Principal, namespace: str, name: str) -> MCPAccessGrant:
        grant = self.repo.get(MCPAccessGrant, namespace, name)
        if grant is None or not self._visible(caller, grant):
            raise not_found(f"grant {name} in namespace {namespace}")
        return self._refresh_status(grant)  # type: ignore[no-any-return]

    def set_grant_disabled(self, caller: Principal, namespace: str, name: str, disabled: bool) -> MCPAccessGrant:
        grant = self.get_grant(caller, namespace, name)
        require_write(caller, namespace, "enable or disable grants")
        before = grant.model_copy(deep=True)
        grant.spec.disabled = disabled
        _with_status(grant, utcnow())
        saved = self.repo.replace(grant, caller.email, "disable" if disabled else "enable", before=before)
        self.policies.recompile(namespace, grant.spec.server_ref.name)
        return self._refresh_status(saved)  # type: ignore[no-any-return]

    def delete_grant(self, caller: Principal, namespace: str, name: str) -> MCPAccessGrant:
        grant = self.get_grant(caller, namespace, name)
        require_write(caller, namespace, "delete grants")
        self.repo.delete(grant, caller.email)
        self.policies.recompile(namespace, grant.spec.server_ref.name)
        return grant

    def _recompile_refs(self, namespace: str, *servers: str) -> None:
        for server in dict.fromkeys(servers):
            self.policies.recompile(namespace, server)

    # sessions -----------------------------------------------------------------------------------
    def apply_session(self, caller: Principal, body: Any, *, replace_existing: bool = False,
                      url_namespace: str | None = None, url_name: str | None = None
                      ) -> tuple[MCPAgentSession, str]:
        """Admin: create (or, by PUT, replace) a session from its YAML; returns it with a session token."""
        session = self.checked_session(caller, body, url_namespace=url_namespace)
        namespace = session.metadata.namespace or ""
        if url_name and (namespace, session.metadata.name) != (url_namespace, url_name):
            raise ApiError(422, "invalid_request", "the body's metadata.name/namespace differ from the URL")
        _with_status(session, utcnow())
        if replace_existing:
            existing = self.repo.require(MCPAgentSession, namespace, session.metadata.name)
            saved = self.repo.replace(session, caller.email, "update", before=existing)
        else:
            saved = self.repo.create(session, caller.email)
        self.policies.recompile_session_target(namespace, session.spec.server_ref.name)
        saved = self._refresh_status(saved)
        return saved, self._token_for(saved)

    def checked_session(self, caller: Principal, body: Any, *, url_namespace: str | None = None,
                        what: str = "apply sessions (adapter sessions are issued by runtime/adapter/sessions)"
                        ) -> MCPAgentSession:
        """A session body as `apply` stores it (admins only; the default expiry filled in)."""
        require_admin(caller, what)
        session = parse_resource(body, MCPAgentSession)
        if url_namespace:
            session.metadata.namespace = session.metadata.namespace or url_namespace
        namespace = _namespace_of(session)
        self._check_server_and_subject(session, namespace)
        if session.spec.expires_at is None:
            session.spec.expires_at = utcnow() + self.settings.session_default_ttl
        return session

    def list_sessions(self, caller: Principal, namespace: str | None = None) -> list[MCPAgentSession]:
        return [self._refresh_status(s) for s in self.repo.list(MCPAgentSession, namespace)
                if self._visible(caller, s)]

    def get_session(self, caller: Principal, namespace: str, name: str) -> MCPAgentSession:
        session = self.repo.get(MCPAgentSession, namespace, name)
        if session is None or not self._visible(caller, session):
            raise not_found(f"session {name} in namespace {namespace}")
        return self._refresh_status(session)  # type: ignore[no-any-return]

    def set_session_revoked(self, caller: Principal, namespace: str, name: str, revoked: bool) -> MCPAgentSession:
        session = self.get_session(caller, namespace, name)
        if revoked:
            require_manage(caller, namespace, "revoke sessions")
        else:
            require_admin(caller, "unrevoke sessions")
        before = session.model_copy(deep=True)
        session.spec.revoked = revoked
        _with_status(session, utcnow())
        saved = self.repo.replace(session, caller.email, "revoke" if revoked else "unrevoke", before=before)
        self.policies.recompile_session_target(namespace, session.spec.server_ref.name)
        return saved

    def delete_session(self, caller: Principal, namespace: str, name: str) -> MCPAgentSession:
        session = self.get_session(caller, namespace, name)
        require_admin(caller, "delete sessions")
        self.repo.delete(session, caller.email)
        self.policies.recompile_session_target(namespace, session.spec.server_ref.name)
        return session

    def session_token(self, caller: Principal, namespace: str, name: str) -> tuple[MCPAgentSession, str]:
        """A fresh bearer token for an existing session (admins and the namespace's owners)."""
        session = self.get_session(caller, namespace, name)
        require_manage(caller, namespace, "issue session tokens")
        self._require_usable(session)
        self.store.append_audit(_audit(caller, "issue_token", session))
        return session, self._token_for(session)

    def _require_usable(self, session: MCPAgentSession) -> None:
        phase = session.phase_at(utcnow())
        if str(phase) == "Revoked":
            raise ApiError(403, "session_revoked",
                           f"session {session.metadata.name} is revoked; an admin must run "
                           f"'mcp-runtime access session unrevoke {session.metadata.name} "
                           f"--namespace {session.metadata.namespace}'")
        if str(phase) == "Expired":
            raise ApiError(409, "session_expired",
                           f"session {session.metadata.name} has expired; apply it again with a later expiresAt")

    def _token_for(self, session: MCPAgentSession, *, client_id: str | None = None,
                   expires_at: datetime | None = None) -> str:
        now = utcnow()
        subject = session.spec.subject
        # a token never outlives its session, nor the maximum token lifetime (re-issue with `session token`)
        expires_at = expires_at or min(session.spec.expires_at or now + self.settings.session_default_ttl,
                                       now + self.settings.session_max_ttl)
        claims = SessionClaims(
            session_id=session.metadata.name, namespace=session.metadata.namespace or "",
            server=session.spec.server_ref.name, human_id=subject.human_id, agent_id=subject.agent_id,
            team_id=subject.team_id, trust=str(session.spec.consented_trust), expires_at=expires_at,
            issued_at=now, token_id=str(uuid.uuid4()), client_id=client_id)
        return issue_session_token(self.keyring, claims)

    # adapter sessions ---------------------------------------------------------------------------
    def adapter_session(self, caller: Principal, req: AdapterSessionRequest) -> dict[str, Any]:
        """Issue or reuse the caller's session on a server, bounded by the best grant that matches them."""
        agent_id = req.agent_id or req.agent
        if not agent_id:
            raise ApiError(422, "invalid_request", "agentID (or agent) is required")
        human_id = caller.email
        now = utcnow()
        namespace, best, team_id = self.best_grant(caller, req.server, req.namespace, agent_id)
        consented = min(req.trust, best.spec.max_trust)
        ttl = timedelta(seconds=req.ttl_seconds) if req.ttl_seconds else self.settings.session_default_ttl
        ttl = min(ttl, self.settings.session_max_ttl)
        expires_at = now + ttl
        name = adapter_session_name(req.agent or agent_id, human_id, agent_id, team_id, req.server)
        subject = Subject(human_id=human_id, agent_id=agent_id, team_id=team_id)
        existing = self.repo.get(MCPAgentSession, namespace, name)
        if existing is not None:
            if existing.spec.revoked:
                raise ApiError(403, "session_revoked",
                               f"your session {name} on {req.server} was revoked; an admin must run "
                               f"'mcp-runtime access session unrevoke {name} --namespace {namespace}'")
            before = existing.model_copy(deep=True)
            existing.spec.subject = subject
            existing.spec.consented_trust = consented
            existing.spec.expires_at = expires_at
            _with_status(existing, now)
            saved = self.repo.replace(existing, caller.email, "renew", before=before)
            reused = True
        else:
            session = MCPAgentSession(
                metadata=ObjectMeta(name=name, namespace=namespace,
                                    labels={"mcpruntime.org/issued-by": "adapter"}),
                spec=AgentSessionSpec(server_ref=ServerRef(name=req.server, namespace=namespace), subject=subject,
                                      consented_trust=consented, expires_at=expires_at))
            _with_status(session, now)
            saved = self._refresh_status(self.repo.create(session, caller.email, "issue"))
            reused = False
        self.policies.recompile(namespace, req.server)
        return {"session": dump_resource(saved), "token": self._token_for(saved),
                "expiresAt": expires_at.isoformat(), "reused": reused, "namespace": namespace,
                "server": req.server, "grant": best.metadata.name, "consentedTrust": str(consented),
                "humanID": human_id, "agentID": agent_id, "teamID": team_id}

    def best_grant(self, caller: Principal, server_name: str, namespace: str | None,
                   agent_id: str) -> tuple[str, MCPAccessGrant, str | None]:
        """The grant that bounds a session of the caller on a server as `agent_id` (the highest trust,
        then a team grant), its namespace, and the caller's team for that server. 403 when none matches."""
        human_id = caller.email
        now = utcnow()
        team_ids = {t.id for t in caller.teams}
        candidates = [
            g for g in self.repo.list(MCPAccessGrant, namespace)
            if g.spec.server_ref.name == server_name and str(g.phase_at(now)) == "Active"
            and (g.spec.subject.human_id in (None, human_id))
            and (g.spec.subject.agent_id in (None, agent_id))
            and (g.spec.subject.team_id is None or g.spec.subject.team_id in team_ids)
        ]
        if namespace and self.repo.get(MCPServer, namespace, server_name) is None:
            raise not_found(f"server {server_name} in namespace {namespace}")
        namespaces = sorted({g.metadata.namespace or "" for g in candidates})
        if not namespaces:
            raise ApiError(403, "no_matching_grant",
                           f"no active grant on server {server_name} matches you ({human_id}, agent {agent_id}); "
                           "ask the server's team for one ('mcp-runtime access grant apply')")
        if len(namespaces) > 1:
            raise ApiError(409, "namespace_ambiguous",
                           f"grants for server {server_name} match you in several namespaces "
                           f"({', '.join(namespaces)}): pass --namespace",
                           details={"candidates": namespaces})
        found = namespaces[0]
        if self.repo.get(MCPServer, found, server_name) is None:
            raise not_found(f"server {server_name} in namespace {found}")
        by_name = sorted(candidates, key=lambda g: g.metadata.name)
        best = max(by_name, key=lambda g: (g.spec.max_trust.rank, g.spec.subject.team_id is not None))
        team_id = best.spec.subject.team_id or (next(iter(team_ids)) if len(team_ids) == 1 else None)
        return found, best, team_id

    def oauth_session(self, caller: Principal, namespace: str, server_name: str, agent_id: str, trust: Trust,
                      client_id: str, expires_at: datetime) -> MCPAgentSession:
        """A new session for one OAuth authorization (the caller consented in the dashboard): bounded by
        the caller's best grant, its trust capped by that grant, labelled with the OAuth client."""
        found, best, team_id = self.best_grant(caller, server_name, namespace, agent_id)
        consented = min(trust, best.spec.max_trust)
        base = _NAME_CLEAN.sub("-", agent_id.lower()).strip("-")[:40] or "agent"
        session = MCPAgentSession(
            metadata=ObjectMeta(name=f"{base}-oauth-{uuid.uuid4().hex[:10]}", namespace=found,
                                labels={"mcpruntime.org/issued-by": "oauth",
                                        "mcpruntime.org/oauth-client": _label_value(client_id)}),
            spec=AgentSessionSpec(server_ref=ServerRef(name=server_name, namespace=found),
                                  subject=Subject(human_id=caller.email, agent_id=agent_id, team_id=team_id),
                                  consented_trust=consented, expires_at=expires_at))
        _with_status(session, utcnow())
        saved = self._refresh_status(self.repo.create(session, caller.email, "issue"))
        self.policies.recompile(found, server_name)
        return saved  # type: ignore[no-any-return]

    def revoke_oauth_session(self, namespace: str, name: str, actor: str) -> None:
        """The authorization's tokens were revoked or replayed: the session goes (effective on the next call)."""
        session = self.repo.get(MCPAgentSession, namespace, name)
        if session is None or session.spec.revoked:
            return
        before = session.model_copy(deep=True)
        session.spec.revoked = True
        _with_status(session, utcnow())
        self.repo.replace(session, actor, "revoke", before=before)
        self.policies.recompile_session_target(namespace, session.spec.server_ref.name)

    def oauth_token(self, session: MCPAgentSession, client_id: str, ttl: timedelta) -> tuple[str, datetime]:
        """An access token for an OAuth client: a session token, no longer than `ttl` nor the session."""
        self._require_usable(session)
        now = utcnow()
        expires_at = min(session.spec.expires_at or now + ttl, now + ttl)
        return self._token_for(session, client_id=client_id, expires_at=expires_at), expires_at

    # explain ------------------------------------------------------------------------------------
    def explain(self, caller: Principal, req: ExplainRequest) -> dict[str, Any]:
        server = self.servers.find(caller, req.server, req.namespace)
        namespace = server.metadata.namespace or ""
        document = self.policies.document(namespace, server.metadata.name)
        assert document is not None
        identity = Identity(human_id=req.human_id, agent_id=req.agent_id, team_id=req.team_id,
                            session_id=req.session)
        if identity.is_empty():
            identity = replace(identity, human_id=caller.email)
        assumed = False
        if not req.session and document.session_required:
            # "may this identity call this tool": judge the grants as if it held a session
            document = document.model_copy(update={"session_required": False})
            assumed = True
        arguments = ARGUMENTS_UNKNOWN if req.arguments is None else req.arguments
        decision = evaluate(document, identity, req.tool, utcnow(), arguments)
        return {
            **decision.to_json(), "server": server.metadata.name, "namespace": namespace, "tool": req.tool,
            "sessionAssumed": assumed,
            "identity": {"humanID": identity.human_id, "agentID": identity.agent_id,
                         "teamID": identity.team_id, "session": identity.session_id},
        }


def _label_value(value: str) -> str:
    """A label value (63 characters of [A-Za-z0-9-_.], alphanumeric at both ends) naming `value`."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63].strip("-_.")
    return cleaned or "client"


def _audit(caller: Principal, action: str, session: MCPAgentSession) -> Any:
    from mcp_runtime.store import AuditRecord

    return AuditRecord(actor=caller.email, action=action, kind=SESSION_KIND,
                       namespace=session.metadata.namespace, name=session.metadata.name)


__all__ = ["AccessService", "AdapterSessionRequest", "ExplainRequest", "adapter_session_name", "names_caller"]
