"""Type stubs for ``sluice._native``, the Rust engine (checked against the module by mypy's
stubtest in the tests)."""

from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from typing import Any, Final, Literal, TypedDict, TypeVar, final, overload

from typing_extensions import Unpack

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
    "cli_main",
    "export_asciicast",
    "replay_recording",
    "verify_recording",
]

__version__: Final[str]
#: The embedded agent-safe policy (YAML), for ``extends: agent-safe`` or as a starting point.
AGENT_SAFE_POLICY: Final[str]

_Data = TypeVar("_Data", str, bytes)
_Event = dict[str, Any]
_DecisionKind = Literal["allow", "deny", "require_approval"]
_Protocol = Literal["shell", "sql", "http", "mcp", "ssh"]
_SessionProtocol = Literal["postgres", "postgresql", "mysql", "mariadb", "http", "mcp"]

class SluiceError(Exception):
    """Base class of every error Sluice raises."""

class DetectorError(SluiceError):
    """A rule file, rule or known value was rejected."""

    origin: str | None
    rule: str | None
    line: int | None
    column: int | None

class RuleFileError(DetectorError): ...
class PatternError(DetectorError): ...
class RuleError(DetectorError): ...
class LimitError(DetectorError): ...
class ExampleError(DetectorError): ...
class KnownValueError(DetectorError): ...

class PolicyError(SluiceError):
    """A policy document was rejected; ``path`` is the offending field when known."""

    origin: str | None
    path: str | None
    line: int | None
    column: int | None

class RequestError(SluiceError):
    """A request given to ``check()`` or ``session()`` is malformed."""

class GrantError(SluiceError):
    """A grant or key was not issued or not accepted."""

    kind: Literal["invalid", "expired", "mismatch", "approvers", "replayed", "store", "key"] | None

class OidcError(SluiceError):
    """An OIDC token or key set was rejected."""

class SessionError(SluiceError):
    """A session got bad input and is closed: close the connection."""

    side: Literal["client", "server"] | None
    reason: str | None

class RecordingError(SluiceError):
    """A session recording cannot be started, written or read."""

