#!/usr/bin/env python3
"""Extracts the JSON Schemas of Codex CLI's hook payloads from its binary.

Codex ships no TypeScript types for hooks; its binary (npm `@openai/codex`, platform package
`@openai/codex-linux-x64`) embeds the generated schemas `<event>.command.input` and
`<event>.command.output` that its own hook runner validates against. The e2e tests check Sluice's
Codex fixtures and answers against them; this script refreshes `testdata/hooks/codex/schemas/`:

    npm install --no-save @openai/codex-linux-x64   # ~420 MB, not needed by the tests
    python3 scripts/extract_codex_hook_schemas.py node_modules/@openai/codex-linux-x64/vendor/*/bin/codex
"""
import json
import re
import sys
from pathlib import Path

WANTED = ("pre-tool-use", "post-tool-use", "user-prompt-submit", "permission-request")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    blob = Path(sys.argv[1]).read_bytes()
    out = Path(__file__).resolve().parent.parent / "testdata/hooks/codex/schemas"
    out.mkdir(parents=True, exist_ok=True)
    found = 0
    dec = json.JSONDecoder()
    text = blob.decode("latin-1")
    for m in re.finditer(r'\{\n  "\$schema": "http://json-schema.org/draft-07/schema#"', text):
        try:
            schema, _ = dec.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        title = schema.get("title", "")
        if any(title.startswith(w + ".command.") for w in WANTED):
            (out / f"{title}.schema.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
            found += 1
    print(f"{found} schemas written to {out}")
    return 0 if found == 2 * len(WANTED) else 1


if __name__ == "__main__":
    sys.exit(main())
