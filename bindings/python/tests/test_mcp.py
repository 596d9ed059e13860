"""An MCP server built with the official `mcp` SDK and guarded in-process by `sluice.mcp`
(examples/python/guarded_mcp_server.py), driven by the SDK's own client over stdio."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

import sluice

from conftest import ROOT, synthetic_stripe_key

mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

SERVER = ROOT / "examples" / "python" / "guarded_mcp_server.py"


async def refusal(session: ClientSession, name: str, args: dict) -> str:
    """A refused call's message: SDK 2.x raises the JSON-RPC error, 1.x returns an error result."""
    try:
        res = await session.call_tool(name, args)
    except Exception as e:  # noqa: BLE001 - MCPError (2.x) / McpError (1.x)
        return str(e)
    assert res.isError, f"{name} was not refused: {res}"
    return res.content[0].text


def test_guarded_sdk_server_over_stdio() -> None:
    secret = synthetic_stripe_key()
    key = sluice.GrantKey.generate_ed25519()
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(SERVER)],
        env={**os.environ, "SLUICE_DEMO_SECRET": secret, "SLUICE_USER": "agent-7",
             "SLUICE_GRANT_KEY": key.public().to_text()},
    )

    async def scenario() -> None:
        async with stdio_client(params) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                names = {t.name for t in (await s.list_tools()).tools}
                assert names == {"read_config", "run_command", "refund"}, names

                text = (await s.call_tool("read_config", {"name": "payments"})).content[0].text
                assert secret not in text and "STRIPE_KEY=[REDACTED:" in text and "DEBUG=false" in text
                ok = await s.call_tool("run_command", {"command": "cargo test"})
                assert ok.content[0].text == "ran: cargo test"

                assert "sluice: denied" in await refusal(s, "run_command", {"command": "cat ~/.aws/credentials"})
                assert "databases are not dropped" in await refusal(s, "drop_database", {"name": "prod"})
                msg = await refusal(s, "refund", {"order": "A-1", "amount": 5})
                assert "approval required" in msg and "(request apr_" in msg
                # The session goes on after refusals.
                assert (await s.call_tool("run_command", {"command": "ls"})).content[0].text == "ran: ls"

    asyncio.run(scenario())


def test_guarded_server_grant_in_meta() -> None:
    """The approval flow on the wire: a refusal carries the request; a grant in
    `_meta["sluice/grant"]` lets exactly that call through once."""
    key = sluice.GrantKey.generate_ed25519()
    env = {**os.environ, "SLUICE_USER": "agent-7", "SLUICE_GRANT_KEY": key.public().to_text()}

    async def scenario() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SERVER), env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout

        async def send(msg: dict) -> dict | None:
            proc.stdin.write(json.dumps(msg).encode() + b"\n")
            await proc.stdin.drain()
            if "id" not in msg:
                return None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            return json.loads(line)

        await send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "refund", "arguments": {"order": "A-1", "amount": 5}}}
        refused = await send(call)
        assert refused and refused["error"]["code"] == -32001
        request = sluice.ApprovalRequest.from_json(json.dumps(refused["error"]["data"]["approval"]))
        grant = key.issue(request, ["alice"])
        with_grant = {**call, "id": 2, "params": {**call["params"], "_meta": {"sluice/grant": grant}}}
        ok = await send(with_grant)
        assert ok and "result" in ok and "refunded 5 on A-1" in json.dumps(ok["result"])
        again = await send({**with_grant, "id": 3})
        assert again and again["error"]["code"] == -32001
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 30)

    asyncio.run(scenario())


def test_bad_input_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    """A message the session rejects ends the connection: the server is cancelled, the client's
    stream is closed, nothing reaches the server, and the reason is logged."""
    import anyio

    from sluice.mcp import guard_streams

    class Truncated:
        def model_dump_json(self, **_: object) -> str:
            return '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {'

    class Item:
        message = Truncated()
        metadata = None

    async def scenario() -> tuple[list, list]:
        client_send, read_stream = anyio.create_memory_object_stream(4)
        write_stream, client_recv = anyio.create_memory_object_stream(4)
        reached_server: list = []
        async with guard_streams(read_stream, write_stream, sluice.Engine()) as (server_reads, _):
            await client_send.send(Item())
            async for message in server_reads:
                reached_server.append(message)
        to_client = [m async for m in client_recv]
        return reached_server, to_client

    with caplog.at_level("ERROR", logger="sluice.mcp"):
        reached_server, to_client = asyncio.run(scenario())
    assert reached_server == [] and to_client == []
    assert "bad input from the client" in caplog.text


def test_bad_server_output_answers_the_pending_request_then_closes(caplog: pytest.LogCaptureFixture) -> None:
    """A server message that is not JSON-RPC 2.0 ends the connection, but first every request
    still waiting gets a JSON-RPC error, so the client is never left hanging."""
    import anyio

    from sluice.mcp import guard_streams

    class Raw:
        def __init__(self, text: str) -> None:
            self.text = text

        def model_dump_json(self, **_: object) -> str:
            return self.text

    class Item:
        def __init__(self, text: str) -> None:
            self.message = Raw(text)
            self.metadata = None

    async def scenario() -> list:
        client_send, read_stream = anyio.create_memory_object_stream(4)
        write_stream, client_recv = anyio.create_memory_object_stream(4)
        async with guard_streams(read_stream, write_stream, sluice.Engine()) as (server_reads, server_writes):
            await client_send.send(Item('{"jsonrpc": "2.0", "id": 7, "method": "tools/list"}'))
            async for _request in server_reads:
                # No "jsonrpc": the session refuses it.
                await server_writes.send(Item('{"id": 7, "result": {"tools": []}}'))
                break
        return [m async for m in client_recv]

    with caplog.at_level("ERROR", logger="sluice.mcp"):
        to_client = asyncio.run(scenario())
    assert len(to_client) == 1, to_client
    reply = json.loads(to_client[0].message.model_dump_json(by_alias=True, exclude_none=True))
    assert reply["id"] == 7 and "closed" in reply["error"]["message"], reply
    assert "bad input from the server" in caplog.text
