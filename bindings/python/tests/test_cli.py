"""The command line in the wheel: `sluice` and `python -m sluice` run the Rust CLI (the same code
as the standalone binary), including `scan --diff BASE` on a real git repository."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, synthetic_stripe_key

BINARY = ROOT / "target" / "release" / "sluice"


def entry_points() -> list[list[str]]:
    script = shutil.which("sluice", path=os.path.dirname(sys.executable)) or shutil.which("sluice")
    assert script, "the wheel installs a `sluice` console script"
    return [[script], [sys.executable, "-m", "sluice"]]


def run(cmd: list[str], cwd: pathlib.Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("entry", entry_points(), ids=["console-script", "python-m"])
def test_scan_exit_codes_and_json(entry: list[str], tmp_path: pathlib.Path) -> None:
    secret = synthetic_stripe_key()
    (tmp_path / "app.env").write_text(f"DEBUG=1\nSTRIPE_KEY={secret}\n")
    (tmp_path / "clean.txt").write_text("nothing here\n")
    r = run([*entry, "scan", "--format", "json", str(tmp_path)])
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    (f,) = report["findings"]
    assert f["rule"] == "stripe-secret-key" and f["line"] == 2 and secret not in r.stdout
    assert run([*entry, "scan", str(tmp_path / "clean.txt")]).returncode == 0
    bad = run([*entry, "scan", "--format", "xml", str(tmp_path)])
    assert bad.returncode == 2 and "invalid value 'xml'" in bad.stderr
    missing = run([*entry, "scan", str(tmp_path / "missing")])
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert run([*entry, "--version"]).stdout.startswith("sluice ")
    redacted = run([*entry, "redact", "-"], stdin=f"key={secret}\n")
    assert redacted.returncode == 0 and secret not in redacted.stdout and "[REDACTED:" in redacted.stdout
    check = run([*entry, "check", "--protocol", "shell", "cat ~/.aws/credentials"])
    assert check.returncode == 1 and json.loads(check.stdout)["decision"] == "deny"


@pytest.mark.skipif(not BINARY.exists(), reason="the release binary is built by scripts/test.sh")
def test_same_output_as_the_rust_binary(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a.env").write_text(f"A={synthetic_stripe_key()}\nB=2\n")
    args = ["scan", "--format", "jsonl", str(tmp_path)]
    wheel, binary = run([entry_points()[0][0], *args]), run([str(BINARY), *args])
    assert (wheel.returncode, wheel.stdout) == (binary.returncode, binary.stdout)


def git(repo: pathlib.Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def test_scan_diff_reports_only_added_lines(tmp_path: pathlib.Path) -> None:
    old, new, staged = synthetic_stripe_key(), synthetic_stripe_key(), synthetic_stripe_key()
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "config.env").write_text(f"OLD_KEY={old}\nDEBUG=1\n")
    (repo / "untouched.env").write_text(f"ALSO_OLD={synthetic_stripe_key()}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    (repo / "config.env").write_text(f"OLD_KEY={old}\nDEBUG=0\nNEW_KEY={new}\n")
    (repo / "sub dir").mkdir()
    (repo / "sub dir" / "ünïcode file.env").write_text(f"K={staged}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "change")
    sluice = entry_points()[0]

    # Against a commit: the working tree is the new side; the old secret is not reported.
    r = run([*sluice, "scan", "--diff", "HEAD~1", "--format", "json"], cwd=repo / "sub dir")
    assert r.returncode == 1, r.stderr
    found = {(f["path"], f["line"]) for f in json.loads(r.stdout)["findings"]}
    assert found == {("config.env", 3), ("sub dir/ünïcode file.env", 1)}

    # Between commits, limited by a pathspec.
    r = run([*sluice, "scan", "--diff", "HEAD~1..HEAD", "--format", "json", "config.env"], cwd=repo)
    assert [(f["path"], f["line"]) for f in json.loads(r.stdout)["findings"]] == [("config.env", 3)]

    # Nothing added since HEAD: clean.
    assert run([*sluice, "scan", "--diff", "HEAD"], cwd=repo).returncode == 0
    # SARIF for code scanning.
    sarif = json.loads(run([*sluice, "scan", "--diff", "main~1", "--format", "sarif"], cwd=repo).stdout)
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == 2

    bad = run([*sluice, "scan", "--diff", "no-such-rev"], cwd=repo)
    assert bad.returncode == 2 and "no-such-rev" in bad.stderr
    outside = run([*sluice, "scan", "--diff", "HEAD"], cwd=tmp_path)
    assert outside.returncode == 2 and "git repository" in outside.stderr


@pytest.mark.parametrize("entry", entry_points(), ids=["console-script", "python-m"])
def test_hook_installed_from_the_wheel_runs_through_this_python(entry: list[str], tmp_path: pathlib.Path) -> None:
    """`sluice hook install` from the wheel installs `<this python> -m sluice hook …` (the
    console script runs inside Python, which is not a `sluice` binary), and that command decides."""
    r = run([*entry, "hook", "install", "claude-code", "--dir", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    settings = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    cmd = settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    assert " -m sluice hook claude-code PreToolUse" in cmd, cmd
    payload = {"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": "/home/dev/.aws/credentials"}}
    out = subprocess.run(["sh", "-c", cmd], input=json.dumps(payload), capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny", out
    secret = synthetic_stripe_key()
    prompt = {"hook_event_name": "UserPromptSubmit", "prompt": f"use {secret}"}
    r = run([*entry, "hook", "claude-code", "UserPromptSubmit"], stdin=json.dumps(prompt))
    assert json.loads(r.stdout)["decision"] == "block" and secret not in r.stdout
