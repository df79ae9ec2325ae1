"""The session token both adapters inject: obtained from the platform, renewed before it expires.

With `--server`, the token comes from `POST runtime/adapter/sessions` as the saved CLI profile (the
same `ApiClient` the CLI uses, so an expired platform access token is refreshed on the way). With
`--auto-refresh`, a background task renews the session at 80% of its lifetime, and a call that meets
an expired token anyway renews and is retried once, so callers never see an expiry. Without it the
gateway's answer reaches the client as a `session_expired` JSON-RPC error.

Failures become `AdapterError(reason, message, hint)`: one line for the CLI, `data.reason` for
JSON-RPC clients.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_runtime.adapter.config import AdapterSettings
from mcp_runtime.client import ApiCallError, ApiClient, ClientError

log = logging.getLogger("mcp_runtime.adapter")

REFRESH_FRACTION = 0.8
MIN_REFRESH_DELAY = 0.5
RETRY_AFTER_FAILURE = 5.0
SAME_TOKEN_RETRY = 2.0
EXPIRED_REASONS = frozenset({"token_expired", "session_expired", "session_not_found"})


class AdapterError(ClientError):
    """A failure the user can act on: `reason` is a stable code, `message` one sentence, `hint` the fix."""

    def __init__(self, reason: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason

    def line(self) -> str:
        return self.message + (f" ({self.hint})" if self.hint else "")


@dataclass(frozen=True)
class IssuedSession:
    """A token and what the adapter knows about it. `valid_until` is on this machine's monotonic clock."""

    token: str
    name: str | None = None
    namespace: str | None = None
    server: str | None = None
    human_id: str | None = None
    agent_id: str | None = None
    expires_at: str | None = None
    lifetime: float | None = None  # seconds, from the token's own exp - iat (immune to clock skew)
    received: float = 0.0  # time.monotonic() when it arrived

    @property
    def refresh_due(self) -> float | None:
        if self.lifetime is None:
            return None
        return self.received + max(self.lifetime * REFRESH_FRACTION, min(self.lifetime, MIN_REFRESH_DELAY))

    @property
    def valid_until(self) -> float | None:
        return None if self.lifetime is None else self.received + self.lifetime


