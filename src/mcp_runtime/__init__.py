"""MCP Runtime: publish, govern and observe MCP servers."""

__version__ = "0.1.0"
