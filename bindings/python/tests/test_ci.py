"""The CI integrations shipped in the repository: the pre-commit hook (installed and run by the
real `pre-commit`, which builds this package from the repository) and the GitHub Actions
snippet (its scan step run as written on a real git repository)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, synthetic_stripe_key
from test_cli import git

WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"


def test_pre_commit_hook_blocks_a_staged_secret(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("pre_commit")
    if not (ROOT / ".git").exists():
        pytest.skip("pre-commit try-repo needs the repository's git history")
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "app.env").write_text(f"STRIPE_KEY={synthetic_stripe_key()}\n")
    (repo / "clean.py").write_text("print('hello')\n")
    git(repo, "add", ".")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        # The hook's environment builds this package from source: reuse the release build.
        "CARGO_TARGET_DIR": str(ROOT / "target"),
    }

    def hook(*files: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "sluice-scan", "--files", *files]
        return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1200)

    blocked = hook("app.env", "clean.py")
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "stripe-secret-key" in blocked.stdout and "app.env" in blocked.stdout
    passed = hook("clean.py")
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_github_actions_snippet_scan_step(tmp_path: pathlib.Path) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["sluice"]["steps"]
    assert workflow["permissions"]["security-events"] == "write"
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert upload["with"]["sarif_file"] == "sluice.sarif"
    scan = next(s for s in steps if "sluice scan" in s.get("run", ""))

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("base\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "a.txt").write_text(f"base\nKEY={synthetic_stripe_key()}\n")
    git(repo, "commit", "-qam", "change")

    github_env = tmp_path / "github_env"
    bash = shutil.which("bash")
    assert bash
    r = subprocess.run([bash, "-e", "-c", scan["run"]], cwd=repo, capture_output=True, text=True,
                       env={**os.environ, "BASE": base, "GITHUB_ENV": str(github_env)})
    assert r.returncode == 0, r.stderr
    assert github_env.read_text().strip() == "status=1"
    sarif = json.loads((repo / "sluice.sarif").read_text())
    (result,) = sarif["runs"][0]["results"]
    assert result["ruleId"] == "stripe-secret-key"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2
