"""What the control plane tells the rest of the system: server changes (runtimes) and policies (gateways).

`RuntimeHooks` is implemented by the runtime that runs servers (process, podman, kubernetes);
`PolicyPublisher` pushes each server's compiled policy document to subscribers (the gateway's
in-process policy source). Both are called after the change is committed to the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from mcp_runtime.policy import PolicyDocument
from mcp_runtime.resources import MCPServer

log = logging.getLogger("mcp_runtime.platform")

PolicyCallback = Callable[[str, str, "PolicyDocument | None"], None]
"""callback(namespace, server_name, document): document None means the server is gone."""


class RuntimeHooks(Protocol):
    """A runtime reacts to server changes; exceptions are logged, never undo the stored change."""

    def server_created(self, server: MCPServer) -> None: ...
    def server_updated(self, server: MCPServer) -> None: ...
    def server_deleted(self, server: MCPServer) -> None: ...


class NoRuntime:
    """The default: servers are stored and governed, nothing runs them (a later runtime will)."""

    def server_created(self, server: MCPServer) -> None:
        return None

    def server_updated(self, server: MCPServer) -> None:
        return None

    def server_deleted(self, server: MCPServer) -> None:
        return None


class PolicyPublisher:
    """Holds the current policy document of every server and pushes each new one to subscribers."""

    def __init__(self) -> None:
        self._documents: dict[tuple[str, str], PolicyDocument] = {}
        self._subscribers: list[PolicyCallback] = []
        self._lock = threading.RLock()

    def subscribe(self, callback: PolicyCallback, *, replay: bool = True) -> Callable[[], None]:
        """Call `callback` on every change (and now, for every current document, when `replay`).

        Returns a function that unsubscribes.
        """
        with self._lock:
            self._subscribers.append(callback)
            current = list(self._documents.items()) if replay else []
        for (namespace, name), document in current:
            self._call(callback, namespace, name, document)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, namespace: str, name: str, document: PolicyDocument | None) -> None:
        with self._lock:
            key = (namespace, name)
            previous = self._documents.get(key)
            if document is None:
                if previous is None:
                    return
                del self._documents[key]
            else:
                if previous is not None and previous.revision == document.revision:
                    return
                self._documents[key] = document
            subscribers = list(self._subscribers)
        for callback in subscribers:
            self._call(callback, namespace, name, document)

    def get(self, namespace: str, name: str) -> PolicyDocument | None:
        with self._lock:
            return self._documents.get((namespace, name))

    def documents(self) -> dict[tuple[str, str], PolicyDocument]:
        with self._lock:
            return dict(self._documents)

    @staticmethod
    def _call(callback: PolicyCallback, namespace: str, name: str, document: PolicyDocument | None) -> None:
        try:
            callback(namespace, name, document)
        except Exception:
            log.exception("policy subscriber failed for %s/%s", namespace, name)
