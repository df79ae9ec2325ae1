"""Virtual MCP servers: one endpoint (`/v/<name>/mcp`) over several governed member servers.

`mapping.py` is pure (names, capabilities, id tables); `member.py` is one backend session; `session.py`
one client session; `govern.py` asks each member's policy; `endpoint.py` is the ASGI endpoint.
"""
