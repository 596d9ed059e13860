"""The Python API itself: types in and out, copies avoided, the error hierarchy with its
attributes, the GIL released, events, grants, OIDC identities and sessions."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

import sluice

from conftest import synthetic_stripe_key

TOKEN = "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"  # synthetic test vector: sluice:allow


def test_same_type_back_and_no_copy_when_clean(engine: sluice.Engine) -> None:
    clean_b, clean_s = b"nothing to see here\n" * 100, "nothing to see here\n" * 100
    assert engine.redact(clean_b) is clean_b
    assert engine.redact(clean_s) is clean_s
    dirty = f"token={TOKEN}\n"
    assert isinstance(engine.redact(dirty), str) and isinstance(engine.redact(dirty.encode()), bytes)
    with pytest.raises(TypeError, match="expected bytes or str, got int"):
        engine.scan(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        engine.redact(bytearray(b"x"))  # type: ignore[type-var]


def test_str_offsets_are_code_points(engine: sluice.Engine) -> None:
    text = f"naïve ✓ 日本 token={TOKEN}\n"
    (f,) = engine.scan(text)
    assert text[f.start : f.end] == TOKEN
    (g,) = engine.scan(text.encode())
    assert text.encode()[g.start : g.end] == TOKEN.encode()
    assert (f.line, f.column) == (g.line, g.column) == (1, text.index(TOKEN) + 1)
    assert f.fingerprint == g.fingerprint and f != g and hash(f) != hash(g)


def test_finding_and_decision_reprs(engine: sluice.Engine) -> None:
    (f,) = engine.scan(f"x={TOKEN}")
    assert repr(f).startswith("Finding(rule='github-pat', start=2, end=42")
    d = engine.check("shell", "cat ~/.aws/credentials")
    assert repr(d).startswith("Decision(decision='deny', rule='credential-files'")


def test_error_hierarchy_and_attributes() -> None:
    with pytest.raises(sluice.RuleFileError) as e:
        sluice.Engine(rules="[[rule]\nid = 1")
    assert isinstance(e.value, sluice.DetectorError) and isinstance(e.value, sluice.SluiceError)
    assert e.value.origin == "rules[0]" and e.value.line == 1

    bad_pattern = '[[rule]]\nid = "x-token"\ndescription = "x"\npattern = "xtok_(["\nkeywords = ["xtok_"]\n'
    with pytest.raises(sluice.PatternError) as e:
        sluice.Engine(rules=bad_pattern)
    assert e.value.rule == "x-token" and "x-token" in str(e.value)

    with pytest.raises(sluice.KnownValueError):
        sluice.Engine(known_values=["ab"])

    with pytest.raises(sluice.PolicyError) as p:
        sluice.Engine.from_yaml("version: 1\nname: bad\nrules:\n  - id: r\n    action: maybe\n")
    assert p.value.origin == "<string>" and p.value.line is not None

    with pytest.raises(sluice.PolicyError) as p:
        sluice.Engine.from_file("/nonexistent/policy.yaml")
    assert "/nonexistent/policy.yaml" in str(p.value)

    engine = sluice.Engine()
    with pytest.raises(sluice.RequestError, match="unknown protocol `ftp`"):
        engine.check("ftp", "x")  # type: ignore[arg-type]
    with pytest.raises(sluice.RequestError, match="METHOD URL"):
        engine.check("http", "not a request line")
    with pytest.raises(sluice.RequestError, match="dialect"):
        engine.check("sql", "SELECT 1", dialect="oracle")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'rulez'"):
        sluice.Engine(rulez="x")  # type: ignore[call-arg]
    with pytest.raises(sluice.GrantError) as g:
        sluice.GrantKey.parse("not a key")
    assert g.value.kind == "key"


def test_user_rules_and_known_values() -> None:
    rule = (
        '[[rule]]\nid = "acme-token"\ndescription = "ACME API token"\n'
        'pattern = "acme_[a-z0-9]{16}"\nkeywords = ["acme_"]\n'
    )
    held = "s3rv1ce-pw-Synthetic-42"
    engine = sluice.Engine(rules=[rule], builtin_rules=False, known_values={"db-password": held})
    assert engine.rules == ["acme-token"]
    text = f"a=acme_0123456789abcdef b={held} c={base64.b64encode(held.encode()).decode()}"
    assert [f.rule for f in engine.scan(text)] == ["acme-token", "db-password", "db-password"]
    assert held not in engine.redact(text)


def test_gil_released_while_scanning(engine: sluice.Engine) -> None:
    # While one thread scans a large buffer, another keeps running Python code. With the GIL
    # held for the whole call the counter could not move between `started` and `done`.
    data = (b"fn main() { let x = compute(42); println!(\"{x}\"); }\n" * 400_000)  # ~21 MB
    started, done = threading.Event(), threading.Event()

    def scan() -> None:
        started.set()
        engine.scan(data)
        done.set()

    t = threading.Thread(target=scan)
    t.start()
    started.wait()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0)
    t.join()
    assert ticks > 50, f"the main thread ran only {ticks} times during the scan"


def test_events_reach_the_callback() -> None:
    events: list[dict] = []
    engine = sluice.Engine(on_event=events.append)
    engine.check("shell", "cat ~/.aws/credentials", identity="agent-7", target="laptop")
    (e,) = events
    assert e["event"] == "decision" and e["decision"] == "deny" and e["rule"] == "credential-files"
    assert e["user"] == "agent-7" and e["target"] == "laptop" and e["command"] == "cat ~/.aws/credentials"
    engine.check("mcp", {"name": "run_command", "arguments": {"command": "ls"}})
    assert events[-1]["decision"] == "allow" and '"run_command"' in events[-1]["command"]
    with pytest.raises(TypeError):
        sluice.Engine(on_event=42)


@pytest.mark.parametrize("make_key", [sluice.GrantKey.generate_ed25519, sluice.GrantKey.generate_hmac])
def test_grants_let_exactly_one_approved_command_through(make_key) -> None:
    key = make_key()
    verifier = key.public() or key
    assert sluice.GrantKey.parse(verifier.to_text()).to_text() == verifier.to_text()
    engine = sluice.Engine(grant_key=verifier.to_text())
    d = engine.check("sql", "DROP TABLE t", identity="agent-7")
    assert d.decision == "require_approval" and d.approval is not None
    req = sluice.ApprovalRequest.from_json(d.approval.to_json())
    assert req.id == d.approval.id and req.user == "agent-7" and req.command == d.approval.command

    with pytest.raises(sluice.GrantError) as self_approval:
        key.issue(req, ["agent-7"])
    assert self_approval.value.kind == "approvers"
    grant = key.issue(req, [sluice.Approver("alice", ["dba"])])

    other = engine.check("sql", "DROP TABLE users", identity="agent-7", grant=grant)
    assert other.decision == "require_approval" and "different" in other.reason
    ok = engine.check("sql", "DROP TABLE t", identity="agent-7", grant=grant)
    assert ok.allowed and "approved by alice" in ok.reason
    again = engine.check("sql", "DROP TABLE t", identity="agent-7", grant=grant)
    assert again.decision == "require_approval" and "already used" in again.reason
    # A grant never turns a deny into an allow.
    assert engine.check("shell", "cat ~/.aws/credentials", grant=grant).decision == "deny"


def test_oidc_identity() -> None:
    jwt = pytest.importorskip("jwt")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid="k1", alg="EdDSA", use="sig")
    jwks = json.dumps({"keys": [jwk]})
    verifier = sluice.OidcVerifier(jwks, "https://issuer.example", "sluice")
    now = int(time.time())
    claims = {"iss": "https://issuer.example", "aud": "sluice", "sub": "ann", "groups": ["dba"], "exp": now + 60}
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "k1"})
    ident = verifier.verify(token)
    assert (ident.user, ident.groups, ident.attributes["iss"]) == ("ann", ["dba"], "https://issuer.example")
    with pytest.raises(sluice.OidcError):
        verifier.verify(jwt.encode({**claims, "aud": "other"}, private, algorithm="EdDSA", headers={"kid": "k1"}))
    with pytest.raises(sluice.OidcError):
        verifier.verify(jwt.encode({**claims, "exp": now - 3600}, private, algorithm="EdDSA", headers={"kid": "k1"}))
    with pytest.raises(sluice.OidcError):
        sluice.OidcVerifier('{"keys": []}', "i", "a")


def test_mcp_session_decides_and_masks() -> None:
    secret = synthetic_stripe_key()
    engine = sluice.Engine()
    s = engine.session("mcp", identity="agent-7", target="files")
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "run_command", "arguments": {"command": "cat ~/.aws/credentials"}}}
    to_server, to_client = s.client_message(json.dumps(call))
    assert to_server == b""
    err = json.loads(to_client)
    assert err["id"] == 1 and err["error"]["code"] == -32001 and "credential" in err["error"]["message"]

    call["id"], call["params"]["arguments"]["command"] = 2, "cargo test"
    to_server, to_client = s.client_message(json.dumps(call))
    assert json.loads(to_server)["id"] == 2 and to_client == b""
    result = {"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": f"KEY={secret} ok"}]}}
    _, to_client = s.server_message(json.dumps(result).encode())
    text = json.loads(to_client)["result"]["content"][0]["text"]
    assert secret not in text and text.startswith("KEY=[REDACTED:") and text.endswith(" ok")


def test_http_session_refuses_metadata_and_closes_on_garbage(engine: sluice.Engine) -> None:
    s = engine.session("http", identity="agent-7")
    to_server, to_client = s.from_client(b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n")
    assert to_server == b"" and to_client.startswith(b"HTTP/1.1 403 ")
    s = engine.session("postgres")
    with pytest.raises(sluice.SessionError) as e:
        s.from_client(b"\x00\x00\x00\x02garbage")
    assert e.value.side == "client" and s.closed
    with pytest.raises(sluice.SessionError):
        s.from_client(b"")
    with pytest.raises(sluice.RequestError):
        engine.session("smtp")  # type: ignore[arg-type]
    pg = engine.session("postgres")
    with pytest.raises(sluice.RequestError, match="for MCP sessions"):
        pg.client_message("{}")
    assert not pg.closed, "a misuse is not bad input: the session stays open"
