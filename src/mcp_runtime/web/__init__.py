"""The dashboard (templates and static files ship in the package): `create_dashboard(platform)`."""

from mcp_runtime.web.app import create_dashboard

__all__ = ["create_dashboard"]
