"""The compiled per-server policy document and the pure evaluator. No I/O happens here."""

from mcp_runtime.policy.document import (
    SCHEMA_VERSION,
    PolicyDocument,
    PolicyDocumentError,
    PolicyGrant,
    PolicyRateLimit,
    PolicySession,
    PolicyTool,
    canonical_json,
    compile_policy,
)
from mcp_runtime.policy.evaluator import (
    ARGUMENTS_UNKNOWN,
    AUTHENTICATION_REASONS,
    AppliedLimit,
    Decision,
    Identity,
    Reason,
    SessionState,
    allowed_tools,
    describe,
    evaluate,
    evaluate_access,
    session_state,
)
from mcp_runtime.policy.replay import Gap, ImpactRow, Outcome, RecordedCall, Replayer, ReplayReport, replay

__all__ = [
    "ARGUMENTS_UNKNOWN", "AUTHENTICATION_REASONS", "SCHEMA_VERSION", "AppliedLimit", "Decision", "Gap", "Identity",
    "ImpactRow", "Outcome", "PolicyDocument", "PolicyDocumentError", "PolicyGrant", "PolicyRateLimit",
    "PolicySession", "PolicyTool", "Reason", "RecordedCall", "ReplayReport", "Replayer", "SessionState",
    "allowed_tools", "canonical_json", "compile_policy", "describe", "evaluate", "evaluate_access", "replay",
    "session_state",
]
