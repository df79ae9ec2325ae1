"""Compile each server's policy document when its server, grants or sessions change, and publish it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mcp_runtime.platform.hooks import PolicyPublisher
from mcp_runtime.platform.repository import ResourceRepository
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer, MCPVirtualServer


@dataclass
class PolicyInputs:
    """A server and the grants and sessions that name it: what `compile_policy` turns into a document."""

    server: MCPServer
    grants: list[MCPAccessGrant]
    sessions: list[MCPAgentSession]
    virtual_sessions: list[MCPAgentSession] = field(default_factory=list)
    """Sessions of the virtual servers this server is a member of (docs/virtual-servers.md)."""

    def compile(self) -> PolicyDocument:
        return compile_policy(self.server, self.grants, self.sessions, self.virtual_sessions)


class PolicyCompiler:
    def __init__(self, repo: ResourceRepository, publisher: PolicyPublisher) -> None:
        self.repo, self.publisher = repo, publisher
        self._lock = threading.Lock()  # compile+publish in order: a newer document is never overtaken

    def inputs(self, namespace: str, name: str) -> PolicyInputs | None:
        """What a server's document is compiled from, as stored now (None if the server is gone).
        `access simulate` changes these and compiles them the same way."""
        server = self.repo.get(MCPServer, namespace, name)
        if server is None:
            return None
        grants = [g for g in self.repo.list(MCPAccessGrant, namespace) if g.spec.server_ref.name == name]
        sessions = [s for s in self.repo.list(MCPAgentSession, namespace) if s.spec.server_ref.name == name]
        return PolicyInputs(server, grants, sessions, self.virtual_sessions(namespace, name))

    def virtual_sessions(self, namespace: str, name: str) -> list[MCPAgentSession]:
        """The sessions of every virtual server that has this server as a member."""
        sessions: list[MCPAgentSession] = []
        for virtual in self.repo.list(MCPVirtualServer):
            if (namespace, name) not in virtual.member_keys():
                continue
            vns = virtual.metadata.namespace or ""
            sessions += [s for s in self.repo.list(MCPAgentSession, vns)
                         if s.spec.server_ref.name == virtual.metadata.name]
        return sessions

    def recompile_session_target(self, namespace: str, name: str) -> None:
        """A session changed: recompile its server, or every member when it is a virtual server's."""
        virtual = self.repo.get(MCPVirtualServer, namespace, name)
        if virtual is None:
            self.recompile(namespace, name)
            return
        for member_ns, member in virtual.member_keys():
            self.recompile(member_ns, member)

    def recompile(self, namespace: str, name: str) -> PolicyDocument | None:
        """Compile from the store's current state and publish; None (published too) if the server is gone."""
        with self._lock:
            inputs = self.inputs(namespace, name)
            if inputs is None:
                self.publisher.publish(namespace, name, None)
                return None
            document = inputs.compile()
            self.publisher.publish(namespace, name, document)
            return document

    def recompile_all(self) -> None:
        for server in self.repo.list(MCPServer):
            self.recompile(server.metadata.namespace or "", server.metadata.name)

    def document(self, namespace: str, name: str) -> PolicyDocument | None:
        return self.publisher.get(namespace, name) or self.recompile(namespace, name)
