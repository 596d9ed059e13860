"""A LangChain tool behind Sluice: the agent's shell tool is decided before it runs, and its
output is masked before the model sees it.

    python examples/python/langchain_guardrail.py

(No model is needed to see it work: the tool is invoked the way an agent executor invokes it.)
"""

from __future__ import annotations

import subprocess

from langchain_core.tools import tool

import sluice
from sluice.langchain import guard_tool


@tool
def run_command(command: str) -> str:
    """Run a shell command and return its output."""
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30).stdout


def main() -> None:
    engine = sluice.Engine()
    guarded = guard_tool(run_command, engine, identity="agent-7")
    for command in ["echo hello", "cat ~/.aws/credentials", "env | grep -i token"]:
        print(f"$ {command}\n{guarded.invoke({'command': command})}")


if __name__ == "__main__":
    main()
