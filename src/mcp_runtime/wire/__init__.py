"""Wire helpers shared by the gateway and the adapter proxy: a bounded ASGI body reader, JSON-RPC codes.

Both are ASGI apps that read a client's body and answer in JSON-RPC, and both must say the same thing
in the same way (the same 413, the same error code for a request that did not reach its tool). This
package imports nothing else of `mcp_runtime`, so either may use it without pulling in the other;
see "Packages" in docs/architecture.md.
"""

from mcp_runtime.wire.body import BodyTooLarge, ClientDisconnected, read_body
from mcp_runtime.wire.jsonrpc import DENIED, INVALID_REQUEST, PARSE_ERROR, dumps, error_object

__all__ = [
    "DENIED", "INVALID_REQUEST", "PARSE_ERROR", "BodyTooLarge", "ClientDisconnected", "dumps", "error_object",
    "read_body",
]
