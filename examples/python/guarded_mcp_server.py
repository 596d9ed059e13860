"""An MCP server built with the official `mcp` Python SDK, guarded in-process by Sluice.

    python examples/python/guarded_mcp_server.py            # serves MCP over stdio

Every tools/call is decided by the policy before the tool runs (the agent-safe policy, plus
the rules below), text in results is masked, and tools/list hides what the caller may not
call. The configuration "secret" is synthetic, taken from SLUICE_DEMO_SECRET.
"""

from __future__ import annotations

import os

import anyio

import sluice
import sluice.mcp

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]

POLICY = """
version: 1
name: guarded-mcp-example
extends: agent-safe
default: allow
rules:
  - id: no-dropping-databases
    action: deny
    message: databases are not dropped through MCP
    when: { mcp: { tools: [drop_database] } }
  - id: refunds-need-approval
    action: require_approval
    when: { mcp: { tools: [refund] } }
"""

server = Server("guarded-example")


@server.tool()
def read_config(name: str) -> str:
    """Return a configuration file's contents."""
    return f"# {name}\nSTRIPE_KEY={os.environ.get('SLUICE_DEMO_SECRET', '')}\nDEBUG=false\n"


@server.tool()
def run_command(command: str) -> str:
    """Pretend to run a shell command (this example never runs anything)."""
    return f"ran: {command}"


@server.tool()
def drop_database(name: str) -> str:
    """Drop a database."""
    return f"dropped {name}"


@server.tool()
def refund(order: str, amount: int) -> str:
    """Refund an order."""
    return f"refunded {amount} on {order}"


def main() -> None:
    key = os.environ.get("SLUICE_GRANT_KEY")  # a verifying key: grants in _meta["sluice/grant"]
    engine = sluice.Engine.from_yaml(POLICY, grant_key=key)
    user = os.environ.get("SLUICE_USER", "agent")
    anyio.run(sluice.mcp.run_stdio, server, engine, user)


if __name__ == "__main__":
    main()
