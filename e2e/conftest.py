"""Fixtures for the end-to-end tests: real servers started here (PostgreSQL 15 with initdb and
pg_ctl), the example proxies built from source, the `sluice` CLI.

Everything runs in a temporary directory and is stopped at the end. Secrets are generated per
run (synthetic, never real).
"""
import json
import os
import pathlib
import secrets
import shutil
import socket
import string
import subprocess
import tempfile
import threading
import time

import jsonschema
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = ROOT / "target" / "release"
PG_BIN = pathlib.Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def concurrently(query, n: int, timeout: float = 60.0) -> list:
    """Runs `query(i)` for i in range(n), each on its own thread (and so its own connection);
    returns the results. Fails with the first errors if any call raised."""
    errors, results = [], []

    def worker(i):
        try:
            results.append(query(i))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not errors, errors[:3]
    return results


def synthetic_stripe_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "sk_live_" + "".join(secrets.choice(alphabet) for _ in range(24))


def as_postgres(cmd, **kw):
    """Runs a PostgreSQL server binary, as the postgres user when we are root (initdb and
    postgres refuse to run as root)."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def workdir():
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL runs as postgres.
    d = pathlib.Path(tempfile.mkdtemp(prefix="sluice-e2e-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_ca(d, name):
    """A throwaway CA (generated here, for this run) and a server certificate it signs for
    127.0.0.1 and localhost: paths of the CA certificate, server certificate and server key."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, crt, ext = (d / f"{name}-{n}" for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                                  "server.crt", "ext.cnf"))
    run = lambda *a: subprocess.run(["openssl", *map(str, a)], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", f"/CN=sluice test CA {name}")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                   "basicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
        "-extfile", ext)
    return ca, crt, key


