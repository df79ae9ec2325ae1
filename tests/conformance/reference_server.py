"""The reference MCP server the official conformance suite runs against, directly and through the gateway.

Built on the official Python SDK (`MCPServer`), it implements what the suite's server scenarios
exercise (`conformance list --server`): tools that return text, images, audio, embedded resources,
mixed content and errors, tools that log, report progress, ask the client for sampling and
elicitation, and close their SSE stream mid-call (SEP-1699 polling); static and templated resources
with subscribe/unsubscribe; prompts with arguments, images and embedded resources; completion; and
`logging/setLevel`. The conformance package ships no server of its own (only its client harness).

Run: `PORT=8123 python tests/conformance/reference_server.py` (serves http://127.0.0.1:$PORT/mcp), or with
`--stdio` to speak MCP on stdin/stdout (the stdio differential runs it behind `mcp-runtime bridge stdio`).
The test declares every tool in the gateway's policy from this server's own tools/list.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.types import (
    AudioContent,
    Completion,
    EmbeddedResource,
    ImageContent,
    JSONRPCMessage,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field

# A 1x1 PNG and a tiny WAV: the suite checks type and mime type, not the pixels.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema"


class MemoryEventStore(EventStore):
    """Keeps every SSE event so a client that reconnects with Last-Event-ID gets what it missed."""

    def __init__(self) -> None:
        self._events: list[tuple[str, int, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        event_id = len(self._events) + 1
        self._events.append((stream_id, event_id, message))
        return str(event_id)

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        if not last_event_id.isdigit():
            return None
        after = int(last_event_id)
        stream = next((s for s, i, _ in self._events if i == after), None)
        if stream is None:
            return None
        for s, i, message in self._events:
            if s == stream and i > after and message is not None:  # None is a priming event
                await send_callback(EventMessage(message, str(i)))
        return stream


def _json_schema_tool(name: str | None = None, address: dict[str, Any] | None = None) -> str:
    return json.dumps({"name": name, "address": address})


# Its input schema is given verbatim: the suite checks $schema, $defs and additionalProperties survive.
_JSON_SCHEMA_TOOL = Tool.from_function(_json_schema_tool, name="json_schema_2020_12_tool",
                                       description="Tool with JSON Schema 2020-12 features")
_JSON_SCHEMA_TOOL.parameters = {
    "$schema": SCHEMA_2020_12,
    "type": "object",
    "$defs": {"address": {"type": "object",
                          "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


mcp: MCPServer[Any] = MCPServer(name="mcp-runtime-conformance-reference", tools=[_JSON_SCHEMA_TOOL])
subscriptions: set[str] = set()


# --- tools --------------------------------------------------------------------------------------------

@mcp.tool()
def test_simple_text() -> str:
    """Answers with one text block."""
    return "This is a simple text response for testing."


@mcp.tool()
def test_image_content() -> list[ImageContent]:
    """Answers with one image block."""
    return [ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")]


@mcp.tool()
def test_audio_content() -> list[AudioContent]:
    """Answers with one audio block."""
    return [AudioContent(type="audio", data=WAV_BASE64, mime_type="audio/wav")]


@mcp.tool()
def test_embedded_resource() -> list[EmbeddedResource]:
    """Answers with an embedded text resource."""
    return [EmbeddedResource(type="resource", resource=TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."))]


@mcp.tool()
def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    """Answers with text, an image and an embedded resource together."""
    return [
        TextContent(type="text", text="Multiple content types test:"),
        ImageContent(type="image", data=PNG_BASE64, mime_type="image/png"),
        EmbeddedResource(type="resource", resource=TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json", text='{"test": "data", "value": 123}')),
    ]


@mcp.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Sends three log notifications while it runs."""
    for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(text)
        await asyncio.sleep(0.05)
    return "Tool with logging executed successfully"


@mcp.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress 0, 50 and 100 of 100; answers with the progress token it was given."""
    for step in (0, 50, 100):
        await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
        await asyncio.sleep(0.05)
    meta = ctx.request_context.meta or {}
    return str(meta.get("progress_token", 0))


@mcp.tool()
async def test_sampling(prompt: str, ctx: Context) -> str:
    """Asks the client's LLM (sampling/createMessage) and answers with what it said."""
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=100,
        related_request_id=ctx.request_id)
    text = result.content.text if result.content.type == "text" else "No response"
    return f"LLM response: {text}"


class UserResponse(BaseModel):
    response: str = Field(description="User's response")


@mcp.tool()
async def test_elicitation(message: str, ctx: Context) -> str:
    """Asks the user (elicitation/create) for one string."""
    result = await ctx.elicit(message=message, schema=UserResponse)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"User response: action={result.action}, content={content}"


