"""Credential brokering, inbound: pg-proxy and mysql-proxy started with --credentials hold a
password for the agent; rows on the real servers that hold the password, its base64, its
reverse, an upper-cased copy and a 10-character substring all reach the real psql and mysql
clients as the placeholder, and no 8-character piece of the password (or of its reverse)
gets through. Outbound: HTTP requests and the PostgreSQL and MariaDB logins get the credential
where the policy lets it go, over verified TLS to PostgreSQL and HTTPS origins (reverse proxy
and CONNECT interception)."""
import base64
import secrets
import string
import subprocess

import pymysql
import psycopg
import pytest

from conftest import make_ca, start_proxy, stop

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


def assert_recordings_hold_no_piece(proxy, password, placeholder=PLACEHOLDER):
    """The session recordings hold the placeholder where the rows held the password, and no
    piece of it."""
    from conftest import TARGET
    texts = []
    for f in proxy.recordings():
        # The replay decodes the wire bytes (recorded as base64) into rows.
        replay = subprocess.run([str(TARGET / "sluice"), "record", "replay", str(f)], capture_output=True, text=True)
        texts += [f.read_text(), replay.stdout]
    assert any(placeholder in t for t in texts), "the rows' placeholders are recorded"
    for t in texts:
        assert leaked(t, password) is None


