from mcp.server.mcpserver import MCPServer as FastMCP
mcp = FastMCP("capture-demo")

@mcp.tool()
def read_config(name: str) -> str:
    """Return a configuration file's contents."""
    return f"# {name}\nAPI_TOKEN=glpat-Xa3kLm9Qr7Tz2Wv5Yb8N\nDEBUG=false\n"  # synthetic value: sluice:allow

@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b

if __name__ == "__main__":
    mcp.run()
