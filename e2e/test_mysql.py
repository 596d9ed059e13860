"""MariaDB through mysql-proxy with the real mysql client, PyMySQL and mysql-connector (server-side
prepared statements): masking, refusals, approvals with single-use grants, concurrency."""
import json
import subprocess

import mysql.connector
import pymysql
import pytest

from conftest import TARGET, concurrently, synthetic_stripe_key


@pytest.fixture(scope="module")
def keys_table(mariadb, known_secret):
    rows = [(i, f"service-{i}", synthetic_stripe_key(), f"owner{i}@example.test") for i in range(1, 6)]
    c = pymysql.connect(host="127.0.0.1", port=mariadb["port"], user=mariadb["user"], password=mariadb["password"],
                        database="app", autocommit=True)
    with c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS api_keys")
        cur.execute("CREATE TABLE api_keys (id int primary key, name text, `key` text, owner text, note text)")
        for r in rows:
            cur.execute("INSERT INTO api_keys VALUES (%s, %s, %s, %s, 'rotates yearly')", r)
        cur.execute("UPDATE api_keys SET note = %s WHERE id = 5", (f"db password {known_secret}",))
        cur.execute("CREATE TABLE IF NOT EXISTS scratch (id int)")
    c.close()
    return rows


def mysql_cli(mariadb, proxy, sql, force=True):
    args = ["mysql", "--no-defaults", "-h127.0.0.1", f"-P{proxy.port}", f"-u{mariadb['user']}",
            f"-p{mariadb['password']}", "-N", "-B", "app", "-e", sql]
    if force:
        args.insert(2, "--force")
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def connect(mariadb, proxy):
    return pymysql.connect(host="127.0.0.1", port=proxy.port, user=mariadb["user"], password=mariadb["password"],
                           database="app", autocommit=True)


def test_mysql_client_sees_keys_masked(mariadb, mysql_proxy, keys_table, known_secret):
    r = mysql_cli(mariadb, mysql_proxy, "SELECT id, name, `key`, owner, note FROM api_keys ORDER BY id")
    assert r.returncode == 0, r.stderr
    for (i, name, key, owner) in keys_table:
        assert key not in r.stdout
        assert f"{i}\t{name}\t[REDACTED:" in r.stdout, r.stdout
        assert owner in r.stdout
    assert known_secret not in r.stdout and r.stdout.count("rotates yearly") == 4
    # Two result sets in one call (multi-statement) are both masked.
    r = mysql_cli(mariadb, mysql_proxy, "SELECT `key` FROM api_keys WHERE id = 1; SELECT name FROM api_keys WHERE id = 2")
    assert "[REDACTED:" in r.stdout and "service-2" in r.stdout and keys_table[0][2] not in r.stdout


def test_mysql_session_replays_as_rows(mariadb, mysql_proxy, keys_table, grant_key):
    """The recording of a mysql client session verifies, and its replay decodes the server's
    packets into the column names, the (masked) rows and the row count."""
    marker = f"replay-marker-{id(object())}"
    before = set(mysql_proxy.recordings())
    r = mysql_cli(mariadb, mysql_proxy, f"SELECT '{marker}' AS m; SELECT id, name, `key` FROM api_keys ORDER BY id")
    assert r.returncode == 0, r.stderr
    mine = [mysql_proxy.closed_recording(before, marker)]
    sluice = str(TARGET / "sluice")
    v = subprocess.run([sluice, "record", "verify", "--key", f"{grant_key}.pub", str(mine[0])], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout
    t = subprocess.run([sluice, "record", "replay", str(mine[0])], capture_output=True, text=True, check=True).stdout
    assert "< id | name | key" in t and "< 3 | service-3 | [REDACTED:" in t and "< (5 row(s))" in t, t
    assert f"< {marker}" in t, t
    for (_, _, key, _) in keys_table:
        assert key not in t


def test_mysql_user_is_refused_and_the_connection_keeps_working(mariadb, mysql_proxy, keys_table):
    r = mysql_cli(mariadb, mysql_proxy, "SELECT user, authentication_string FROM mysql.user")
    assert "ERROR 1142 (42000)" in r.stderr and "sluice: denied: catalogs holding password hashes" in r.stderr, r.stderr
    c = connect(mariadb, mysql_proxy)
    with c.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute("SELECT * FROM mysql.user")
        assert e.value.args[0] == 1142
        # The same connection keeps working.
        cur.execute("SELECT count(*) FROM api_keys")
        assert cur.fetchone()[0] == 5
    c.close()


def test_drop_needs_approval_and_a_grant_works_once(mariadb, mysql_proxy, keys_table, grant_key, workdir):
    r = mysql_cli(mariadb, mysql_proxy, "DROP TABLE scratch")
    assert "approval required" in r.stderr, r.stderr
    # The request reaches the host through the proxy's decision log (its event hook).
    request = [d for d in mysql_proxy.decisions() if d.get("approval")][-1]["approval"]
    assert request["command"] == "DROP TABLE scratch" and request["id"] in r.stderr
    req_file = workdir / "mysql-drop.json"
    req_file.write_text(json.dumps(request))
    grant = subprocess.run([str(TARGET / "sluice"), "approve", "--key-file", str(grant_key), "--approver", "alice",
                            str(req_file)], check=True, capture_output=True, text=True).stdout.strip()
    r = mysql_cli(mariadb, mysql_proxy, f"SET @sluice_grant = '{grant}'; DROP TABLE scratch; SHOW TABLES LIKE 'scratch'")
    assert r.returncode == 0 and r.stdout.strip() == "", (r.stdout, r.stderr)
    r = mysql_cli(mariadb, mysql_proxy, f"CREATE TABLE scratch (id int); SET @sluice_grant = '{grant}'; DROP TABLE scratch")
    assert "grant already used" in r.stderr, r.stderr


def test_prepared_statements(mariadb, mysql_proxy, keys_table):
    c = mysql.connector.connect(host="127.0.0.1", port=mysql_proxy.port, user=mariadb["user"],
                                password=mariadb["password"], database="app", ssl_disabled=True)
    cur = c.cursor(prepared=True)
    cur.execute("SELECT id, name, `key` FROM api_keys WHERE id = ?", (3,))
    row = [v.decode() if isinstance(v, (bytes, bytearray)) else v for v in cur.fetchall()[0]]
    # Binary-protocol rows: the key is masked, the rest intact.
    assert row[0] == 3 and row[1] == "service-3", row
    assert row[2].startswith("[REDACTED:") and row[2] != keys_table[2][2], row
    with pytest.raises(mysql.connector.Error) as e:
        cur.execute("SELECT authentication_string FROM mysql.user WHERE user = ?", ("root",))
    assert "sluice: denied" in str(e.value)
    cur2 = c.cursor()
    cur2.execute("SELECT 40 + 2")
    assert cur2.fetchall()[0][0] == 42
    c.close()


def test_a_hundred_concurrent_connections(mariadb, mysql_proxy, keys_table):
    def query(i):
        c = connect(mariadb, mysql_proxy)
        with c.cursor() as cur:
            cur.execute("SELECT %s * 2, `key` FROM api_keys WHERE id = 1", (i,))
            row = cur.fetchone()
        c.close()
        return row

    results = concurrently(query, 100)
    assert sorted(int(v[0]) for v in results) == [2 * i for i in range(100)]
    assert all(v[1].startswith("[REDACTED:") for v in results)
