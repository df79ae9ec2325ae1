"""The platform API client (profiles, tokens, refresh) and its errors, shared by the CLI and the adapter."""

from mcp_runtime.client.api import (
    API_PREFIX,
    CONFIG_DIR_ENV,
    DEFAULT_PROFILE,
    PROFILE_ENV,
    TOKEN_ENV,
    URL_ENV,
    ApiClient,
    Config,
    Profile,
    client,
    config_path,
    login_hint,
    normalize_url,
)
from mcp_runtime.client.errors import ApiCallError, ClientError

__all__ = ["API_PREFIX", "CONFIG_DIR_ENV", "DEFAULT_PROFILE", "PROFILE_ENV", "TOKEN_ENV", "URL_ENV", "ApiCallError",
           "ApiClient", "ClientError", "Config", "Profile", "client", "config_path", "login_hint", "normalize_url"]
