"""Per-caller upstream credentials: a remote server that wants each caller's own token (`remote.sessionToken`).

The platform resolves, for every session of the server, the Secret its `upstreamTokenSecretRef` names and
hands the gateway the finished header values by session id (`replace`, whole, whenever a session or a
Secret changes: one reference swap, so a request never sees half an update). The forward step adds the
value of the verified caller's session; a caller whose session has none gets an error, not an
unauthenticated call. Values are kept as bytes for the wire and never logged.
"""

from __future__ import annotations

from collections.abc import Mapping


class SessionCredentials:
    """Header name and, by session id (the token's `sid`), the value sent upstream for that session."""

    def __init__(self, header: str, prefix: str = "") -> None:
        self.header = header.lower().encode("ascii")
        self.prefix = prefix
        self._values: dict[str, bytes] = {}

    def replace(self, values: Mapping[str, str]) -> None:
        """The credentials of every session now (value: the Secret's, without the prefix)."""
        fresh: dict[str, bytes] = {}
        for session_id, value in values.items():
            line = self.prefix + value
            if line.isprintable():
                fresh[session_id] = line.encode()
        self._values = fresh

    def value_for(self, session_id: str | None) -> bytes | None:
        return self._values.get(session_id) if session_id else None

    def __len__(self) -> int:
        return len(self._values)
