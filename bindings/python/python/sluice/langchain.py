"""LangChain tools behind Sluice: ``guard_tool(tool, engine)`` returns a tool with the same name,
description and argument schema whose calls are decided first and whose results are masked.
A refused call raises ``ToolException`` with the reason, which LangChain hands to the model as
the tool's observation (``handle_tool_error``), so the agent learns why and the call never runs.

Needs ``langchain-core`` (``pip install sluice[langchain]``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from sluice._native import Engine, Identity, Target
from sluice.guard import Approve, Guardrail, Refused

__all__ = ["guard_tool", "guard_tools"]


def guard_tool(
    tool: BaseTool,
    engine: Engine,
    *,
    identity: Identity | str | None = None,
    target: Target | str | None = None,
    approve: Approve | None = None,
) -> BaseTool:
    """``tool`` guarded by ``engine`` for ``identity`` acting on ``target``."""
    guard = Guardrail(engine, identity=identity, target=target, approve=approve)

    def decide(kwargs: dict[str, Any]) -> None:
        try:
            guard.check(tool.name, kwargs)
        except Refused as e:
            raise ToolException(str(e)) from e

    def run(**kwargs: Any) -> Any:
        decide(kwargs)
        return guard.mask(tool.invoke(kwargs))

    async def arun(**kwargs: Any) -> Any:
        decide(kwargs)
        return guard.mask(await tool.ainvoke(kwargs))

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        return_direct=tool.return_direct,
        handle_tool_error=True,
    )


def guard_tools(tools: list[BaseTool], engine: Engine, **options: Any) -> list[BaseTool]:
    """Each of ``tools`` guarded with the same options."""
    return [guard_tool(t, engine, **options) for t in tools]
