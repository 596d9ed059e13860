"""A guardrail for an agent's tools: every call is decided by the policy before it runs, and
what it returns is masked before the agent sees it.

Tool calls are decided as MCP tool calls (``{"name": tool, "arguments": {...}}``), so one policy
covers MCP servers and in-process tools alike: ``mcp.tools`` / ``mcp.arguments`` conditions, and
tools that are shells or file readers (``run_command``, ``*shell*``, ``read_file``, ...) analysed
as shell commands and paths by the policy's ``tools`` section.

    engine = sluice.Engine()
    guard = Guardrail(engine, identity="agent-7")

    @guard.tool
    def run_command(command: str) -> str:
        return subprocess.run(command, shell=True, capture_output=True, text=True).stdout

    run_command("cat ~/.aws/credentials")   # raises Refused, the command never runs
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, Union, cast

from sluice._native import ApprovalRequest, Decision, Engine, Identity, SluiceError, Target

F = TypeVar("F", bound=Callable[..., Any])

#: Asks a human about an approval request; returns a grant (from ``GrantKey.issue``) or ``None``.
Approve = Callable[[ApprovalRequest], Union[str, None]]


class Refused(SluiceError):
    """A tool call the policy did not allow. ``decision`` says which rule and why."""

    def __init__(self, tool: str, decision: Decision) -> None:
        verb = "denied" if decision.decision == "deny" else "approval required"
        message = f"sluice: {verb}: {tool}: {decision.reason}"
        if decision.approval is not None:
            message += f" (request {decision.approval.id})"
        super().__init__(message)
        self.tool = tool
        self.decision = decision


class ApprovalRequired(Refused):
    """A tool call that needs a human's approval; ``approval`` is what to ask them."""

    @property
    def approval(self) -> ApprovalRequest | None:
        return self.decision.approval


class Guardrail:
    """Decides tool calls and masks their results with one engine, for one identity and target.

    ``approve`` is called when the policy asks for approval: return a grant to let exactly
    that call through once, or ``None`` to refuse it.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        identity: Identity | str | None = None,
        target: Target | str | None = None,
        approve: Approve | None = None,
        mask: bool = True,
    ) -> None:
        self.engine = engine
        self.identity = identity
        self.target = target
        self.approve = approve
        self.mask_results = mask

    def check(self, tool: str, arguments: Mapping[str, Any]) -> Decision:
        """Decides the call ``tool(**arguments)``; raises ``Refused`` unless it is allowed."""
        call = {"name": tool, "arguments": _jsonable(dict(arguments))}
        d = self.engine.check("mcp", call, identity=self.identity, target=self.target)
        if d.decision == "require_approval" and self.approve is not None and d.approval is not None:
            grant = self.approve(d.approval)
            if grant:
                d = self.engine.check("mcp", call, identity=self.identity, target=self.target, grant=grant)
        if d.allowed:
            return d
        if d.decision == "require_approval":
            raise ApprovalRequired(tool, d)
        raise Refused(tool, d)

    def mask(self, value: Any) -> Any:
        """``value`` with every secret in its strings masked (str, bytes, lists, tuples, dicts)."""
        if not self.mask_results:
            return value
        if isinstance(value, str):
            return self.engine.redact(value)
        if isinstance(value, bytes):
            return self.engine.redact(value)
        if isinstance(value, list):
            return [self.mask(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.mask(v) for v in value)
        if isinstance(value, dict):
            return {k: self.mask(v) for k, v in value.items()}
        return value

    def tool(self, fn: F | None = None, *, name: str | None = None) -> Any:
        """Decorator: guards a tool function (sync or async). Its arguments are bound to its
        parameter names and decided as the tool call ``name`` (default: the function's name)."""

        def wrap(f: F) -> F:
            tool_name = name or f.__name__
            sig = inspect.signature(f)

            def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
                bound = sig.bind(*args, **kwargs)
                bound.apply_defaults()
                return dict(bound.arguments)

            if inspect.iscoroutinefunction(f):

                @functools.wraps(f)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    self.check(tool_name, arguments(args, kwargs))
                    return self.mask(await cast(Callable[..., Awaitable[Any]], f)(*args, **kwargs))

                return cast(F, run_async)

            @functools.wraps(f)
            def run(*args: Any, **kwargs: Any) -> Any:
                self.check(tool_name, arguments(args, kwargs))
                return self.mask(f(*args, **kwargs))

            return cast(F, run)

        return wrap if fn is None else wrap(fn)


def _jsonable(value: Any) -> Any:
    """Arguments as JSON values (what an MCP call would carry); other objects become strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)