@pytest.fixture(scope="session")
def postgres(workdir):
    """A PostgreSQL 15 cluster with password (SCRAM) authentication on a free port."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL binaries not found in {PG_BIN} (set PG_BIN)")
    data = workdir / "pgdata"
    data.mkdir()
    password = secrets.token_urlsafe(18)
    pwfile = workdir / "pgpass.txt"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        shutil.chown(pwfile, "postgres")
    as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "sluice", "--pwfile", str(pwfile),
                 "--auth-host=scram-sha-256", "--auth-local=trust"])
    port = free_port()
    log = workdir / "postgres.log"
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres")
    # TLS on (clients may still connect without it): a test CA's certificate for 127.0.0.1.
    ca, crt, key = make_ca(workdir / "pg-tls", "pg")
    key.chmod(0o600)
    if os.geteuid() == 0:
        for f in (crt, key):
            shutil.chown(f, "postgres")
    as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "start", "-o",
                 f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=250"
                 f" -c ssl=on -c ssl_cert_file={crt} -c ssl_key_file={key}"])
    env = {"PGPASSWORD": password}
    info = {"port": port, "user": "sluice", "password": password, "dbname": "postgres", "env": env, "ca": ca}
    yield info
    as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])


class Proxy:
    def __init__(self, proc, port, log_path, record_dir=None):
        self.proc, self.port, self.log_path, self.record_dir = proc, port, log_path, record_dir

    def recordings(self):
        return sorted(pathlib.Path(self.record_dir).glob("*.jsonl"))

    def closed_recording(self, before, marker):
        """The recording made since `before` (a set of paths) that holds `marker`, once the relay
        has closed it (its final checkpoint written)."""
        mine = []
        for _ in range(100):
            mine = [f for f in set(self.recordings()) - before if marker in f.read_text()]
            if mine and '"final":true' in mine[0].read_text():
                return mine[0]
            time.sleep(0.05)
        raise AssertionError(f"no closed recording holds {marker}: {mine}")

    def decisions(self):
        lines = pathlib.Path(self.log_path).read_text().splitlines()
        return [json.loads(l) for l in lines if l.startswith("{")]


@pytest.fixture(scope="session")
def grant_key(workdir):
    key = workdir / "grant.key"
    subprocess.run([str(TARGET / "sluice"), "keygen", "--out", str(key)], check=True, capture_output=True)
    return key


@pytest.fixture(scope="session")
def known_secret():
    return "held-by-proxy-" + secrets.token_hex(12)


def start_proxy(example, workdir, grant_key, known_secret, *args):
    """Starts an example proxy on a free port with the grant key and the known secret; its
    stderr (one JSON line per decision) goes to a log the tests read."""
    binary = TARGET / "examples" / example
    if not binary.exists():
        pytest.fail(f"{binary} not built (cargo build --release -p sluice-examples --examples)")
    known = workdir / f"known-values-{example}.txt"
    known.write_text(known_secret + "\n")
    port = free_port()
    log_path = workdir / f"{example}.log"
    # Every session is recorded, signed with the grant key (an Ed25519 secret key).
    record_dir = workdir / f"recordings-{example}-{port}"
    record_dir.mkdir()
    proc = subprocess.Popen([str(binary), "--listen", f"127.0.0.1:{port}", "--grant-key", f"{grant_key}.pub",
                             "--known-values", str(known), "--record", str(record_dir), "--record-key", str(grant_key),
                             *args], stderr=open(log_path, "w"))
    wait_port(port)
    proxy = Proxy(proc, port, log_path, record_dir)
    proxy.grant_key, proxy.known_secret = grant_key, known_secret
    return proxy


def check_recordings(proxy):
    """Every recording a proxy made verifies against the public key (a session still open when
    the proxy was stopped may only be cut short, never altered), and holds no secret: not the
    value the proxy holds, and nothing the detector finds."""
    files = proxy.recordings()
    assert files, f"no recordings in {proxy.record_dir}"
    r = subprocess.run([str(TARGET / "sluice"), "record", "verify", "--key", f"{proxy.grant_key}.pub",
                        *map(str, files)], capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    for line in r.stdout.splitlines():
        assert ": ok: session" in line or ": cut short at" in line, line
    # One line per recording (a rotated recording's parts are verified together).
    lines = r.stdout.splitlines()
    assert sum(": ok: session" in l for l in lines) >= len(lines) // 2, r.stdout
    schema = json.loads((ROOT / "schema" / "recording-v1.json").read_text())
    for f in files:
        text = f.read_text()
        assert proxy.known_secret not in text
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line (the session was open when the proxy stopped)
            jsonschema.validate(record, schema)
    scan = subprocess.run([str(TARGET / "sluice"), "scan", "--format", "json", str(proxy.record_dir)],
                          capture_output=True, text=True)
    context = []
    for f in json.loads(scan.stdout)["findings"] if scan.returncode == 1 else []:
        line = pathlib.Path(f["path"]).read_text().splitlines()[f["line"] - 1]
        context.append(line[max(0, f["column"] - 120):f["column"] + 80])
    assert scan.returncode == 0, "\n".join(context) or scan.stdout


def stop(proxy):
    proxy.proc.terminate()
    proxy.proc.wait(timeout=10)
    check_recordings(proxy)


@pytest.fixture(scope="session")
def pg_proxy(postgres, workdir, grant_key, known_secret):
    proxy = start_proxy("pg-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{postgres['port']}")
    yield proxy
    stop(proxy)



@pytest.fixture(scope="session")
def mariadb(workdir):
    """A MariaDB server (from apt) with a password-authenticated user on a free port."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    if not install or not os.path.exists(server):
        pytest.fail("MariaDB server not installed (apt-get install mariadb-server)")
    d = workdir / "mariadb"
    d.mkdir()
    subprocess.run([install, "--no-defaults", f"--datadir={d / 'data'}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True)
    port = free_port()
    sock = d / "sock"
    # TLS on (clients may still connect without it): a test CA's certificate for 127.0.0.1.
    ca, crt, key = make_ca(d / "tls", "mariadb")
    proc = subprocess.Popen([server, "--no-defaults", f"--datadir={d / 'data'}", "--user=root", f"--port={port}",
                             "--bind-address=127.0.0.1", f"--socket={sock}", f"--pid-file={d / 'pid'}",
                             f"--log-error={d / 'err.log'}", "--max-connections=300", f"--ssl-cert={crt}",
                             f"--ssl-key={key}", f"--ssl-ca={ca}"])
    wait_port(port)
    password = secrets.token_urlsafe(18)
    subprocess.run(["mariadb", "--no-defaults", "-uroot", f"--socket={sock}", "-e",
                    f"CREATE USER 'sluice'@'%' IDENTIFIED BY '{password}'; GRANT ALL ON *.* TO 'sluice'@'%';"
                    " CREATE DATABASE app;"], check=True, capture_output=True)
    yield {"port": port, "user": "sluice", "password": password, "dbname": "app", "root_socket": str(sock), "ca": ca}
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def mysql_proxy(mariadb, workdir, grant_key, known_secret):
    proxy = start_proxy("mysql-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{mariadb['port']}")
    yield proxy
    stop(proxy)


@pytest.fixture(scope="session")
def http_proxy(workdir, grant_key, known_secret):
    proxy = start_proxy("http-proxy", workdir, grant_key, known_secret, "--user", "agent-7", "--policy",
                        str(ROOT / "e2e" / "http-policy.yaml"))
    yield proxy
    stop(proxy)
