"""http-proxy in front of a real HTTP server, used by curl and urllib through HTTP_PROXY:
decisions, 403 refusals, approval with the Sluice-Grant header, masked JSON, gzip and event-stream
bodies, and refusal of a body it cannot decode."""
import gzip
import http.server
import json
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from conftest import TARGET, free_port, synthetic_stripe_key

SECRET = synthetic_stripe_key()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body, ctype="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/config":
            self.send(200, json.dumps({"service": "billing", "stripe_key": SECRET, "retries": 3}).encode())
        elif self.path == "/gz":
            self.send(200, gzip.compress(f"token={SECRET}\nplain=yes\n".encode()), "text/plain",
                      {"Content-Encoding": "gzip"})
        elif self.path == "/zstd":
            self.send(200, b"\x28\xb5\x2f\xfd opaque", "text/plain", {"Content-Encoding": "zstd"})
        elif self.path == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, data in enumerate([f"data: hello {i}\n\n" for i in range(2)] + [f"data: key {SECRET}\n\n"]):
                chunk = data.encode()
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send(404, b'{"error":"not found"}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n)
        self.send(200, json.dumps({"received": json.loads(body or b"{}")}).encode())

    def do_DELETE(self):
        self.send(200, json.dumps({"deleted": self.path}).encode())


@pytest.fixture(scope="module")
def origin():
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def fetch(proxy, url, method="GET", data=None, headers=None):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy.port}"}))
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=20) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def test_json_response_is_masked(http_proxy, origin):
    status, body, headers = fetch(http_proxy, f"{origin}/config")
    assert status == 200
    doc = json.loads(body)
    assert doc["service"] == "billing" and doc["retries"] == 3
    assert doc["stripe_key"].startswith("[REDACTED:") and SECRET not in body


def test_curl_through_the_proxy(http_proxy, origin):
    r = subprocess.run(["curl", "-sS", "-x", f"http://127.0.0.1:{http_proxy.port}", f"{origin}/config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout and "[REDACTED:" in r.stdout and "billing" in r.stdout


def test_gzip_bodies_are_decoded_and_masked(http_proxy, origin):
    status, body, headers = fetch(http_proxy, f"{origin}/gz")
    assert status == 200 and "plain=yes" in body and SECRET not in body and "token=[REDACTED:" in body
    assert "Content-Encoding" not in headers


def test_event_streams_are_masked(http_proxy, origin):
    status, body, _ = fetch(http_proxy, f"{origin}/events")
    assert status == 200 and "data: hello 0" in body and "data: hello 1" in body
    assert SECRET not in body and "data: key [REDACTED:" in body


def test_unknown_content_coding_is_refused(http_proxy, origin):
    status, body, _ = fetch(http_proxy, f"{origin}/zstd")
    assert status == 502 and "cannot inspect" in body


def test_requests_are_decided(http_proxy, origin):
    status, body, _ = fetch(http_proxy, f"{origin}/jobs", "POST", json.dumps({"op": "delete-all"}).encode(),
                            {"Content-Type": "application/json"})
    assert status == 403
    assert json.loads(body)["decision"]["rule"] == "no-bulk-delete"
    status, body, _ = fetch(http_proxy, f"{origin}/jobs", "POST", json.dumps({"op": "reindex"}).encode(),
                            {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body)["received"]["op"] == "reindex"
    # Cloud metadata is refused before any connection is made.
    status, body, _ = fetch(http_proxy, "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    assert status == 403 and json.loads(body)["decision"]["rule"] == "cloud-metadata"


def test_approval_with_a_grant_header_once(http_proxy, origin, grant_key, workdir):
    url = f"{origin}/items/7"
    status, body, _ = fetch(http_proxy, url, "DELETE")
    assert status == 403
    approval = json.loads(body)["decision"]["approval"]
    req = workdir / "http-request.json"
    req.write_text(json.dumps(approval))
    grant = subprocess.run([str(TARGET / "sluice"), "approve", "--key-file", str(grant_key), "--approver", "alice",
                            str(req)], check=True, capture_output=True, text=True).stdout.strip()
    status, body, _ = fetch(http_proxy, url, "DELETE", headers={"Sluice-Grant": grant})
    assert status == 200 and json.loads(body)["deleted"] == "/items/7"
    status, body, _ = fetch(http_proxy, url, "DELETE", headers={"Sluice-Grant": grant})
    assert status == 403 and "grant already used" in body
