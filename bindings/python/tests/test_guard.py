"""The agent-framework guardrail: plain tool functions (sync and async) and LangChain tools,
decided before they run, results masked, a human's approval turned into a one-time grant."""

from __future__ import annotations

import asyncio

import pytest

import sluice
from sluice.guard import ApprovalRequired, Guardrail, Refused

from conftest import synthetic_stripe_key


def test_guarded_function_runs_only_when_allowed() -> None:
    secret = synthetic_stripe_key()
    ran: list[str] = []
    guard = Guardrail(sluice.Engine(), identity="agent-7")

    @guard.tool
    def run_command(command: str, timeout: int = 30) -> str:
        ran.append(command)
        return f"output of {command}: STRIPE_KEY={secret}"

    out = run_command("cargo test")
    assert ran == ["cargo test"] and secret not in out and "STRIPE_KEY=[REDACTED:" in out
    with pytest.raises(Refused) as e:
        run_command(command="cat ~/.aws/credentials")
    assert ran == ["cargo test"], "a refused call never runs"
    assert e.value.decision.rule == "credential-files" and isinstance(e.value, sluice.SluiceError)
    assert run_command.__name__ == "run_command"


def test_async_tool_and_structured_results() -> None:
    secret = synthetic_stripe_key()
    guard = Guardrail(sluice.Engine())

    @guard.tool(name="read_file")
    async def read(path: str) -> dict:
        return {"path": path, "lines": [f"KEY={secret}", "ok"]}

    out = asyncio.run(read("README.md"))
    assert out["path"] == "README.md" and secret not in out["lines"][0] and out["lines"][1] == "ok"
    with pytest.raises(Refused):
        asyncio.run(read("/home/dev/.ssh/id_ed25519"))


def test_approval_callback_turns_yes_into_one_grant() -> None:
    key = sluice.GrantKey.generate_ed25519()
    engine = sluice.Engine.from_yaml(
        "version: 1\nname: t\ndefault: allow\nrules:\n"
        "  - { id: refunds, action: require_approval, when: { mcp: { tools: [refund] } } }\n",
        grant_key=key.public(),
    )
    asked: list[sluice.ApprovalRequest] = []

    def approve(req: sluice.ApprovalRequest) -> str | None:
        asked.append(req)
        return key.issue(req, ["alice"]) if "A-1" in req.command else None

    guard = Guardrail(engine, identity="agent-7", approve=approve)

    @guard.tool
    def refund(order: str, amount: int) -> str:
        return f"refunded {amount} on {order}"

    assert refund("A-1", 10) == "refunded 10 on A-1"
    with pytest.raises(ApprovalRequired) as e:
        refund("B-2", 99)
    assert e.value.approval is not None and e.value.approval.rule == "refunds" and len(asked) == 2


def test_langchain_tool() -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.tools import tool

    from sluice.langchain import guard_tool

    secret = synthetic_stripe_key()
    ran: list[str] = []

    @tool
    def run_command(command: str) -> str:
        """Run a shell command."""
        ran.append(command)
        return f"PASSWORD_FILE_CONTENT STRIPE_KEY={secret}"

    guarded = guard_tool(run_command, sluice.Engine(), identity="agent-7")
    assert guarded.name == "run_command" and guarded.description == run_command.description
    assert guarded.args == run_command.args
    out = guarded.invoke({"command": "ls -la"})
    assert ran == ["ls -la"] and secret not in out and "[REDACTED:" in out
    refused = guarded.invoke({"command": "cat ~/.aws/credentials"})
    assert ran == ["ls -la"] and refused.startswith("sluice: denied: run_command:")
    assert asyncio.run(guarded.ainvoke({"command": "printenv"})).startswith("sluice: denied")
    assert ran == ["ls -la"]
