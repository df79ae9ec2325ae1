"""MCP authorization (OAuth 2.1): the platform as the authorization server of every governed server.

Protocol handling (metadata, registration, authorize, token, revocation, PKCE) is the `mcp` SDK's
(`mcp.server.auth`); this package is what the SDK leaves to the server: where clients, codes and refresh
tokens live (the platform store, hashed), which server a `resource` names, the consent a signed-in user
gives in the dashboard, and the tokens: every authorization is an MCPAgentSession, and its access tokens
are that session's tokens, which the gateway already verifies and the policy already governs.
"""

from mcp_runtime.platform.oauth.routes import oauth_routes
from mcp_runtime.platform.oauth.service import ConsentView, OAuthService, Pending

__all__ = ["ConsentView", "OAuthService", "Pending", "oauth_routes"]
