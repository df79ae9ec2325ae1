"""The dashboard (templates and static files ship in the package): `create_dashboard(platform)`, and
`create_site(platform)` for the API and the dashboard together."""

from mcp_runtime.web.app import create_dashboard, create_site

__all__ = ["create_dashboard", "create_site"]
