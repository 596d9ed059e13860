"""`sluice hook`: the real binary fed each agent's hook payloads, its answers checked.

- Every fixture (testdata/hooks/AGENT.json) goes through `sluice hook AGENT EVENT` and gets the
  decision it should (allow / ask / deny / masked), in the agent's answer format; a secret
  planted in a payload never comes back in the answer.
- The fixtures and the answers are type-checked against the agents' own published types: `tsc
  --strict` against `@anthropic-ai/claude-agent-sdk` (Claude Code) and `@google/gemini-cli-core`
  (Gemini CLI), JSON Schema against the schemas Codex CLI ships in its binary
  (testdata/hooks/codex/schemas, see scripts/extract_codex_hook_schemas.py), and `tsc` against
  Cursor's documented shapes (e2e/hooks/cursor-hooks.d.ts; Cursor publishes no type package).
- `install` on settings files with and without other hooks (kept, in order; twice is once),
  `uninstall` back to the original, `doctor` running the installed command; `--record` writes a
  recording that verifies.
"""
import json
import os
import secrets
import shutil
import string
import subprocess

import jsonschema
import pytest

from conftest import ROOT, TARGET

SLUICE = str(TARGET / "sluice")
HOOKS = ROOT / "testdata" / "hooks"
TYPES = ROOT / "e2e" / "hooks"
AGENTS = ["claude-code", "cursor", "gemini", "codex"]


@pytest.fixture(scope="module")
def secret():
    # Synthetic, made for this run: a Stripe-shaped key the detector knows.
    return "sk_live_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def cases(agent, secret):
    data = json.loads((HOOKS / f"{agent}.json").read_text())
    assert data["agent"] == agent
    out = []
    for c in data["cases"]:
        payload = json.loads(json.dumps(c["payload"]).replace("{{SECRET}}", secret))
        out.append({**c, "payload": payload})
    return out


def run_hook(agent, event, payload, *args, env=None):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return subprocess.run([SLUICE, "hook", agent, event, *args], input=data, capture_output=True,
                          env=env, timeout=60)


def outcome(agent, event, stdout):
    """The decision an answer carries, as the agent reads it."""
    if not stdout.strip():
        return "allow"
    a = json.loads(stdout)
    h = a.get("hookSpecificOutput") or {}
    if agent == "claude-code":
        if event == "PostToolUse":
            return "masked" if "updatedToolOutput" in h else "allow"
        if a.get("decision") == "block":
            return "deny"
        return h.get("permissionDecision", "allow")
    if agent == "codex":
        if event == "PostToolUse":
            return "masked" if a.get("decision") == "block" else "allow"
        if event == "PermissionRequest":
            return (h.get("decision") or {}).get("behavior", "allow")
        if a.get("decision") == "block":
            return "deny"
        return h.get("permissionDecision", "allow")
    if agent == "gemini":
        if event == "AfterTool":
            return "masked" if a.get("decision") == "deny" else "allow"
        return a.get("decision", "allow")
    if agent == "cursor":
        if event == "postToolUse":
            return "masked" if "additional_context" in a else "allow"
        if event == "beforeSubmitPrompt":
            return "allow" if a["continue"] else "deny"
        return a["permission"]
    raise AssertionError(agent)


@pytest.mark.parametrize("agent", AGENTS)
def test_every_fixture_gets_its_decision_in_the_agents_format(agent, secret):
    failures = []
    for c in cases(agent, secret):
        r = run_hook(agent, c["event"], c["payload"])
        assert r.returncode == 0, (c["name"], r.stderr)
        got = outcome(agent, c["event"], r.stdout.decode())
        if got != c["expect"]:
            failures.append(f"{c['name']}: expected {c['expect']}, got {got}: {r.stdout.decode()[:300]}")
        # The oracle: a planted secret never comes back to the agent.
        assert secret.encode() not in r.stdout + r.stderr, c["name"]
        if c["expect"] == "deny" and c["event"] != "beforeReadFile":  # that answer is a bare permission
            assert b"Sluice" in r.stdout, c["name"]
    assert not failures, "\n".join(failures)


