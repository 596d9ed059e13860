"""The detector's language-neutral vectors (testdata/vectors.json, the same cases the Rust tests
run), through the Python API, as str and as bytes, one-shot and streaming."""

from __future__ import annotations

import pytest

import sluice

from conftest import VECTORS


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: c["id"])
def test_findings_str_and_bytes(engine: sluice.Engine, case: dict) -> None:
    text: str = case["input"]
    for data in (text, text.encode()):
        found = engine.scan(data)
        got = [(f.rule, data[f.start : f.end]) for f in found]
        want = [(e["rule"], e["secret"] if isinstance(data, str) else e["secret"].encode()) for e in case["findings"]]
        assert got == want, f"{case['id']} ({type(data).__name__})"
        for f, e in zip(found, case["findings"]):
            if "line" in e:
                assert (f.line, f.column) == (e["line"], e["column"]), case["id"]
            assert len(f.fingerprint) == 32 and e["secret"] not in f.fingerprint


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: c["id"])
def test_redaction(engine: sluice.Engine, case: dict) -> None:
    text: str = case["input"]
    masked = engine.redact(text)
    assert isinstance(masked, str)
    assert engine.redact(text.encode()) == masked.encode()
    for e in case["findings"]:
        assert e["secret"] not in masked, case["id"]
        assert f"[REDACTED:{e['rule']}:" in masked
    for keep in case.get("survives", []):
        assert keep in masked, f"{case['id']}: {keep!r} did not survive"
    if not case["findings"]:
        assert masked is text, "nothing to mask: the very same object comes back"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_streaming_equals_one_shot(engine: sluice.Engine, size: int) -> None:
    # Non-ASCII text makes str chunks cut inside multi-byte characters of the UTF-8 stream.
    text = "".join(f"ünïcode ✓ line {i}\n" + c["input"] for i, c in enumerate(VECTORS))
    for data in (text, text.encode()):
        stream = engine.stream_redactor()
        parts = [stream.feed(data[i : i + size]) for i in range(0, len(data), size)]
        parts.append(stream.finish())
        assert all(type(p) is type(data) for p in parts)
        joined = "".join(parts) if isinstance(data, str) else b"".join(parts)
        assert joined == engine.redact(data)
