"""A session younger than the gateway's policy: wait briefly for the policy that knows it.

The platform issues a token the moment it creates the session (an OAuth code exchange, `adapter
sessions`), and a client calls the moment it has the token. A gateway in the platform's process has the
session already (the policy is pushed before the answer); a sidecar has it only once its policy file (or
ConfigMap) is reloaded, ~0.1 s later under podman. Refusing that first call `session_not_found` is a 401,
which makes an OAuth client start the whole authorization again (a second consent page).

So a verified token issued less than `FRESH_TOKEN` ago, whose session the loaded document does not know,
waits up to `CATCH_UP` for a newer document and is judged by it. Nothing is allowed meanwhile (the wait
happens before any decision), a session that is still unknown is refused as before, and a revoked or
expired session is never waited for: the document knows it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from mcp_runtime.gateway.exchange import Exchange
from mcp_runtime.policy import SessionState, session_state

FRESH_TOKEN = timedelta(seconds=30)
CATCH_UP = 3.0
POLL = 0.02


async def catch_up(ex: Exchange, *, limit: float = CATCH_UP) -> None:
    """Replace `ex.doc` with a newer document that knows the caller's fresh session, if one arrives in time."""
    caller, doc, now = ex.caller, ex.doc, ex.now
    if caller is None or doc is None or now is None:
        return
    if session_state(doc, caller.identity, now)[0] is not SessionState.not_found:
        return
    if now - caller.claims.issued_at > FRESH_TOKEN:
        return
    source = ex.route.source
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        await asyncio.sleep(POLL)
        latest = source.document
        if latest is None or latest is doc:
            continue
        doc = latest
        if session_state(doc, caller.identity, now)[0] is not SessionState.not_found:
            break
    ex.doc = doc
