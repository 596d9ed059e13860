"""An MCP server built with the official ``mcp`` SDK, guarded in-process.

Sluice sits between the SDK's transport and the server, on the JSON-RPC messages themselves, so
it works for ``MCPServer`` / ``FastMCP`` and low-level ``Server`` alike, on any transport whose
streams you hold:

- ``tools/call`` is decided by the policy: a refusal is a JSON-RPC error the client receives
  (code -32001, with the approval request in ``data`` when a human must approve), and the tool
  never runs; a grant is presented in ``params._meta["sluice/grant"]``;
- text in results is masked before it leaves the process;
- ``tools/list`` hides the tools this identity may not call;
- a tool whose description or schema changes mid-session is flagged, and calls to it then need
  approval.

    server = MCPServer("files")
    ...
    if __name__ == "__main__":
        anyio.run(sluice.mcp.run_stdio, server, sluice.Engine(), "agent-7")

Needs ``mcp`` (``pip install sluice[mcp]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import logging

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from sluice._native import Engine, Identity, Session, SessionError, Target

try:  # mcp 2.x
    from mcp_types import jsonrpc_message_adapter as _adapter

    def _parse(line: bytes) -> Any:
        return _adapter.validate_json(line, by_name=False)

except ImportError:  # mcp 1.x
    from mcp.types import JSONRPCMessage

    def _parse(line: bytes) -> Any:
        return JSONRPCMessage.model_validate_json(line)  # type: ignore[attr-defined,unused-ignore]


__all__ = ["guard_streams", "run_stdio"]

log = logging.getLogger("sluice.mcp")


def _dump(message: Any) -> str:
    return str(message.model_dump_json(by_alias=True, exclude_unset=True))


async def _deliver(out: bytes, stream: Any, metadata: Any = None) -> None:
    for line in out.splitlines():
        if line.strip():
            await stream.send(SessionMessage(_parse(line), metadata=metadata))


@asynccontextmanager
async def guard_streams(
    read_stream: Any,
    write_stream: Any,
    engine: Engine,
    *,
    identity: Identity | str | None = None,
    target: Target | str | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """Wraps a transport's ``(read_stream, write_stream)``: yields the pair to give the server.

    Messages from the client pass through ``Session.client_message`` (decided; refusals go back
    to the client and never reach the server); messages from the server through
    ``Session.server_message`` (masked, tool lists filtered).
    """
    session: Session = engine.session("mcp", identity=identity, target=target)
    to_server, server_reads = anyio.create_memory_object_stream[Any](16)
    server_writes, from_server = anyio.create_memory_object_stream[SessionMessage](16)

    async def client_to_server() -> None:
        async with to_server:
            async for item in read_stream:
                if isinstance(item, Exception):
                    await to_server.send(item)
                    continue
                try:
                    forward, answer = session.client_message(_dump(item.message))
                except SessionError as e:
                    await close(e)
                    return
                await _deliver(forward, to_server, item.metadata)
                await _deliver(answer, write_stream)

    async def server_to_client() -> None:
        async with from_server:
            async for item in from_server:
                try:
                    _, out = session.server_message(_dump(item.message))
                except SessionError as e:
                    await close(e)
                    return
                await _deliver(out, write_stream, item.metadata)

    client_scope = anyio.CancelScope()

    async def client_pump() -> None:
        with client_scope:
            await client_to_server()

    try:
        async with anyio.create_task_group() as tg:

            async def close(e: SessionError) -> None:
                # Bad input ends the connection, as the proxies close theirs: every request still
                # waiting gets an error, the server is cancelled, nothing unchecked or unmasked
                # passes, and the transport is closed (the client sees end-of-file).
                log.error("sluice: %s", e)
                try:
                    await _deliver(session.abort_pending(str(e)), write_stream)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(client_pump)
            tg.start_soon(server_to_client)
            try:
                yield server_reads, server_writes
            finally:
                # The server is done: deliver what it wrote, then stop reading from the client.
                server_reads.close()
                server_writes.close()
                client_scope.cancel()
    finally:
        # The server would have closed the transport's streams itself: do it in its place, so
        # that the transport (stdio's writer task, for one) ends too.
        await write_stream.aclose()
        await read_stream.aclose()


def _lowlevel(server: Any) -> Any:
    """The low-level ``Server`` of an ``MCPServer`` (2.x) or ``FastMCP`` (1.x), or ``server``."""
    for attr in ("_lowlevel_server", "_mcp_server"):
        inner = getattr(server, attr, None)
        if inner is not None:
            return inner
    return server


async def run_stdio(
    server: Any,
    engine: Engine,
    identity: Identity | str | None = None,
    target: Target | str | None = None,
) -> None:
    """Serves ``server`` over stdio with every message guarded by ``engine``."""
    low = _lowlevel(server)
    async with stdio_server() as (read_stream, write_stream):
        async with guard_streams(read_stream, write_stream, engine, identity=identity, target=target) as (r, w):
            await low.run(r, w, low.create_initialization_options())
