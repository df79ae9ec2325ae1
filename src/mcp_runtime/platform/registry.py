"""The platform registry: where images live, who may push which repository, and what is in it.

The registry host is, in order: the one provisioned with `registry provision --url` (kept in
`<data_dir>/registry.json`), `PlatformSettings.registry_host` / `$MCP_RUNTIME_REGISTRY`, else the bundled
registry's address. Pushes are authorised here before the CLI sends any layer: a tenant repository must
be under one of the caller's team slugs, org/ and public/ need write access to those catalogs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from mcp_runtime.manifests.images import (
    DEFAULT_REGISTRY_ADDRESS,
    REGISTRY_ENV,
    ImageRef,
    ImageRefError,
    is_insecure_registry,
    scope_of_repository,
    scoped_repository,
)
from mcp_runtime.platform.errors import ApiError
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.settings import ORG_NAMESPACE, PUBLIC_NAMESPACE, PlatformSettings
from mcp_runtime.platform.visibility import require_admin, require_write
from mcp_runtime.resources import Scope
from mcp_runtime.store import AuditRecord, ControlPlaneStore

CATALOG_LIMIT = 1000


def registry_host_of(url: str) -> str:
    """`https://registry.example.com/` -> `registry.example.com` (what image references start with)."""
    text = url.strip().rstrip("/")
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    if not text or "/" in text:
        raise ApiError(422, "invalid_request", f"registry URL {url!r} must be a host[:port] (no path)")
    return text


class RegistryService:
    def __init__(self, settings: PlatformSettings, store: ControlPlaneStore) -> None:
        self.settings, self.store = settings, store

    @property
    def _file(self) -> Path:
        return Path(self.settings.data_dir) / "registry.json"

    def _provisioned(self) -> str | None:
        try:
            return str(json.loads(self._file.read_text())["host"]) or None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def host(self) -> str:
        configured = getattr(self.settings, "registry_host", None)
        return self._provisioned() or configured or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY_ADDRESS

    def kind(self) -> str:
        return "external" if self._provisioned() else "bundled" if self.host() == DEFAULT_REGISTRY_ADDRESS \
            else "configured"

    def url(self) -> str:
        host = self.host()
        return f"{'http' if is_insecure_registry(host) else 'https'}://{host}"

    def info(self) -> dict[str, Any]:
        return {"host": self.host(), "url": self.url(), "kind": self.kind(),
                "prefixes": {"tenant": "<team slug>/", "org": "org/", "public": "public/"}}

    def status(self) -> dict[str, Any]:
        """Whether the registry answers its API root (`/v2/`)."""
        try:
            response = httpx.get(f"{self.url()}/v2/", timeout=3.0)
            reachable = response.status_code in (200, 401)
            detail = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            reachable, detail = False, f"{type(exc).__name__}: {exc}"
        return {**self.info(), "reachable": reachable, "detail": detail}

    def provision(self, caller: Principal, url: str) -> dict[str, Any]:
        require_admin(caller, "configure the registry")
        host = registry_host_of(url)
        before = self.info()
        self._file.parent.mkdir(parents=True, exist_ok=True)
        self._file.write_text(json.dumps({"host": host}))
        self.store.append_audit(AuditRecord(actor=caller.email, action="update", kind="Registry", name=host,
                                            before=before, after=self.info()))
        return self.info()

    # --- push authorization ----------------------------------------------------------------------------
    def authorize_push(self, caller: Principal, image: str, scope: Scope, team: str | None) -> dict[str, Any]:
        """The exact reference the caller may push `image` as, or 403/422 saying why not."""
        try:
            ref = ImageRef.parse(image)
        except ImageRefError as exc:
            raise ApiError(422, "invalid_image", str(exc)) from None
        host = self.host()
        if ref.host is not None and ref.host != host:
            raise ApiError(422, "wrong_registry",
                           f"{image} names registry {ref.host}, but this platform's registry is {host}: "
                           f"tag the image as {host}/{ref.repository}:{ref.tag} (or push the short name)")
        slug = self._team_slug(caller, scope, team, ref)
        allowed = tuple(t.slug for t in (self.store.list_teams() if caller.is_admin else caller.teams))
        try:
            repository = scoped_repository(ref.repository, scope, slug, allowed)
        except ImageRefError as exc:
            raise ApiError(403, "forbidden", str(exc)) from None
        namespace = self._namespace(scope, repository)
        require_write(caller, namespace, f"push {scope} images")
        reference = str(ImageRef(host, repository, ref.tag))
        self.store.append_audit(AuditRecord(actor=caller.email, action="push", kind="Image", namespace=namespace,
                                            name=reference))
        return {"reference": reference, "registry": host, "repository": repository, "tag": ref.tag,
                "scope": str(scope), "namespace": namespace, "insecure": is_insecure_registry(host)}

    def _team_slug(self, caller: Principal, scope: Scope, team: str | None, ref: ImageRef) -> str | None:
        if scope != Scope.tenant:
            return None
        if team:
            return team
        if ref.prefix is not None:
            return None  # the prefix must be one of the caller's teams (checked by scoped_repository)
        teams = caller.teams
        if len(teams) == 1:
            return teams[0].slug
        if not teams:
            raise ApiError(422, "team_required", "tenant images live under your team's prefix, but you belong to "
                                                 "no team: pass --team or use scope org/public as an admin")
        raise ApiError(409, "team_ambiguous", f"you belong to several teams ({', '.join(t.slug for t in teams)}): "
                                              "choose one with --team or prefix the image with the team slug")

    def _namespace(self, scope: Scope, repository: str) -> str:
        if scope == Scope.org:
            return ORG_NAMESPACE
        if scope == Scope.public:
            return PUBLIC_NAMESPACE
        slug = repository.split("/", 1)[0]
        team = self.store.get_team(slug)
        if team is None:
            raise ApiError(404, "not_found", f"team {slug} not found")
        return team.namespace

    # --- catalog ---------------------------------------------------------------------------------------
    def catalog(self, caller: Principal) -> list[dict[str, Any]]:
        """Repositories (with tags) the caller may see: their teams', org/ and public/ (admins: all)."""
        try:
            with httpx.Client(base_url=self.url(), timeout=5.0) as client:
                response = client.get("/v2/_catalog", params={"n": CATALOG_LIMIT})
                response.raise_for_status()
                names = response.json().get("repositories") or []
                slugs = {t.slug for t in caller.teams}
                items = []
                for name in names:
                    scope = scope_of_repository(name)
                    if not (caller.is_admin or scope != Scope.tenant or name.split("/", 1)[0] in slugs):
                        continue
                    tags_answer = client.get(f"/v2/{name}/tags/list")
                    tags = (tags_answer.json().get("tags") or []) if tags_answer.is_success else []
                    items.append({"repository": name, "scope": str(scope), "tags": sorted(tags),
                                  "image": f"{self.host()}/{name}"})
                return items
        except (httpx.HTTPError, ValueError) as exc:
            raise ApiError(502, "registry_unavailable",
                           f"the registry at {self.url()} does not answer ({type(exc).__name__}): "
                           "check `mcp-runtime registry status`") from None
