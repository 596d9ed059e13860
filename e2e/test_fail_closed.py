"""Fail-closed data path, against real servers: every message type a server can use to carry a
value reaches the client masked, and what the sessions do not understand is refused. Effects are
checked on the server itself, not through the proxy."""
import base64
import gzip
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import psycopg
import pymysql
import pytest

from conftest import ROOT, TARGET, free_port, start_proxy, stop, synthetic_stripe_key

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = synthetic_stripe_key()


# ---- PostgreSQL ----------------------------------------------------------------------------------

def direct(postgres):
    return psycopg.connect(host="127.0.0.1", port=postgres["port"], user=postgres["user"],
                           password=postgres["password"], dbname="postgres", autocommit=True)


def via(postgres, proxy, **kw):
    return psycopg.connect(host="127.0.0.1", port=proxy.port, user=postgres["user"],
                           password=postgres["password"], dbname="postgres", sslmode="prefer", **kw)


def psql(postgres, proxy, *commands, tuples_only=True):
    args = ["psql", "-X", "-A", "-v", "ON_ERROR_STOP=0",
            f"host=127.0.0.1 port={proxy.port} user={postgres['user']} dbname=postgres sslmode=prefer"]
    if tuples_only:
        args.insert(3, "-t")
    for c in commands:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **postgres["env"]},
                          timeout=60)


@pytest.fixture(scope="module")
def vault(postgres):
    """A table of keys, a view whose column is named by a key, and a key in PEM form."""
    pem = "-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(os.urandom(900)).decode() + "\n-----END PRIVATE KEY-----\n"
    with direct(postgres) as c:
        c.execute("DROP TABLE IF EXISTS vault CASCADE")
        # `blob`, not a column named like a credential: these tests look at masking on the way
        # back, so the policy must let the computations that move the key around run.
        c.execute("CREATE TABLE vault (id int, blob text, pem text)")
        c.execute("INSERT INTO vault VALUES (1, %s, %s)", (KEY, pem))
        c.execute(f'CREATE VIEW leaky_columns AS SELECT 1 AS "{KEY}"')
    return {"pem": pem}


def test_notifications_are_masked(postgres, pg_proxy, vault):
    r = psql(postgres, pg_proxy, "LISTEN c", "SELECT pg_notify('c', blob) FROM vault")
    out = r.stdout + r.stderr
    assert 'Asynchronous notification "c" with payload "[REDACTED:' in out, out
    assert KEY not in out


def test_parameter_status_is_masked(postgres, pg_proxy, vault):
    with via(postgres, pg_proxy, autocommit=True) as c:
        row = c.execute("SELECT set_config('application_name', blob, false) FROM vault").fetchone()
        assert row[0].startswith("[REDACTED:")
        reported = c.info.parameter_status("application_name")
        assert reported and KEY not in reported and "[REDACTED:" in reported, reported
    # On the server, the setting was made (the masking is only on the way to the client).


def test_column_names_are_masked(postgres, pg_proxy, vault):
    r = psql(postgres, pg_proxy, "SELECT * FROM leaky_columns", tuples_only=False)
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout and "[REDACTED:" in r.stdout.splitlines()[0], r.stdout


def test_binary_copy_is_masked_field_by_field(postgres, pg_proxy, vault):
    with via(postgres, pg_proxy, autocommit=True) as c:
        with c.cursor().copy("COPY (SELECT blob FROM vault) TO STDOUT (FORMAT binary)") as copy:
            data = b"".join(bytes(b) for b in copy)
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00")
    assert KEY.encode() not in data and b"[REDACTED:" in data
    # Still valid binary COPY: one tuple of one field, then the trailer.
    body = data[19:]
    assert int.from_bytes(body[:2], "big") == 1
    n = int.from_bytes(body[2:6], "big")
    assert body[6 + n:] == b"\xff\xff"


def test_text_copy_escapes_do_not_hide_a_key(postgres, pg_proxy, vault):
    r = psql(postgres, pg_proxy, "COPY (SELECT E'\\t' || blob || E'\\n' FROM vault) TO STDOUT")
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout and "[REDACTED:" in r.stdout, r.stdout


