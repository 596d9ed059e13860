"""PostgreSQL through pg-proxy with the real psql client and psycopg: masking, refusals that keep
the connection usable, approvals with single-use grants, COPY, 100 concurrent connections, and
garbage input."""
import json
import re
import socket
import time
import subprocess

import psycopg
import pytest

from conftest import TARGET, concurrently, synthetic_stripe_key


@pytest.fixture(scope="module")
def keys_table(postgres, known_secret):
    """A table holding API keys next to ordinary values, created directly on the server."""
    rows = [(i, f"service-{i}", synthetic_stripe_key(), f"owner{i}@example.test") for i in range(1, 6)]
    with psycopg.connect(host="127.0.0.1", port=postgres["port"], user=postgres["user"],
                         password=postgres["password"], dbname="postgres", autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS api_keys")
        c.execute("CREATE TABLE api_keys (id int primary key, name text, key text, owner text, note text)")
        for r in rows:
            c.execute("INSERT INTO api_keys VALUES (%s, %s, %s, %s, %s)", r + (f"rotates yearly",))
        c.execute("UPDATE api_keys SET note = %s WHERE id = 5", (f"db password {known_secret}",))
        c.execute("CREATE TABLE scratch (id int)")
    return rows


def psql(postgres, proxy, *commands, check=False):
    args = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=0",
            f"host=127.0.0.1 port={proxy.port} user={postgres['user']} dbname=postgres sslmode=prefer"]
    for c in commands:
        args += ["-c", c]
    env = {"PATH": "/usr/bin:/bin", **postgres["env"]}
    return subprocess.run(args, capture_output=True, text=True, env=env, check=check, timeout=60)


def connect(postgres, proxy, **kw):
    return psycopg.connect(host="127.0.0.1", port=proxy.port, user=postgres["user"],
                           password=postgres["password"], dbname="postgres", sslmode="prefer", **kw)


def test_psql_sees_keys_masked_and_everything_else_intact(postgres, pg_proxy, keys_table, known_secret):
    r = psql(postgres, pg_proxy, "SELECT id, name, key, owner, note FROM api_keys ORDER BY id", check=True)
    out = r.stdout
    for (i, name, key, owner) in keys_table:
        assert key not in out
        assert f"{i}|{name}|[REDACTED:" in out, out
        assert owner in out
    assert known_secret not in out
    assert "db password [REDACTED:known-value-1:" in out
    assert out.count("rotates yearly") == 4


def test_pg_shadow_is_refused_and_the_connection_keeps_working(postgres, pg_proxy, keys_table):
    r = psql(postgres, pg_proxy, "SELECT * FROM pg_shadow", "SELECT count(*) FROM api_keys", "select 42")
    assert "ERROR:  sluice: denied: catalogs holding password hashes" in r.stderr, r.stderr
    # Same psql session (one connection): the next statements run.
    assert r.stdout.split() == ["5", "42"], r.stdout


def test_drop_needs_approval_and_a_grant_works_once(postgres, pg_proxy, keys_table, grant_key, workdir):
    r = psql(postgres, pg_proxy, "DROP TABLE scratch")
    assert "approval required" in r.stderr, r.stderr
    detail = re.search(r"DETAIL:  (\{.*\})", r.stderr).group(1)
    request = json.loads(detail)
    assert request["command"] == "DROP TABLE scratch" and request["user"] == postgres["user"]
    req_file = workdir / "drop-request.json"
    req_file.write_text(detail)
    grant = subprocess.run([str(TARGET / "sluice"), "approve", "--key-file", str(grant_key), "--approver",
                            "alice", str(req_file)], check=True, capture_output=True, text=True).stdout.strip()
    # A grant for another statement does nothing for this one.
    r = psql(postgres, pg_proxy, f"/*sluice-grant:{grant}*/ DROP TABLE api_keys")
    assert "grant is for a different command" in r.stderr, r.stderr
    r = psql(postgres, pg_proxy, f"/*sluice-grant:{grant}*/ DROP TABLE scratch")
    assert r.returncode == 0 and "DROP TABLE" in r.stdout + r.stderr or r.stderr == "", r.stderr
    r = psql(postgres, pg_proxy, "SELECT to_regclass('scratch') IS NULL")
    assert r.stdout.strip() == "t"
    # Not twice: recreate the table and present the same grant again.
    psql(postgres, pg_proxy, "CREATE TABLE scratch (id int)", check=True)
    r = psql(postgres, pg_proxy, f"SET sluice.grant = '{grant}'", "DROP TABLE scratch")
    assert "grant already used" in r.stderr, r.stderr
    decisions = [d for d in pg_proxy.decisions() if d.get("event") == "decision"]
    assert any(d["decision"] == "allow" and d["rule"] == "destructive-sql" for d in decisions)


