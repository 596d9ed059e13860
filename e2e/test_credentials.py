"""Credential brokering, inbound: pg-proxy and mysql-proxy started with --credentials hold a
password for the agent; rows on the real servers that hold the password, its base64, its
reverse, an upper-cased copy and a 10-character substring all reach the real psql and mysql
clients as the placeholder, and no 8-character piece of the password (or of its reverse)
gets through. (Outbound substitution, SCRAM and TLS: not built yet, see the README.)"""
import base64
import secrets
import string
import subprocess

import pymysql
import psycopg
import pytest

from conftest import start_proxy, stop

PLACEHOLDER = "sluice:secret/db-password"


def held_password():
    # Synthetic: random letters and digits, made for this run.
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(26))


def forms(pw):
    return [pw, base64.b64encode(pw.encode()).decode(), pw[::-1], pw.upper(), pw[3:13], f"user:{pw}@db"]


def leaked(out, pw):
    low = out.lower()
    for form in (pw.lower(), pw[::-1].lower()):
        for i in range(len(form) - 7):
            if form[i:i + 8] in low:
                return form[i:i + 8]
    return None


def assert_recordings_hold_no_piece(proxy, password):
    """The session recordings hold the placeholder where the rows held the password, and no
    piece of it."""
    from conftest import TARGET
    texts = []
    for f in proxy.recordings():
        # The replay decodes the wire bytes (recorded as base64) into rows.
        replay = subprocess.run([str(TARGET / "sluice"), "record", "replay", str(f)], capture_output=True, text=True)
        texts += [f.read_text(), replay.stdout]
    assert any(PLACEHOLDER in t for t in texts), "the rows' placeholders are recorded"
    for t in texts:
        assert leaked(t, password) is None


@pytest.fixture(scope="module")
def password():
    return held_password()


@pytest.fixture(scope="module")
def credentials(workdir, password):
    f = workdir / "credentials.txt"
    f.write_text(f"# held by the proxies for the agent\ndb-password = {password}\n")
    return f


def test_postgres_rows_holding_the_password_come_back_as_its_placeholder(postgres, workdir, grant_key, known_secret,
                                                                          credentials, password):
    with psycopg.connect(host="127.0.0.1", port=postgres["port"], user=postgres["user"],
                         password=postgres["password"], dbname="postgres", autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS held")
        c.execute("CREATE TABLE held (id int, v text)")
        for i, v in enumerate(forms(password)):
            c.execute("INSERT INTO held VALUES (%s, %s)", (i, v))
    proxy = start_proxy("pg-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{postgres['port']}",
                        "--credentials", str(credentials))
    try:
        env = {"PATH": "/usr/bin:/bin", **postgres["env"]}
        conn = f"host=127.0.0.1 port={proxy.port} user={postgres['user']} dbname=postgres sslmode=disable"
        sql = ("SELECT id, v FROM held ORDER BY id; "
               "SELECT encode(convert_to(v, 'UTF8'), 'hex') FROM held WHERE id = 0; "
               "SELECT reverse(v), substr(v, 5, 10) FROM held WHERE id = 0")
        r = subprocess.run(["psql", "-X", "-A", "-t", conn, "-c", sql], capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert out.count(PLACEHOLDER) >= 9, out
        assert leaked(out + r.stderr, password) is None, out
        assert "user:" in out and "@db" in out, out
    finally:
        stop(proxy)
    assert_recordings_hold_no_piece(proxy, password)


def test_mysql_rows_holding_the_password_come_back_as_its_placeholder(mariadb, workdir, grant_key, known_secret,
                                                                       credentials, password):
    c = pymysql.connect(host="127.0.0.1", port=mariadb["port"], user=mariadb["user"], password=mariadb["password"],
                        database="app", autocommit=True)
    with c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS held")
        cur.execute("CREATE TABLE held (id int, v text)")
        for i, v in enumerate(forms(password)):
            cur.execute("INSERT INTO held VALUES (%s, %s)", (i, v))
    c.close()
    proxy = start_proxy("mysql-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{mariadb['port']}",
                        "--credentials", str(credentials))
    try:
        sql = "SELECT id, v FROM held ORDER BY id; SELECT reverse(v), hex(v), to_base64(v) FROM held WHERE id = 0"
        r = subprocess.run(["mysql", "--no-defaults", "-h127.0.0.1", f"-P{proxy.port}", f"-u{mariadb['user']}",
                            f"-p{mariadb['password']}", "-N", "-B", "app", "-e", sql],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count(PLACEHOLDER) >= 9, r.stdout
        assert leaked(r.stdout, password) is None, r.stdout
    finally:
        stop(proxy)
    assert_recordings_hold_no_piece(proxy, password)
