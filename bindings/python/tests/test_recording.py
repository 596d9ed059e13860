"""Session recordings from Python: recorded sessions and checks verify against the public key,
replay, hold no secret; rotation, callables as sinks, failing sinks (fail closed), tampering."""

from __future__ import annotations

import json
import pathlib

import pytest

import sluice
from conftest import synthetic_stripe_key


def mcp_call(i: int, command: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                       "params": {"name": "run_command", "arguments": {"command": command}}})


def test_a_recorded_mcp_session_verifies_replays_and_holds_no_secret() -> None:
    secret = synthetic_stripe_key()
    key = sluice.GrantKey.generate_ed25519()
    engine = sluice.Engine()
    with engine.recorder(key=key, protocol="mcp", user="agent-7", target="files") as rec:
        s = engine.session("mcp", identity="agent-7", target="files", recorder=rec)
        to_server, _ = s.client_message(mcp_call(1, "cat ~/.aws/credentials"))
        assert to_server == b""
        to_server, _ = s.client_message(mcp_call(2, f"echo {secret}"))
        assert json.loads(to_server)["id"] == 2
        result = {"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": f"KEY={secret}"}]}}
        s.server_message(json.dumps(result))
        session_id = rec.session_id
    data = rec.data()
    assert secret.encode() not in data
    report = sluice.verify_recording(data, key=key.public())
    assert report and report.ok and report.closed and report.session == session_id, str(report)
    assert report.key_given and report.records == report.signed and report.problem is None
    text = sluice.replay_recording(data)
    assert "cat ~/.aws/credentials" in text and "DENY [credential-files]" in text
    assert "KEY=[REDACTED:" in text and secret not in text
    # Written after close: nothing.
    rec.notice("late")
    assert rec.data() == data and rec.failure == "the recording is closed"


def test_tampering_is_named_and_another_key_refused() -> None:
    key = sluice.GrantKey.generate_ed25519()
    engine = sluice.Engine()
    rec = engine.recorder(key=key.to_text(), protocol="shell")
    engine.check("shell", "ls -la", recorder=rec)
    d = engine.check("shell", "printenv", recorder=rec)
    rec.close()
    data = rec.data()
    assert sluice.verify_recording(data, key=key)
    lines = data.split(b"\n")
    lines[2] = lines[2].replace(b"printenv", b"printenx")
    bad = sluice.verify_recording(b"\n".join(lines))
    # The altered record (line 3, record 2) breaks the chain at the next one, which names it.
    assert not bad and bad.problem is not None and bad.problem.line == 4 and not bad.problem.torn, str(bad)
    assert "hash of record 2" in bad.problem.reason
    other = sluice.GrantKey.generate_ed25519().public()
    assert other is not None
    assert not sluice.verify_recording(data, key=other)
    # Cut short: the intact prefix verifies, the cut is reported as such.
    cut = sluice.verify_recording(data[: len(data) // 2])
    assert not cut and cut.problem is not None and cut.problem.torn
    assert d.decision in ("deny", "require_approval")


def test_rotated_file_recording_and_parts(tmp_path: pathlib.Path) -> None:
    key = sluice.GrantKey.generate_ed25519()
    engine = sluice.Engine()
    base = tmp_path / "long.jsonl"
    with engine.recorder(base, key=key, protocol="shell", rotate_bytes=800) as rec:
        for i in range(20):
            engine.check("shell", f"echo step-{i}", recorder=rec)
    parts = [base] + sorted(tmp_path.glob("long.*.jsonl"), key=lambda p: int(p.name.split(".")[1]))
    assert len(parts) >= 3, parts
    report = sluice.verify_recording(*parts, key=key)
    assert report and report.parts == len(parts), str(report)
    missing = sluice.verify_recording(parts[0], *parts[2:])
    assert not missing and missing.problem is not None and missing.problem.input == 1
    assert "part 1 should begin here" in missing.problem.reason
    assert "echo step-19" in sluice.replay_recording(*parts)
    cast = sluice.export_asciicast(*parts).splitlines()
    assert json.loads(cast[0])["version"] == 2 and any("echo step-3" in l for l in cast[1:])
    # A file that exists is never overwritten.
    with pytest.raises(sluice.RecordingError, match="long.jsonl"):
        engine.recorder(base, key=key)


def test_a_callable_sink_and_a_failing_one_fails_closed() -> None:
    key = sluice.GrantKey.generate_ed25519()
    engine = sluice.Engine()
    got: list[bytes] = []
    rec = engine.recorder(got.append, key=key, protocol="shell")
    assert engine.check("shell", "ls", recorder=rec).decision == "allow"
    rec.close()
    assert sluice.verify_recording(b"".join(got), key=key)
    assert all(r.endswith(b"\n") for r in got)

    budget = [1]

    def flaky(record: bytes) -> None:
        if budget[0] == 0:
            raise OSError("disk full")
        budget[0] -= 1

    rec = engine.recorder(flaky, key=key, protocol="shell")
    d = engine.check("shell", "ls", recorder=rec)
    assert d.decision == "deny" and "recording failed" in d.reason, d.reason
    assert rec.failure is not None and "disk full" in rec.failure
    with pytest.raises(sluice.RecordingError):
        rec.close()
    # Not failing closed: the command runs unrecorded.
    budget[0] = 1
    rec = engine.recorder(flaky, key=key, protocol="shell", fail_closed=False)
    assert engine.check("shell", "ls", recorder=rec).decision == "allow"


def test_bad_arguments_are_clear() -> None:
    engine = sluice.Engine()
    with pytest.raises(ValueError, match="Ed25519"):
        engine.recorder(key=sluice.GrantKey.generate_hmac())
    key = sluice.GrantKey.generate_ed25519()
    with pytest.raises(ValueError, match="fsync"):
        engine.recorder(key=key, fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="checkpoint_interval"):
        engine.recorder(key=key, checkpoint_interval=-1)
    with pytest.raises(TypeError):
        engine.recorder(42, key=key)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sluice.verify_recording()
    with pytest.raises(sluice.RecordingError):
        sluice.verify_recording("/nonexistent/recording.jsonl")
    rec = engine.recorder(lambda _: None, key=key)
    with pytest.raises(TypeError, match="in-memory"):
        rec.data()