def start_origin(cert=None):
    """A local HTTP origin (HTTPS with `cert` = (certificate, key)) that answers every GET with
    the Authorization header it received, as JSON: (server, port, what it saw: host,
    authorization, path per request)."""
    import http.server
    import json
    import ssl
    import threading

    from conftest import free_port
    seen = []

    class Origin(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append((self.headers.get("Host"), self.headers.get("Authorization"), self.path))
            body = json.dumps({"you_sent": self.headers.get("Authorization")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Origin)
    if cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(cert[0]), str(cert[1]))
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port, seen


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


def test_http_requests_get_the_token_only_where_the_policy_lets_it_go(workdir, grant_key, known_secret):
    """An agent sends `Authorization: Bearer sluice:secret/api-token` through http-proxy: the
    origin the policy names receives the real token (and its echo comes back to the agent as
    the placeholder); the same placeholder to another host is refused before anything is sent;
    the recording names the credential, never its value."""
    import json
    import urllib.error
    import urllib.request


    token = "tok-" + held_password()
    server, port, seen = start_origin()
    creds = workdir / "http-credentials.txt"
    creds.write_text(f"api-token = {token}\n")
    policy = workdir / "http-credentials-policy.yaml"
    policy.write_text("version: 1\nname: brokered\nextends: agent-safe\ndefault: allow\n"
                      "credentials:\n  api-token: { targets: [\"127.0.0.1\"] }\n")
    proxy = start_proxy("http-proxy", workdir, grant_key, known_secret, "--user", "agent-7", "--policy", str(policy),
                        "--credentials", str(creds))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy.port}"}))

    def get(url):
        req = urllib.request.Request(url, headers={"Authorization": "Bearer sluice:secret/api-token"})
        try:
            with opener.open(req, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        status, body = get(f"http://127.0.0.1:{port}/repos")
        assert status == 200, body
        assert seen == [(f"127.0.0.1:{port}", f"Bearer {token}", "/repos")], seen
        assert json.loads(body)["you_sent"] == "Bearer sluice:secret/api-token" and token not in body
        # localhost is another host as far as the policy goes: refused, nothing sent.
        status, body = get(f"http://localhost:{port}/repos")
        assert status == 403 and "sluice:secret/api-token: this credential may not be sent here" in body, body
        assert len(seen) == 1 and token not in body
    finally:
        stop(proxy)
        server.shutdown()
    texts = [f.read_text() for f in proxy.recordings()]
    assert any("credentials substituted for 127.0.0.1: api-token" in t for t in texts)
    assert not any(token in t for t in texts)


def test_postgres_login_with_a_placeholder_password(postgres, workdir, grant_key, known_secret):
    """Outbound, PostgreSQL: the agent logs in through pg-proxy with `sluice:secret/pg-login`
    as its password; the proxy answers the server's SCRAM-SHA-256 exchange with the held
    password (the agent is asked for a cleartext one and never sees the server's challenge), and
    the rows holding that password come back as the placeholder. The placeholder for a database
    the policy does not name, or naming nothing held, is refused before the server sees a
    password; the agent's own password still logs in (the proxy runs SCRAM with it); a wrong
    one is refused by the server."""
    login_pw = held_password()
    with psycopg.connect(host="127.0.0.1", port=postgres["port"], user=postgres["user"],
                         password=postgres["password"], dbname="postgres", autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS login_held")
        c.execute("DROP ROLE IF EXISTS broker_agent")
        c.execute(f"CREATE ROLE broker_agent LOGIN PASSWORD '{login_pw}'")
        c.execute("CREATE TABLE login_held (id int, v text)")
        c.execute("GRANT SELECT ON login_held TO broker_agent")
        for i, v in enumerate(forms(login_pw)):
            c.execute("INSERT INTO login_held VALUES (%s, %s)", (i, v))
    creds = workdir / "pg-login-credentials.txt"
    creds.write_text(f"pg-login = {login_pw}\n")
    policy = workdir / "pg-login-policy.yaml"
    policy.write_text("version: 1\nname: brokered-login\nextends: agent-safe\ndefault: allow\n"
                      "credentials:\n  pg-login: { targets: [\"postgres\"] }\n")
    proxy = start_proxy("pg-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{postgres['port']}",
                        "--policy", str(policy), "--credentials", str(creds))

    def psql(user, password, dbname, sql):
        env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": password}
        conn = f"host=127.0.0.1 port={proxy.port} user={user} dbname={dbname} sslmode=disable"
        return subprocess.run(["psql", "-X", "-A", "-t", conn, "-c", sql], capture_output=True, text=True, env=env,
                              timeout=60)

    try:
        r = psql("broker_agent", "sluice:secret/pg-login", "postgres",
                 "SELECT current_user; SELECT v FROM login_held ORDER BY id; "
                 "SELECT reverse(v), substr(v, 3, 10), encode(convert_to(v, 'UTF8'), 'base64') FROM login_held WHERE id = 0")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "broker_agent", r.stdout
        assert r.stdout.count("sluice:secret/pg-login") >= 9, r.stdout
        assert leaked(r.stdout + r.stderr, login_pw) is None, r.stdout
        # Another database: the policy does not let the credential go there.
        r = psql("broker_agent", "sluice:secret/pg-login", "template1", "SELECT 1")
        assert r.returncode != 0 and "may not be sent here" in r.stderr, r.stderr
        # A placeholder naming nothing held.
        r = psql("broker_agent", "sluice:secret/pg-nothing", "postgres", "SELECT 1")
        assert r.returncode != 0 and "sluice:secret/pg-nothing" in r.stderr, r.stderr
        # The agent's own password: the proxy logs in with it.
        r = psql(postgres["user"], postgres["password"], "postgres", "SELECT current_user")
        assert r.returncode == 0 and r.stdout.strip() == postgres["user"], r.stderr
        r = psql(postgres["user"], "not-the-password", "postgres", "SELECT 1")
        assert r.returncode != 0 and "password authentication failed" in r.stderr, r.stderr
    finally:
        stop(proxy)
    # The refused attempts never reached the server as a password: its log holds the wrong
    # password's failure and none for broker_agent.
    log = (workdir / "postgres.log").read_text()
    assert f'password authentication failed for user "{postgres["user"]}"' in log
    assert 'password authentication failed for user "broker_agent"' not in log
    texts = [f.read_text() for f in proxy.recordings()]
    assert any("credentials substituted for postgres: pg-login" in t for t in texts), texts
    assert any("may not be sent here" in t for t in texts)
    assert not any(login_pw in t for t in texts)
    assert_recordings_hold_no_piece(proxy, login_pw, "sluice:secret/pg-login")


def test_mysql_login_with_a_placeholder_password(mariadb, workdir, grant_key, known_secret):
    """Outbound, MariaDB: the agent logs in through mysql-proxy with `sluice:secret/my-login` as
    its password; the client's mysql_native_password answer for the placeholder is swapped for
    the answer computed from the held password, and the rows holding it come back as the
    placeholder. The placeholder for a database the policy does not name is refused before
    the server sees an answer; the agent's own password still logs in."""
    login_pw = held_password()
    c = pymysql.connect(host="127.0.0.1", port=mariadb["port"], user=mariadb["user"], password=mariadb["password"],
                        database="app", autocommit=True)
    # Granting takes root (the test user has no GRANT OPTION), over the server's socket.
    subprocess.run(["mariadb", "--no-defaults", "-uroot", f"--socket={mariadb['root_socket']}", "-e",
                    f"DROP USER IF EXISTS 'broker_agent'@'%'; CREATE USER 'broker_agent'@'%' IDENTIFIED BY '{login_pw}';"
                    " CREATE DATABASE IF NOT EXISTS other; GRANT SELECT ON app.* TO 'broker_agent'@'%';"
                    " GRANT SELECT ON other.* TO 'broker_agent'@'%';"], check=True, capture_output=True)
    with c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS login_held")
        cur.execute("CREATE TABLE login_held (id int, v text)")
        for i, v in enumerate(forms(login_pw)):
            cur.execute("INSERT INTO login_held VALUES (%s, %s)", (i, v))
    c.close()
    creds = workdir / "my-login-credentials.txt"
    creds.write_text(f"my-login = {login_pw}\n")
    policy = workdir / "my-login-policy.yaml"
    policy.write_text("version: 1\nname: brokered-login\nextends: agent-safe\ndefault: allow\n"
                      "credentials:\n  my-login: { targets: [\"app\"] }\n")
    proxy = start_proxy("mysql-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{mariadb['port']}",
                        "--policy", str(policy), "--credentials", str(creds))

    def mysql(user, password, db, sql):
        return subprocess.run(["mysql", "--no-defaults", "-h127.0.0.1", f"-P{proxy.port}", f"-u{user}",
                               f"-p{password}", "-N", "-B", db, "-e", sql], capture_output=True, text=True, timeout=60)

    try:
        r = mysql("broker_agent", "sluice:secret/my-login", "app",
                  "SELECT current_user(); SELECT v FROM login_held ORDER BY id; "
                  "SELECT reverse(v), substr(v, 3, 10), to_base64(v) FROM login_held WHERE id = 0")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "broker_agent@%", r.stdout
        assert r.stdout.count("sluice:secret/my-login") >= 9, r.stdout
        assert leaked(r.stdout + r.stderr, login_pw) is None, r.stdout
        # PyMySQL, another client library, logs in the same way.
        conn = pymysql.connect(host="127.0.0.1", port=proxy.port, user="broker_agent",
                               password="sluice:secret/my-login", database="app")
        with conn.cursor() as cur:
            cur.execute("SELECT current_user()")
            assert cur.fetchone()[0] == "broker_agent@%"
        conn.close()
        # Another database: the policy does not let the credential go there.
        r = mysql("broker_agent", "sluice:secret/my-login", "other", "SELECT 1")
        assert r.returncode != 0 and "may not be sent here" in r.stderr, r.stderr
        # The agent's own password is its answer, sent as it is; a wrong one is refused.
        r = mysql(mariadb["user"], mariadb["password"], "app", "SELECT current_user()")
        assert r.returncode == 0 and r.stdout.strip() == "sluice@%", r.stderr
        r = mysql(mariadb["user"], "not-the-password", "app", "SELECT 1")
        assert r.returncode != 0 and "Access denied" in r.stderr, r.stderr
    finally:
        stop(proxy)
    texts = [f.read_text() for f in proxy.recordings()]
    assert any("credentials substituted for app: my-login" in t for t in texts), texts
    assert any("may not be sent here" in t for t in texts)
    assert_recordings_hold_no_piece(proxy, login_pw, "sluice:secret/my-login")


def test_postgres_login_over_verified_tls(postgres, workdir, grant_key, known_secret):
    """pg-proxy --upstream-tls verify-full: the brokered login and the session go to PostgreSQL
    over TLS (the server itself reports the connection encrypted), the server's certificate
    checked against the given CA and name; a server whose certificate another CA signed, or
    that does not carry the expected name, gets nothing (not even the startup packet)."""
    with psycopg.connect(host="127.0.0.1", port=postgres["port"], user=postgres["user"],
                         password=postgres["password"], dbname="postgres", autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS tls_held")
        c.execute("CREATE TABLE tls_held (id int, v text)")
        for i, v in enumerate(forms(postgres["password"])):
            c.execute("INSERT INTO tls_held VALUES (%s, %s)", (i, v))
    creds = workdir / "pg-tls-credentials.txt"
    creds.write_text(f"pg-admin = {postgres['password']}\n")
    policy = workdir / "pg-tls-policy.yaml"
    policy.write_text("version: 1\nname: brokered-tls\nextends: agent-safe\ndefault: allow\n"
                      "credentials:\n  pg-admin: { targets: [\"postgres\"] }\n")
    other_ca, _, _ = make_ca(workdir / "other-ca", "other")

    def through(*tls):
        proxy = start_proxy("pg-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{postgres['port']}",
                            "--policy", str(policy), "--credentials", str(creds), *tls)
        env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": "sluice:secret/pg-admin"}
        conn = f"host=127.0.0.1 port={proxy.port} user={postgres['user']} dbname=postgres sslmode=disable"
        try:
            return subprocess.run(["psql", "-X", "-A", "-t", conn, "-c",
                                   "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid(); "
                                   "SELECT v FROM tls_held ORDER BY id; "
                                   "SELECT reverse(v), substr(v, 3, 10), encode(convert_to(v, 'UTF8'), 'base64') "
                                   "FROM tls_held WHERE id = 0"],
                                  capture_output=True, text=True, env=env, timeout=60), proxy
        finally:
            stop(proxy)

    r, _ = through("--upstream-tls", "verify-full", "--upstream-ca", str(postgres["ca"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("t|TLSv1."), r.stdout
    # Rows holding the held password, its base64, reverse and a substring: the placeholder.
    assert r.stdout.count("sluice:secret/pg-admin") >= 9, r.stdout
    assert leaked(r.stdout + r.stderr, postgres["password"]) is None, r.stdout
    # Without TLS the same proxy reaches the server in plain text.
    r, _ = through()
    assert r.returncode == 0 and r.stdout.strip().startswith("f|"), r.stdout + r.stderr
    # Another CA, another name: the handshake fails and nothing is sent.
    for tls in (["--upstream-ca", str(other_ca)],
                ["--upstream-ca", str(postgres["ca"]), "--upstream-server-name", "db.example.test"]):
        r, proxy = through("--upstream-tls", "verify-full", *tls)
        assert r.returncode != 0, r.stdout
        log = proxy.log_path.read_text()
        assert "TLS with the server: invalid peer certificate" in log, log


def test_http_reverse_proxy_to_an_https_origin(workdir, grant_key, known_secret):
    """http-proxy --upstream https://localhost:PORT: the agent calls the proxy as if it were the
    API; the request is decided and brokered for that origin and sent over TLS verified against
    the run's test CA; the origin's echo of the token comes back as the placeholder. An origin
    whose certificate another CA signed gets nothing (502); CONNECT is not served."""
    import json
    import urllib.error
    import urllib.request


    token = "tok-" + held_password()
    ca, crt, key = make_ca(workdir / "origin-tls", "origin")
    other_ca, _, _ = make_ca(workdir / "origin-other-ca", "origin-other")
    server, port, seen = start_origin((crt, key))
    creds = workdir / "origin-credentials.txt"
    creds.write_text(f"api-token = {token}\n")
    policy = workdir / "origin-policy.yaml"
    policy.write_text("version: 1\nname: brokered-origin\nextends: agent-safe\ndefault: allow\n"
                      "credentials:\n  api-token: { targets: [\"localhost\"] }\n")

    def proxy_for(ca_file):
        return start_proxy("http-proxy", workdir, grant_key, known_secret, "--user", "agent-7", "--policy",
                           str(policy), "--credentials", str(creds), "--upstream", f"https://localhost:{port}",
                           "--upstream-ca", str(ca_file))

    def get(proxy, path):
        req = urllib.request.Request(f"http://127.0.0.1:{proxy.port}{path}",
                                     headers={"Authorization": "Bearer sluice:secret/api-token"})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    proxy = proxy_for(ca)
    try:
        status, body = get(proxy, "/repos?page=2")
        assert status == 200, body
        assert seen == [(f"localhost:{port}", f"Bearer {token}", "/repos?page=2")], seen
        assert json.loads(body)["you_sent"] == "Bearer sluice:secret/api-token" and token not in body
        # CONNECT is not a request for a path of the origin: the connection ends.
        import socket
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
            assert b"200" not in s.recv(4096)
    finally:
        stop(proxy)
    texts = [f.read_text() for f in proxy.recordings()]
    assert any("credentials substituted for localhost: api-token" in t for t in texts)
    assert not any(token in t for t in texts)
    proxy = proxy_for(other_ca)
    try:
        status, body = get(proxy, "/repos")
        assert status == 502, body
        assert len(seen) == 1 and token not in body
    finally:
        stop(proxy)
        server.shutdown()


def test_https_interception_of_connect(workdir, grant_key, known_secret):
    """http-proxy --intercept-ca: an agent using the proxy for HTTPS (CONNECT) and trusting the
    host's interception CA gets TLS under a certificate minted for the host; the request inside
    is decided, the placeholder swapped for the token (only for the host the policy names) and
    sent to the real host over TLS verified against its own CA; the echo comes back masked.
    A host whose certificate does not verify gets nothing."""
    import json
    import ssl
    import urllib.error
    import urllib.request


    token = "tok-" + held_password()
    ca, crt, key = make_ca(workdir / "intercept-origin", "intercept-origin")
    d = workdir / "intercept-ca"
    d.mkdir()
    icert, ikey = d / "ca.pem", d / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(ikey), "-out", str(icert), "-days", "2", "-subj", "/CN=sluice test interception CA",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
                   check=True, capture_output=True)
    server, port, seen = start_origin((crt, key))
    creds = workdir / "intercept-credentials.txt"
    creds.write_text(f"api-token = {token}\n")
    policy = workdir / "intercept-policy.yaml"
    policy.write_text("version: 1\nname: brokered-intercept\nextends: agent-safe\ndefault: allow\n"
                      "credentials:\n  api-token: { targets: [\"localhost\"] }\n")

    def proxy_for(upstream_ca):
        return start_proxy("http-proxy", workdir, grant_key, known_secret, "--user", "agent-7", "--policy",
                           str(policy), "--credentials", str(creds), "--intercept-ca", str(icert),
                           "--intercept-ca-key", str(ikey), "--upstream-ca", str(upstream_ca))

    agent_tls = ssl.create_default_context(cafile=str(icert))

    def get(proxy, url):
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"https": f"http://127.0.0.1:{proxy.port}"}),
            urllib.request.HTTPSHandler(context=agent_tls))
        req = urllib.request.Request(url, headers={"Authorization": "Bearer sluice:secret/api-token"})
        try:
            with opener.open(req, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    proxy = proxy_for(ca)
    try:
        status, body = get(proxy, f"https://localhost:{port}/user/repos")
        assert status == 200, body
        assert seen == [(f"localhost:{port}", f"Bearer {token}", "/user/repos")], seen
        assert json.loads(body)["you_sent"] == "Bearer sluice:secret/api-token" and token not in body
        # The same placeholder to another name for the host is refused inside the tunnel.
        status, body = get(proxy, f"https://127.0.0.1:{port}/user/repos")
        assert status == 403 and "may not be sent here" in body, body
        assert len(seen) == 1
    finally:
        stop(proxy)
    texts = [f.read_text() for f in proxy.recordings()]
    assert any("credentials substituted for localhost: api-token" in t for t in texts)
    assert any(f"https://localhost:{port}/user/repos" in t for t in texts), "the request inside is recorded"
    assert not any(token in t for t in texts)
    # The real host's certificate does not verify (the proxy trusts another CA): nothing sent.
    other_ca, _, _ = make_ca(workdir / "intercept-other", "intercept-other")
    proxy = proxy_for(other_ca)
    try:
        status, body = get(proxy, f"https://localhost:{port}/user/repos")
        assert status == 502, body
        assert len(seen) == 1
    finally:
        stop(proxy)
        server.shutdown()


def test_rotation_reaches_open_sessions(postgres, workdir, grant_key, known_secret):
    """The credentials file changes while a session is open: new logins use the new password
    at once (within the proxy's one-second reload), and the open session, never restarted,
    masks the new value (and still the old one) in rows it reads afterwards."""
    import time
    old_pw, new_pw = held_password(), held_password()
    admin = psycopg.connect(host="127.0.0.1", port=postgres["port"], user=postgres["user"],
                            password=postgres["password"], dbname="postgres", autocommit=True)
    admin.execute("DROP TABLE IF EXISTS rotation_held")
    admin.execute("DROP ROLE IF EXISTS rot_agent")
    admin.execute(f"CREATE ROLE rot_agent LOGIN PASSWORD '{old_pw}'")
    admin.execute("CREATE TABLE rotation_held (id int, v text)")
    admin.execute("GRANT SELECT ON rotation_held TO rot_agent")
    admin.execute("INSERT INTO rotation_held VALUES (1, %s)", (old_pw,))
    creds = workdir / "rotation-credentials.txt"
    creds.write_text(f"pg-rot = {old_pw}\n")
    policy = workdir / "rotation-policy.yaml"
    policy.write_text("version: 1\nname: brokered-rotation\nextends: agent-safe\ndefault: allow\n"
                      "credentials:\n  pg-rot: { targets: [\"postgres\"] }\n")
    proxy = start_proxy("pg-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{postgres['port']}",
                        "--policy", str(policy), "--credentials", str(creds))
    try:
        agent = psycopg.connect(host="127.0.0.1", port=proxy.port, user="rot_agent", password="sluice:secret/pg-rot",
                                dbname="postgres", sslmode="disable", autocommit=True)
        assert agent.execute("SELECT v FROM rotation_held").fetchall() == [("sluice:secret/pg-rot",)]
        # Rotate: the server's password and the file change; a row holds the new value.
        admin.execute(f"ALTER ROLE rot_agent PASSWORD '{new_pw}'")
        admin.execute("INSERT INTO rotation_held VALUES (2, %s)", (new_pw,))
        creds.write_text(f"pg-rot = {new_pw}\n")
        for _ in range(100):
            if "credentials rotated" in proxy.log_path.read_text():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(proxy.log_path.read_text())
        rows = agent.execute("SELECT v, reverse(v) FROM rotation_held ORDER BY id").fetchall()
        text = repr(rows)
        assert rows[1][0] == "sluice:secret/pg-rot" and leaked(text, new_pw) is None and leaked(text, old_pw) is None, rows
        agent.close()
        # A new login goes with the new password.
        again = psycopg.connect(host="127.0.0.1", port=proxy.port, user="rot_agent", password="sluice:secret/pg-rot",
                                dbname="postgres", sslmode="disable", autocommit=True)
        assert again.execute("SELECT current_user").fetchone() == ("rot_agent",)
        again.close()
    finally:
        stop(proxy)
        admin.close()


def test_mysql_login_over_verified_tls(mariadb, workdir, grant_key, known_secret):
    """mysql-proxy --upstream-tls verify-full: after the greeting the proxy sends MariaDB an
    SSLRequest and logs the agent in (placeholder password, brokered) over TLS verified against
    the run's CA; the server reports the session encrypted. Another CA: nothing of the login is
    sent."""
    creds = workdir / "my-tls-credentials.txt"
    creds.write_text(f"my-admin = {mariadb['password']}\n")
    policy = workdir / "my-tls-policy.yaml"
    policy.write_text("version: 1\nname: brokered-tls\nextends: agent-safe\ndefault: allow\n"
                      "credentials:\n  my-admin: { targets: [\"app\"] }\n")
    other_ca, _, _ = make_ca(workdir / "my-other-ca", "my-other")
    c = pymysql.connect(host="127.0.0.1", port=mariadb["port"], user=mariadb["user"], password=mariadb["password"],
                        database="app", autocommit=True)
    with c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS tls_held")
        cur.execute("CREATE TABLE tls_held (id int, v text)")
        for i, v in enumerate(forms(mariadb["password"])):
            cur.execute("INSERT INTO tls_held VALUES (%s, %s)", (i, v))
    c.close()

    def through(*tls):
        proxy = start_proxy("mysql-proxy", workdir, grant_key, known_secret, "--upstream",
                            f"127.0.0.1:{mariadb['port']}", "--policy", str(policy), "--credentials", str(creds), *tls)
        try:
            return subprocess.run(["mysql", "--no-defaults", "-h127.0.0.1", f"-P{proxy.port}", f"-u{mariadb['user']}",
                                   "-psluice:secret/my-admin", "-N", "-B", "app", "-e",
                                   "SHOW SESSION STATUS LIKE 'Ssl_version'; SELECT current_user(); "
                                   "SELECT v FROM tls_held ORDER BY id; "
                                   "SELECT reverse(v), substr(v, 3, 10), to_base64(v) FROM tls_held WHERE id = 0"],
                                  capture_output=True, text=True, timeout=60), proxy
        finally:
            stop(proxy)

    r, _ = through("--upstream-tls", "verify-full", "--upstream-ca", str(mariadb["ca"]))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Ssl_version\tTLSv1."), r.stdout
    assert lines[1] == "sluice@%", r.stdout
    assert r.stdout.count("sluice:secret/my-admin") >= 9, r.stdout
    assert leaked(r.stdout + r.stderr, mariadb["password"]) is None, r.stdout
    r, proxy = through("--upstream-tls", "verify-full", "--upstream-ca", str(other_ca))
    assert r.returncode != 0, r.stdout
    assert "TLS with the server: invalid peer certificate" in proxy.log_path.read_text()
