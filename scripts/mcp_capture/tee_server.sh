#!/bin/sh
# Records the stdio of the MCP server: what the client writes and what the server answers.
exec python3 -c '
import subprocess, sys, threading
p = subprocess.Popen([sys.executable, "scripts/mcp_capture/server.py"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
out_c = open("testdata/mcp/stdio-session.client.jsonl", "wb")
out_s = open("testdata/mcp/stdio-session.server.jsonl", "wb")
def up():
    for line in sys.stdin.buffer:
        out_c.write(line); out_c.flush(); p.stdin.write(line); p.stdin.flush()
    p.stdin.close()
t = threading.Thread(target=up, daemon=True); t.start()
for line in p.stdout:
    out_s.write(line); out_s.flush(); sys.stdout.buffer.write(line); sys.stdout.buffer.flush()
'
