"""The JSON-RPC codes and error objects the gateway and the adapter both answer with.

`DENIED` (-32001, in the range JSON-RPC leaves to servers) is the code of every answer that says a
request did not reach its tool: a denial by the policy evaluator at the gateway, or a refusal the
adapter passes on (session expired, runtime unreachable). Clients tell them apart by `data.reason`.
`UPSTREAM_FAILED` (-32002) says the request was allowed but its server failed it: unreachable, too
slow, or an answer that is not one (`data.reason`: `upstream_unavailable`, `upstream_timeout`,
`upstream_invalid_answer`; for a remote server also `upstream_credential_rejected`,
`upstream_credential_missing`); whether the tool ran is unknown.
"""

from __future__ import annotations

import json
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
DENIED = -32001
UPSTREAM_FAILED = -32002


def error_object(msg_id: Any, code: int, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-RPC error response."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": error}


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as both send it on the wire."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
