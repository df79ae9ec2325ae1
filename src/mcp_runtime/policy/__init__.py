"""The compiled per-server policy document and the pure evaluator. No I/O happens here."""

from mcp_runtime.policy.document import (
    SCHEMA_VERSION,
    PolicyDocument,
    PolicyDocumentError,
    PolicyGrant,
    PolicySession,
    PolicyTool,
    canonical_json,
    compile_policy,
)
from mcp_runtime.policy.evaluator import (
    AUTHENTICATION_REASONS,
    Decision,
    Identity,
    Reason,
    allowed_tools,
    describe,
    evaluate,
    evaluate_access,
)

__all__ = [
    "AUTHENTICATION_REASONS", "SCHEMA_VERSION", "Decision", "Identity", "PolicyDocument",
    "PolicyDocumentError", "PolicyGrant", "PolicySession", "PolicyTool", "Reason", "allowed_tools",
    "canonical_json", "compile_policy", "describe", "evaluate", "evaluate_access",
]