def test_masked_output_keeps_its_shape_and_holds_placeholders(secret):
    p = {"session_id": "s", "transcript_path": "t", "cwd": "/p", "hook_event_name": "PostToolUse",
         "tool_name": "Bash", "tool_use_id": "x", "tool_input": {"command": "env"},
         "tool_response": {"stdout": f"A=1\nSTRIPE={secret}\nB=2\n", "stderr": "", "interrupted": False}}
    r = run_hook("claude-code", "PostToolUse", p)
    out = json.loads(r.stdout)["hookSpecificOutput"]["updatedToolOutput"]
    assert set(out) == {"stdout", "stderr", "interrupted"} and out["interrupted"] is False
    assert out["stdout"].startswith("A=1\nSTRIPE=[REDACTED:stripe-secret-key:") and out["stdout"].endswith("\nB=2\n")


@pytest.mark.parametrize("payload", [b"", b"{not json", b"[]", b'{"hook_event_name": "PostToolUse"}'])
def test_unreadable_or_mismatched_payloads_block_with_exit_2(payload):
    r = run_hook("claude-code", "PreToolUse", payload)
    assert r.returncode == 2 and r.stderr.startswith(b"sluice: "), r
    r = run_hook("gemini", "SessionStart", b"{}")
    assert r.returncode == 2 and b"BeforeTool" in r.stderr


def test_unknown_tools_follow_the_policys_uncertain_action(workdir):
    policy = workdir / "hook-deny-uncertain.yaml"
    policy.write_text("version: 1\nname: strict\ndefault: allow\nuncertain: deny\nrules: []\n")
    p = {"hook_event_name": "BeforeTool", "tool_name": "mystery_tool", "tool_input": {}}
    r = run_hook("gemini", "BeforeTool", p, "--policy", str(policy))
    assert json.loads(r.stdout)["decision"] == "deny"
    r = run_hook("gemini", "BeforeTool", p)
    assert json.loads(r.stdout)["decision"] == "ask"


