import asyncio
# How testdata/mcp/ was recorded: from the repository root, with the official `mcp` Python SDK
# (2.x) installed, run `python3 scripts/mcp_capture/client.py`. Values are synthetic.
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(command="scripts/mcp_capture/tee_server.sh", args=[])
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            tools = await s.list_tools()
            res = await s.call_tool("read_config", {"name": ".env"})
            res2 = await s.call_tool("add", {"a": 2, "b": 3})
            print([t.name for t in tools.tools], res.content[0].text[:20], res2.content[0].text)

asyncio.run(main())
