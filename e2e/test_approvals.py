"""The approval workflow end to end: `sluice approvals serve` (the JSON API, the reviewers' web
page in a real headless Chromium, webhooks), pg-proxy holding statements that need approval
(`--approvals URL --hold SECONDS`) with the real psql client against real PostgreSQL, and two
services sharing a real Redis. Effects are checked on the server directly, never through the proxy."""
import http.server
import json
import pathlib
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from conftest import TARGET, free_port, start_proxy, stop, wait_port

# DROP needs one approval from anyone but the requester; TRUNCATE two from the group dba.
POLICY = """
version: 1
name: approvals-e2e
default: allow
uncertain: require_approval
approval:
  ttl: 10m
  count: 1
  allow_self: false
rules:
  - id: truncate-needs-two-dbas
    action: require_approval
    message: TRUNCATE needs two DBAs
    approval:
      count: 2
      approvers: { groups: [dba] }
    when:
      sql:
        kinds: [truncate]
  - id: drop-needs-approval
    action: require_approval
    message: DROP needs a human's approval
    when:
      sql:
        kinds: [drop]
"""

# Reviewers: alice and bob are DBAs, carol is not, and `sluice` is the database user the
# agent connects as (the requester: never its own approver).
REVIEWERS = {name: "rt-" + secrets.token_hex(16) for name in ("alice", "bob", "carol", "sluice")}
GROUPS = {"alice": "dba", "bob": "dba", "sluice": "dba"}


# The proxies' token, set for each test from the `tokens` fixture.
PROXY_TOKEN = [""]


@pytest.fixture(autouse=True)
def _proxy_token(tokens):
    PROXY_TOKEN[0] = tokens["proxy"].read_text().strip()


