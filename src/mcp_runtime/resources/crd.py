"""CustomResourceDefinitions generated from the pydantic models (no hand-written schema).

Kubernetes wants *structural* OpenAPI v3 schemas: no `$ref`, no `anyOf` with null (use
`nullable`), no `const`, no `additionalProperties` beside `properties`, and
`x-kubernetes-int-or-string` for int-or-string fields. `structural_schema` does that rewrite.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from mcp_runtime.resources.access import AccessGrantSpec, AccessStatus, AgentSessionSpec
from mcp_runtime.resources.common import API_GROUP, API_VERSION
from mcp_runtime.resources.kinds import BY_KIND, GRANT_KIND, SERVER_KIND, SESSION_KIND, VIRTUAL_KIND
from mcp_runtime.resources.server import MCPServerSpec, MCPServerStatus
from mcp_runtime.resources.virtual import VirtualServerSpec, VirtualServerStatus

_DROP_KEYS = {"title", "$defs", "discriminator"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, inlined and rewritten to a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    result: dict[str, Any] = _rewrite(raw, defs)
    return result


def _rewrite(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_rewrite(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _rewrite({**target, **extra}, defs)
    if "anyOf" in node:
        return _rewrite_any_of(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "const":
            out["enum"] = [value]
            out.setdefault("type", "string")
            continue
        if key == "properties":
            out[key] = {name: _rewrite(prop, defs) for name, prop in value.items()}
        elif key == "default" and isinstance(value, dict | list):
            continue  # API-server defaulting of whole objects surprises users; scalars are enough
        else:
            out[key] = _rewrite(value, defs)
    if "properties" in out:
        out.pop("additionalProperties", None)
        out.setdefault("type", "object")
    elif out.get("additionalProperties") is False:
        out.pop("additionalProperties")
    return out


def _rewrite_any_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    nullable = len(options) != len(node["anyOf"])
    rest = {k: v for k, v in node.items() if k not in ("anyOf", "title")}
    types = {o.get("type") for o in options}
    merged: dict[str, Any]
    if len(options) == 1:
        merged = _rewrite({**options[0], **rest}, defs)
    elif types == {"integer", "string"}:
        merged = {"x-kubernetes-int-or-string": True,
                  "anyOf": [{"type": "integer"}, {"type": "string"}]}
        merged.update(_rewrite({k: v for k, v in rest.items() if k != "default"}, defs))
    else:
        raise ValueError(f"cannot express anyOf {node['anyOf']} as a structural schema")
    if nullable:
        merged["nullable"] = True
        if merged.get("default") is None:
            merged.pop("default", None)
    return merged


def _crd(kind: str, spec: type[BaseModel], status: type[BaseModel], columns: list[dict[str, Any]]) -> dict[str, Any]:
    names = BY_KIND[kind]
    plural, short_names = names.plural, list(names.short_names)
    spec_schema = structural_schema(spec)
    spec_schema["description"] = f"Desired state of the {kind}."
    status_schema = structural_schema(status)
    status_schema["description"] = f"Observed state of the {kind}, written by the platform."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["mcp"],
            },
            "versions": [{
                "name": API_VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    *columns,
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": status_schema,
                    },
                }},
            }],
        },
    }


def render_crds() -> dict[str, dict[str, Any]]:
    """Every CRD, keyed by the file name it is checked in under in `deploy/crds/`."""
    phase = {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}
    server_ref = {"name": "Server", "type": "string", "jsonPath": ".spec.serverRef.name"}
    crds = [
        _crd(SERVER_KIND, MCPServerSpec, MCPServerStatus, [
            phase,
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
        ]),
        _crd(GRANT_KIND, AccessGrantSpec, AccessStatus, [
            phase, server_ref,
            {"name": "Team", "type": "string", "jsonPath": ".spec.subject.teamID"},
            {"name": "Agent", "type": "string", "jsonPath": ".spec.subject.agentID"},
            {"name": "MaxTrust", "type": "string", "jsonPath": ".spec.maxTrust"},
        ]),
        _crd(SESSION_KIND, AgentSessionSpec, AccessStatus, [
            phase, server_ref,
            {"name": "Agent", "type": "string", "jsonPath": ".spec.subject.agentID"},
            {"name": "Trust", "type": "string", "jsonPath": ".spec.consentedTrust"},
            {"name": "Expires", "type": "date", "jsonPath": ".spec.expiresAt"},
        ]),
        _crd(VIRTUAL_KIND, VirtualServerSpec, VirtualServerStatus, [
            phase,
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
            {"name": "Policy", "type": "string", "jsonPath": ".spec.conflictPolicy"},
        ]),
    ]
    return {f"{API_GROUP}_{c['spec']['names']['plural']}.yaml": c for c in crds}


def crd_yaml(crd: dict[str, Any]) -> str:
    header = "# Generated from mcp_runtime.resources by `mcp-runtime crds generate`. Do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=100)
