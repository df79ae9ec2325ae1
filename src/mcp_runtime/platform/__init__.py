"""The platform API (FastAPI): identity, teams, servers, grants, sessions, policies, audit."""

from mcp_runtime.platform.app import API_PREFIX, create_app
from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.hooks import NoRuntime, PolicyPublisher, RuntimeHooks
from mcp_runtime.platform.settings import PlatformSettings

__all__ = ["API_PREFIX", "NoRuntime", "Platform", "PlatformSettings", "PolicyPublisher", "RuntimeHooks",
           "create_app"]
