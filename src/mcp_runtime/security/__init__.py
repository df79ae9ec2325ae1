"""Keys, tokens, password hashes and API secrets: how the platform knows who is calling."""

from mcp_runtime.security.keys import KeyFileError, KeyRing, KeyRingError, PublicKeySet, jwk_thumbprint
from mcp_runtime.security.passwords import burn_password_check, hash_password, needs_rehash, verify_password
from mcp_runtime.security.secrets import (
    API_KEY_PREFIX,
    hash_secret,
    new_api_key,
    new_refresh_token,
    secret_matches,
)
from mcp_runtime.security.tokens import (
    ACCESS_AUDIENCE,
    MAX_TOKEN_LENGTH,
    AccessClaims,
    SessionClaims,
    TokenError,
    TokenErrorReason,
    issue_access_token,
    issue_session_token,
    session_audience,
    verify_access_token,
    verify_session_token,
)

__all__ = [
    "ACCESS_AUDIENCE",
    "API_KEY_PREFIX",
    "MAX_TOKEN_LENGTH",
    "AccessClaims",
    "KeyFileError",
    "KeyRing",
    "KeyRingError",
    "PublicKeySet",
    "SessionClaims",
    "TokenError",
    "TokenErrorReason",
    "burn_password_check",
    "hash_password",
    "hash_secret",
    "issue_access_token",
    "issue_session_token",
    "jwk_thumbprint",
    "needs_rehash",
    "new_api_key",
    "new_refresh_token",
    "secret_matches",
    "session_audience",
    "verify_access_token",
    "verify_password",
    "verify_session_token",
]