class Hooks(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Hooks.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def hooks():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def tokens(workdir):
    proxy = workdir / "approvals-proxy.token"
    proxy.write_text("pt-" + secrets.token_hex(16) + "\n")
    reviewers = workdir / "approvals-reviewers.txt"
    reviewers.write_text("# test reviewers\n" + "".join(
        f"{t} {n}{':' + GROUPS[n] if n in GROUPS else ''}\n" for n, t in REVIEWERS.items()))
    policy = workdir / "approvals-policy.yaml"
    policy.write_text(POLICY)
    return {"proxy": proxy, "reviewers": reviewers, "policy": policy}


class Service:
    def __init__(self, proc, port, log):
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"


def start_service(workdir, grant_key, tokens, *args):
    port = free_port()
    log = workdir / f"approvals-{port}.log"
    proc = subprocess.Popen([str(TARGET / "sluice"), "approvals", "serve", "--listen", f"127.0.0.1:{port}",
                             "--key-file", str(grant_key), "--proxy-token-file", str(tokens["proxy"]),
                             "--reviewer-tokens", str(tokens["reviewers"]), *args], stderr=open(log, "w"))
    wait_port(port)
    return Service(proc, port, log)


@pytest.fixture(scope="module")
def service(workdir, grant_key, tokens, hooks):
    s = start_service(workdir, grant_key, tokens, "--webhook", f"{hooks}/generic", "--slack-webhook",
                      f"{hooks}/slack")
    yield s
    s.proc.terminate()
    s.proc.wait(timeout=10)


def held_proxy(postgres, workdir, grant_key, known_secret, tokens, service, hold):
    return start_proxy("pg-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{postgres['port']}",
                       "--policy", str(tokens["policy"]), "--approvals", service.url, "--approvals-token",
                       str(tokens["proxy"]), "--hold", str(hold))


@pytest.fixture(scope="module")
def proxy(postgres, workdir, grant_key, known_secret, tokens, service):
    p = held_proxy(postgres, workdir, grant_key, known_secret, tokens, service, 60)
    yield p
    stop(p)


def api(service, method, path, who, body=None):
    """Calls the service's JSON API as reviewer `who` (or with the proxy token for `proxy`, or
    a raw token); returns (status, JSON)."""
    token = REVIEWERS.get(who, who)
    data = None if body is None else json.dumps(body).encode()
    rq = urllib.request.Request(service.url + path, data=data, method=method,
                                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(rq, timeout=70) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def server(postgres, sql):
    """Runs `sql` on the server directly (not through the proxy); returns the rows, if any."""
    with psycopg.connect(host="127.0.0.1", port=postgres["port"], user=postgres["user"],
                         password=postgres["password"], dbname="postgres", autocommit=True) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else None


def table_exists(postgres, name):
    return server(postgres, f"SELECT to_regclass('public.{name}') IS NOT NULL")[0][0]


def start_psql(postgres, proxy, sql):
    args = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            f"host=127.0.0.1 port={proxy.port} user={postgres['user']} dbname=postgres", "-c", sql]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", **postgres["env"]})


def pending(service, command, timeout=30.0, exclude=()):
    """Waits for the pending request for `command` (other than those in `exclude`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, body = api(service, "GET", "/api/requests?state=pending", "alice")
        assert status == 200, body
        for e in body["requests"]:
            if e["request"]["command"] == command and e["request"]["id"] not in exclude:
                return e
        time.sleep(0.1)
    raise AssertionError(f"no pending request for {command!r}")


def finish(p, timeout=30):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def test_a_held_drop_runs_once_when_approved_and_is_held_again(postgres, service, proxy, hooks):
    server(postgres, "DROP TABLE IF EXISTS held_once; CREATE TABLE held_once (id int)")
    p = start_psql(postgres, proxy, "DROP TABLE held_once")
    first = pending(service, "DROP TABLE held_once")
    r = first["request"]
    assert (r["user"], r["rule"], r["protocol"]) == ("sluice", "drop-needs-approval", "sql")
    # Held: the client waits, and nothing reached the server.
    time.sleep(1.0)
    assert p.poll() is None
    assert table_exists(postgres, "held_once")
    # The requester may not approve their own request; a proxy token may not review at all.
    status, body = api(service, "POST", f"/api/requests/{r['id']}/approve", "sluice", {})
    assert status == 403 and "self-approval" in body["error"], body
    status, body = api(service, "POST", f"/api/requests/{r['id']}/approve", PROXY_TOKEN[0], {})
    assert status == 403, body
    status, body = api(service, "POST", f"/api/requests/{r['id']}/approve", "carol", {"comment": "ok once"})
    assert status == 200 and body["state"] == "approved", body
    code, out, err = finish(p)
    assert code == 0, err
    assert not table_exists(postgres, "held_once")
    # Approved once, run once: the same statement again is a new request, held again.
    server(postgres, "CREATE TABLE held_once (id int)")
    p = start_psql(postgres, proxy, "DROP TABLE held_once")
    second = pending(service, "DROP TABLE held_once", exclude={r["id"]})
    assert second["request"]["id"] != r["id"]
    status, body = api(service, "POST", f"/api/requests/{second['request']['id']}/deny", "bob",
                       {"comment": "keep it"})
    assert status == 200 and body["state"] == "denied", body
    code, out, err = finish(p)
    assert code != 0
    assert "approval required" in err and "denied by bob: keep it" in err, err
    assert table_exists(postgres, "held_once")
    # A closed request takes no more reviews.
    status, body = api(service, "POST", f"/api/requests/{second['request']['id']}/approve", "alice", {})
    assert status == 409, body
    # Reviewers were told: the generic webhook and the Slack-style one, for each event.
    deadline = time.time() + 10
    want = {("/generic", "approval.requested"), ("/generic", "approval.approved"), ("/generic", "approval.denied")}
    while time.time() < deadline and not want <= {(p_, b.get("event")) for p_, b in Hooks.received}:
        time.sleep(0.1)
    assert want <= {(p_, b.get("event")) for p_, b in Hooks.received}, Hooks.received
    generic = [b for p_, b in Hooks.received if p_ == "/generic" and b["request"]["request"]["id"] == r["id"]]
    assert {b["event"] for b in generic} == {"approval.requested", "approval.approved"}
    approved = next(b for b in generic if b["event"] == "approval.approved")
    assert approved["by"]["user"] == "carol" and approved["url"].endswith("#" + r["id"])
    assert "grant" not in approved["request"]  # notifications never carry the grant
    slack = [b for p_, b in Hooks.received if p_ == "/slack" and r["id"] in json.dumps(b)]
    assert slack and all("blocks" in b and "DROP TABLE held_once" in b["text"] for b in slack), slack


def test_two_dbas_are_needed_for_truncate(postgres, service, proxy):
    server(postgres, "DROP TABLE IF EXISTS two_dbas; CREATE TABLE two_dbas (id int); INSERT INTO two_dbas VALUES (1)")
    p = start_psql(postgres, proxy, "TRUNCATE two_dbas")
    r = pending(service, "TRUNCATE two_dbas")["request"]
    assert r["count"] == 2 and r["approvers"]["groups"] == ["dba"]
    path = f"/api/requests/{r['id']}/approve"
    assert api(service, "POST", path, "carol", {})[0] == 403  # not a DBA
    assert api(service, "POST", path, "sluice", {})[0] == 403  # the requester
    status, body = api(service, "POST", path, "alice", {})
    assert status == 200 and body["state"] == "pending", body
    assert api(service, "POST", path, "alice", {})[0] == 403  # the same DBA twice counts once
    time.sleep(0.5)
    assert p.poll() is None
    assert server(postgres, "SELECT count(*) FROM two_dbas")[0][0] == 1
    status, body = api(service, "POST", path, "bob", {"comment": "second"})
    assert status == 200 and body["state"] == "approved", body
    assert [a["reviewer"]["user"] for a in body["reviews"]] == ["alice", "bob"]
    code, out, err = finish(p)
    assert code == 0, err
    assert server(postgres, "SELECT count(*) FROM two_dbas")[0][0] == 0


def test_a_timed_out_hold_is_refused_and_the_grant_works_on_retry(postgres, workdir, grant_key, known_secret,
                                                                   tokens, service):
    short = held_proxy(postgres, workdir, grant_key, known_secret, tokens, service, 2)
    try:
        server(postgres, "DROP TABLE IF EXISTS timed_out; CREATE TABLE timed_out (id int)")
        code, out, err = finish(start_psql(postgres, short, "DROP TABLE timed_out"))
        assert code != 0 and "not approved within 2s" in err, err
        assert table_exists(postgres, "timed_out")
        # Approved later, the request's grant still serves the retry-with-grant flow, once.
        r = pending(service, "DROP TABLE timed_out")["request"]
        status, body = api(service, "POST", f"/api/requests/{r['id']}/approve", "alice", {})
        assert status == 200 and body["grant"].startswith("sg1."), body
        code, out, err = finish(start_psql(postgres, short, f"/*sluice-grant:{body['grant']}*/ DROP TABLE timed_out"))
        assert code == 0, err
        assert not table_exists(postgres, "timed_out")
        # The recording shows the request, the hold's outcome and the approval, never the grant.
        text = "".join(f.read_text() for f in short.recordings())
        assert f"approval {r['id']} requested" in text
        assert "not approved within 2s" in text and "approved by alice" in text
        assert body["grant"] not in text
    finally:
        stop(short)


def test_the_api_refuses_what_it_should(service):
    assert api(service, "GET", "/api/requests", "nobody-" + secrets.token_hex(8))[0] == 401
    status, body = api(service, "GET", "/api/me", "alice")
    assert status == 200 and body == {"user": "alice", "groups": ["dba"]}
    # Reviewers do not submit; a request whose fingerprint is not its command's is refused.
    request = {"id": "apr_forged", "rule": None, "user": "sluice", "target": "postgres", "protocol": "sql",
               "command": "SELECT 1", "fingerprint": "0" * 64, "reason": "x", "created_at": int(time.time()),
               "expires_at": int(time.time()) + 60, "approvers": {"users": [], "groups": []}, "count": 1,
               "allow_self": False}
    assert api(service, "POST", "/api/requests", "alice", request)[0] == 403
    status, body = api(service, "POST", "/api/requests", PROXY_TOKEN[0], request)
    assert status == 400 and "fingerprint" in body["error"], body
    assert api(service, "GET", "/api/requests/apr_nothing", "alice")[0] == 404


def test_two_services_share_redis(postgres, workdir, grant_key, known_secret, tokens):
    port = free_port()
    d = workdir / f"redis-{port}"
    d.mkdir()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(d)], stdout=subprocess.DEVNULL)
    wait_port(port)
    store = f"redis://127.0.0.1:{port}/0"
    one = start_service(workdir, grant_key, tokens, "--store", store)
    two = start_service(workdir, grant_key, tokens, "--store", store)
    p1 = held_proxy(postgres, workdir, grant_key, known_secret, tokens, one, 60)
    p2 = held_proxy(postgres, workdir, grant_key, known_secret, tokens, two, 60)
    try:
        server(postgres, "DROP TABLE IF EXISTS fleet_a, fleet_b; CREATE TABLE fleet_a (id int); CREATE TABLE fleet_b (id int)")
        # A statement held by the proxy on service one is approved on service two, and the
        # other way round.
        a = start_psql(postgres, p1, "DROP TABLE fleet_a")
        b = start_psql(postgres, p2, "DROP TABLE fleet_b")
        ra = pending(two, "DROP TABLE fleet_a")["request"]
        rb = pending(one, "DROP TABLE fleet_b")["request"]
        assert api(two, "POST", f"/api/requests/{ra['id']}/approve", "alice", {})[1]["state"] == "approved"
        assert api(one, "POST", f"/api/requests/{rb['id']}/deny", "bob", {})[1]["state"] == "denied"
        code, _, err = finish(a)
        assert code == 0, err
        code, _, err = finish(b)
        assert code != 0 and "denied by bob" in err, err
        assert not table_exists(postgres, "fleet_a") and table_exists(postgres, "fleet_b")
        # Both nodes see the same history.
        for s in (one, two):
            states = {e["request"]["id"]: e["state"] for e in api(s, "GET", "/api/requests", "alice")[1]["requests"]}
            assert states[ra["id"]] == "approved" and states[rb["id"]] == "denied"
    finally:
        for p in (p1, p2):
            stop(p)
        for s in (one, two):
            s.proc.terminate()
            s.proc.wait(timeout=10)
        redis.terminate()
        redis.wait(timeout=10)


def chromium():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    return webdriver.Chrome(service=DriverService(driver), options=opts)


def test_a_reviewer_approves_in_the_web_page(postgres, service, proxy):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.webdriver.support import expected_conditions as ec

    # The table name is markup: the page must show it as text, never run or render it.
    name = '"<img src=x onerror=alert(1)>"'
    server(postgres, f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int)")
    p = start_psql(postgres, proxy, f"DROP TABLE {name}")
    r = pending(service, f"DROP TABLE {name}")["request"]
    browser = chromium()
    try:
        wait = WebDriverWait(browser, 30)
        browser.get(service.url + "/")
        browser.find_element(By.ID, "token").send_keys(REVIEWERS["alice"])
        browser.find_element(By.ID, "signin").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "whoami"), "alice"))
        card = wait.until(ec.presence_of_element_located((By.ID, "request-" + r["id"])))
        assert card.find_element(By.CSS_SELECTOR, "pre.command").text == f"DROP TABLE {name}"
        assert not card.find_elements(By.TAG_NAME, "img")
        assert "drop-needs-approval" in card.text and "sluice" in card.text
        card.find_element(By.CSS_SELECTOR, "textarea.comment").send_keys("fine from the browser")
        card.find_element(By.CSS_SELECTOR, "button.approve").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "approved"))
        code, out, err = finish(p)
        assert code == 0, err
        assert server(postgres, f"SELECT to_regclass('public.{name}') IS NULL")[0][0]
        # The history shows who approved, with the comment.
        row = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#history tr[data-id='{r['id']}']")))
        assert "approved by alice: fine from the browser" in row.text
        # A wrong token does not sign in.
        browser.execute_script("sessionStorage.clear()")
        browser.get(service.url + "/")
        browser.find_element(By.ID, "token").send_keys("wrong-token-" + secrets.token_hex(8))
        browser.find_element(By.ID, "signin").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "login-error"), "not signed in"))
    finally:
        browser.quit()
        if p.poll() is None:
            p.kill()


def test_an_mcp_call_is_held_with_progress_and_runs_when_approved(workdir, grant_key, tokens, service):
    """The real MCP SDK client calls a tool that needs approval through mcp-stdio-guard: the
    call waits, the client gets progress notifications, and the tool runs once approved."""
    import asyncio
    import os
    import sys

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    here = pathlib.Path(__file__).resolve().parent
    params = StdioServerParameters(
        command=str(TARGET / "examples" / "mcp-stdio-guard"),
        args=["--user", "agent-7", "--policy", str(here / "mcp-policy.yaml"), "--grant-key", f"{grant_key}.pub",
              "--approvals", service.url, "--approvals-token", str(tokens["proxy"]), "--hold", "60",
              "--", sys.executable, str(here / "mcp_server.py")],
        env={**os.environ, "SLUICE_TEST_SECRET": "not-used"},
    )
    progress = []

    async def on_progress(value, total, message):
        progress.append((value, message))

    def approve_when_progress_arrives():
        deadline = time.time() + 30
        while not progress and time.time() < deadline:
            time.sleep(0.1)
        status, body = api(service, "GET", "/api/requests?state=pending", "alice")
        mine = [e for e in body["requests"] if e["request"]["user"] == "agent-7"]
        assert len(mine) == 1, body
        assert api(service, "POST", f"/api/requests/{mine[0]['request']['id']}/approve", "alice", {})[0] == 200

    async def scenario():
        async with stdio_client(params) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                approver = asyncio.get_running_loop().run_in_executor(None, approve_when_progress_arrives)
                res = await s.call_tool("add", {"a": 1000, "b": 1}, progress_callback=on_progress)
                await approver
                return res

    res = asyncio.run(scenario())
    assert res.content[0].text == "1001", res
    assert progress and "waiting for approval" in progress[0][1], progress


class Origin(http.server.BaseHTTPRequestHandler):
    """An API whose DELETEs are counted here, on the server side."""
    protocol_version = "HTTP/1.1"
    deleted = []

    def do_DELETE(self):  # noqa: N802 - the stdlib's name
        Origin.deleted.append(self.path)
        body = json.dumps({"deleted": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def delete(proxy, url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy.port}"}))
    try:
        with opener.open(urllib.request.Request(url, method="DELETE"), timeout=70) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


@pytest.mark.parametrize("mode", ["retry", "wait"])
def test_http_requests_wait_or_get_202_and_run_once_when_repeated(workdir, grant_key, known_secret, tokens, service,
                                                                    mode):
    api_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=api_server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{api_server.server_address[1]}"
    here = pathlib.Path(__file__).resolve().parent
    proxy = start_proxy("http-proxy", workdir, grant_key, known_secret, "--user", "agent-7", "--policy",
                        str(here / "http-policy.yaml"), "--approvals", service.url, "--approvals-token",
                        str(tokens["proxy"]), "--hold", "60", "--approval-mode", mode)
    try:
        Origin.deleted.clear()
        url = f"{origin}/items/{mode}"
        if mode == "wait":
            results = []
            t = threading.Thread(target=lambda: results.append(delete(proxy, url)))
            t.start()
            r = pending(service, f"DELETE {url}")["request"]
            assert not Origin.deleted
            assert api(service, "POST", f"/api/requests/{r['id']}/approve", "alice", {})[0] == 200
            t.join(30)
            assert results and results[0][0] == 200, results
            assert Origin.deleted == [f"/items/{mode}"]
            return
        status, body, headers = delete(proxy, url)
        assert status == 202 and body["status"] == "pending approval" and headers.get("Retry-After") == "5", body
        first = body["approval"]
        # Repeated while pending: the same request, still 202, and nothing reached the API.
        status, body, _ = delete(proxy, url)
        assert (status, body["approval"]) == (202, first), body
        assert not Origin.deleted
        assert len([e for e in api(service, "GET", "/api/requests", "alice")[1]["requests"]
                    if e["request"]["command"] == f"DELETE {url}"]) == 1
        assert api(service, "POST", f"/api/requests/{first}/approve", "bob", {})[0] == 200
        status, body, _ = delete(proxy, url)
        assert status == 200 and body == {"deleted": f"/items/{mode}"}, body
        assert Origin.deleted == [f"/items/{mode}"]
        # Ran once: the next repeat is a new request.
        status, body, _ = delete(proxy, url)
        assert status == 202 and body["approval"] != first, body
        assert api(service, "POST", f"/api/requests/{body['approval']}/deny", "bob", {"comment": "once is enough"})[0] == 200
        status, body, _ = delete(proxy, url)
        assert status == 403 and "denied by bob: once is enough" in body["error"], body
        assert Origin.deleted == [f"/items/{mode}"]
    finally:
        stop(proxy)
        api_server.shutdown()


def test_retry_mode_on_postgres_refuses_as_pending_and_runs_the_repeat(postgres, workdir, grant_key, known_secret,
                                                                         tokens, service):
    p = start_proxy("pg-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{postgres['port']}",
                    "--policy", str(tokens["policy"]), "--approvals", service.url, "--approvals-token",
                    str(tokens["proxy"]), "--approval-mode", "retry")
    try:
        server(postgres, "DROP TABLE IF EXISTS asked_twice; CREATE TABLE asked_twice (id int)")
        for _ in range(2):
            code, _, err = finish(start_psql(postgres, p, "DROP TABLE asked_twice"))
            assert code != 0 and "is pending with reviewers: repeat this once it is approved" in err, err
        mine = [e for e in api(service, "GET", "/api/requests?state=pending", "alice")[1]["requests"]
                if e["request"]["command"] == "DROP TABLE asked_twice"]
        assert len(mine) == 1, mine
        assert table_exists(postgres, "asked_twice")
        assert api(service, "POST", f"/api/requests/{mine[0]['request']['id']}/approve", "alice", {})[0] == 200
        code, _, err = finish(start_psql(postgres, p, "DROP TABLE asked_twice"))
        assert code == 0, err
        assert not table_exists(postgres, "asked_twice")
    finally:
        stop(p)


def test_a_mysql_statement_is_held_and_runs_when_approved(mariadb, workdir, grant_key, known_secret, tokens, service):
    p = start_proxy("mysql-proxy", workdir, grant_key, known_secret, "--upstream", f"127.0.0.1:{mariadb['port']}",
                    "--policy", str(tokens["policy"]), "--approvals", service.url, "--approvals-token",
                    str(tokens["proxy"]), "--hold", "60")
    root = ["mariadb", "--no-defaults", "-uroot", f"--socket={mariadb['root_socket']}", "-N", "-B", "-e"]
    try:
        subprocess.run(root + ["DROP TABLE IF EXISTS app.held_my; CREATE TABLE app.held_my (id int)"], check=True)
        client = subprocess.Popen(["mysql", "--no-defaults", "-h127.0.0.1", f"-P{p.port}", f"-u{mariadb['user']}",
                                   f"-p{mariadb['password']}", "app", "-e", "DROP TABLE held_my"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        r = pending(service, "DROP TABLE held_my")["request"]
        assert r["user"] == mariadb["user"]
        time.sleep(0.5)
        assert client.poll() is None
        assert api(service, "POST", f"/api/requests/{r['id']}/approve", "alice", {})[0] == 200
        code, _, err = finish(client)
        assert code == 0, err
        left = subprocess.run(root + ["SELECT count(*) FROM information_schema.tables WHERE table_schema='app'"
                                      " AND table_name='held_my'"], capture_output=True, text=True, check=True)
        assert left.stdout.strip() == "0"
    finally:
        stop(p)


def test_reviewers_sign_in_with_oidc_id_tokens(postgres, workdir, grant_key, known_secret, tokens):
    """A service verifying reviewers' ID tokens (Ed25519, a JWKS made here): the token's user and
    groups are the reviewer; a token for another audience, expired or signed by another key is
    refused; the group from the token satisfies a group rule."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid="k1", alg="EdDSA", use="sig")
    jwks = workdir / "reviewers-jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    issuer = "https://login.example.test"
    s = start_service(workdir, grant_key, tokens, "--oidc-jwks", str(jwks), "--oidc-issuer", issuer,
                      "--oidc-audience", "sluice-approvals")
    p = held_proxy(postgres, workdir, grant_key, known_secret, tokens, s, 60)
    now = int(time.time())

    def token(sub, groups, key=private, **extra):
        claims = {"iss": issuer, "aud": "sluice-approvals", "sub": sub, "groups": groups, "exp": now + 300, **extra}
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k1"})

    try:
        status, body = api(s, "GET", "/api/me", token("dana", ["dba"]))
        assert status == 200 and body == {"user": "dana", "groups": ["dba"]}, body
        for bad in (token("dana", ["dba"], aud="other"), token("dana", ["dba"], exp=now - 3600),
                    token("dana", ["dba"], key=Ed25519PrivateKey.generate())):
            assert api(s, "GET", "/api/me", bad)[0] == 401
        server(postgres, "DROP TABLE IF EXISTS oidc_t; CREATE TABLE oidc_t (id int); INSERT INTO oidc_t VALUES (1)")
        client = start_psql(postgres, p, "TRUNCATE oidc_t")
        deadline = time.time() + 30
        mine = []
        while not mine and time.time() < deadline:
            reqs = api(s, "GET", "/api/requests?state=pending", token("dana", ["dba"]))[1]["requests"]
            mine = [e for e in reqs if e["request"]["command"] == "TRUNCATE oidc_t"]
            time.sleep(0.1)
        assert mine, "no pending request"
        path = f"/api/requests/{mine[0]['request']['id']}/approve"
        assert api(s, "POST", path, token("erin", ["dev"]))[0] == 403  # not in dba
        assert api(s, "POST", path, token("dana", ["dba"]))[1]["state"] == "pending"
        assert api(s, "POST", path, token("fay", ["dba", "ops"]))[1]["state"] == "approved"
        code, _, err = finish(client)
        assert code == 0, err
        assert server(postgres, "SELECT count(*) FROM oidc_t")[0][0] == 0
    finally:
        stop(p)
        s.proc.terminate()
        s.proc.wait(timeout=10)
