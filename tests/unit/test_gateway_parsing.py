"""The gateway's parsing pieces: JSON-RPC bodies, SSE rewriting across chunk boundaries, tokens."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_runtime.gateway.auth import extract_token
from mcp_runtime.gateway.jsonrpc import INVALID_REQUEST, PARSE_ERROR, RpcInputError, parse_body
from mcp_runtime.gateway.sse import SseRewriter


def test_single_and_batch_messages() -> None:
    [msg], batch = parse_body(b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}')
    assert not batch and msg.is_request and msg.tool == "echo" and msg.id == 3
    msgs, batch = parse_body(b'[{"jsonrpc":"2.0","method":"notifications/initialized"},'
                             b'{"jsonrpc":"2.0","id":"a","result":{}},'
                             b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}]')
    assert batch
    assert msgs[0].is_notification and not msgs[1].is_request and msgs[1].method is None
    assert msgs[2].tool == ""  # a non-string name is no tool the policy knows


@pytest.mark.parametrize(("body", "code"), [
    (b"", PARSE_ERROR), (b"{", PARSE_ERROR), (b"\xff\xfe", PARSE_ERROR), (b"[]", INVALID_REQUEST),
    (b"null", INVALID_REQUEST), (b'{"jsonrpc":"1.0","id":1,"method":"x"}', INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":5}', INVALID_REQUEST), (b'{"jsonrpc":"2.0","id":{},"method":"x"}',
                                                                 INVALID_REQUEST),
    (b'[{"jsonrpc":"2.0","id":1,"method":"x"}, 3]', INVALID_REQUEST),
])
def test_not_json_rpc(body: bytes, code: int) -> None:
    with pytest.raises(RpcInputError) as exc:
        parse_body(body)
    assert exc.value.code == code


def _events() -> bytes:
    listing = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "echo"}, {"name": "reverse"}]}}
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    return (b": keep-alive\r\n\r\n"
            b"event: message\r\nid: e1\r\ndata: " + json.dumps(progress).encode() + b"\r\n\r\n"
            b"event: message\r\nid: e2\r\ndata: " + json.dumps(listing).encode() + b"\r\n\r\n")


def _filter(message: object) -> object | None:
    if isinstance(message, dict) and message.get("id") == 1:
        tools = [t for t in message["result"]["tools"] if t["name"] == "echo"]
        return {**message, "result": {"tools": tools}}
    return None


@given(st.lists(st.integers(min_value=1, max_value=len(_events()) - 1), max_size=6))
def test_sse_rewrite_is_the_same_whatever_the_chunking(cuts: list[int]) -> None:
    stream = _events()
    points = sorted(set(cuts))
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    rewriter = SseRewriter(_filter)
    out = b"".join(rewriter.feed(c) for c in chunks) + rewriter.flush()
    assert out.startswith(b": keep-alive\r\n\r\nevent: message\r\nid: e1\r\n")  # untouched events stay byte-equal
    last = out.split(b"id: e2\n")[1]
    assert json.loads(last.removeprefix(b"data: ").strip())["result"]["tools"] == [{"name": "echo"}]


def test_token_extraction() -> None:
    assert extract_token(b"Bearer abc", None) == "abc"
    assert extract_token(b"bearer  abc ", None) == "abc"
    assert extract_token(b"Basic abc", b"tok") == "tok"
    assert extract_token(None, b" tok ") == "tok"
    assert extract_token(b"Bearer ", None) is None
    assert extract_token(None, None) is None


def test_deeply_nested_body_is_a_parse_error_not_a_crash() -> None:
    """Found by the gateway fuzz test: `[[[...]]]` 100,000 deep overflowed the JSON parser's stack
    (RecursionError) and the gateway answered 500."""
    with pytest.raises(RpcInputError) as exc:
        parse_body(b"[" * 100_000 + b"]" * 100_000)
    assert exc.value.code == PARSE_ERROR and "too deeply" in exc.value.message


def test_a_deeply_nested_upstream_event_passes_unchanged() -> None:
    """The same from the other side: an upstream SSE event nested too deeply to parse is relayed as is."""
    event = b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n"
    assert SseRewriter(_filter).feed(event) == event