def test_psycopg_extended_protocol(postgres, pg_proxy, keys_table):
    with connect(postgres, pg_proxy) as c:
        rows = c.execute("SELECT name, key FROM api_keys WHERE id = %s", (2,)).fetchall()
        assert rows[0][0] == "service-2"
        assert rows[0][1].startswith("[REDACTED:") and rows[0][1] != keys_table[1][2]
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute("SELECT passwd FROM pg_shadow WHERE usename = %s", ("sluice",))
        assert "sluice: denied" in str(e.value)
        c.rollback()
        assert c.execute("SELECT %s::int + 1", (41,)).fetchone()[0] == 42
        # Prepared and pipelined statements.
        with c.pipeline():
            cur1 = c.execute("SELECT count(*) FROM api_keys", prepare=True)
            cur2 = c.execute("SELECT owner FROM api_keys WHERE id = %s", (3,), prepare=True)
        assert cur1.fetchone()[0] == 5 and cur2.fetchone()[0] == "owner3@example.test"


def test_copy_out_is_masked(postgres, pg_proxy, keys_table):
    r = psql(postgres, pg_proxy, "COPY (SELECT name, key FROM api_keys ORDER BY id) TO STDOUT WITH CSV")
    assert r.returncode == 0, r.stderr
    for (_, name, key, _) in keys_table:
        assert key not in r.stdout and name in r.stdout
    assert r.stdout.count("[REDACTED:") == 5
    r = psql(postgres, pg_proxy, "COPY api_keys TO '/tmp/sluice-e2e-dump.csv'")
    assert "server-side" in r.stderr


def test_a_hundred_concurrent_connections(postgres, pg_proxy, keys_table):
    def query(i):
        with connect(postgres, pg_proxy) as c:
            return c.execute("SELECT %s::int * 2, key FROM api_keys WHERE id = 1", (i,)).fetchone()

    results = concurrently(query, 100)
    assert sorted(v[0] for v in results) == [2 * i for i in range(100)]
    assert all(v[1].startswith("[REDACTED:") for v in results)


def test_garbage_closes_only_that_connection(postgres, pg_proxy):
    with socket.create_connection(("127.0.0.1", pg_proxy.port), timeout=5) as s:
        s.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
        assert s.recv(1) == b"N"
        s.sendall(b"\x00\x00\x00\x03garbage")  # a length below the minimum
        assert s.recv(100) == b""  # closed
    assert any("bad input from the client" in d.get("message", "") for d in pg_proxy.decisions())
    r = psql(postgres, pg_proxy, "select 1")
    assert r.stdout.strip() == "1"


