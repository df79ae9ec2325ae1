"""Editing grants in the dashboard, with a "Preview impact" step before anything is saved or deleted.

    edit (YAML) --Preview impact--> the calls of the window that would be decided differently --Save grant-->
    Delete ------------------------> the calls that would be decided differently -------------Delete grant->

The preview is `POST runtime/simulate` (the platform's `SimulationService`), so it shows what the CLI's
`access simulate` shows. Saving needs a preview of exactly the text being saved: the form carries the
digest of the previewed text, and a changed text is previewed again instead of saved. Every form is a
POST with the CSRF token; a bad YAML or a refused change comes back on the form with the text kept.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import yaml
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.errors import ApiError, validation_message
from mcp_runtime.platform.simulate import SimulateRequest
from mcp_runtime.resources import GROUP_VERSION, MCPAccessGrant, MCPServer, dump_resource
from mcp_runtime.web.session import Login

WINDOWS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
DEFAULT_WINDOW = "7d"
MAX_GRANT_TEXT = 12 * 1024


class Pages(Protocol):
    """What the editor needs of the dashboard (app.py's `Dashboard`)."""

    platform: Platform

    def render(self, request: Request, template: str, login: Login | None, status: int = 200,
               **context: Any) -> Response: ...

    def redirect(self, request: Request, path: str, **query: str) -> RedirectResponse: ...


def grant_yaml(grant: MCPAccessGrant) -> str:
    """The YAML a user edits: the resource without status and without the fields the platform sets."""
    doc = dump_resource(grant)
    meta = {key: doc["metadata"][key] for key in ("name", "namespace", "labels", "annotations")
            if doc["metadata"].get(key)}
    return str(yaml.safe_dump({"apiVersion": doc["apiVersion"], "kind": doc["kind"], "metadata": meta,
                               "spec": doc["spec"]}, sort_keys=False))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _parse(text: str) -> dict[str, Any]:
    """The grant document of a form's text; an ApiError (422) that says what is wrong."""
    if len(text) > MAX_GRANT_TEXT:
        raise ApiError(422, "invalid_request", f"the grant is longer than {MAX_GRANT_TEXT} characters")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ApiError(422, "invalid_request", f"the grant is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(422, "invalid_request", "the grant must be one MCPAccessGrant (a YAML mapping)")
    return doc


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _target(doc: dict[str, Any]) -> tuple[str, str | None]:
    """The server and namespace a grant document is for."""
    spec, meta = _mapping(doc.get("spec")), _mapping(doc.get("metadata"))
    ref = _mapping(spec.get("serverRef"))
    server = ref.get("name")
    if not isinstance(server, str) or not server:
        raise ApiError(422, "invalid_request", "spec.serverRef.name is required: the server the grant is for")
    namespace = meta.get("namespace") or ref.get("namespace")
    return server, namespace if isinstance(namespace, str) and namespace else None


class GrantEditor:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    @property
    def platform(self) -> Platform:
        return self.pages.platform

    def routes(self, page: Any) -> list[Route]:
        """`page` is the dashboard's wrapper (sign-in, CSRF for posts, handlers in the thread pool)."""
        return [
            Route("/grants/new", page(self.new)),
            Route("/grants/preview", page(self.preview, post=True), methods=["POST"]),
            Route("/grants/save", page(self.save, post=True), methods=["POST"]),
            Route("/grants/{namespace}/{name}/edit", page(self.edit)),
            Route("/grants/{namespace}/{name}/delete", page(self.delete_preview)),
            Route("/grants/{namespace}/{name}/delete", page(self.delete, post=True), methods=["POST"]),
        ]

    # the form -------------------------------------------------------------------------------------
    def new(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        return self._form(request, login, self._template(login), title="New grant")

    def edit(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        grant = self.platform.access.get_grant(login.principal, namespace, name)
        return self._form(request, login, grant_yaml(grant), title=f"Edit grant {name}")

    def _form(self, request: Request, login: Login, text: str, *, title: str, since: str = DEFAULT_WINDOW,
              error: str | None = None, status: int = 200) -> Response:
        return self.pages.render(request, "grant_form.html", login, status=status, nav="grants", title=title,
                                 grant_text=text, since=since, windows=WINDOWS, error=error)

    def _template(self, login: Login) -> str:
        """A starting point in a namespace the user may write, for one of its servers."""
        principal = login.principal
        servers = [s for s in self.platform.servers.list(principal) if principal.can_write(s.metadata.namespace or "")]
        server: MCPServer | None = servers[0] if servers else None
        doc = {"apiVersion": GROUP_VERSION, "kind": "MCPAccessGrant",
               "metadata": {"name": "new-grant", "namespace": server.metadata.namespace if server else "NAMESPACE"},
               "spec": {"serverRef": {"name": server.metadata.name if server else "SERVER"},
                        "subject": {"agentID": "cursor"}, "maxTrust": "low",
                        "toolRules": [{"name": t.name} for t in (server.spec.tools[:1] if server else [])]}}
        return str(yaml.safe_dump(doc, sort_keys=False))

    # preview and save -------------------------------------------------------------------------------
    def preview(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        text, since = fields.get("grant", ""), self._since(fields.get("since"))
        try:
            doc = _parse(text)
            server, namespace = _target(doc)
            try:
                request_ = SimulateRequest(server=server, namespace=namespace, since=since, grants=[doc])
            except ValidationError as exc:  # e.g. a server name longer than any server has
                raise ApiError(422, "invalid_request", validation_message(exc.errors())) from None
            report = self.platform.simulation.simulate(login.principal, request_)
        except ApiError as exc:
            return self._form(request, login, text, title="Edit grant", since=since, error=exc.message,
                              status=exc.status)
        name = _mapping(doc.get("metadata")).get("name", "")
        return self.pages.render(request, "grant_preview.html", login, nav="grants", mode="save", report=report,
                                 grant_name=name, grant_text=text, previewed=digest(text), since=since,
                                 windows=WINDOWS)

    def save(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        text = fields.get("grant", "")
        if fields.get("previewed") != digest(text):  # changed since its preview: show the impact of this text
            return self.preview(request, login, fields)
        try:
            doc = _parse(text)
            _, namespace = _target(doc)
            name = str(_mapping(doc.get("metadata")).get("name", ""))
            access = self.platform.access
            exists = namespace is not None and self.platform.repo.get(MCPAccessGrant, namespace, name) is not None
            saved = (access.replace_grant(login.principal, namespace or "", name, doc) if exists
                     else access.create_grant(login.principal, doc))
        except ApiError as exc:
            return self._form(request, login, text, title="Edit grant", since=self._since(fields.get("since")),
                              error=exc.message, status=exc.status)
        meta, done = saved.metadata, "updated" if exists else "created"
        return self.pages.redirect(request, "/grants", notice=f"Grant {meta.name} {done} in {meta.namespace}.")

    # delete -----------------------------------------------------------------------------------------
    def delete_preview(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        since = self._since(request.query_params.get("since"))
        grant = self.platform.access.get_grant(login.principal, namespace, name)
        report = self.platform.simulation.simulate(login.principal, SimulateRequest(
            server=grant.spec.server_ref.name, namespace=namespace, since=since, delete_grants=[name]))
        return self.pages.render(request, "grant_preview.html", login, nav="grants", mode="delete", report=report,
                                 grant_name=name, grant_namespace=namespace, since=since, windows=WINDOWS)

    def delete(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        self.platform.access.delete_grant(login.principal, namespace, name)
        return self.pages.redirect(request, "/grants", notice=f"Grant {name} deleted from {namespace}.")

    @staticmethod
    def _since(value: str | None) -> str:
        return value if value in WINDOWS else DEFAULT_WINDOW
