"""Virtual MCP servers: one endpoint (`/v/<name>/mcp`) over several governed member servers.

`mapping.py` is pure (names, URIs, capabilities, id tables); `member.py` is one backend session;
`session.py` one client session; `govern.py` asks each member's policy; `fanout.py` asks members;
`catalog.py` serves resources and prompts; `approve.py` holds a call until a person approves it;
`endpoint.py` is the ASGI endpoint (docs/virtual-servers.md).
"""