def test_wrapped_base64_key_is_masked_whole(postgres, pg_proxy, vault):
    with via(postgres, pg_proxy) as c:
        (b64,) = c.execute("SELECT encode(convert_to(pem, 'UTF8'), 'base64') FROM vault").fetchone()
    with direct(postgres) as c:
        (real,) = c.execute("SELECT encode(convert_to(pem, 'UTF8'), 'base64') FROM vault").fetchone()
    lines = real.splitlines()
    assert len(lines) > 10 and all(len(l) == 76 for l in lines[:-1])
    leaked = [l for l in lines if l in b64 and len(l) > 20]
    assert not leaked, f"{len(leaked)} of {len(lines)} lines leaked"


def grant_for(postgres, proxy, grant_key, workdir, sql):
    with via(postgres, proxy) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute(sql)
    request = e.value.diag.message_detail
    path = workdir / "pg-grant-request.json"
    path.write_text(request)
    return subprocess.run([str(TARGET / "sluice"), "approve", "--key-file", str(grant_key), "--approver", "alice",
                           str(path)], check=True, capture_output=True, text=True).stdout.strip()


def test_a_granted_prepared_statement_runs_once(postgres, pg_proxy, grant_key, workdir):
    """psycopg prepares the statement (Parse with the grant, Bind, Execute), then runs it again
    with Bind and Execute only: the second run is refused, and the rows put back survive."""
    with direct(postgres) as d:
        d.execute("DROP TABLE IF EXISTS granted_rows")
        d.execute("CREATE TABLE granted_rows (id int)")
        d.execute("INSERT INTO granted_rows VALUES (1), (2)")
    grant = grant_for(postgres, pg_proxy, grant_key, workdir, "DELETE FROM granted_rows")
    sql = f"/*sluice-grant:{grant}*/ DELETE FROM granted_rows"
    with via(postgres, pg_proxy, autocommit=True) as c:
        c.execute(sql, prepare=True)
        with direct(postgres) as d:
            assert d.execute("SELECT count(*) FROM granted_rows").fetchone()[0] == 0
            d.execute("INSERT INTO granted_rows VALUES (3)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute(sql, prepare=True)
        assert "not prepared through this session" in str(e.value) or "grant already used" in str(e.value)
    with direct(postgres) as d:
        assert d.execute("SELECT count(*) FROM granted_rows").fetchone()[0] == 1


# ---- MySQL / MariaDB -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def my_vault(mariadb):
    c = pymysql.connect(host="127.0.0.1", port=mariadb["port"], user=mariadb["user"], password=mariadb["password"],
                        database="app", autocommit=True)
    with c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS vault")
        cur.execute("CREATE TABLE vault (id int, api_key text)")
        cur.execute("INSERT INTO vault VALUES (1, %s)", (KEY,))
    c.close()


def my_connect(mariadb, proxy):
    return pymysql.connect(host="127.0.0.1", port=proxy.port, user=mariadb["user"], password=mariadb["password"],
                           database="app", autocommit=True)


def packet(seq, payload):
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def read_all(sock, quiet=1.0):
    sock.settimeout(quiet)
    data = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            data += b
    except socket.timeout:
        pass
    return data


def test_pipelined_commands_do_not_unmask_a_result(mariadb, mysql_proxy, my_vault):
    """A query and a ping in one write: the first result set is masked all the same."""
    c = my_connect(mariadb, mysql_proxy)
    try:
        c._sock.sendall(packet(0, b"\x03SELECT api_key FROM vault") + packet(0, b"\x0e"))
        data = read_all(c._sock)
    finally:
        c._sock.close()
    assert KEY.encode() not in data and b"[REDACTED:" in data
    # The ping's OK (sequence id 1) came after the whole result set.
    assert data[-11:-7] == b"\x07\x00\x00\x01" and data[-7] == 0x00, data[-12:]


def test_column_names_are_masked_mysql(mariadb, mysql_proxy, my_vault):
    c = my_connect(mariadb, mysql_proxy)
    with c.cursor() as cur:
        cur.execute(f"SELECT 1 AS `{KEY}`")
        names = [d[0] for d in cur.description]
    c.close()
    assert KEY not in names[0] and names[0].startswith("[REDACTED:"), names


def test_unknown_commands_are_refused(mariadb, mysql_proxy, my_vault):
    c = my_connect(mariadb, mysql_proxy)
    try:
        # COM_CHANGE_USER would re-authenticate as someone else: refused, the session goes on.
        c._sock.sendall(packet(0, b"\x11root\x00\x00"))
        data = read_all(c._sock, 0.5)
        assert data[4] == 0xFF and b"not allowed through this gateway" in data, data
        c._sock.sendall(packet(0, b"\x03SELECT 41 + 1"))
        assert b"42" in read_all(c._sock, 0.5)
    finally:
        c._sock.close()


def test_commands_out_of_sequence_close_the_connection(mariadb, mysql_proxy, my_vault):
    c = my_connect(mariadb, mysql_proxy)
    try:
        c._sock.sendall(packet(5, b"\x03SELECT api_key FROM vault"))
        assert read_all(c._sock, 2.0) == b""
    finally:
        c._sock.close()


# ---- HTTP ----------------------------------------------------------------------------------------

class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def raw(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/headers":
            self.raw((f"HTTP/1.1 302 Moved {KEY}\r\nLocation: https://example.test/cb?token={KEY}\r\n"
                      f"X-Api-Key: {KEY}\r\nContent-Length: 2\r\n\r\nok").encode())
        elif self.path == "/host":
            body = self.headers.get("Host", "").encode()
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif self.path == "/continue":
            self.raw(f"HTTP/1.1 103 Early Hints\r\nLink: </k?{KEY}>\r\n\r\n".encode())
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        elif self.path == "/cut":
            self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            self.close_connection = True
        elif self.path == "/bomb":
            z = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(z) + z)
        elif self.path == "/slow":
            time.sleep(3)
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
        else:
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")


@pytest.fixture(scope="module")
def origin2():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def through(proxy, request: bytes, quiet=2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(request)
        return read_all(s, quiet)


def test_response_heads_are_masked(http_proxy, origin2):
    got = through(http_proxy, f"GET http://127.0.0.1:{origin2}/headers HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert got.startswith(b"HTTP/1.1 302 Moved [REDACTED:"), got[:80]
    assert KEY.encode() not in got
    assert b"Location: https://example.test/cb?token=[REDACTED:" in got


def test_interim_responses_are_relayed_masked(http_proxy, origin2):
    got = through(http_proxy, f"GET http://127.0.0.1:{origin2}/continue HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert got.startswith(b"HTTP/1.1 103 Early Hints"), got[:60]
    assert KEY.encode() not in got and b"final" in got


def test_the_decided_host_is_the_one_sent(http_proxy, origin2):
    got = through(http_proxy, f"GET http://127.0.0.1:{origin2}/host HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode())
    body = got.split(b"\r\n\r\n", 1)[1]
    assert f"127.0.0.1:{origin2}".encode() in body and b"169.254" not in body, got


@pytest.mark.parametrize("host", ["169.254.43518", "0xa9.0xfe.0xa9.0xfe", "2852039166", "[::ffff:169.254.169.254]",
                                  "0251.0376.0251.0376"])
def test_metadata_address_spellings_are_refused(http_proxy, host):
    got = through(http_proxy, f"GET http://{host}/latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert got.startswith(b"HTTP/1.1 403"), got[:120]
    assert b"cloud-metadata" in got


def test_a_name_resolving_to_a_protected_address_is_refused(http_proxy, origin2):
    """The e2e policy denies 127.0.0.1's /internal/ paths by address; `localhost` is decided
    again on the address it resolves to."""
    got = through(http_proxy, f"GET http://localhost:{origin2}/internal/x HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert got.startswith(b"HTTP/1.1 403"), got[:120]
    assert b"internal-by-address" in got


def test_an_unreachable_upstream_is_a_502(http_proxy):
    port = free_port()  # nothing listens there
    got = through(http_proxy, f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert got.startswith(b"HTTP/1.1 502"), got[:120]


def test_a_cut_chunked_body_ends_the_client_connection(http_proxy, origin2):
    start = time.time()
    got = through(http_proxy, f"GET http://127.0.0.1:{origin2}/cut HTTP/1.1\r\nHost: x\r\n\r\n".encode(), quiet=5.0)
    assert time.time() - start < 4.5, "the client was left waiting"
    # The head went out; the body never ends with the last chunk (what was held back for
    # masking is not released from a cut response).
    assert got.startswith(b"HTTP/1.1 200") and not got.endswith(b"0\r\n\r\n"), got


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_a_decompression_bomb_is_cut(http_proxy, origin2):
    before = rss_kib(http_proxy.proc.pid)
    got = through(http_proxy, f"GET http://127.0.0.1:{origin2}/bomb HTTP/1.1\r\nHost: x\r\n\r\n".encode(), quiet=3.0)
    assert len(got) < 8 * 1024 * 1024, len(got)
    assert not got.endswith(b"0\r\n\r\n")
    assert rss_kib(http_proxy.proc.pid) - before < 48 * 1024
    time.sleep(0.2)
    assert any("decompression bomb" in d.get("message", "") for d in http_proxy.decisions())


def test_plain_traffic_in_a_connect_tunnel_is_refused(http_proxy, origin2):
    with socket.create_connection(("127.0.0.1", http_proxy.port), timeout=10) as s:
        s.sendall(f"CONNECT 127.0.0.1:{origin2} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        rest = read_all(s, 2.0)
    assert rest == b"", rest


def test_a_silent_upstream_is_a_504(workdir, grant_key, known_secret, origin2):
    proxy = start_proxy("http-proxy", workdir, grant_key, known_secret, "--upstream-timeout", "1")
    try:
        got = through(proxy, f"GET http://127.0.0.1:{origin2}/slow HTTP/1.1\r\nHost: x\r\n\r\n".encode(), quiet=4.0)
    finally:
        stop(proxy)
    assert got.startswith(b"HTTP/1.1 504"), got[:80]


def test_a_slow_request_head_times_out(workdir, grant_key, known_secret):
    """A client sending its head a byte at a time cannot hold the connection past the idle
    timeout: it gets a 408 and the connection closes."""
    proxy = start_proxy("http-proxy", workdir, grant_key, known_secret, "--idle-timeout", "1")
    try:
        start = time.time()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            # Half a head, a byte at a time, then a stall.
            for b in b"GET http://127":
                s.sendall(bytes([b]))
                time.sleep(0.05)
            got = read_all(s, 3.0)
    finally:
        stop(proxy)
    assert got.startswith(b"HTTP/1.1 408"), got
    assert time.time() - start < 6


# ---- MCP -----------------------------------------------------------------------------------------

class Guard:
    def __init__(self, workdir, grant_key, server):
        self.proc = subprocess.Popen(
            [str(TARGET / "examples" / "mcp-stdio-guard"), "--user", "agent-7", "--policy",
             os.path.join(HERE, "mcp-policy.yaml"), "--grant-key", f"{grant_key}.pub", "--", sys.executable, server],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "SLUICE_TEST_SECRET": KEY})
        self.seen = []

    def send(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def recv(self):
        """The next response; notifications and server requests on the way are kept in `seen`."""
        while True:
            line = self.proc.stdout.readline()
            assert line, self.proc.stderr.read()
            self.seen.append(line)
            msg = json.loads(line)
            if "id" in msg and "method" not in msg:
                return msg

    def start(self):
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}})
        self.recv()
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


def test_mcp_every_method_decided_everything_masked(workdir, grant_key):
    g = Guard(workdir, grant_key, os.path.join(HERE, "mcp_server.py")).start()
    try:
        g.send({"jsonrpc": "2.0", "id": 1, "method": "resources/read",
                "params": {"uri": "file:///root/.aws/credentials"}})
        r = g.recv()
        assert r["error"]["code"] == -32001 and "credential" in r["error"]["message"], r
        g.send({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///srv/notes.txt"}})
        r = g.recv()
        assert "[REDACTED:" in r["result"]["contents"][0]["text"], r
        g.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "split_key", "arguments": {}}})
        r = g.recv()
        texts = [c["text"] for c in r["result"]["content"]]
        assert KEY[:14] not in "".join(texts) and KEY[14:] not in "".join(texts), texts
        g.send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "noisy", "arguments": {}}})
        g.recv()
        # A method this engine does not know: uncertain, so (agent-safe) approval is asked.
        g.send({"jsonrpc": "2.0", "id": 6, "method": "x-vendor/exec", "params": {"cmd": "env"}})
        r = g.recv()
        assert r["error"]["code"] == -32001 and "unknown MCP method" in r["error"]["message"], r
    finally:
        g.close()
    everything = "".join(g.seen)
    assert KEY not in everything
    assert any('"notifications/message"' in l and "[REDACTED:" in l for l in g.seen), g.seen


RAW_SERVER = r'''
import json, sys
KEY = "%s"
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-06-18",
              "capabilities": {"tools": {}}, "serverInfo": {"name": "raw", "version": "1"}}}), flush=True)
    elif msg.get("method") == "tools/call":
        # A request of its own to the client, then an error holding the key in message and data,
        # and progress with the key.
        print(json.dumps({"jsonrpc": "2.0", "id": "s1", "method": "elicitation/create",
              "params": {"message": "confirm " + KEY, "requestedSchema": {"type": "object"}}}), flush=True)
        print(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": 1, "progress": 1, "message": KEY}}), flush=True)
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32000,
              "message": "failed with " + KEY, "data": {KEY: "as a key"}}}), flush=True)
    elif "id" in msg and "method" in msg:
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {}}), flush=True)
''' % KEY


def test_mcp_errors_server_requests_and_keys_are_masked(workdir, grant_key):
    server = workdir / "raw_mcp_server.py"
    server.write_text(RAW_SERVER)
    g = Guard(workdir, grant_key, str(server)).start()
    try:
        g.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}})
        r = g.recv()
        assert r["error"]["message"].startswith("failed with [REDACTED:"), r
        assert all(k.startswith("[REDACTED:") for k in r["error"]["data"]), r
        # The client answers the server's request; a response to a request nobody made is refused.
        g.send({"jsonrpc": "2.0", "id": "s1", "result": {"action": "decline"}})
        g.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert g.recv()["id"] == 2
    finally:
        g.close()
    assert KEY not in "".join(g.seen)
    assert any('"elicitation/create"' in l and "[REDACTED:" in l for l in g.seen), g.seen
    assert any('"notifications/progress"' in l and "[REDACTED:" in l for l in g.seen), g.seen


BAD_SERVER = r'''
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("method") == "initialize":
        print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {"protocolVersion": "2025-06-18",
              "capabilities": {"tools": {}}, "serverInfo": {"name": "bad", "version": "1"}}}), flush=True)
    elif "id" in msg:
        # No "jsonrpc": not a JSON-RPC 2.0 message.
        print(json.dumps({"id": msg["id"], "result": {"leak": "%s"}}), flush=True)
''' % KEY


def test_mcp_bad_server_output_answers_pending_requests_and_closes(workdir, grant_key):
    server = workdir / "bad_mcp_server.py"
    server.write_text(BAD_SERVER)
    g = Guard(workdir, grant_key, str(server)).start()
    g.send({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
    r = g.recv()
    assert r["id"] == 7 and "error" in r and "closed" in r["error"]["message"], r
    # Then end-of-file: the guard exits.
    assert g.proc.stdout.readline() == ""
    assert g.proc.wait(timeout=10) != 0
    assert KEY not in "".join(g.seen)