@final
class Finding:
    """One secret: rule id, span (code points for str input, bytes for bytes), 1-based line and
    column (in characters), and a keyed fingerprint (never the secret)."""

    @property
    def rule(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...
    @property
    def fingerprint(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Identity:
    """Who acts: a user or agent id, groups and attributes."""

    def __new__(cls, user: str, groups: Sequence[str] = ..., attributes: Mapping[str, str] = ...) -> Identity: ...
    @property
    def user(self) -> str: ...
    @property
    def groups(self) -> list[str]: ...
    @property
    def attributes(self) -> dict[str, str]: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class Target:
    """What is acted on: a database, host or API name with labels such as ``env=prod``."""

    def __new__(cls, name: str, labels: Mapping[str, str] = ...) -> Target: ...
    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class ApprovalRequest:
    """What a human is asked to approve; ``to_json()`` is the form ``sluice approve`` reads."""

    @property
    def id(self) -> str: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def user(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def protocol(self) -> _Protocol: ...
    @property
    def command(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def created_at(self) -> int: ...
    @property
    def expires_at(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def allow_self(self) -> bool: ...
    @property
    def approver_users(self) -> list[str]: ...
    @property
    def approver_groups(self) -> list[str]: ...
    def to_json(self) -> str: ...
    @staticmethod
    def from_json(text: str) -> ApprovalRequest: ...

@final
class Decision:
    """The outcome of ``Engine.check``; truthy when the command may go through."""

    @property
    def decision(self) -> _DecisionKind: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def approval(self) -> ApprovalRequest | None: ...
    @property
    def mask(self) -> bool: ...
    @property
    def uncertain(self) -> bool: ...
    @property
    def allowed(self) -> bool: ...
    def __bool__(self) -> bool: ...

@final
class Approver:
    """One approver, as the host vouches for them."""

    def __new__(cls, user: str, groups: Sequence[str] = ...) -> Approver: ...
    @property
    def user(self) -> str: ...
    @property
    def groups(self) -> list[str]: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class GrantKey:
    """A grant signing or verifying key (HMAC-SHA256, or Ed25519 whose public half verifies)."""

    @staticmethod
    def generate_hmac() -> GrantKey: ...
    @staticmethod
    def generate_ed25519() -> GrantKey: ...
    @staticmethod
    def parse(text: str) -> GrantKey: ...
    def to_text(self) -> str: ...
    def public(self) -> GrantKey | None: ...
    def issue(self, request: ApprovalRequest, approvers: Sequence[str | Approver], *, now: int | None = None) -> str:
        """A single-use grant for exactly ``request``, approved by ``approvers``."""

@final
class OidcVerifier:
    """Verifies OIDC ID tokens (RS256, ES256, EdDSA) against a JWKS document."""

    def __new__(
        cls,
        jwks: str,
        issuer: str,
        audience: str | Sequence[str],
        *,
        user_claim: str = "sub",
        groups_claim: str = "groups",
        leeway: int = 60,
    ) -> OidcVerifier: ...
    def verify(self, token: str) -> Identity: ...

@final
class StreamRedactor:
    """Streaming redaction; the output type follows the first chunk."""

    @overload
    def feed(self, chunk: str) -> str: ...
    @overload
    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> Any:
        """What was held back (``str`` or ``bytes``, as the chunks were)."""

    @property
    def pending(self) -> int: ...

@final
class Session:
    """One connection's enforcement; every call returns ``(to_server, to_client)``."""

    def from_client(self, data: bytes | str) -> tuple[bytes, bytes]: ...
    def from_server(self, data: bytes | str) -> tuple[bytes, bytes]: ...
    def client_message(self, message: bytes | str) -> tuple[bytes, bytes]: ...
    def server_message(self, message: bytes | str) -> tuple[bytes, bytes]: ...
    def abort_pending(self, reason: str) -> bytes:
        """MCP only: JSON-RPC errors for every client request still waiting for the server."""
    @property
    def protocol(self) -> Literal["postgres", "mysql", "http", "mcp"]: ...
    @property
    def closed(self) -> bool: ...

class _EngineOptions(TypedDict, total=False):
    """Keyword options of ``Engine()``, ``Engine.from_yaml`` and ``Engine.from_file``."""

    rules: str | Sequence[str] | None
    builtin_rules: bool
    known_values: Mapping[str, str | bytes] | Sequence[str | bytes] | None
    grant_key: GrantKey | str | None
    replay_store: str | None
    on_event: Callable[[_Event], object] | None
    credentials: Mapping[str, str | bytes] | None

@final
class Engine:
    """A compiled detector and a policy, shared by every call and thread."""

    def __new__(cls, **options: Unpack[_EngineOptions]) -> Engine: ...
    @staticmethod
    def from_yaml(text: str, **options: Unpack[_EngineOptions]) -> Engine: ...
    @staticmethod
    def from_file(path: str | PathLike[str], **options: Unpack[_EngineOptions]) -> Engine: ...
    def load_policy(self, text: str) -> None: ...
    @property
    def policy_name(self) -> str: ...
    @property
    def rules(self) -> list[str]: ...
    def scan(self, data: bytes | str) -> list[Finding]: ...
    def redact(self, data: _Data) -> _Data: ...
    def stream_redactor(self) -> StreamRedactor: ...
    def check(
        self,
        protocol: _Protocol,
        command: str | Mapping[str, Any],
        *,
        identity: Identity | str | None = None,
        target: Target | str | None = None,
        grant: str | None = None,
        dialect: Literal["postgres", "postgresql", "mysql", "mariadb"] = "postgres",
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        ssh: Literal["exec", "env", "subsystem", "shell", "forward", "channel"] = "exec",
        recorder: Recorder | None = None,
    ) -> Decision: ...
    def roles(self, identity: Identity | str) -> list[str]: ...
    def session(
        self,
        protocol: _SessionProtocol,
        *,
        identity: Identity | str | None = None,
        target: Target | str | None = None,
        recorder: Recorder | None = None,
    ) -> Session: ...
    def substitute(self, text: str, *, allowed: Sequence[str] | Callable[[str], bool]) -> tuple[str, list[str]]:
        """Swaps placeholders ``sluice:secret/NAME`` for the credentials held (``credentials=``)
        where ``allowed`` lets each name go; returns the text and the names used."""
    def recorder(
        self,
        to: str | PathLike[str] | Callable[[bytes], object] | None = None,
        *,
        key: GrantKey | str,
        protocol: str = "host",
        user: str | None = None,
        target: str | None = None,
        session_id: str | None = None,
        fsync: Literal["every", "checkpoint", "never"] = "checkpoint",
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 10.0,
        rotate_bytes: int | None = None,
        rotate_interval: float | None = None,
        fail_closed: bool = True,
    ) -> Recorder:
        """Starts a signed session recording (to a new file, a callable taking each record, or
        memory); pass it to ``session()`` or ``check()``."""

@final
class Recorder:
    """One session's recording: append-only, hash-chained, signed (JSON Lines)."""

    @property
    def session_id(self) -> str: ...
    @property
    def failure(self) -> str | None: ...
    def data(self) -> bytes: ...
    def notice(self, message: str, *, protocol: str = "host") -> None: ...
    def tick(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Recorder: ...
    def __exit__(self, *_exc: object) -> bool: ...

@final
class RecordingProblem:
    """Where verification stopped: which input, line and byte, why, and whether it was cut short."""

    @property
    def input(self) -> int: ...
    @property
    def line(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def torn(self) -> bool: ...

@final
class RecordingReport:
    """What ``verify_recording`` found; true when intact, signed and closed."""

    @property
    def ok(self) -> bool: ...
    @property
    def session(self) -> str | None: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def key_given(self) -> bool: ...
    @property
    def records(self) -> int: ...
    @property
    def checkpoints(self) -> int: ...
    @property
    def signed(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def parts(self) -> int: ...
    @property
    def problem(self) -> RecordingProblem | None: ...
    def __bool__(self) -> bool: ...

def verify_recording(*recording: str | PathLike[str] | bytes, key: GrantKey | str | None = None) -> RecordingReport:
    """Verifies a recording (a rotated one's parts in order) against ``key`` when given."""

def replay_recording(*recording: str | PathLike[str] | bytes) -> str:
    """A recording as a readable transcript (database output decoded into rows)."""

def export_asciicast(*recording: str | PathLike[str] | bytes, width: int = 120, height: int = 32) -> str:
    """A shell or SSH recording as asciicast v2."""

def cli_main(argv: Sequence[str]) -> int:
    """Runs the ``sluice`` command line (``argv[0]`` is the program name); returns the status."""