def test_refusal_inside_a_pipeline_keeps_order(postgres, pg_proxy, keys_table):
    """An allowed statement, then a refused one, in one pipelined batch: the client gets the
    first result, then the refusal, in order, and the connection stays usable."""
    with connect(postgres, pg_proxy, autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with c.pipeline() as p:
                first = c.execute("SELECT count(*) FROM api_keys")
                c.execute("SELECT * FROM pg_authid")
                p.sync()
        assert first.fetchone()[0] == 5
        assert c.execute("SELECT 7").fetchone()[0] == 7


def test_the_session_is_recorded_signed_and_secret_free(postgres, pg_proxy, keys_table, known_secret, grant_key):
    """One psql session through pg-proxy: its recording verifies against the public key, the
    transcript shows the refused and the allowed statements and the masked rows, and no secret
    (the planted keys, the value the proxy holds) is in it."""
    marker = f"recording-marker-{id(object())}"
    before = set(pg_proxy.recordings())
    r = psql(postgres, pg_proxy, f"SELECT '{marker}'", "SELECT * FROM pg_shadow", "SELECT key, note FROM api_keys")
    assert marker in r.stdout
    # The relay thread closes the recording when the connection ends.
    mine = [pg_proxy.closed_recording(before, marker)]
    sluice = str(TARGET / "sluice")
    v = subprocess.run([sluice, "record", "verify", "--key", f"{grant_key}.pub", str(mine[0])], capture_output=True, text=True)
    assert v.returncode == 0 and ": ok: session" in v.stdout, v.stdout + v.stderr
    t = subprocess.run([sluice, "record", "replay", str(mine[0])], capture_output=True, text=True, check=True).stdout
    assert "SELECT * FROM pg_shadow" in t and "DENY [" in t, t
    # The server's output replays as rows: the column names, each row, the command tag.
    assert "< key | note" in t and "< (SELECT 5)" in t and "| rotates yearly" in t, t
    assert "[REDACTED:" in t, t
    text = mine[0].read_text()
    assert known_secret not in text
    for (_, _, key, _) in keys_table:
        assert key not in text
    # Changing one recorded byte is detected and named.
    bad = mine[0].with_suffix(".tampered")
    bad.write_text(text.replace("pg_shadow", "pg_shadoW", 1))
    v = subprocess.run([sluice, "record", "verify", "--key", f"{grant_key}.pub", str(bad)], capture_output=True, text=True)
    assert v.returncode == 1 and "bad record at line" in v.stdout, v.stdout
    bad.unlink()


def test_a_long_session_is_recorded_in_parts_that_verify_together(postgres, workdir, grant_key, known_secret, keys_table):
    """pg-proxy with --record-rotate-bytes: a session's recording is split into files, which
    verify as one chain (and fail without a middle part) and replay as one session."""
    from conftest import start_proxy, stop
    proxy = start_proxy("pg-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{postgres['port']}",
                        "--record-rotate-bytes", "4000")
    try:
        r = psql(postgres, proxy, *[f"SELECT {i} AS n, name FROM api_keys WHERE id = {1 + i % 5}" for i in range(40)])
        assert r.returncode == 0 and "service-3" in r.stdout, r.stderr
        parts = []
        for _ in range(100):
            # The session's files (not the port probe's): NAME.jsonl, NAME.1.jsonl, ...
            stems = [p.name.split(".")[0] for p in proxy.recordings()]
            stem = max(set(stems), key=stems.count, default=None)
            parts = [p for p in proxy.recordings() if p.name.split(".")[0] == stem]
            if parts and any('"final":true' in p.read_text() for p in parts):
                break
            time.sleep(0.05)
        assert len(parts) >= 3, parts
        sluice = str(TARGET / "sluice")
        v = subprocess.run([sluice, "record", "verify", "--key", f"{grant_key}.pub", *map(str, parts)],
                           capture_output=True, text=True)
        assert v.returncode == 0 and f"in {len(parts)} parts" in v.stdout, v.stdout
        base = min(parts, key=lambda p: len(p.name))
        middle = [p for p in parts if p.name.endswith(".1.jsonl")]
        v = subprocess.run([sluice, "record", "verify", *map(str, [p for p in parts if p not in middle])],
                           capture_output=True, text=True)
        assert v.returncode == 1 and "part 1 should begin here" in v.stdout, v.stdout
        ordered = [base] + sorted((p for p in parts if p != base), key=lambda p: int(p.name.split(".")[-2]))
        t = subprocess.run([sluice, "record", "replay", *map(str, ordered)], capture_output=True, text=True, check=True)
        assert "SELECT 39 AS n" in t.stdout and "part 2 begins" in t.stdout and not t.stderr, t.stderr
    finally:
        stop(proxy)
