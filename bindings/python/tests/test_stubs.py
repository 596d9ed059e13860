"""The type stubs match the compiled module (mypy's stubtest), and typed code using the API
type-checks."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import sluice

pytest.importorskip("mypy")

USAGE = '''
import sluice
from sluice.guard import Guardrail

engine = sluice.Engine(known_values={"db": "s3rv1ce-pw-Synthetic-42"})
masked_text: str = engine.redact("text")
masked_bytes: bytes = engine.redact(b"bytes")
findings: list[sluice.Finding] = engine.scan("x")
start: int = findings[0].start if findings else 0
d: sluice.Decision = engine.check("shell", "ls", identity=sluice.Identity("a", ["g"]), target="t")
kind: str = d.decision
stream = engine.stream_redactor()
chunk: str = stream.feed("abc")
key = sluice.GrantKey.generate_ed25519()
grant: str | None = key.issue(d.approval, ["alice"]) if d.approval else None
out: tuple[bytes, bytes] = engine.session("mcp").client_message("{}")
guard = Guardrail(engine, identity="a")
'''


def test_stubtest() -> None:
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "sluice"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_typed_usage_checks(tmp_path: pathlib.Path) -> None:
    (tmp_path / "usage.py").write_text(USAGE)
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "usage.py"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("import sluice\nn: int = sluice.Engine().redact('x')\n")
    r = subprocess.run([sys.executable, "-m", "mypy", "bad.py"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 1 and "Incompatible types" in r.stdout
    assert sluice.__version__
