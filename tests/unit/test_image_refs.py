"""Image references and scope prefixes: what `server build image` tags and `registry push` may send."""

from __future__ import annotations

import pytest

from mcp_runtime.manifests.images import (
    ImageRef,
    ImageRefError,
    is_insecure_registry,
    scope_of_repository,
    scoped_repository,
)
from mcp_runtime.resources import Scope


@pytest.mark.parametrize(("text", "host", "repository", "tag"), [
    ("payments", None, "payments", "latest"),
    ("payments:v1", None, "payments", "v1"),
    ("acme/payments:v1", None, "acme/payments", "v1"),
    ("127.0.0.1:5000/acme/payments:v1", "127.0.0.1:5000", "acme/payments", "v1"),
    ("registry.example.com/org/payments", "registry.example.com", "org/payments", "latest"),
    ("localhost/payments:dev", "localhost", "payments", "dev"),
])
def test_parse(text: str, host: str | None, repository: str, tag: str) -> None:
    ref = ImageRef.parse(text)
    assert (ref.host, ref.repository, ref.tag) == (host, repository, tag)
    assert str(ref) == f"{host + '/' if host else ''}{repository}:{tag}"


@pytest.mark.parametrize("text", ["", "Payments:v1", "acme//x", "x@sha256:abc", "x:bad tag"])
def test_parse_rejects_what_registries_reject(text: str) -> None:
    with pytest.raises(ImageRefError):
        ImageRef.parse(text)


def test_short_names_get_the_scope_prefix() -> None:
    assert scoped_repository("payments", Scope.tenant, "acme") == "acme/payments"
    assert scoped_repository("payments", Scope.org, None) == "org/payments"
    assert scoped_repository("payments", Scope.public, None) == "public/payments"


def test_a_tenant_prefix_must_be_one_of_the_callers_teams() -> None:
    assert scoped_repository("globex/payments", Scope.tenant, None, ("acme", "globex")) == "globex/payments"
    with pytest.raises(ImageRefError, match="not one of your teams"):
        scoped_repository("globex/payments", Scope.tenant, None, ("acme",))
    with pytest.raises(ImageRefError, match="log in"):
        scoped_repository("payments", Scope.tenant, None)


def test_org_and_public_prefixes_must_match_the_scope() -> None:
    assert scoped_repository("org/payments", Scope.org, None) == "org/payments"
    with pytest.raises(ImageRefError, match="org images live under org/"):
        scoped_repository("public/payments", Scope.org, None)
    assert scope_of_repository("org/x") == Scope.org
    assert scope_of_repository("public/x") == Scope.public
    assert scope_of_repository("acme/x") == Scope.tenant


def test_only_loopback_registries_are_plain_http() -> None:
    assert is_insecure_registry("127.0.0.1:5000")
    assert is_insecure_registry("localhost:5000")
    assert not is_insecure_registry("registry.example.com")
    assert not is_insecure_registry("10.0.0.5:5000")
