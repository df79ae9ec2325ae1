"""Image references and registry scopes: which repository an image lands in, and who may push there.

Pure rules shared by the CLI (`server build image`, `registry push`), the platform (`registry/authorize`),
the runtimes and the renderer, so a build tags exactly what a push will be allowed to send and a
deploy pulls exactly that.

Scopes map to repository prefixes: `tenant` -> `<team slug>/`, `org` -> `org/`, `public` -> `public/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcp_runtime.resources import Scope

DEFAULT_REGISTRY_ADDRESS = "127.0.0.1:5000"
"""Where the bundled registry listens unless told otherwise; also the fallback image registry host."""
REGISTRY_ENV = "MCP_RUNTIME_REGISTRY"
"""Overrides the registry host images are tagged for and pushed to (CLI) and the platform reports."""
ORG_PREFIX = "org"
PUBLIC_PREFIX = "public"
_REPO_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def has_registry_host(image: str) -> bool:
    """True when the image names its registry (`host.tld/...`, `host:5000/...`, `localhost/...`).

    Same rule as docker and podman: only a first path component with a '.' or ':' (or `localhost`)
    is a host; `payments:v1` and `acme/payments` are short names.
    """
    if "/" not in image:
        return False
    first = image.split("/", 1)[0]
    return "." in first or ":" in first or first == "localhost"


def qualify_image(image_ref: str, registry_host: str | None) -> str:
    """Prefix a short image name with the platform registry host; full references are kept."""
    if not registry_host or has_registry_host(image_ref):
        return image_ref
    return f"{registry_host.rstrip('/')}/{image_ref}"


def registry_host(text: str) -> str:
    """`https://registry.example.com/` -> `registry.example.com`: a registry as images name it."""
    return text.strip().rstrip("/").removeprefix("https://").removeprefix("http://")


def is_insecure_registry(host: str) -> bool:
    """Loopback registries are plain HTTP (the bundled one); everything else gets TLS."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0].lstrip("[")
    return name in ("localhost", "127.0.0.1", "::1")


class ImageRefError(ValueError):
    """An image reference that cannot be used; the message says how to write it."""


@dataclass(frozen=True)
class ImageRef:
    """`[host/]repository[:tag]` (digests are kept in `tag` as `@sha256:...` are not supported here)."""

    host: str | None
    repository: str
    tag: str = "latest"

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        text = text.strip()
        if not text or "@" in text:
            raise ImageRefError(f"image reference {text!r} is not of the form [registry/]repository[:tag] "
                                "(digests are not supported: push by tag)")
        host: str | None = None
        rest = text
        if has_registry_host(text):
            host, rest = text.split("/", 1)
        repository, tag = rest, "latest"
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            repository, tag = rest.rsplit(":", 1)
        for component in repository.split("/"):
            if not _REPO_COMPONENT.match(component):
                raise ImageRefError(f"repository {repository!r} in {text!r} is not valid: use lowercase letters, "
                                    "digits and . _ - separated by /")
        if not _TAG.match(tag):
            raise ImageRefError(f"tag {tag!r} in {text!r} is not valid: letters, digits, _ . - (max 128)")
        return cls(host=host, repository=repository, tag=tag)

    @property
    def prefix(self) -> str | None:
        """The first repository component when there are several (`acme` of `acme/payments`)."""
        return self.repository.split("/", 1)[0] if "/" in self.repository else None

    def __str__(self) -> str:
        head = f"{self.host}/" if self.host else ""
        return f"{head}{self.repository}:{self.tag}"


def scope_prefix(scope: Scope, team_slug: str | None) -> str:
    """The repository prefix of a scope; tenant needs the team slug."""
    if scope == Scope.org:
        return ORG_PREFIX
    if scope == Scope.public:
        return PUBLIC_PREFIX
    if not team_slug:
        raise ImageRefError("tenant images live under the team's slug: log in (or pass --team) so the team "
                            "is known")
    return team_slug


def scoped_repository(repository: str, scope: Scope, team_slug: str | None,
                      allowed_teams: tuple[str, ...] = ()) -> str:
    """The repository with its scope prefix: short names get it, prefixed names must match it.

    For tenant, a repository that already has a prefix must name one of `allowed_teams` (or `team_slug`).
    """
    prefix = repository.split("/", 1)[0] if "/" in repository else None
    if scope == Scope.tenant:
        teams = set(allowed_teams) | ({team_slug} if team_slug else set())
        if prefix is not None:
            if prefix not in teams:
                mine = ", ".join(sorted(teams)) or "none"
                raise ImageRefError(f"tenant image {repository!r} is under {prefix}/, which is not one of your "
                                    f"teams ({mine}): push it under your team's prefix")
            return repository
        return f"{scope_prefix(scope, team_slug)}/{repository}"
    wanted = scope_prefix(scope, team_slug)
    if prefix is not None:
        if prefix != wanted:
            raise ImageRefError(f"{scope} images live under {wanted}/, not {prefix}/: rename the image or "
                                f"choose the scope that matches")
        return repository
    return f"{wanted}/{repository}"


def scope_of_repository(repository: str) -> Scope:
    """Which scope a repository in the platform registry belongs to (tenant unless org/ or public/)."""
    prefix = repository.split("/", 1)[0]
    if prefix == ORG_PREFIX:
        return Scope.org
    if prefix == PUBLIC_PREFIX:
        return Scope.public
    return Scope.tenant
