"""Resources in and out of Kubernetes-style YAML/JSON, with errors a person can act on.

Parsing is pure (text in, models out); reading files is left to callers so this package does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mcp_runtime.resources.common import GROUP_VERSION
from mcp_runtime.resources.kinds import KINDS, Resource
from mcp_runtime.resources.metadata import ServersFile

M = TypeVar("M", bound=BaseModel)


class ResourceError(ValueError):
    """Invalid resource input. The message names the source, the field, the value and the fix."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


def parse_yaml(text: str, *, source: str | None = None) -> Any:
    """Parse YAML text; a syntax error becomes a ResourceError with the line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable YAML"
        raise ResourceError(f"not valid YAML{where}: {problem}; fix the syntax and retry", source=source) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: `field: what is wrong (value: ...)`, fields in camelCase as written."""
    lines = []
    for err in exc.errors():
        loc = _location(err["loc"])
        kind = err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            field = str(err["loc"][-1])
            lines.append(f"unknown field {field!r} at {loc}: remove it or check its spelling")
        elif kind == "missing":
            lines.append(f"{loc}: missing required field")
        elif kind in ("enum", "literal_error"):
            expected = err.get("ctx", {}).get("expected", "")
            lines.append(f"{loc}: {value!r} is not allowed; use one of {expected}")
        elif kind == "value_error":
            lines.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}" if loc else
                         err["msg"].removeprefix("Value error, "))
        else:
            shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
            lines.append(f"{loc}: {err['msg']}{shown}")
    return "; ".join(lines)


def _location(parts: tuple[int | str, ...]) -> str:
    """`('spec', 'tools', 0, 'sideEffect')` -> `spec.tools[0].sideEffect`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith(("function-", "tagged-union")):
            text += f".{part}" if text else str(part)
    return text


def validate_model(model: type[M], data: Any, *, source: str | None = None) -> M:
    """Validate `data` against `model`, turning pydantic's error into a ResourceError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ResourceError(describe_validation_error(exc), source=source) from None


def load_resource(data: str | Mapping[str, Any], *, source: str | None = None) -> Resource:
    """Load one MCPServer, MCPAccessGrant or MCPAgentSession from YAML text or a parsed mapping."""
    obj = parse_yaml(data, source=source) if isinstance(data, str) else data
    if not isinstance(obj, Mapping):
        raise ResourceError("expected a YAML mapping with apiVersion, kind, metadata and spec", source=source)
    api_version = obj.get("apiVersion")
    if api_version != GROUP_VERSION:
        raise ResourceError(f"apiVersion {api_version!r} is not supported; use {GROUP_VERSION}", source=source)
    kind = obj.get("kind")
    model = KINDS.get(str(kind))
    if model is None:
        raise ResourceError(f"kind {kind!r} is not supported; use one of {', '.join(KINDS)}", source=source)
    return validate_model(model, obj, source=source)


def load_resources(text: str, *, source: str | None = None) -> list[Resource]:
    """Load every document of a multi-document YAML stream (empty documents are skipped)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        parse_yaml(text, source=source)  # re-raise with position
        raise
    return [load_resource(doc, source=source) for doc in docs]


def dump_resource(resource: BaseModel) -> dict[str, Any]:
    """The Kubernetes JSON of a resource: camelCase, without unset fields or empty lists and maps."""
    pruned = _prune(resource.model_dump(by_alias=True, mode="json", exclude_none=True))
    assert isinstance(pruned, dict)
    return pruned


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def to_yaml(data: BaseModel | Mapping[str, Any] | list[Any]) -> str:
    """YAML text with keys in model order (apiVersion, kind, metadata, spec, status)."""
    plain = dump_resource(data) if isinstance(data, BaseModel) else data
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)


def load_servers_file(text: str, *, source: str | None = None) -> ServersFile:
    """Parse `.mcp/servers.yaml`; an empty file is an empty server list."""
    obj = parse_yaml(text, source=source)
    if obj is None:
        return ServersFile()
    if not isinstance(obj, Mapping):
        raise ResourceError("expected a mapping with 'version' and 'servers'", source=source)
    return validate_model(ServersFile, obj, source=source)
