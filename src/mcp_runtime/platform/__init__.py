"""The platform API (FastAPI): identity, teams, servers, grants, sessions, policies, audit, analytics.

Names are loaded on first use, so `import mcp_runtime.platform.settings` (the CLI does, at start) does not
pull in FastAPI, SQLAlchemy and the services.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_runtime.platform.app import API_PREFIX, create_app
    from mcp_runtime.platform.core import Platform
    from mcp_runtime.platform.hooks import NoRuntime, PolicyPublisher, RuntimeHooks
    from mcp_runtime.platform.settings import PlatformSettings

_WHERE = {"API_PREFIX": "app", "create_app": "app", "Platform": "core", "NoRuntime": "hooks",
          "PolicyPublisher": "hooks", "RuntimeHooks": "hooks", "PlatformSettings": "settings"}

__all__ = ["API_PREFIX", "NoRuntime", "Platform", "PlatformSettings", "PolicyPublisher", "RuntimeHooks",
           "create_app"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mcp_runtime.platform' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mcp_runtime.platform.{module}"), name)
