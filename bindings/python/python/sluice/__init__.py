"""Sluice: mask secrets, block dangerous commands and ask a human before privileged actions,
in-process.

The engine is Rust (``sluice._native``); this package re-exports it and adds integrations:

- ``sluice.Engine``: scan, redact, stream-redact, decide (``check``), protocol sessions,
  signed session recordings (``Engine.recorder``; read back with ``verify_recording``,
  ``replay_recording``, ``export_asciicast``).
- ``sluice.guard``: a guardrail for plain Python tool functions (agent frameworks).
- ``sluice.langchain``: the same guardrail for LangChain tools (needs ``langchain-core``).
- ``sluice.mcp``: an MCP server built with the official ``mcp`` SDK, guarded in-process.

Every function that takes data accepts ``bytes`` or ``str`` and returns the type it was given.
"""

from sluice._native import (
    AGENT_SAFE_POLICY,
    ApprovalRequest,
    Approver,
    Decision,
    DetectorError,
    Engine,
    ExampleError,
    Finding,
    GrantError,
    GrantKey,
    Identity,
    KnownValueError,
    LimitError,
    OidcError,
    OidcVerifier,
    PatternError,
    PolicyError,
    Recorder,
    RecordingError,
    RecordingProblem,
    RecordingReport,
    RequestError,
    RuleError,
    RuleFileError,
    Session,
    SessionError,
    SluiceError,
    StreamRedactor,
    Target,
    __version__,
    export_asciicast,
    replay_recording,
    verify_recording,
)

__all__ = [
    "AGENT_SAFE_POLICY",
    "ApprovalRequest",
    "Approver",
    "Decision",
    "DetectorError",
    "Engine",
    "ExampleError",
    "Finding",
    "GrantError",
    "GrantKey",
    "Identity",
    "KnownValueError",
    "LimitError",
    "OidcError",
    "OidcVerifier",
    "PatternError",
    "PolicyError",
    "Recorder",
    "RecordingError",
    "RecordingProblem",
    "RecordingReport",
    "RequestError",
    "RuleError",
    "RuleFileError",
    "Session",
    "SessionError",
    "SluiceError",
    "StreamRedactor",
    "Target",
    "__version__",
    "export_asciicast",
    "replay_recording",
    "verify_recording",
]
