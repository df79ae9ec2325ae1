"""The platform API client the CLI and the adapter share: profiles, tokens, refresh, and clear errors.

Profiles live in `~/.mcpruntime/config.json` (`MCP_RUNTIME_CONFIG_DIR` overrides the directory),
written with file mode 0600. The active profile is `MCP_PLATFORM_API_PROFILE`, else the one chosen
with `auth use`. `MCP_PLATFORM_API_TOKEN` (+ `MCP_PLATFORM_API_URL`) bypasses profiles for CI.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mcp_runtime.client.errors import ApiCallError, ClientError

CONFIG_DIR_ENV = "MCP_RUNTIME_CONFIG_DIR"
PROFILE_ENV = "MCP_PLATFORM_API_PROFILE"
TOKEN_ENV = "MCP_PLATFORM_API_TOKEN"
URL_ENV = "MCP_PLATFORM_API_URL"
API_PREFIX = "/api/v1"
DEFAULT_PROFILE = "default"
REFRESH_MARGIN_SECONDS = 30


def config_path() -> Path:
    base = os.environ.get(CONFIG_DIR_ENV)
    return (Path(base).expanduser() if base else Path.home() / ".mcpruntime") / "config.json"


@dataclass
class Profile:
    name: str
    api_url: str
    email: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    access_expires_at: float | None = None  # epoch seconds
    api_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"apiUrl": self.api_url, "email": self.email, "accessToken": self.access_token,
                "refreshToken": self.refresh_token, "accessExpiresAt": self.access_expires_at,
                "apiKey": self.api_key}
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Profile:
        return cls(name=name, api_url=str(data.get("apiUrl", "")), email=data.get("email"),
                   access_token=data.get("accessToken"), refresh_token=data.get("refreshToken"),
                   access_expires_at=data.get("accessExpiresAt"), api_key=data.get("apiKey"))


@dataclass
class Config:
    current: str | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Config:
        path = config_path()
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read {path}: {exc}", hint="fix or delete the file and log in again") from None
        profiles = {name: Profile.from_json(name, data) for name, data in (raw.get("profiles") or {}).items()}
        return cls(current=raw.get("current"), profiles=profiles)

    def save(self) -> None:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {"current": self.current, "profiles": {n: p.to_json() for n, p in sorted(self.profiles.items())}}
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def active_name(self, explicit: str | None = None) -> str | None:
        return explicit or os.environ.get(PROFILE_ENV) or self.current


def login_hint(api_url: str | None = None) -> str:
    return f"run: mcp-runtime auth login --api-url {api_url or '<platform URL>'}"


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url


class ApiClient:
    """Calls the platform API as the active profile, refreshing an expired access token on its own."""

    def __init__(self, profile: Profile, config: Config | None = None, *, timeout: float = 30) -> None:
        self.profile, self.config, self.timeout = profile, config, timeout
        self.last_status: int | None = None

    @classmethod
    def from_environment(cls, profile_name: str | None = None) -> ApiClient:
        token = os.environ.get(TOKEN_ENV)
        config = Config.load()
        name = config.active_name(profile_name)
        if token:
            url = os.environ.get(URL_ENV) or (config.profiles[name].api_url if name in config.profiles else "")
            if not url:
                raise ClientError(f"{TOKEN_ENV} is set but no platform URL is known", hint=f"set {URL_ENV}")
            return cls(Profile(name="env", api_url=normalize_url(url), api_key=token))
        if not name or name not in config.profiles:
            which = f"profile {name!r} does not exist" if name else "not logged in"
            raise ClientError(which, hint=login_hint(os.environ.get(URL_ENV)))
        return cls(config.profiles[name], config)

    # requests -----------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None,
                auth: bool = True) -> Any:
        """Send a request; the JSON answer, or a one-line ClientError from the error envelope."""
        headers: dict[str, str] = {}
        if auth:
            headers["Authorization"] = f"Bearer {self._bearer()}"
        response = self._send(method, path, json_body, params, headers)
        if auth and response.status_code == 401 and self._error_code(response) == "token_expired" \
                and self.profile.refresh_token:
            self.refresh()
            headers["Authorization"] = f"Bearer {self._bearer()}"
            response = self._send(method, path, json_body, params, headers)
        return self._answer(response)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json_body=json_body, **kwargs)

    def put(self, path: str, json_body: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", path, json_body=json_body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def stream_lines(self, path: str, *, params: dict[str, Any] | None = None) -> Iterator[str]:
        """GET a plain-text stream (e.g. `logs?follow=true`) and yield its lines as they arrive."""
        url = f"{self.profile.api_url}{API_PREFIX}/{path.lstrip('/')}"
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        headers = {"Authorization": f"Bearer {self._bearer()}"}
        try:
            with httpx.stream("GET", url, params=clean, headers=headers,
                              timeout=httpx.Timeout(self.timeout, read=None)) as response:
                if not response.is_success:
                    response.read()
                    self._answer(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise ClientError(f"lost the connection to the platform API at {self.profile.api_url} "
                           f"({type(exc).__name__})", hint="is it still running?") from None

    def _send(self, method: str, path: str, json_body: Any, params: dict[str, Any] | None,
              headers: dict[str, str]) -> httpx.Response:
        url = f"{self.profile.api_url}{API_PREFIX}/{path.lstrip('/')}"
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            return httpx.request(method, url, json=json_body, params=clean, headers=headers, timeout=self.timeout)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the platform API at {self.profile.api_url} ({type(exc).__name__})",
                           hint="is it running? check the URL given to --api-url") from None

    @staticmethod
    def _error_code(response: httpx.Response) -> str | None:
        try:
            body = response.json()
        except ValueError:
            return None
        return body.get("error") if isinstance(body, dict) else None

    def _answer(self, response: httpx.Response) -> Any:
        self.last_status = response.status_code  # e.g. 201 created vs 200 updated
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body if body is not None else response.text
        if isinstance(body, dict) and "message" in body:
            raise ApiCallError(response.status_code, str(body.get("error")), str(body["message"]), body)
        raise ApiCallError(response.status_code, "error",
                           f"the platform API answered HTTP {response.status_code}", None)

    # tokens -------------------------------------------------------------------------------------
    def _bearer(self) -> str:
        profile = self.profile
        if profile.api_key:
            return profile.api_key
        if not profile.access_token:
            raise ClientError(f"profile {profile.name!r} has no credentials", hint=login_hint(profile.api_url))
        if profile.access_expires_at is not None \
                and profile.access_expires_at - REFRESH_MARGIN_SECONDS < time.time() \
                and profile.refresh_token:
            self.refresh()
        assert profile.access_token
        return profile.access_token

    def refresh(self) -> None:
        """Trade the refresh token for a new pair and save it (refresh tokens rotate)."""
        if not self.profile.refresh_token:
            raise ClientError("the session expired", hint=login_hint(self.profile.api_url))
        try:
            answer = self._answer(self._send("POST", "auth/refresh", {"refreshToken": self.profile.refresh_token},
                                             None, {}))
        except ApiCallError as exc:
            raise ClientError(f"the login expired ({exc.message})", hint=login_hint(self.profile.api_url)) from None
        self.store_tokens(answer)

    def store_tokens(self, answer: dict[str, Any]) -> None:
        self.profile.access_token = answer["accessToken"]
        self.profile.refresh_token = answer["refreshToken"]
        self.profile.access_expires_at = time.time() + float(answer.get("expiresIn", 0))
        self.profile.email = answer.get("user", {}).get("email", self.profile.email)
        if self.config is not None:
            self.config.profiles[self.profile.name] = self.profile
            self.config.save()


def client(profile: str | None = None) -> ApiClient:
    return ApiClient.from_environment(profile)
