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