# ---- the agents' own types -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tsc():
    """The agents' type packages, installed from e2e/hooks/package-lock.json (no optional
    platform binaries)."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("SLUICE_REQUIRE_SERVICES"):
            pytest.fail("npm not found")
        pytest.skip("npm not found")
    if not (TYPES / "node_modules" / "typescript").exists():
        subprocess.run([npm, "ci", "--ignore-scripts", "--omit=optional", "--no-audit", "--no-fund"],
                       cwd=TYPES, check=True, capture_output=True, timeout=900)
    return TYPES / "node_modules" / ".bin" / "tsc"


CLAUDE_OUT = {"PreToolUse": "SyncHookJSONOutput", "PostToolUse": "SyncHookJSONOutput",
              "UserPromptSubmit": "SyncHookJSONOutput"}
GEMINI_OUT = {"BeforeTool": "BeforeToolOutput", "AfterTool": "AfterToolOutput",
              "BeforeAgent": "BeforeAgentOutput", "BeforeModel": "BeforeModelOutput"}
CURSOR_OUT = {"beforeShellExecution": "PermissionOutput", "beforeMCPExecution": "PermissionOutput",
              "preToolUse": "PermissionOutput", "beforeReadFile": "ReadFileOutput",
              "beforeSubmitPrompt": "BeforeSubmitPromptOutput", "postToolUse": "PostToolUseOutput"}


def test_fixtures_and_answers_type_check_against_the_agents_published_types(tsc, secret):
    lines = [
        'import type * as Claude from "@anthropic-ai/claude-agent-sdk";',
        'import type * as Gemini from "@google/gemini-cli-core/dist/src/hooks/types.js";',
        'import type * as Cursor from "../cursor-hooks.js";',
    ]
    n = 0
    for agent, ns, outs in [("claude-code", "Claude", CLAUDE_OUT), ("gemini", "Gemini", GEMINI_OUT),
                            ("cursor", "Cursor", CURSOR_OUT)]:
        for c in cases(agent, secret):
            n += 1
            lines.append(f"// {agent}: {c['name']}")
            lines.append(f"export const in{n}: {ns}.{c['type']} = {json.dumps(c['payload'])};")
            r = run_hook(agent, c["event"], c["payload"])
            if r.stdout.strip():
                lines.append(f"export const out{n}: {ns}.{outs[c['event']]} = {r.stdout.decode().strip()};")
    gen = TYPES / "generated"
    gen.mkdir(exist_ok=True)
    (gen / "check.ts").write_text("\n".join(lines) + "\n")
    r = subprocess.run([str(tsc), "-p", str(TYPES / "tsconfig.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # The check has teeth: a misspelt field is an error.
    bad = "\n".join(lines[:3]) + '\nexport const x: Claude.SyncHookJSONOutput = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecison": "deny"}};\n'
    (gen / "check.ts").write_text(bad)
    r = subprocess.run([str(tsc), "-p", str(TYPES / "tsconfig.json")], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "permissionDecison" in r.stdout, r.stdout


def test_codex_fixtures_and_answers_validate_against_codex_schemas(secret):
    schemas = HOOKS / "codex" / "schemas"
    for c in cases("codex", secret):
        jsonschema.validate(c["payload"], json.loads((schemas / f"{c['type']}.command.input.schema.json").read_text()))
        r = run_hook("codex", c["event"], c["payload"])
        if r.stdout.strip():
            out = json.loads(r.stdout)
            jsonschema.validate(out, json.loads((schemas / f"{c['type']}.command.output.schema.json").read_text()))
            # Codex refuses answers it does not support: no allow or ask from PreToolUse.
            if c["event"] == "PreToolUse":
                assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
                assert out["hookSpecificOutput"]["permissionDecisionReason"]


# ---- install, uninstall, doctor ------------------------------------------------------------

SETTINGS = {
    "claude-code": (".claude/settings.json",
                    {"model": "opus", "permissions": {"allow": ["Bash(npm test)"]},
                     "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./my-check.sh"}]}],
                               "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]}}),
    "cursor": (".cursor/hooks.json",
               {"version": 1, "hooks": {"afterFileEdit": [{"command": "./format.sh"}],
                                        "beforeShellExecution": [{"command": "./audit.sh"}]}}),
    "gemini": (".gemini/settings.json",
               {"theme": "GitHub", "hooks": {"BeforeTool": [{"matcher": "write_file", "hooks": [{"type": "command", "command": "./lint.sh", "timeout": 5000}]}]}}),
    "codex": (".codex/hooks.json",
              {"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "echo hi"}]}]}}),
}


def sluice(*args, cwd=None, env=None):
    return subprocess.run([SLUICE, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("existing", [True, False], ids=["with-other-hooks", "no-settings"])
def test_install_is_idempotent_keeps_other_hooks_and_uninstall_restores(agent, existing, tmp_path):
    rel, original = SETTINGS[agent]
    path = tmp_path / rel
    if existing:
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(original, indent=2) + "\n")
    r = sluice("hook", "install", agent, "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    first = path.read_text()
    installed = json.loads(first)
    r = sluice("hook", "install", agent, "--dir", str(tmp_path))
    assert r.returncode == 0 and "already installed" in r.stdout, r.stdout
    assert path.read_text() == first
    if existing:
        # Everything that was there is still there, in its order, before Sluice's entries.
        assert list(installed)[:len(original)] == list(original)
        for event, groups in original.get("hooks", {}).items():
            assert installed["hooks"][event][:len(groups)] == groups
        for k, v in original.items():
            if k != "hooks":
                assert installed[k] == v
    text = json.dumps(installed)
    assert f"hook {agent} " in text and SLUICE.split("/")[-1] in text
    if agent == "cursor":
        assert all(e.get("failClosed") is True for evs in installed["hooks"].values() for e in evs
                   if "sluice" in e["command"])
    # The installed commands run and decide.
    r = sluice("hook", "doctor", agent, "--dir", str(tmp_path), env={**os.environ, "HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is refused: ok" in r.stdout
    r = sluice("hook", "uninstall", agent, "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    if existing:
        assert json.loads(path.read_text()) == original
        assert list(json.loads(path.read_text())) == list(original)
    else:
        assert "sluice" not in path.read_text()


def test_install_with_options_and_user_scope(tmp_path, workdir):
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home)}
    policy = workdir / "hook-policy.yaml"
    policy.write_text("version: 1\nname: hook-test\ndefault: allow\nrules:\n"
                      "  - {id: no-curl, action: deny, message: no curl, when: {shell: {programs: [curl]}}}\n")
    r = sluice("hook", "install", "claude-code", "--user", "--policy", str(policy), env=env)
    assert r.returncode == 0, r.stderr
    settings = json.loads((home / ".claude/settings.json").read_text())
    cmd = settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    assert "--policy" in cmd and str(policy) in cmd
    r = subprocess.run(["sh", "-c", cmd], input=json.dumps({"hook_event_name": "PreToolUse", "tool_name": "Bash",
                                                            "tool_input": {"command": "curl https://example.com"}}),
                       capture_output=True, text=True)
    assert json.loads(r.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "no-curl" in r.stdout


def test_install_refuses_a_broken_settings_file_and_changes_nothing(tmp_path):
    path = tmp_path / ".gemini/settings.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"theme": "x",,}')
    r = sluice("hook", "install", "gemini", "--dir", str(tmp_path))
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "nothing was changed" in r.stderr
    assert path.read_text() == '{"theme": "x",,}'


def test_doctor_says_when_nothing_is_installed(tmp_path):
    r = sluice("hook", "doctor", "--dir", str(tmp_path), env={**os.environ, "HOME": str(tmp_path)})
    assert r.returncode == 1 and "not installed" in r.stdout


def test_decisions_are_recorded_and_the_recording_verifies(tmp_path, secret):
    key = tmp_path / "rec.key"
    assert sluice("keygen", "--type", "ed25519", "--out", str(key)).returncode == 0
    rec = tmp_path / "rec"
    rec.mkdir()
    for event, payload in [
        ("PreToolUse", {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "cat ~/.aws/credentials"}}),
        ("UserPromptSubmit", {"hook_event_name": "UserPromptSubmit", "prompt": f"key {secret}"}),
        ("PostToolUse", {"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "env"},
                         "tool_response": {"stdout": f"K={secret}"}}),
    ]:
        r = run_hook("claude-code", event, payload, "--record", str(rec), "--record-key", str(key))
        assert r.returncode == 0, r.stderr
    files = sorted(rec.glob("claude-code-*.jsonl"))
    assert len(files) == 3
    r = sluice("record", "verify", "--key", f"{key}.pub", *map(str, files))
    assert r.returncode == 0, r.stdout + r.stderr
    text = "".join(f.read_text() for f in files)
    assert secret not in text
    assert "credential-files" in text and "stripe-secret-key" in text


def test_install_turns_a_switched_off_guard_back_on(tmp_path):
    """Fail closed where the agent has a switch: Gemini's `hooks.enabled: false` and a
    `disabled` entry naming Sluice, Claude Code's `disableAllHooks`."""
    g = tmp_path / ".gemini/settings.json"
    g.parent.mkdir(parents=True)
    g.write_text(json.dumps({"hooks": {"enabled": False, "disabled": ["sluice", "other"], "notifications": []}}))
    r = sluice("hook", "install", "gemini", "--dir", str(tmp_path))
    assert r.returncode == 0 and "hooks.enabled" in r.stdout, r.stdout
    s = json.loads(g.read_text())["hooks"]
    assert s["enabled"] is True and s["disabled"] == ["other"] and s["notifications"] == []
    c = tmp_path / ".claude/settings.json"
    c.parent.mkdir(parents=True)
    c.write_text(json.dumps({"disableAllHooks": True, "model": "x"}))
    r = sluice("hook", "install", "claude-code", "--dir", str(tmp_path))
    assert r.returncode == 0 and "disableAllHooks" in r.stdout
    s = json.loads(c.read_text())
    assert "disableAllHooks" not in s and s["model"] == "x" and "PreToolUse" in s["hooks"]