def token_lifetime(token: str) -> tuple[float | None, float | None]:
    """`(exp, lifetime)` read from a JWT's payload, unverified: only used to time the renewal."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp, iat = float(claims["exp"]), float(claims.get("iat", time.time()))
    except (IndexError, ValueError, KeyError, TypeError):
        return None, None
    return exp, max(exp - iat, 0.0)


class SessionManager:
    """Holds the current session token; issues, renews and explains failures for both adapters."""

    def __init__(self, settings: AdapterSettings) -> None:
        self.settings = settings
        self.current: IssuedSession | None = None
        self.last_error: AdapterError | None = None
        self._lock = asyncio.Lock()

    @property
    def auto_refresh(self) -> bool:
        return self.settings.auto_refresh

    # obtaining tokens ---------------------------------------------------------------------------
    def issue_sync(self) -> IssuedSession:
        """Get a token now (blocking): from the platform with `--server`, else from the token source."""
        settings = self.settings
        if settings.static_token is not None:
            issued = self._from_token(settings.static_token)
        elif settings.token_file is not None:
            issued = self._from_token(self._read_token_file(settings.token_file))
        else:
            issued = self._from_platform()
        self.current, self.last_error = issued, None
        return issued

    def _from_token(self, token: str) -> IssuedSession:
        token = token.strip()
        if not token:
            raise AdapterError("missing_token", "the session token is empty",
                               hint="pass a token from 'mcp-runtime access session apply', or use --server")
        exp, lifetime = token_lifetime(token)
        expires = datetime.fromtimestamp(exp, UTC).isoformat() if exp is not None else None
        # A token from a file may be old: date its lifetime from when it was issued, not from now.
        age = max(time.time() - (exp - lifetime), 0.0) if exp is not None and lifetime is not None else 0.0
        return IssuedSession(token=token, server=self.settings.server, expires_at=expires, lifetime=lifetime,
                             received=time.monotonic() - age)

    @staticmethod
    def _read_token_file(path: str) -> str:
        try:
            return Path(path).expanduser().read_text()
        except OSError as exc:
            raise AdapterError("missing_token", f"cannot read the session token file {path}: {exc.strerror}",
                               hint="check --session-token-file") from None

    def _from_platform(self) -> IssuedSession:
        settings = self.settings
        login = f"run: mcp-runtime auth login --api-url {settings.platform_url_guess}"
        try:
            # Load the profile afresh each time: another CLI command may have rotated its refresh token.
            api = ApiClient.from_environment(settings.profile)
        except ClientError as exc:
            raise AdapterError("not_logged_in", f"{exc.message}: the adapter gets sessions as your platform user",
                               hint=login) from None
        started = time.monotonic()
        try:
            answer = api.post("runtime/adapter/sessions", settings.session_request())
        except ApiCallError as exc:
            raise self._platform_refusal(exc, login) from None
        except ClientError as exc:
            if exc.message.startswith("cannot reach"):
                raise AdapterError("platform_unreachable", exc.message, hint=exc.hint) from None
            raise AdapterError("not_logged_in", exc.message, hint=exc.hint or login) from None
        token = str(answer["token"])
        _exp, lifetime = token_lifetime(token)
        session = answer.get("session") or {}
        return IssuedSession(
            token=token, name=(session.get("metadata") or {}).get("name"), namespace=answer.get("namespace"),
            server=answer.get("server"), human_id=answer.get("humanID"), agent_id=answer.get("agentID"),
            expires_at=answer.get("expiresAt"), lifetime=lifetime, received=started)

    def _platform_refusal(self, exc: ApiCallError, login: str) -> AdapterError:
        settings = self.settings
        agent_id = settings.agent_id or settings.agent or "<agent>"
        if exc.code == "no_matching_grant":
            namespace = settings.namespace or "<the server's namespace>"
            create = (f"the server's team can create one: mcp-runtime access grant init {settings.server}-{agent_id} "
                      f"--server {settings.server} --namespace {namespace} --agent-id {agent_id} --tool <tool> "
                      f"--output grant.yaml && mcp-runtime access grant apply --file grant.yaml")
            return AdapterError("no_matching_grant", exc.message, hint=create)
        if exc.code == "session_revoked":
            return AdapterError("session_revoked", exc.message)
        if exc.code == "namespace_ambiguous":
            candidates = ((exc.body or {}).get("details") or {}).get("candidates") or []
            return AdapterError("namespace_ambiguous", exc.message,
                                hint="pass --namespace " + " or --namespace ".join(candidates) if candidates else None)
        if exc.status == 401:
            return AdapterError("not_logged_in", f"the platform did not accept your login ({exc.message})",
                                hint=login)
        return AdapterError(exc.code or "platform_error", exc.message)

    async def token(self) -> str:
        """The token to send now; with auto-refresh, renewed first when it is due."""
        current = self.current
        if current is None:
            return (await self.renew(None)).token
        due = current.refresh_due
        if self.auto_refresh and due is not None and time.monotonic() >= due:
            try:
                return (await self.renew(current.token)).token
            except AdapterError:
                valid = current.valid_until
                if valid is not None and time.monotonic() < valid:
                    return current.token  # still usable: try to renew again on the next call
                raise
        return current.token

    async def renew(self, stale: str | None) -> IssuedSession:
        """A fresh session, once for all concurrent callers that saw the same `stale` token."""
        async with self._lock:
            current = self.current
            if current is not None and current.token != stale:
                return current
            try:
                issued = await asyncio.to_thread(self.issue_sync)
            except AdapterError as exc:
                self.last_error = exc
                raise
            if current is not None:
                log.info("session renewed (expires %s)", issued.expires_at)
            return issued

    async def refresher(self) -> None:
        """Background renewal at 80% of each session's lifetime (auto-refresh mode); runs until cancelled."""
        while True:
            current = self.current
            due = current.refresh_due if current is not None else None
            if current is None or due is None:
                await asyncio.sleep(RETRY_AFTER_FAILURE)
                if self.current is None:
                    try:
                        await self.renew(None)
                    except AdapterError as exc:
                        log.warning("could not get a session: %s", exc.line())
                continue
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
            try:
                renewed = await self.renew(current.token)
                if renewed.token == current.token:  # a token file nobody rewrote yet: look again later
                    await asyncio.sleep(SAME_TOKEN_RETRY)
            except AdapterError as exc:
                log.warning("could not renew the session: %s", exc.line())
                await asyncio.sleep(min(RETRY_AFTER_FAILURE, max((current.lifetime or 10) / 10, 0.2)))

    # explaining the runtime's refusals ----------------------------------------------------------
    def runtime_refusal(self, status: int, reason: str, message: str) -> AdapterError:
        """The gateway's `{"error", "message"}` refusal as an AdapterError with a message that says what to do."""
        current = self.current
        server = self.settings.server or (current.server if current else None) or "the server"
        if reason in ("token_expired", "session_expired"):
            if self.settings.server:
                fix = "restart the adapter, or run it with --auto-refresh to renew sessions before they expire"
            else:
                fix = "get a new token ('mcp-runtime access session apply') or run the adapter with --server " \
                      "and --auto-refresh"
            return AdapterError("session_expired", f"your session for {server} expired: {fix}")
        if reason == "session_revoked":
            name = current.name if current and current.name else "<session>"
            namespace = current.namespace if current and current.namespace else "<namespace>"
            return AdapterError("session_revoked",
                                f"your session {name} on {server} was revoked; an admin must unrevoke it: "
                                f"mcp-runtime access session unrevoke {name} --namespace {namespace}")
        return AdapterError(reason, message)

    def unreachable(self, exc: Exception) -> AdapterError:
        return AdapterError("runtime_unreachable",
                            f"cannot reach the runtime at {self.settings.runtime_url} ({type(exc).__name__})",
                            hint="is the platform running? check --runtime-url")

    def describe(self) -> dict[str, Any]:
        current = self.current
        return {"runtimeUrl": self.settings.runtime_url, "server": self.settings.server,
                "autoRefresh": self.auto_refresh,
                "session": None if current is None else {
                    "name": current.name, "namespace": current.namespace, "expiresAt": current.expires_at,
                    "humanID": current.human_id, "agentID": current.agent_id},
                "lastError": None if self.last_error is None else {
                    "reason": self.last_error.reason, "message": self.last_error.message}}
