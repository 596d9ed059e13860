#!/usr/bin/env python3
"""Validate policy files against schema/policy.schema.json (the jsonschema package), and check
that documents the engine rejects are rejected by the schema too.

Run by scripts/test.sh: python3 scripts/check_policy_schema.py
"""
import glob
import json
import os
import sys

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    with open(os.path.join(ROOT, "schema", "policy.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = [os.path.join(ROOT, "core", "src", "policy", "agent-safe.yaml")]
    files += sorted(glob.glob(os.path.join(ROOT, "testdata", "policy", "examples", "*.yaml")))
    files = [f for f in files if not f.endswith("-cases.yaml")]
    failures = 0
    for path in files:
        with open(path) as f:
            doc = yaml.safe_load(f)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        for e in errors:
            print(f"{os.path.relpath(path, ROOT)}: {'/'.join(map(str, e.path))}: {e.message}")
        failures += len(errors)
    invalid = [
        {"version": 2},
        {"version": 1, "rules": [{"id": "a", "action": "maybe"}]},
        {"version": 1, "rules": [{"id": "a", "action": "deny", "when": {"shell": {"pathz": ["x"]}}}]},
        {"version": 1, "rules": [{"id": "a", "action": "deny", "when": {"sql": {"kinds": ["dropp"]}}}]},
        {"version": 1, "approval": {"ttl": "soon"}},
        {"version": 1, "extends": "strict"},
        {"version": 1, "roles": {"r": {}}},
    ]
    for doc in invalid:
        if validator.is_valid(doc):
            print(f"schema accepts a document the engine rejects: {json.dumps(doc)}")
            failures += 1
    print(f"{len(files)} policy files valid against the schema, {len(invalid)} invalid documents rejected"
          if failures == 0 else f"{failures} schema problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
