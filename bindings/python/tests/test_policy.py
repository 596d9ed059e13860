"""Policy decisions through `Engine.check`: the embedded policy's table of cases
(testdata/policy/agent-safe.json, the same table the Rust tests and `sluice policy test` run)
and the example team policy with its own cases."""

from __future__ import annotations

import json

import pytest
import yaml

import sluice

from conftest import TESTDATA

AGENT_SAFE = json.loads((TESTDATA / "policy" / "agent-safe.json").read_text())["cases"]
TEAM_DIR = TESTDATA / "policy" / "examples"


def decide(engine: sluice.Engine, case: dict) -> sluice.Decision:
    identity = sluice.Identity(case.get("user", "agent"), case.get("groups", []), case.get("attributes", {}))
    target = sluice.Target(case.get("target", "default"), case.get("labels", {}))
    return engine.check(
        case["protocol"],
        case["command"],
        identity=identity,
        target=target,
        dialect=case.get("dialect", "postgres"),
        headers=case.get("headers"),
        body=case.get("body"),
        ssh=case.get("ssh", "exec"),
    )


@pytest.mark.parametrize("case", AGENT_SAFE, ids=lambda c: c["name"])
def test_agent_safe_cases(engine: sluice.Engine, case: dict) -> None:
    d = decide(engine, case)
    assert d.decision == case["expect"], f"{case['name']}: {d.reason}"
    if "rule" in case:
        assert d.rule == case["rule"]
    assert d.allowed == (case["expect"] == "allow") == bool(d)
    if d.decision == "require_approval":
        assert d.approval is not None and d.approval.id.startswith("apr_")


def team_cases():
    doc = yaml.safe_load((TEAM_DIR / "team-cases.yaml").read_text())
    return doc["cases"] if isinstance(doc, dict) else doc


@pytest.mark.parametrize("case", team_cases(), ids=lambda c: c["name"])
def test_team_policy_cases(case: dict) -> None:
    engine = sluice.Engine.from_file(TEAM_DIR / "team.yaml")
    d = decide(engine, case)
    assert d.decision == case["expect"], f"{case['name']}: {d.reason}"
    if "rule" in case:
        assert d.rule == case["rule"]


def test_mcp_command_forms(engine: sluice.Engine) -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "run_command", "arguments": {"command": "cat ~/.aws/credentials"}},
    }
    for command in (message, json.dumps(message), message["params"]):
        assert engine.check("mcp", command).rule == "credential-files"


def test_identity_roles_and_reload() -> None:
    policy = """
version: 1
name: roles
default: deny
roles:
  dba: { groups: [dba] }
rules:
  - { id: dba-sql, action: allow, when: { roles: [dba], protocols: [sql] } }
"""
    engine = sluice.Engine.from_yaml(policy)
    dba = sluice.Identity("ann", ["dba"], {"team": "data"})
    assert engine.roles(dba) == ["dba"] and engine.roles("bob") == []
    assert engine.check("sql", "SELECT 1", identity=dba).allowed
    assert engine.check("sql", "SELECT 1", identity="bob").decision == "deny"
    assert engine.policy_name == "roles"
    engine.load_policy(policy.replace("default: deny", "default: allow").replace("name: roles", "name: roles-2"))
    assert engine.policy_name == "roles-2" and engine.check("sql", "SELECT 1", identity="bob").allowed
    with pytest.raises(sluice.PolicyError):
        engine.load_policy("version: 1\nrules: [")
    assert engine.policy_name == "roles-2", "a bad policy leaves the current one in place"
