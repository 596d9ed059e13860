"""Credentials held for the agent: every echo comes back as the placeholder; placeholders are
swapped in only where allowed."""

from __future__ import annotations

import base64
import secrets
import string

import pytest

import sluice


def held() -> str:
    # Synthetic: random, made for this test.
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def test_every_echo_of_a_held_value_comes_back_as_its_placeholder() -> None:
    pw = held()
    engine = sluice.Engine(credentials={"pg-prod-password": pw})
    for form in [pw, pw.upper(), pw[::-1], pw[2:12], base64.b64encode(pw.encode()).decode(), pw.encode().hex()]:
        out = engine.redact(f"value: {form} end")
        assert out == "value: sluice:secret/pg-prod-password end", (form, out)
    findings = engine.scan(f"x {pw} y")
    assert [f.rule for f in findings] == ["sluice:secret/pg-prod-password"]
    # Streaming, cut anywhere.
    text = f"row 1 {pw[::-1]} row 2 {pw}\n"
    for cut in range(len(text)):
        s = engine.stream_redactor()
        out = s.feed(text[:cut]) + s.feed(text[cut:]) + s.finish()
        assert pw not in out and pw[::-1] not in out and out.count("sluice:secret/") == 2, (cut, out)


def test_substitution_only_where_allowed() -> None:
    token = held()
    engine = sluice.Engine(credentials={"gh-token": token, "db": held()})
    text, used = engine.substitute("Authorization: token sluice:secret/gh-token", allowed=["gh-token"])
    assert text == f"Authorization: token {token}" and used == ["gh-token"]
    text, used = engine.substitute("no placeholder", allowed=[])
    assert text == "no placeholder" and used == []
    with pytest.raises(sluice.RequestError, match="sluice:secret/db: this credential may not be sent here") as e:
        engine.substitute("sluice:secret/gh-token sluice:secret/db", allowed=lambda n: n == "gh-token")
    assert token not in str(e.value)
    with pytest.raises(sluice.RequestError, match="no such credential"):
        engine.substitute("sluice:secret/nope", allowed=lambda n: True)
    with pytest.raises(ZeroDivisionError):
        engine.substitute("sluice:secret/db", allowed=lambda n: 1 / 0)
    with pytest.raises(ValueError, match="lowercase"):
        sluice.Engine(credentials={"Bad Name": "x" * 12})
    with pytest.raises(TypeError):
        engine.substitute("x", allowed=42)  # type: ignore[arg-type]


def test_a_session_swaps_placeholders_where_the_policy_lets_them_go() -> None:
    import json

    token = held()
    policy = 'version: 1\ndefault: allow\ncredentials:\n  api-token: { targets: ["files"] }\n'
    engine = sluice.Engine.from_yaml(policy, credentials={"api-token": token})
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "fetch", "arguments": {"auth": "Bearer sluice:secret/api-token"}}}
    s = engine.session("mcp", identity="agent-7", target="files")
    to_server, _ = s.client_message(json.dumps(call))
    assert json.loads(to_server)["params"]["arguments"]["auth"] == f"Bearer {token}"
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": f"used {token}"}]}}
    _, to_client = s.server_message(json.dumps(answer))
    assert token.encode() not in to_client and b"used sluice:secret/api-token" in to_client
    # Another server: refused, nothing forwarded.
    other = engine.session("mcp", identity="agent-7", target="shell")
    to_server, to_client = other.client_message(json.dumps(call))
    assert to_server == b"" and b"may not be sent here" in to_client and token.encode() not in to_client
