"""Compile each server's policy document when its server, grants or sessions change, and publish it."""

from __future__ import annotations

import threading

from mcp_runtime.platform.hooks import PolicyPublisher
from mcp_runtime.platform.repository import ResourceRepository
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer


class PolicyCompiler:
    def __init__(self, repo: ResourceRepository, publisher: PolicyPublisher) -> None:
        self.repo, self.publisher = repo, publisher
        self._lock = threading.Lock()  # compile+publish in order: a newer document is never overtaken

    def recompile(self, namespace: str, name: str) -> PolicyDocument | None:
        """Compile from the store's current state and publish; None (published too) if the server is gone."""
        with self._lock:
            server = self.repo.get(MCPServer, namespace, name)
            if server is None:
                self.publisher.publish(namespace, name, None)
                return None
            grants = [g for g in self.repo.list(MCPAccessGrant, namespace) if g.spec.server_ref.name == name]
            sessions = [s for s in self.repo.list(MCPAgentSession, namespace) if s.spec.server_ref.name == name]
            document = compile_policy(server, grants, sessions)
            self.publisher.publish(namespace, name, document)
            return document

    def recompile_all(self) -> None:
        for server in self.repo.list(MCPServer):
            self.recompile(server.metadata.namespace or "", server.metadata.name)

    def document(self, namespace: str, name: str) -> PolicyDocument | None:
        return self.publisher.get(namespace, name) or self.recompile(namespace, name)
