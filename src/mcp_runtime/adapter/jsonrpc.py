"""The little JSON-RPC the adapter needs: find request ids, and turn a failure into an error per request.

An MCP client understands a JSON-RPC error with its request's id; it does not understand an HTTP
401 from a gateway (some clients even start an OAuth flow). So the adapter answers every request
that could not reach the server with `code -32001` and `data.reason`, like the gateway's denials.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_runtime.wire.jsonrpc import DENIED, PARSE_ERROR, dumps, error_object

__all__ = ["PARSE_ERROR", "dumps", "error_response", "gateway_envelope", "is_jsonrpc_error", "parse_messages",
           "request_ids"]


def parse_messages(body: bytes) -> list[dict[str, Any]]:
    """The JSON-RPC messages in a body (one object or a batch); [] when it is not JSON-RPC."""
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError:
        return []
    items = payload if isinstance(payload, list) else [payload]
    return [m for m in items if isinstance(m, dict)]


def request_ids(messages: list[dict[str, Any]]) -> list[Any]:
    """Ids of the requests among `messages` (notifications and responses carry none that need an answer)."""
    return [m["id"] for m in messages if "method" in m and m.get("id") is not None]


def error_response(request_id: Any, reason: str, message: str, **data: Any) -> dict[str, Any]:
    """The error a request gets when it could not reach the server: the gateway's denial code, the reason."""
    return error_object(request_id, DENIED, message,
                        {"reason": reason, **{k: v for k, v in data.items() if v is not None}})


def gateway_envelope(body: bytes) -> tuple[str, str] | None:
    """`(reason, message)` from the gateway's or platform's `{"error", "message"}` body, else None."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict) and "jsonrpc" not in payload and isinstance(payload.get("error"), str):
        return payload["error"], str(payload.get("message") or payload["error"])
    return None


def is_jsonrpc_error(body: bytes) -> bool:
    """True when an error answer is already JSON-RPC (the client can read it as it is)."""
    return any(message.get("jsonrpc") == "2.0" and "error" in message for message in parse_messages(body))
