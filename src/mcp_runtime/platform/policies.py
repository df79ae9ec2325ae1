"""Compile each server's policy document when its server, grants or sessions change, and publish it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mcp_runtime.platform.hooks import PolicyPublisher
from mcp_runtime.platform.repository import ResourceRepository
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer


@dataclass
class PolicyInputs:
    """A server and the grants and sessions that name it: what `compile_policy` turns into a document."""

    server: MCPServer
    grants: list[MCPAccessGrant]
    sessions: list[MCPAgentSession]

    def compile(self) -> PolicyDocument:
        return compile_policy(self.server, self.grants, self.sessions)


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
        return PolicyInputs(server, grants, sessions)

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
