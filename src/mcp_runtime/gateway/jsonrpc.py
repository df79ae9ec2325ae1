"""JSON-RPC 2.0 as the gateway sees it: parse a POST body into messages, build error objects.

The gateway only needs to know, per message, whether it is a request, a notification or a response,
its method and id, and for `tools/call` the tool name. The original bytes of a single message are
forwarded untouched; only batches with denied elements are re-serialized.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_runtime.wire.jsonrpc import INVALID_REQUEST, PARSE_ERROR, dumps, error_object

__all__ = ["INVALID_REQUEST", "PARSE_ERROR", "RpcInputError", "RpcMessage", "dumps", "error_object", "id_key",
           "parse_body"]


class RpcInputError(Exception):
    """The body is not JSON-RPC; answered with HTTP 400 and a JSON-RPC error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RpcMessage:
    """One JSON-RPC message of a POST body."""

    __slots__ = ("has_id", "id", "method", "raw", "tool")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        method = raw.get("method")
        self.method: str | None = method if isinstance(method, str) else None
        self.has_id = "id" in raw
        self.id: Any = raw.get("id")
        self.tool: str | None = None
        if self.method == "tools/call":
            params = raw.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            self.tool = name if isinstance(name, str) else ""

    @property
    def is_request(self) -> bool:
        return self.method is not None and self.has_id

    @property
    def is_notification(self) -> bool:
        return self.method is not None and not self.has_id


def _message(item: Any) -> RpcMessage:
    if not isinstance(item, dict) or item.get("jsonrpc") != "2.0":
        raise RpcInputError(INVALID_REQUEST, 'Invalid Request: each message must be an object with "jsonrpc": "2.0"')
    if "method" in item:
        if not isinstance(item["method"], str):
            raise RpcInputError(INVALID_REQUEST, 'Invalid Request: "method" must be a string')
    elif "id" not in item or ("result" not in item and "error" not in item):
        raise RpcInputError(INVALID_REQUEST, 'Invalid Request: a message needs a "method", or an "id" '
                                             'with a "result" or an "error"')
    if "id" in item and not (item["id"] is None or isinstance(item["id"], str | int)):
        raise RpcInputError(INVALID_REQUEST, 'Invalid Request: "id" must be a string or a number')
    return RpcMessage(item)


def _text(body: bytes) -> str | bytes:
    """The body as `json.loads` would decode it, without its encoding sniffing when the answer is known.

    A body that starts with `{` or `[` followed by a non-NUL byte is UTF-8 to `json.detect_encoding` (no
    BOM, not UTF-16/32), so it is decoded here exactly as `json.loads` would; anything else is left to it.
    """
    if len(body) > 1 and body[0] in (0x7B, 0x5B) and body[1]:
        return body.decode("utf-8", "surrogatepass")
    return body


def parse_body(body: bytes) -> tuple[list[RpcMessage], bool]:
    """Messages of a POST body and whether it was a batch. Raises RpcInputError."""
    try:
        data = json.loads(_text(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RpcInputError(PARSE_ERROR, f"Parse error: the body is not valid JSON ({exc})") from None
    except RecursionError:  # nesting deeper than the parser's stack (found by the gateway fuzz test)
        raise RpcInputError(PARSE_ERROR, "Parse error: the body nests arrays or objects too deeply") from None
    if isinstance(data, list):
        if not data:
            raise RpcInputError(INVALID_REQUEST, "Invalid Request: empty batch")
        return [_message(item) for item in data], True
    return [_message(data)], False


def id_key(msg_id: Any) -> str:
    """A hashable key that tells 1 and "1" apart, as JSON-RPC does."""
    return json.dumps(msg_id)