class Defaults(BaseModel):
    """Every primitive type with a default (SEP-1034)."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(default="active", description="User status",
                        json_schema_extra={"enum": ["active", "inactive", "pending"]})
    verified: bool = Field(default=True, description="Verification status")


@mcp.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Elicits a form whose fields all carry defaults."""
    result = await ctx.elicit(message="Please provide user information", schema=Defaults)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"Elicitation result: action={result.action}, content={content}"


class Enums(BaseModel):
    """The enum shapes of SEP-1330: plain, titled, multi-select and legacy enumNames."""

    untitledSingle: str = Field(description="Simple enum without titles",
                                json_schema_extra={"enum": ["active", "inactive", "pending"]})
    titledSingle: str = Field(description="Enum with titled options (oneOf)", json_schema_extra={"oneOf": [
        {"const": "low", "title": "Low Priority"}, {"const": "medium", "title": "Medium Priority"},
        {"const": "high", "title": "High Priority"}]})
    untitledMulti: list[str] = Field(description="Multi-select without titles", json_schema_extra={
        "items": {"type": "string", "enum": ["read", "write", "execute"]}})
    titledMulti: list[str] = Field(description="Multi-select with titled options", json_schema_extra={
        "items": {"anyOf": [{"const": "feature", "title": "New Feature"}, {"const": "bug", "title": "Bug Fix"},
                            {"const": "docs", "title": "Documentation"}]}})
    legacyEnum: str = Field(description="Legacy enum with enumNames", json_schema_extra={
        "enum": ["small", "medium", "large"], "enumNames": ["Small Size", "Medium Size", "Large Size"]})


@mcp.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Elicits a form with every enum variant."""
    result = await ctx.elicit(message="Please select values using different enum schema types", schema=Enums)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"Elicitation completed: action={result.action}, content={content}"


@mcp.tool()
def test_error_handling() -> str:
    """Always fails: the client must get a result with isError, not a protocol error."""
    raise RuntimeError("This tool intentionally returns an error for testing")


@mcp.tool()
async def test_reconnection(ctx: Context) -> str:
    """Closes its own SSE stream mid-call; the client resumes with Last-Event-ID (SEP-1699)."""
    await ctx.info("Before disconnect")
    await ctx.close_sse_stream()
    await asyncio.sleep(0.2)
    await ctx.info("After reconnect")
    return "Reconnection test completed"


# --- resources ----------------------------------------------------------------------------------------

@mcp.resource("test://static-text", mime_type="text/plain")
def static_text() -> str:
    """A fixed text resource."""
    return "This is the content of the static text resource."


@mcp.resource("test://static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A fixed binary resource (the PNG)."""
    return base64.b64decode(PNG_BASE64)


@mcp.resource("test://template/{id}/data", mime_type="application/json")
def template_data(id: str) -> str:
    """A templated resource: the id comes back in the content."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@mcp.resource("test://watched-resource", mime_type="text/plain")
def watched() -> str:
    """The resource clients subscribe to."""
    return "Watched resource content"


# --- prompts ------------------------------------------------------------------------------------------

@mcp.prompt()
def test_simple_prompt() -> list[UserMessage]:
    """A prompt without arguments."""
    return [UserMessage("This is a simple prompt for testing.")]


@mcp.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    """A prompt with two required arguments."""
    return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]


@mcp.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    """A prompt that embeds the resource it is given."""
    return [
        UserMessage(EmbeddedResource(type="resource", resource=TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."))),
        UserMessage("Please process the embedded resource above."),
    ]


@mcp.prompt()
def test_prompt_with_image() -> list[UserMessage]:
    """A prompt that carries an image."""
    return [UserMessage(ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")),
            UserMessage("Please analyze the image above.")]


# --- completion, logging level, subscriptions -----------------------------------------------------------

@mcp.completion()
async def complete(ref: Any, argument: Any, context: Any) -> Completion:
    """Minimal completion: the suite checks the endpoint and the shape, not suggestions."""
    return Completion(values=[], total=0, has_more=False)


async def _set_level(ctx: Any, params: SetLevelRequestParams) -> dict[str, Any]:
    return {}


async def _subscribe(ctx: Any, params: SubscribeRequestParams) -> dict[str, Any]:
    subscriptions.add(str(params.uri))
    return {}


async def _unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> dict[str, Any]:
    subscriptions.discard(str(params.uri))
    return {}


_lowlevel = mcp._lowlevel_server  # MCPServer has no public hook for these three methods
_lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_level)
_lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
_lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)



def main() -> None:
    """Serve Streamable HTTP on 127.0.0.1:$PORT$MCP_PATH (DNS-rebinding protection on, as for localhost)."""
    port = int(os.environ.get("PORT", "3001"))
    app = mcp.streamable_http_app(streamable_http_path=os.environ.get("MCP_PATH", "/mcp"),
                                  event_store=MemoryEventStore(), retry_interval=100, host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level=os.environ.get("LOG_LEVEL", "warning").lower())


if __name__ == "__main__":
    if "--stdio" in sys.argv[1:]:
        mcp.run("stdio")
    else:
        main()
